//! Header names the runtime reserves (available without the `lint` feature, for the runtime).

/// Headers the runtime stamps itself; users cannot declare them. The one list: lint rejects
/// these names (P102) and the runtime never copies them from user input
/// (`prom_runtime::registry::is_runtime_header`, whose test checks every runtime constant is here).
pub const RESERVED_HEADERS: &[&str] = &[
    "x-schema-version",
    "x-upcasted-from",
    "x-partition",
    "x-dlq-error",
    "x-replay-of",
    "x-change-operation",
    "x-cluster-time",
    "x-prom-corrupt",
    "x-prom-corrupt-headers",
    // W3C trace context of the publishing context (`prom_runtime::trace`): forging one through
    // a declared header would graft events onto someone else's trace.
    "traceparent",
    "tracestate",
];
