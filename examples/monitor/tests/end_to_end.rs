//! Runs the example binary on a fresh embedded store, twice: the declared consumer handles the
//! published heartbeat, and the second run resumes after what the first one handled.

use std::process::Command;

fn run(store: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_prom-example-monitor"))
        .arg(store)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn heartbeats_flow_into_process_states_and_groups_resume() {
    let store = std::env::temp_dir().join(format!("prom-monitor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let first = run(&store);
    assert!(first.contains("stored v1 heartbeat reads as v3 (upcast from v1): region unknown"), "{first}");
    assert!(first.contains("hb-analyzers: heartbeat.received at offset 1 -> c-1:9 is running"), "{first}");
    let second = run(&store);
    // The group's cursor is durable: only the new heartbeat (offset 2) is handled.
    assert!(second.contains("at offset 2 -> c-1:9"), "{second}");
    assert!(!second.contains("at offset 1 "), "{second}");
    let _ = std::fs::remove_dir_all(&store);
}
