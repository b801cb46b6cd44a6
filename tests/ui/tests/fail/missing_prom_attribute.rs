#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
struct Heartbeat {
    pid: i64,
}

fn main() {}
