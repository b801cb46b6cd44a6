#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "Heartbeat_Received", version = 1)]
struct Heartbeat {
    pid: i64,
}

fn main() {}
