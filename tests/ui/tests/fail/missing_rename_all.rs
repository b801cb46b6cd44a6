#[derive(serde::Deserialize, serde::Serialize, prom_runtime::Event)]
#[prom(topic = "order.placed", version = 1)]
struct Order {
    order_id: String,
    total_cents: i64,
}

fn main() {}
