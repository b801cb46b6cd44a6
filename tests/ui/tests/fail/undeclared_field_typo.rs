#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "shipment.tracked", version = 1)]
struct Shipment {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trackng: Option<String>,
}

fn main() {}
