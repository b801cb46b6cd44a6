//! The `failover` section (only with `PROM_MONGO_RS3=1`): a three-member replica set of its own
//! (`scripts/mongo.sh start3`), one task publishing single events without pause and one reading
//! them; the primary is SIGKILLed, and the figure is the time from its death to the first event
//! whose publish started after the kill, read back (so published to and read from the new primary).

use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::doc;
use prom_runtime::{EventBus, NewEvent};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Kills per run (each one's figure is printed).
const KILLS: usize = 3;
const TOPIC: &str = "failover";

fn script(state: &std::path::Path, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mongo.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .env("PROM_MONGO_STATE", state)
        .output()
        .expect("run scripts/mongo.sh");
    assert!(out.status.success(), "scripts/mongo.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn primary_member(bus: &MongoBus, state: &std::path::Path) -> String {
    loop {
        let hello = bus.client().database("admin").run_command(doc! { "hello": 1 }).await;
        if let Some(port) = hello.ok().and_then(|h| h.get_str("primary").ok().map(str::to_string)) {
            let port = port.rsplit(':').next().unwrap_or_default().to_string();
            for line in script(state, &["members3"]).lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.get(1) == Some(&port.as_str()) {
                    return fields[0].to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn failover() {
    if std::env::var("PROM_MONGO_RS3").map_or(true, |v| v != "1") {
        println!("failover skipped: set PROM_MONGO_RS3=1 (it starts a three-member replica set)\n");
        return;
    }
    let state = tempfile::tempdir().expect("state dir");
    let url = script(state.path(), &["start3"]).trim().replace("/?", "/bench_failover?");
    let bus = MongoBus::open(&url).await.expect("open the three-member set");
    // Every acknowledged publish: its offset and when its successful attempt started.
    let acked: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let publisher = {
        let (bus, acked) = (bus.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            for n in 0u64.. {
                let event = NewEvent::new(TOPIC, json!({ "n": n })).dedup(format!("n-{n}"));
                // Retried with the same dedup key until acknowledged.
                loop {
                    let started = Instant::now();
                    match bus.publish(vec![event.clone()]).await {
                        Ok(receipts) => {
                            let mut acked = acked.lock().unwrap_or_else(PoisonError::into_inner);
                            acked.extend(receipts.iter().map(|r| (r.offset, started)));
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        })
    };
    let seen = Arc::new(AtomicI64::new(0));
    let reader = {
        let (bus, seen) = (bus.clone(), Arc::clone(&seen));
        tokio::spawn(async move {
            loop {
                let after = seen.load(Ordering::SeqCst);
                match bus.read_topic(TOPIC, &prom_runtime::TopicPosition::after(after), 100).await {
                    Ok(events) if !events.is_empty() => {
                        let last = events.last().map_or(after, |e| e.offset);
                        seen.store(last, Ordering::SeqCst);
                    }
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
    };
    let mut figures = Vec::new();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let member = primary_member(&bus, state.path()).await;
        script(state.path(), &["kill3", &member]);
        let killed = Instant::now();
        // The first event whose successful publish started after the kill (so the new primary
        // committed it), once the reader has read it: events stored before the kill and read late,
        // or acknowledged just after it, do not count.
        let deadline = killed + Duration::from_secs(120);
        let mut first_after: Option<i64> = None;
        while Instant::now() < deadline {
            if first_after.is_none() {
                let acked = acked.lock().unwrap_or_else(PoisonError::into_inner);
                first_after = acked.iter().find(|(_, at)| *at > killed).map(|(offset, _)| *offset);
            }
            if first_after.is_some_and(|offset| seen.load(Ordering::SeqCst) >= offset) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        figures.push(killed.elapsed());
        acked.lock().unwrap_or_else(PoisonError::into_inner).clear();
        script(state.path(), &["restart3", &member]);
    }
    publisher.abort();
    reader.abort();
    drop(bus);
    script(state.path(), &["stop3"]);
    let ms: Vec<String> = figures.iter().map(|d| format!("{:.2} s", d.as_secs_f64())).collect();
    let mut sorted = figures.clone();
    sorted.sort();
    println!(
        "failover (three members on 127.0.0.1, election timeout 2 s, heartbeat 0.5 s, driver heartbeat 2 s; \
         SIGKILL of the primary -> first event published and read after the election)\n  {} (median {:.2} s)\n",
        ms.join(", "),
        sorted[sorted.len() / 2].as_secs_f64()
    );
}
