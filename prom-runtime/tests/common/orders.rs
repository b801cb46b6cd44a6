//! The two-topic spec the trace tests (`traces.rs`, `otel.rs`) publish and handle on.

/// `orders.placed` is handled; its handler publishes `orders.billed`.
pub const SPEC: &str = "
topics:
  orders.placed:
    key: /order
    partitions: 2
    versions:
      1:
        schema: { type: object, required: [order], properties: { order: { type: string } } }
  orders.billed:
    key: /order
    partitions: 2
    versions:
      1:
        schema: { type: object, required: [order], properties: { order: { type: string } } }
";

pub const PLACED: &str = "orders.placed";
pub const BILLED: &str = "orders.billed";
/// A valid incoming W3C `traceparent`.
pub const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
