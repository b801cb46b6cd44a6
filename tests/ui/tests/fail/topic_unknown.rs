#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.recieved", version = 1)]
struct Heartbeat {
    pid: i64,
}

fn main() {}
