//! `orders [--once]`: places an order, then bills every order not billed yet; with `--once` it
//! stops when nothing is left to bill, otherwise it runs until Ctrl-C.

mod prom {
    include!(concat!(env!("OUT_DIR"), "/prom_generated.rs"));
}

use prom::order_placed;
use prom_runtime::{Context, EventBus, GroupId, HandlerError, SqliteBus, consumer::lag};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|arg| arg == "--once");
    let bus = SqliteBus::open(".prom")?; // the embedded store, in ./.prom
    let pipeline = prom::wire(bus.clone())?;

    // A typed publish: `Latest` is generated from the spec, so a wrong field does not compile,
    // and the payload is validated against the schema before it is stored.
    let number = bus.heads(order_placed::NAME).await?.total() + 1;
    let order =
        order_placed::Latest { order_id: format!("o-{number}"), customer: "ada".into(), total_cents: 4200 };
    let receipt = order_placed::TOPIC.publish(pipeline.producer(), &order).await?;
    println!("placed {} at offset {}", order.order_id, receipt.offset);

    // The consumer the spec declares; its retry and DLQ come from the spec.
    let pipeline = pipeline.billing(|order: order_placed::Latest, ctx: Context| async move {
        if order.total_cents > 1_000_000 {
            return Err(HandlerError::permanent("over the credit limit")); // to the DLQ at once
        }
        println!("billed {} cents for {} (offset {})", order.total_cents, order.order_id, ctx.offset());
        Ok(())
    })?;
    let shutdown = async move {
        if once {
            caught_up(&bus).await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    pipeline.run(shutdown).await?;
    println!("stopped; the next run resumes after the last billed order");
    Ok(())
}

/// Returns once the `billing` group has committed every order stored so far.
async fn caught_up(bus: &impl EventBus) {
    let group = GroupId::new(order_placed::NAME, "billing");
    while !matches!(lag(bus, &group, order_placed::PARTITIONS).await, Ok(0)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
