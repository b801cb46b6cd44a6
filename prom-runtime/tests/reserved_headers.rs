//! Lint and the runtime share one reserved-header list: every header the runtime stamps is
//! rejected when a spec declares it, and the runtime treats exactly the list as its own.

use prom_runtime::record::{CORRUPT, CORRUPT_HEADERS, DLQ_ERROR, REPLAY_OF, SCHEMA_VERSION, UPCASTED_FROM};
use prom_runtime::registry::is_runtime_header;
use prom_runtime::trace::{TRACEPARENT, TRACESTATE};

#[test]
fn every_header_the_runtime_stamps_is_reserved_for_lint() {
    let stamped = [
        SCHEMA_VERSION,
        UPCASTED_FROM,
        DLQ_ERROR,
        REPLAY_OF,
        CORRUPT,
        CORRUPT_HEADERS,
        TRACEPARENT,
        TRACESTATE,
    ]
    .into_iter()
    .chain(changefeed_headers());
    for header in stamped {
        assert!(
            prom_spec::check::RESERVED_HEADERS.contains(&header),
            "{header} is stamped by the runtime but lint lets a spec declare it"
        );
        assert!(is_runtime_header(header), "{header} is not treated as a runtime header");
    }
}

#[test]
fn the_runtime_treats_only_the_reserved_list_as_its_own() {
    for header in prom_spec::check::RESERVED_HEADERS {
        assert!(is_runtime_header(header));
    }
    assert!(!is_runtime_header("x-source"));
}

/// Headers the MongoDB changefeed stamps (the module exists only with the `mongo` feature).
#[cfg(feature = "mongo")]
fn changefeed_headers() -> Vec<&'static str> {
    vec![prom_runtime::changefeed::CHANGE_OPERATION, prom_runtime::changefeed::CLUSTER_TIME]
}

#[cfg(not(feature = "mongo"))]
fn changefeed_headers() -> Vec<&'static str> {
    Vec::new()
}
