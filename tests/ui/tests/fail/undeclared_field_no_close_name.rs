#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "order.placed", version = 1)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
    total_cents: i64,
    #[serde(default)]
    gift_wrap: bool,
}

fn main() {}
