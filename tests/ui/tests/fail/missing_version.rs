#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received")]
struct Heartbeat {
    pid: i64,
}

fn main() {}
