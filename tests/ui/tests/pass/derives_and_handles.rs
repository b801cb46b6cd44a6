use prom_runtime::{Event, Timestamp};
use std::collections::BTreeMap;

mod prom {
    prom_runtime::include_specs!("specs");
}

#[derive(serde::Serialize, serde::Deserialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 1)]
struct HeartbeatV1 {
    pid: i64,
    name: String,
    mem_mb: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, prom_runtime::Event)]
#[prom(topic = "heartbeat.received", version = 2)]
struct HeartbeatV2 {
    pid: u32,
    name: std::borrow::Cow<'static, str>,
    #[serde(rename = "mem_mib")]
    memory: f32,
    region: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<String, i64>>,
    note: Option<String>,
    #[serde(skip)]
    local_only: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, prom_runtime::Event)]
#[prom(topic = "order.placed", version = 1)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
    total_cents: i64,
    #[serde(default)]
    express: bool,
}

/// An open schema: `note` is an intended extra (checked against `additionalProperties`), and
/// `x-retries` is declared by `patternProperties`.
#[derive(serde::Serialize, serde::Deserialize, prom_runtime::Event)]
#[prom(topic = "shipment.tracked", version = 1)]
struct Shipment {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking: Option<String>,
    #[prom(extra)]
    #[serde(default)]
    note: String,
    #[serde(rename = "x-retries", default)]
    retries: u32,
}

/// `order.placed` says nothing about extra properties: an extra may be anything, null included.
#[derive(serde::Serialize, serde::Deserialize, prom_runtime::Event)]
#[prom(topic = "order.placed", version = 1)]
#[serde(rename_all = "camelCase")]
struct OrderWithCoupon {
    order_id: String,
    total_cents: i64,
    #[serde(default)]
    express: bool,
    #[prom(extra)]
    coupon: Option<String>,
}

fn main() {
    assert_eq!(<HeartbeatV1 as Event>::TOPIC, "heartbeat.received");
    assert_eq!(<HeartbeatV2 as Event>::VERSION, 2);
    assert!(<Order as Event>::SCHEMA.contains("totalCents"));
    let handle = prom_runtime::topic!("heartbeat.received");
    assert_eq!(handle.name(), "heartbeat.received");
    assert_eq!(handle.latest_version(), 2);
    assert_eq!(prom::topics::ORDER_PLACED, "order.placed");
    assert_eq!(<Shipment as Event>::TOPIC, "shipment.tracked");
    assert_eq!(<OrderWithCoupon as Event>::TOPIC, "order.placed");
}
