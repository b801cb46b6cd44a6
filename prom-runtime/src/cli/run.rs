//! `prom run`: every declared pipeline that needs no user code, until Ctrl-C or SIGTERM.
//!
//! A declared consumer belongs to the user's service: its group's events are the service's to
//! process. So `prom run` never joins a consumer's group unless asked by name with `--stand-in`
//! (then loudly), because every event a stand-in acks is an event the service never sees. On
//! MongoDB the changelog projectors and changefeeds run (as in `prom serve`, without the snapshot
//! APIs); on the embedded store the changelog projectors run into its tables and publish the
//! changefeeds of those tables. Transactional projectors run a handler of the user's program:
//! skipped.

use super::progress::{self, Running};
use super::{Failure, Outcome, SpecArgs};
use crate::bus::{AnyBus, SqliteBus};
use crate::consumer::SubscribeOptions;
use crate::error::Result;
use crate::metrics;
use crate::pipeline::embedded;
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::runner::Runner;
use crate::system::System;
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Arguments of `prom run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Seconds between progress lines on stderr.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    progress: f64,
    /// Consume the declared consumer NAME's group with a stand-in that prints each event and acks
    /// it (repeatable). The events it acks are taken from your service: use it only where no
    /// service runs that consumer. Without it, consumers are never run (`prom tail` prints a topic).
    #[arg(long = "stand-in", value_name = "NAME")]
    stand_in: Vec<String>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (no auth: bind a private interface).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// How often the sampled gauges (lag, DLQ depth and age, resume token age, oplog window)
    /// are refreshed from the store.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = super::serve::duration)]
    metrics_interval: Duration,
}

/// Runs the pipelines until Ctrl-C (or SIGTERM).
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (spec, registry) = super::load(&args.spec)?;
    // Before anything registers a metric handle: handles bind to the recorder installed then.
    let exporter = match &args.metrics {
        Some(_) => Some(metrics::prometheus::install().ok_or_else(|| {
            Failure::Runtime("cannot install the Prometheus recorder: another one is installed".into())
        })?),
        None => None,
    };
    let producer = super::open(target, registry.clone()).await?;
    let interrupted = super::interrupted();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    if let (Some(listen), Some(handle)) = (&args.metrics, exporter) {
        let listener = super::serve::bind(listen).await?;
        let address =
            listener.local_addr().map_err(|e| Failure::Runtime(format!("no local address: {e}")))?;
        let reporter = crate::server::Reporter::new(|message| eprintln!("prom run: metrics: {message}"));
        let router = metrics::prometheus::standalone(handle);
        tasks.spawn(crate::server::serve(
            listener,
            router,
            Default::default(),
            reporter,
            super::stopped(&stopped),
        ));
        let (bus, system, every) = (producer.bus().clone(), spec.clone(), args.metrics_interval);
        let until = super::stopped(&stopped);
        tasks.spawn(async move {
            metrics::run_sampler(bus, system, every, until).await;
            Ok(())
        });
        // Tools and tests wait for this line before scraping.
        eprintln!("metrics at http://{address}/metrics");
    }
    let stand_ins = stand_ins(&spec, &args.stand_in)?;
    let mut running = start_on_store(&spec, &producer, &mut tasks, &stopped)?;
    for consumer in &spec.consumers {
        let name = &consumer.name;
        if !stand_ins.contains(name.as_str()) {
            let (group, topic) = (&consumer.group, &consumer.topic);
            eprintln!(
                "not running consumer `{name}` (group `{group}` on `{topic}`): it needs your service's \
                 handler, and the group's events stay for your service; `prom tail {topic}` prints them \
                 without taking them, `--stand-in {name}` consumes them here"
            );
            continue;
        }
        let runner =
            Runner::for_consumer(producer.clone(), consumer, SubscribeOptions::default())?.named(name);
        let partitions = super::partitions(&registry, &consumer.topic)?;
        let stats = runner.stats();
        running.push(Running {
            name: name.clone(),
            group: Some((runner.group().clone(), partitions)),
            counters: Box::new(move || {
                let (handled, retried, dead, failed) = stats.snapshot();
                format!("handled={handled} retried={retried} dead_lettered={dead} failed={failed}")
            }),
        });
        eprintln!(
            "WARNING: running a printing stand-in for consumer `{name}` on `{}`: every event it acks in \
             group `{}` is taken from your service, which will never process it",
            consumer.topic,
            runner.group().group
        );
        let label = name.clone();
        let handler = move |event: EventRecord| {
            let label = label.clone();
            async move {
                super::print_json(&json!({ "consumer": label, "event": event })).map_err(|_| "stdout closed")
            }
        };
        tasks.spawn(runner.run(handler, super::stopped(&stopped)));
    }
    if running.is_empty() {
        return Err(Failure::Runtime(
            "nothing to run: consumers need your service's handler (or an explicit `--stand-in NAME`), \
             and the spec declares no changelog projector or changefeed"
                .into(),
        ));
    }
    let every = Duration::from_secs_f64(args.progress.max(0.05));
    let bus: AnyBus = producer.bus().clone();
    let report = || progress::report(&bus, &running);
    super::supervise(&mut tasks, interrupted, &stop, Some((every, report))).await
}

/// The consumers named by `--stand-in`, each checked against the spec.
fn stand_ins<'a>(spec: &System, names: &'a [String]) -> std::result::Result<HashSet<&'a str>, Failure> {
    for name in names {
        if spec.consumer(name).is_none() {
            let declared: Vec<&str> = spec.consumers.iter().map(|c| c.name.as_str()).collect();
            return Err(Failure::Runtime(format!(
                "--stand-in {name}: the spec declares no consumer `{name}` (declared: {})",
                if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }
            )));
        }
    }
    Ok(names.iter().map(String::as_str).collect())
}

/// Starts the changelog projectors and changefeeds on the store in use (MongoDB, or the
/// embedded store, where each projector publishes the changefeeds of its table); on the
/// in-memory bus says once that they are skipped.
fn start_on_store(
    spec: &System,
    producer: &Producer<AnyBus>,
    tasks: &mut JoinSet<Result<()>>,
    stop: &watch::Receiver<bool>,
) -> std::result::Result<Vec<Running>, Failure> {
    #[cfg(feature = "mongo")]
    if let AnyBus::Mongo(bus) = producer.bus() {
        let producer = Producer::new(bus.clone(), producer.registry().clone());
        return super::mongo_pipelines::start(spec, &producer, tasks, stop);
    }
    if let AnyBus::Sqlite(bus) = producer.bus() {
        let producer = Producer::new(bus.clone(), producer.registry().clone());
        return start_embedded(spec, &producer, tasks, stop);
    }
    let names = crate::pipeline::mongo_only(spec);
    if !names.is_empty() {
        eprintln!(
            "skipping {}: projectors and changefeeds need a store to write (the embedded store or MongoDB), \
             not the in-memory bus",
            names.join(", ")
        );
    }
    Ok(Vec::new())
}

/// Spawns the embedded changelog projectors (each feeding its table's changefeeds) and says
/// what the embedded store cannot run (`prom run` and `prom serve` alike).
pub(super) fn start_embedded(
    spec: &System,
    producer: &Producer<SqliteBus>,
    tasks: &mut JoinSet<Result<()>>,
    stop: &watch::Receiver<bool>,
) -> std::result::Result<Vec<Running>, Failure> {
    for (what, why) in embedded::not_run(spec) {
        eprintln!("skipping {what}: {why}");
    }
    let started = embedded::spawn_declared(spec, producer, tasks, || super::stopped(stop))?;
    Ok(started
        .into_iter()
        .map(|task| {
            eprintln!("running {}", task.description);
            let stats = task.stats;
            Running {
                name: task.name,
                group: Some(task.group),
                counters: Box::new(move || {
                    let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
                    format!(
                        "events={} upserted={} deleted={} skipped={} dead_lettered={} fed={}",
                        load(&stats.events),
                        load(&stats.upserted),
                        load(&stats.deleted),
                        load(&stats.skipped),
                        load(&stats.dead_lettered),
                        load(&stats.fed)
                    )
                }),
            }
        })
        .collect())
}
