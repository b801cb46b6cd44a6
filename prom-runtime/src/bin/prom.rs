//! The `prom` command: publish, tail, inspect dead letters and run consumers on the embedded
//! store in `.prom/`.

fn main() -> std::process::ExitCode {
    prom_runtime::cli::main()
}
