#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 2)]
struct Heartbeat {
    pid: String,
    name: Option<String>,
    mem_mb: f64,
    tags: Vec<bool>,
}

fn main() {}
