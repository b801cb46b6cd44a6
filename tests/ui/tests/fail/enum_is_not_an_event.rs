#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 1)]
enum Heartbeat {
    Alive,
}

fn main() {}
