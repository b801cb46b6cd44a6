//! The `failover` section (only with `PROM_MONGO_RS3=1`): a three-member replica set of its own
//! (`scripts/mongo.sh start3`), one task publishing single events without pause and one reading
//! them; the primary is SIGKILLed, and the figure is the time from its death to the first event
//! published and read after the election.

use prom_runtime::bus::mongo::MongoBus;
use prom_runtime::bus::mongo::mongodb::bson::doc;
use prom_runtime::{EventBus, NewEvent};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
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
    let published = Arc::new(AtomicI64::new(0));
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for n in 0u64.. {
                let event = NewEvent::new(TOPIC, json!({ "n": n })).dedup(format!("n-{n}"));
                // Retried with the same dedup key until acknowledged.
                while bus.publish(vec![event.clone()]).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let seen = Arc::new(AtomicI64::new(0));
    let reader = {
        let (bus, seen, published) = (bus.clone(), Arc::clone(&seen), Arc::clone(&published));
        tokio::spawn(async move {
            loop {
                let after = seen.load(Ordering::SeqCst);
                match bus.read(TOPIC, None, after, 100).await {
                    Ok(events) if !events.is_empty() => {
                        let last = events.last().map_or(after, |e| e.offset);
                        seen.store(last, Ordering::SeqCst);
                        published.store(last, Ordering::SeqCst);
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
        let before = seen.load(Ordering::SeqCst);
        script(state.path(), &["kill3", &member]);
        let killed = Instant::now();
        // The first event read after the kill that was not stored before it.
        let deadline = killed + Duration::from_secs(120);
        while seen.load(Ordering::SeqCst) <= before + 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        figures.push(killed.elapsed());
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
