//! `prom run`: every declared pipeline that needs no user code, until Ctrl-C or SIGTERM.
//!
//! A declared consumer belongs to the user's service: its group's events are the service's to
//! process. So `prom run` never joins a consumer's group unless asked by name with `--stand-in`
//! (then loudly), because every event a stand-in acks is an event the service never sees. On
//! MongoDB the changelog projectors and changefeeds run (as in `prom serve`, without the snapshot
//! APIs); the embedded store has no collections to project into, so there they are skipped with a
//! note. Transactional projectors run a handler of the user's program: skipped.

use super::progress::{self, Running};
use super::{Failure, Outcome, SpecArgs};
use crate::bus::AnyBus;
use crate::consumer::SubscribeOptions;
use crate::error::Result;
use crate::publish::Producer;
use crate::record::EventRecord;
use crate::runner::Runner;
use crate::system::System;
use serde_json::json;
use std::collections::HashSet;
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
}

/// Runs the pipelines until Ctrl-C (or SIGTERM).
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (spec, registry) = super::load(&args.spec)?;
    let producer = super::open(target, registry.clone()).await?;
    let interrupted = super::interrupted();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let stand_ins = stand_ins(&spec, &args.stand_in)?;
    let mut running = start_on_mongo(&spec, &producer, &mut tasks, &stopped)?;
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
             and changelog projectors and changefeeds run only with --mongo"
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

/// On MongoDB, starts the changelog projectors and changefeeds; elsewhere says once that they
/// are skipped.
fn start_on_mongo(
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
    let _ = (producer, tasks, stop);
    let names = crate::pipeline::mongo_only(spec);
    if !names.is_empty() {
        let how = if cfg!(feature = "mongo") {
            "run with --mongo URL (or PROM_MONGO_URL)"
        } else {
            "run a prom built with the `mongo` feature, with --mongo URL"
        };
        eprintln!(
            "skipping {}: projectors and changefeeds run on MongoDB, not the embedded store; {how}",
            names.join(", ")
        );
    }
    Ok(Vec::new())
}
