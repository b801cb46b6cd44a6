#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 1)]
struct Heartbeat {
    pid: i64,
    name: String,
    mem_mb: f64,
    #[prom(extra)]
    #[serde(default)]
    debug: bool,
}

fn main() {}
