//! The `prom-codegen` command line.

// Generation allocates many small, short-lived values on every core; mimalloc's thread-local
// pools make that markedly cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    prom_codegen::cli::main()
}
