//! The `prom` CLI: argument parsing, spec loading and store opening shared by the commands.

mod dlq;
mod logs;
#[cfg(feature = "mongo")]
mod mongo_pipelines;
#[cfg(feature = "otel")]
mod otlp;
mod progress;
mod progress_bar;
mod publish;
mod rebuild;
mod run;
mod serve;
mod status;
mod stream;
mod tail;
mod timetravel;
mod verify;

use crate::bus::{AnyBus, SqliteBus};
use crate::consumer::Start;
use crate::error::Error;
use crate::publish::Producer;
use crate::registry::{Registry, Route};
use clap::{CommandFactory, FromArgMatches, Subcommand};
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// Prom's runtime CLI.
#[derive(Debug, clap::Parser)]
#[command(
    name = "prom",
    version,
    about = "Publish, tail and consume events on Prom's embedded store or on MongoDB"
)]
pub struct Cli {
    /// Store directory (created if missing).
    #[arg(long, global = true, default_value = ".prom", value_name = "DIR")]
    pub store: PathBuf,
    /// Use the MongoDB replica set at URL instead of the embedded store (default: the
    /// PROM_MONGO_URL environment variable, when set).
    #[arg(long, global = true, value_name = "URL")]
    pub mongo: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A `prom` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a JSON payload against the topic's latest schema and publish it; prints the id.
    Publish(publish::Args),
    /// Print a topic's events as JSON lines, upcast to the latest version.
    Tail(tail::Args),
    /// Append to and read the streams of event-sourced aggregates.
    #[command(subcommand)]
    Stream(stream::Command),
    /// Check an aggregate's streams: gap-free versions and, when tamper-evident, every hash
    /// chain. Exits 1 naming the first broken stream and version.
    Verify(verify::Args),
    /// Rebuild a changelog projector's collection from offset 0 into a shadow, checkpointed
    /// (a killed rebuild resumes), and swap it in atomically; prints a JSON report.
    Rebuild(rebuild::Args),
    /// Inspect or replay dead letters.
    #[command(subcommand)]
    Dlq(dlq::Command),
    /// Run every declared pipeline that needs no user code until Ctrl-C: on MongoDB the changelog
    /// projectors and changefeeds (consumers only as an explicit `--stand-in`).
    Run(run::Args),
    /// Print the state of one key of a topic at a past time as JSON (`null` when absent).
    TimeTravel(timetravel::Args),
    /// Serve the HTTP gateway (publish, subscribe) until Ctrl-C; on MongoDB also run the declared
    /// changelog projectors and changefeeds and serve their snapshot APIs.
    Serve(serve::Args),
    /// Print each topic, consumer group, DLQ, projector and changefeed of the spec as a table or
    /// JSON: heads, lag per partition, live members, dead letters, checkpoints, resume points.
    /// Read-only: takes no event and joins no group.
    Status(status::Args),
}

/// What to tell a user whose `prom` lacks the `mongo` feature that `what` needs, and how to
/// get a `prom` that has it.
pub fn mongo_missing(what: &str) -> String {
    format!(
        "{what} needs MongoDB support, but this prom was built without the `mongo` feature\n  \
         = help: install a prom that has it: `cargo install prom-runtime --features mongo`\n  \
         = help: or, in the Prom workspace: `cargo run -p prom-runtime --features mongo --bin prom -- ...`"
    )
}

/// Where the spec is: positional paths after the command's own arguments, or `--specs PATH`.
#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    /// The spec paths, as `prom-codegen` takes them.
    #[command(flatten)]
    pub specs: prom_spec::cli::SpecPaths,
}

/// Why a command stopped.
#[derive(Debug)]
pub enum Failure {
    /// The spec has errors (exit 2); the rendered diagnostics were already printed.
    Spec,
    /// Anything else (exit 1).
    Runtime(String),
    /// The command line asks for something this `prom` cannot do as given (exit 2).
    Usage(String),
    /// An append's expected version did not match the stream's (exit 3).
    Conflict(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Runtime(e.to_string())
    }
}

/// The result of a command.
pub type Outcome = Result<(), Failure>;

/// How long a MongoDB client may take to close its sessions and cursors on exit.
#[cfg(feature = "mongo")]
const CLIENT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Parses the arguments, runs the command, and maps the outcome to an exit status.
pub fn main() -> ExitCode {
    let matches = prom_spec::cli::spec_paths_last(Cli::command()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let export = logs::install();
    // A publish outside any trace starts one only when asked (see `prom_runtime::trace`).
    if std::env::var("PROM_NEW_TRACES").is_ok_and(|v| v.trim() == "1") {
        crate::trace::set_new_traces(true);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(feature = "mongo")]
    crate::bus::mongo::clients::track();
    let outcome = runtime.block_on(dispatch(cli));
    // Every MongoDB client stops its background tasks while the runtime still runs: dropped
    // with the runtime, they would panic on the way out.
    #[cfg(feature = "mongo")]
    runtime.block_on(crate::bus::mongo::clients::shutdown_tracked(CLIENT_SHUTDOWN_GRACE));
    // The spans of the command are exported before the process exits.
    if let Some(export) = export {
        export.shutdown();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Spec) => ExitCode::from(2),
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Conflict(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(3)
        }
    }
}

async fn dispatch(cli: Cli) -> Outcome {
    let flagged = cli.mongo.is_some();
    let mongo = cli.mongo.or_else(|| std::env::var("PROM_MONGO_URL").ok().filter(|u| !u.trim().is_empty()));
    #[cfg(not(feature = "mongo"))]
    match (&cli.command, &mongo) {
        (_, Some(_)) if flagged => return Err(Failure::Usage(mongo_missing("`--mongo URL`"))),
        (_, Some(_)) => {
            return Err(Failure::Usage(format!(
                "{}\n  = help: or unset PROM_MONGO_URL to use the embedded store",
                mongo_missing("PROM_MONGO_URL (set in the environment)")
            )));
        }
        (_, None) => {}
    }
    #[cfg(feature = "mongo")]
    let _ = flagged;
    let target = Target { store: cli.store, mongo };
    match cli.command {
        Command::Publish(args) => publish::run(&target, args).await,
        Command::Tail(args) => tail::run(&target, args).await,
        Command::Stream(command) => stream::run(&target, command).await,
        Command::Verify(args) => verify::run(&target, args).await,
        Command::Rebuild(args) => rebuild::run(&target, args).await,
        Command::Dlq(command) => dlq::run(&target, command).await,
        Command::Run(args) => run::run(&target, args).await,
        Command::TimeTravel(args) => timetravel::run(&target, args).await,
        Command::Serve(args) => serve::run(&target, args).await,
        Command::Status(args) => status::run(&target, args).await,
    }
}

/// Where the events are: the embedded store, or MongoDB when a URL was given.
#[derive(Debug, Clone)]
pub struct Target {
    /// The embedded store's directory.
    pub store: PathBuf,
    /// The MongoDB URL (`--mongo` or PROM_MONGO_URL), which wins over the store.
    pub mongo: Option<String>,
}

impl Target {
    /// Opens the bus.
    pub async fn open(&self) -> Result<AnyBus, Failure> {
        match &self.mongo {
            None => Ok(SqliteBus::open(&self.store)?.into()),
            Some(url) => open_mongo(url).await,
        }
    }
}

#[cfg(feature = "mongo")]
async fn open_mongo(url: &str) -> Result<AnyBus, Failure> {
    open_mongo_bus(url).await.map(AnyBus::from)
}

/// Opens the MongoDB bus at `url`, which came from `--mongo` or PROM_MONGO_URL.
#[cfg(feature = "mongo")]
pub(crate) async fn open_mongo_bus(url: &str) -> Result<crate::bus::MongoBus, Failure> {
    // The library describes the URL; which flag or variable carried it is the CLI's to say.
    crate::bus::MongoBus::open(url).await.map_err(|e| {
        Failure::Runtime(format!("cannot open the MongoDB named by --mongo/PROM_MONGO_URL: {e}"))
    })
}

#[cfg(not(feature = "mongo"))]
async fn open_mongo(_url: &str) -> Result<AnyBus, Failure> {
    Err(Failure::Usage(mongo_missing("`--mongo URL`/PROM_MONGO_URL")))
}

/// Lints the spec (printing diagnostics; errors stop the command) and builds the registry.
pub fn load(specs: &SpecArgs) -> Result<(crate::system::System, Arc<Registry>), Failure> {
    let paths = specs.specs.resolve().map_err(|e| Failure::Usage(e.to_string()))?;
    let linted = prom_spec::lint_paths(&paths);
    if linted.has_errors() {
        eprint!("{}", linted.render());
        return Err(Failure::Spec);
    }
    if !linted.diagnostics.is_empty() {
        eprint!("{}", linted.render());
    }
    let system = crate::system::System::from_spec(&linted.spec);
    let registry = Registry::from_system(&system)?;
    Ok((system, Arc::new(registry)))
}

/// Opens the bus and a producer over it.
pub async fn open(target: &Target, registry: Arc<Registry>) -> Result<Producer<AnyBus>, Failure> {
    Ok(Producer::new(target.open().await?, registry))
}

/// The partitions of `topic` (for a versioned or dead-letter topic, those of its topic).
pub fn partitions(registry: &Registry, topic: &str) -> Result<u32, Failure> {
    match registry.route(topic)? {
        Route::Topic(t) | Route::Versioned(t, _) | Route::DeadLetters(t) => Ok(t.partitions),
    }
}

/// A future that completes once `stop` turns true (or its sender is gone, which also means stop).
pub fn stopped(stop: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stop = stop.clone();
    async move {
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// A progress report that prints nothing.
type Silent = fn() -> std::future::Ready<()>;

/// No progress lines, for [`supervise`] (`prom serve`).
pub(crate) const NO_PROGRESS: Option<(std::time::Duration, Silent)> = None;

/// Runs until `interrupted` completes or a task fails (every task ending also ends it), calling
/// `report` every `every` when given; then asks every task to stop through `stop`, waits for
/// them, reports once more and says "stopped". Shared by `prom run` and `prom serve`.
pub(crate) async fn supervise<R, F>(
    tasks: &mut tokio::task::JoinSet<crate::error::Result<()>>,
    interrupted: impl Future<Output = ()>,
    stop: &watch::Sender<bool>,
    progress: Option<(std::time::Duration, R)>,
) -> Outcome
where
    R: Fn() -> F,
    F: Future<Output = ()>,
{
    tokio::pin!(interrupted);
    let mut ticker = progress.as_ref().map(|(every, _)| tokio::time::interval(*every));
    let report = || async {
        if let Some((_, report)) = &progress {
            report().await;
        }
    };
    let outcome = loop {
        tokio::select! {
            () = &mut interrupted => break Ok(()),
            () = async {
                match &mut ticker {
                    Some(ticker) => {
                        ticker.tick().await;
                    }
                    None => std::future::pending().await,
                }
            } => report().await,
            done = tasks.join_next() => match done {
                Some(Ok(Err(e))) => break Err(Failure::from(e)),
                Some(Err(e)) => break Err(Failure::Runtime(format!("a task failed: {e}"))),
                Some(Ok(Ok(()))) => {}
                None => break Ok(()),
            },
        }
    };
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            eprintln!("error while stopping: {e}");
        }
    }
    report().await;
    eprintln!("stopped");
    outcome
}

/// Parses `--from`: `earliest`, `latest`, an event id, or a time.
pub fn parse_start(text: &str) -> Result<Start, String> {
    match text {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        _ => match uuid::Uuid::parse_str(text) {
            Ok(id) => Ok(Start::After(id)),
            Err(_) => crate::record::parse_ts(text)
                .map(Start::Time)
                .map_err(|e| format!("{e}; --from also takes `earliest`, `latest` or an event id")),
        },
    }
}

/// Prints one JSON line to stdout.
pub fn print_json(value: &impl serde::Serialize) -> Outcome {
    let line =
        serde_json::to_string(value).map_err(|e| Failure::Runtime(format!("cannot print JSON: {e}")))?;
    println!("{line}");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM received after this call, so long-running commands stop as
/// cleanly on `kill` as on Ctrl-C. The handlers are installed here, not when first polled: once
/// tokio handles a signal, a signal arriving while nobody listens is swallowed, so call it once
/// before starting work and poll the same future (by reference) in the loop.
#[cfg(unix)]
pub(crate) fn interrupted() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let wait = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
        match signal {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Not handled here, so the signal keeps its default action (the process ends).
            Err(_) => std::future::pending().await,
        }
    };
    let (interrupt, terminate) =
        (wait(signal(SignalKind::interrupt())), wait(signal(SignalKind::terminate())));
    async move {
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
}

/// Completes on Ctrl-C (there is no SIGTERM here).
#[cfg(not(unix))]
pub(crate) fn interrupted() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_mongo_feature_is_named_with_both_ways_to_get_it() {
        let text = super::mongo_missing("`prom serve`");
        assert!(text.starts_with("`prom serve` needs MongoDB support"), "{text}");
        assert!(text.contains("without the `mongo` feature"), "{text}");
        assert!(text.contains("`cargo install prom-runtime --features mongo`"), "{text}");
        assert!(text.contains("`cargo run -p prom-runtime --features mongo --bin prom -- ...`"), "{text}");
    }

    #[test]
    fn the_command_table_is_valid_with_spec_paths_moved_last() {
        use clap::CommandFactory as _;
        prom_spec::cli::spec_paths_last(super::Cli::command()).debug_assert();
    }
}
