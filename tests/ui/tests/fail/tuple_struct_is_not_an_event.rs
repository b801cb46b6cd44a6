#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 1)]
struct Heartbeat(i64, String, f64);

fn main() {}
