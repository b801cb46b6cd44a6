//! `Acker::rewind`, what a caller that commits progress in its own transaction (the embedded
//! changelog projector) does when that commit fails with a lost lease: the lost partition is
//! dropped, the batch's other partitions are read again from their committed cursors, and the
//! deliveries of the failed batch, never to be acked, block nothing.

use prom_runtime::consumer::{AckMode, SubscribeOptions, Subscription};
use prom_runtime::{EventBus, MemoryBus, NewEvent};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

fn event(partition: u32, n: u32) -> NewEvent {
    let mut event = NewEvent::new("t", json!({ "n": n }));
    event.key = Some(format!("k{partition}-{n}"));
    event.partition = partition;
    event
}

fn offsets(batch: &[prom_runtime::consumer::Delivery], partition: u32) -> Vec<i64> {
    batch.iter().filter(|d| d.record.partition == partition).map(|d| d.record.offset).collect()
}

#[tokio::test]
async fn a_rewound_partition_is_read_again_and_the_lost_one_is_dropped() {
    let bus = MemoryBus::new();
    let events: Vec<NewEvent> = (0..6).map(|n| event(n % 2, n)).collect();
    bus.publish(events).await.expect("publish");
    let opts = SubscribeOptions {
        partitions: 2,
        ack: AckMode::Manual,
        member_ttl: Duration::from_secs(60),
        poll_timeout: Duration::from_millis(50),
        ..SubscribeOptions::default()
    };
    let mut sub = Subscription::new(bus.clone(), "t", "g", opts).expect("subscribe");
    let first = sub.poll().await.expect("poll");
    assert_eq!((offsets(&first, 0).len(), offsets(&first, 1).len()), (3, 3), "both partitions delivered");
    assert_eq!(sub.in_flight(), 6);

    // The caller's transaction for this batch failed: partition 1's lease is gone.
    let acker = sub.acker();
    acker.rewind(&BTreeSet::from([0, 1]), 1);
    assert_eq!(sub.partitions(), vec![0], "the lost partition is dropped");
    assert_eq!(sub.in_flight(), 0, "the failed batch holds nothing any more");

    // Acks of the failed batch's deliveries belong to the old tenure: ignored.
    for delivery in &first {
        acker.ack(delivery);
    }
    let again = sub.poll().await.expect("poll again");
    assert_eq!(offsets(&again, 0), offsets(&first, 0), "partition 0 is read again from its cursor");
    assert!(offsets(&again, 1).is_empty(), "partition 1 is another member's now");

    // The new deliveries ack and commit as usual.
    for delivery in &again {
        sub.ack(delivery);
    }
    sub.commit().await.expect("commit");
    let committed = bus.cursors(sub.group()).await.expect("cursors");
    assert_eq!(committed.get(&0).copied(), offsets(&first, 0).last().copied());
}
