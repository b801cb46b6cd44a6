//! The `prom-codegen` command line: thin wrappers over the library.

/// `println!` that never panics (see [`stdout_line`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdout_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// `eprint!` that never panics on a closed stderr.
macro_rules! err_raw {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = write!(::std::io::stderr().lock(), $($arg)*);
    }};
}

mod alerts;
mod asyncapi;
mod breaking;
mod build;
mod compat;
mod docs;
mod lint;
mod lock;
mod new;
pub use prom_spec::cli::{ConflictingSpecPaths, SPEC_PATHS_ID, SpecPaths, spec_paths_last};

use clap::{CommandFactory, FromArgMatches, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Prom code generator: lint specs, check schema compatibility, generate code.
#[derive(Debug, clap::Parser)]
#[command(name = "prom-codegen", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lint the specs, then write the generated Rust code (only if it changed).
    Build {
        /// Where the specs are.
        #[command(flatten)]
        specs: SpecPaths,
        /// Output file.
        #[arg(long, default_value = "src/prom_generated.rs")]
        out: PathBuf,
    },
    /// Exit 1 when the generated file on disk is stale (for CI), 0 when it is current.
    Check {
        /// Where the specs are.
        #[command(flatten)]
        specs: SpecPaths,
        /// The generated file to compare.
        #[arg(long, default_value = "src/prom_generated.rs")]
        out: PathBuf,
    },
    /// Lint spec files or directories (default `specs/`); exit 1 on errors.
    Lint {
        /// Where the specs are.
        #[command(flatten)]
        specs: SpecPaths,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Compare two JSON Schemas under a compatibility mode; exit 1 if incompatible, 2 on bad input.
    Compat {
        /// The old (earlier) schema, JSON or YAML.
        old: PathBuf,
        /// The new schema, JSON or YAML.
        new: PathBuf,
        /// none, backward, forward, full or a *_transitive mode.
        #[arg(long, default_value = "backward")]
        mode: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Write a new service crate into DIR (which must not exist or be empty): Cargo.toml, a
    /// starter spec, build.rs with the Builder and a main.rs that publishes and handles an event.
    New {
        /// The directory to create.
        dir: PathBuf,
        /// The package name [default: the directory's name].
        #[arg(long)]
        name: Option<String>,
        /// Depend on the prom crates of this checkout (path dependencies) instead of crates.io.
        #[arg(long, value_name = "CHECKOUT")]
        prom_path: Option<PathBuf>,
    },
    /// Print the JSON Schema of the spec format (for editor completion and checks), generated
    /// from the spec model's types.
    Schema,
    /// Report what the specs break for existing events and readers, compared with the specs at a
    /// git ref; exit 1 when something breaks, 2 on a usage error.
    Breaking {
        /// Where the specs are.
        #[command(flatten)]
        specs: SpecPaths,
        /// The git ref (branch, tag, commit) to compare with, e.g. `origin/main`.
        #[arg(long, value_name = "REF")]
        against: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Write the AsyncAPI 3.0.0 document (JSON) of the specs: channels, messages, operations.
    Asyncapi {
        /// Where the specs are.
        #[command(flatten)]
        specs: SpecPaths,
        /// Output file (written only if it changed) [default: stdout].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The document's `info.title` [default: "Prom system"].
        #[arg(long)]
        title: Option<String>,
    },
    /// Write the topology site of the specs (HTML plus Markdown) into DIR; `--check` exits 1
    /// naming the stale or missing files instead of writing.
    Docs {
        /// Where the specs are.
        #[command(flatten)]
        specs: SpecPaths,
        /// The output directory (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Compare DIR with what would be written; exit 1 when it differs.
        #[arg(long)]
        check: bool,
    },
    /// Write Prometheus alert rules (prom-alerts.yml) and a Grafana dashboard
    /// (prom-dashboard.json) for the declared consumers, DLQs, projectors and changefeeds.
    Alerts {
        /// Where the specs are.
        #[command(flatten)]
        specs: SpecPaths,
        /// The directory to write both files into (created if missing).
        #[arg(long, default_value = ".", value_name = "DIR")]
        out: PathBuf,
    },
    /// Record every version's fingerprint in the spec directory's prom.lock (as `build` does);
    /// `--rewrite` releases a locked version or topic for a deliberate in-place edit or removal.
    Lock {
        /// Where the specs are (a directory: the lock lives in it).
        #[command(flatten)]
        specs: SpecPaths,
        /// A locked `TOPIC@VERSION` (or a whole `TOPIC`) to record afresh, or to drop when the
        /// spec no longer declares it; repeatable.
        #[arg(long, value_name = "TOPIC[@VERSION]")]
        rewrite: Vec<prom_spec::lock::Rewrite>,
    },
}

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Rendered for people.
    Human,
    /// Machine-readable JSON.
    Json,
}

/// Set when stdout failed for a reason other than a closed pipe (a full disk): the output
/// is incomplete, so the command must not report success.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout. A reader that went away (`prom-codegen schema | head`) is not an
/// error worth a backtrace: the rest is dropped quietly. Any other failure is reported once
/// and turns the exit status into 2.
#[doc(hidden)]
pub fn stdout_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(error) => {
            if !STDOUT_FAILED.swap(true, Ordering::Relaxed) {
                err!("error: cannot write to stdout: {error}");
            }
        }
    }
}

/// Parses arguments and runs the command.
pub fn main() -> ExitCode {
    let matches = spec_paths_last(Cli::command()).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => run(cli),
        Err(error) => error.exit(),
    }
}

/// Runs a parsed command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let code = run_command(cli);
    // Output lines are flushed as written (stdout is line-buffered), so the flag is final here.
    if STDOUT_FAILED.load(Ordering::Relaxed) { ExitCode::from(2) } else { code }
}

fn run_command(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Build { specs, out } => with_specs(&specs, |specs| build::build(specs, &out)),
        Command::Check { specs, out } => with_specs(&specs, |specs| build::check(specs, &out)),
        Command::Lint { specs, format, deny_warnings } => {
            with_specs(&specs, |specs| lint::run(specs, format, deny_warnings))
        }
        Command::Compat { old, new, mode, format } => compat::run(&old, &new, &mode, format),
        Command::Lock { specs, rewrite } => with_specs(&specs, |specs| lock::run(specs, &rewrite)),
        Command::Breaking { specs, against, format } => {
            with_specs(&specs, |specs| breaking::run(specs, &against, format))
        }
        Command::Asyncapi { specs, out, title } => {
            with_specs(&specs, |specs| asyncapi::run(specs, out.as_deref(), title))
        }
        Command::Docs { specs, out, check } => with_specs(&specs, |specs| docs::run(specs, &out, check)),
        Command::Alerts { specs, out } => with_specs(&specs, |specs| alerts::run(specs, &out)),
        Command::New { dir, name, prom_path } => new::run(&dir, name, prom_path),
        Command::Schema => {
            // Generated from the spec model's types; the checked-in copy editors use is the same
            // text (`tests/format_schema.rs` fails when it is stale).
            out!("{}", prom_spec::spec::format::schema_text().trim_end());
            ExitCode::SUCCESS
        }
    }
}

/// Resolves the spec paths and runs `command` on them; exit 2 when the two forms disagree.
fn with_specs(specs: &SpecPaths, command: impl FnOnce(&[PathBuf]) -> ExitCode) -> ExitCode {
    match specs.resolve() {
        Ok(paths) => command(&paths),
        Err(error) => {
            err!("error: {error}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_table_is_valid_with_spec_paths_moved_last() {
        spec_paths_last(Cli::command()).debug_assert();
    }
}
