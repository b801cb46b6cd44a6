//! `prom run`: every declared consumer that needs no user code, until Ctrl-C.
//!
//! Consumers in the spec carry no handler, so each runs with a handler that prints the decoded
//! event: decoding, upcasting, validation, retry and dead-lettering all happen for real.
//! Projectors and changefeeds need MongoDB and are reported as skipped.

use super::{Failure, Outcome, SpecArgs};
use crate::bus::AnyBus;
use crate::consumer::{self, SubscribeOptions};
use crate::record::EventRecord;
use crate::runner::{Runner, Stats};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Arguments of `prom run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Seconds between progress lines on stderr.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    progress: f64,
}

struct Running {
    name: String,
    group: crate::bus::GroupId,
    partitions: u32,
    stats: Arc<Stats>,
}

/// Runs the consumers until Ctrl-C (or SIGTERM).
pub async fn run(target: &super::Target, args: Args) -> Outcome {
    let (spec, registry) = super::load(&args.spec)?;
    let producer = super::open(target, registry.clone()).await?;
    for name in spec.projectors.keys() {
        eprintln!("skipping projector `{name}`: projectors write to MongoDB, which the embedded store lacks");
    }
    for name in spec.changefeeds.keys() {
        eprintln!("skipping changefeed `{name}`: changefeeds read MongoDB change streams");
    }
    if spec.consumers.is_empty() {
        return Err(Failure::Runtime("the spec declares no consumers; nothing to run".into()));
    }
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut running = Vec::new();
    for (name, consumer) in &spec.consumers {
        let runner = Runner::for_consumer(producer.clone(), consumer, SubscribeOptions::default())?;
        let partitions = match registry.route(&consumer.topic.value)? {
            crate::registry::Route::Topic(t)
            | crate::registry::Route::Versioned(t, _)
            | crate::registry::Route::DeadLetters(t) => t.partitions,
        };
        running.push(Running {
            name: name.clone(),
            group: runner.group().clone(),
            partitions,
            stats: runner.stats(),
        });
        eprintln!(
            "running consumer `{name}` on `{}` (group `{}`)",
            consumer.topic.value,
            runner.group().group
        );
        let label = name.clone();
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            let handler = move |event: EventRecord| {
                let label = label.clone();
                async move {
                    super::print_json(&json!({ "consumer": label, "event": event }))
                        .map_err(|_| "stdout closed")
                }
            };
            let shutdown = async move {
                // An error means the sender is gone, which also means stop.
                let _ = stopped.wait_for(|s| *s).await;
            };
            runner.run(handler, shutdown).await
        });
    }
    let every = Duration::from_secs_f64(args.progress.max(0.05));
    let mut ticker = tokio::time::interval(every);
    let bus: AnyBus = producer.bus().clone();
    let outcome = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            () = super::terminated() => break Ok(()),
            _ = ticker.tick() => report(&bus, &running).await,
            done = tasks.join_next() => match done {
                Some(Ok(Err(e))) => break Err(Failure::from(e)),
                Some(Err(e)) => break Err(Failure::Runtime(format!("a consumer task failed: {e}"))),
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
    report(&bus, &running).await;
    eprintln!("stopped");
    outcome
}

async fn report(bus: &AnyBus, running: &[Running]) {
    for r in running {
        let (handled, retried, dead, failed) = r.stats.snapshot();
        let lag = match consumer::lag(bus, &r.group, r.partitions).await {
            Ok(lag) => lag.to_string(),
            Err(e) => format!("? ({e})"),
        };
        eprintln!(
            "[{}] handled={handled} retried={retried} dead_lettered={dead} failed={failed} lag={lag}",
            r.name
        );
    }
}
