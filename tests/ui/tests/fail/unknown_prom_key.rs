#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topik = "heartbeat.received", version = 1)]
struct Heartbeat {
    pid: i64,
}

fn main() {}
