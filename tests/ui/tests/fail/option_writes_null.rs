#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 1)]
struct Heartbeat {
    pid: i64,
    name: String,
    mem_mb: f64,
    // `sid` is optional but not nullable: `None` must be skipped, not written as null.
    sid: Option<String>,
}

fn main() {}
