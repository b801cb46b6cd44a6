#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = "2")]
struct Heartbeat {
    pid: i64,
}

fn main() {}
