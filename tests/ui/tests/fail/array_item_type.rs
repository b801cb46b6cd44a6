#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 2)]
struct Heartbeat {
    pid: i64,
    name: String,
    mem_mib: f64,
    region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<i64>>,
}

fn main() {}
