#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "shipment.tracked", version = 1)]
struct Shipment {
    id: String,
    // additionalProperties declares string.
    #[prom(extra)]
    #[serde(default)]
    weight: f64,
    // patternProperties `^x-` declares integer.
    #[serde(rename = "x-retries", default)]
    retries: String,
    // Declared: `extra` would hide a stale marker.
    #[prom(extra)]
    tracking: Option<String>,
}

fn main() {}
