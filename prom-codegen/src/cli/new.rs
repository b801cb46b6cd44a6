//! `prom-codegen new DIR`: writes a service crate that builds and runs as it is.

use crate::scaffold::Scaffold;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(dir: &Path, name: Option<String>, prom_path: Option<PathBuf>) -> ExitCode {
    let mut scaffold = Scaffold::new();
    if let Some(name) = name {
        scaffold = scaffold.with_name(name);
    }
    if let Some(path) = prom_path {
        scaffold = scaffold.with_prom_path(path);
    }
    match scaffold.write(dir) {
        Ok(files) => {
            for file in files {
                err!("wrote {}", file.display());
            }
            err!("next: cd {} && cargo run -- --once   (places an order, bills it, stops)", dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            err!("error: {error}");
            ExitCode::from(2)
        }
    }
}
