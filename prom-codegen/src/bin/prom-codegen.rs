//! The `prom-codegen` command line.

fn main() -> std::process::ExitCode {
    prom_codegen::cli::main()
}
