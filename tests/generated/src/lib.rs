//! The generated code for `tests/corpus/codegen/constructs.yaml`, compiled under
//! `deny(warnings)`. `prom-codegen`'s snapshot test keeps `constructs.rs` current.
#![deny(warnings, missing_docs)]

/// Generated from `tests/corpus/codegen/constructs.yaml`.
#[rustfmt::skip]
pub mod constructs;

/// User upcast functions named by `with:` in the constructs spec.
pub mod upcasters {
    use crate::constructs::order_placed::{V2, V3};
    use prom_runtime::UpcastError;

    /// v3 splits the customer record into `customer_id` and `customer_kind`.
    pub fn order_v2_to_v3(v: V2) -> Result<V3, UpcastError> {
        Ok(V3 {
            order_id: v.order_id,
            customer_id: v.customer.id,
            customer_kind: v.customer.r#type,
            lines: v.lines,
            total_cents: v.total_cents,
            currency: v.currency,
        })
    }
}
