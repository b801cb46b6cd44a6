//! Rebalancing: rendezvous assignment moves only what it must, and leases never let two
//! members hold one partition, over arbitrary join/leave sequences.

use prom_runtime::consumer::{SubscribeOptions, Subscription};
use prom_runtime::partition::assign;
use prom_runtime::{MemoryBus, NewEvent};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Join(u8),
    Leave(u8),
}

fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(prop_oneof![(0..8_u8).prop_map(Op::Join), (0..8_u8).prop_map(Op::Leave)], 1..max)
}

proptest! {
    #[test]
    fn assignment_moves_only_what_it_must(partitions in 1..64_u32, steps in ops(24)) {
        let mut members: BTreeSet<String> = BTreeSet::new();
        let mut before: BTreeMap<u32, String> = BTreeMap::new();
        for op in steps {
            let (changed, joined) = match &op {
                Op::Join(m) => (members.insert(format!("m{m}")), Some(format!("m{m}"))),
                Op::Leave(m) => (members.remove(&format!("m{m}")), None),
            };
            let list: Vec<String> = members.iter().cloned().collect();
            let after = assign(partitions, &list, true);
            // Every partition has exactly one live owner (or none when the group is empty).
            prop_assert_eq!(after.len(), if list.is_empty() { 0 } else { partitions as usize });
            prop_assert!(after.values().all(|m| members.contains(m)));
            if changed && !before.is_empty() && !after.is_empty() {
                for (p, owner) in &after {
                    let old = &before[p];
                    if old != owner {
                        match &joined {
                            // A join only moves partitions to the new member.
                            Some(new) => prop_assert_eq!(owner, new),
                            // A leave only moves the leaver's partitions.
                            None => prop_assert!(!members.contains(old)),
                        }
                    }
                }
            }
            before = after;
        }
    }

    #[test]
    fn an_unpartitioned_group_has_one_owner(members in prop::collection::btree_set("[a-z]{1,6}", 1..6)) {
        let list: Vec<String> = members.into_iter().collect();
        let owners: BTreeSet<String> = assign(8, &list, false).into_values().collect();
        prop_assert_eq!(owners.len(), 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn leases_never_overlap_and_converge_to_the_assignment(steps in ops(6)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(check_leases(steps))?;
    }
}

async fn check_leases(steps: Vec<Op>) -> Result<(), TestCaseError> {
    const PARTITIONS: u32 = 6;
    let bus = MemoryBus::new();
    prom_runtime::EventBus::publish(&bus, vec![NewEvent::new("t", serde_json::json!({}))])
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let opts = |m: &str| SubscribeOptions {
        partitions: PARTITIONS,
        partitioned: true,
        member: Some(m.to_string()),
        member_ttl: Duration::from_millis(90),
        poll_timeout: Duration::from_millis(5),
        ..SubscribeOptions::default()
    };
    let mut live: BTreeMap<String, Subscription<MemoryBus>> = BTreeMap::new();
    for (i, op) in steps.into_iter().enumerate() {
        match op {
            Op::Join(m) => {
                let name = format!("m{m}");
                if let std::collections::btree_map::Entry::Vacant(slot) = live.entry(name.clone()) {
                    let sub = Subscription::new(bus.clone(), "t", "g", opts(&name))
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    slot.insert(sub);
                }
            }
            Op::Leave(m) => {
                if let Some(sub) = live.remove(&format!("m{m}")) {
                    // Alternate clean leaves and crashes (swept after the TTL).
                    if i % 2 == 0 {
                        sub.close().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                }
            }
        }
        let names: Vec<String> = live.keys().cloned().collect();
        let want = assign(PARTITIONS, &names, true);
        let mut converged = false;
        for _ in 0..60 {
            for sub in live.values_mut() {
                let batch = sub.poll().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                for d in &batch {
                    sub.ack(d);
                }
            }
            let mut owners: BTreeMap<u32, String> = BTreeMap::new();
            for (name, sub) in &live {
                for p in sub.partitions() {
                    if let Some(other) = owners.insert(p, name.clone()) {
                        return Err(TestCaseError::fail(format!("partition {p} held by {other} and {name}")));
                    }
                }
            }
            if owners == want {
                converged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        prop_assert!(converged, "members {:?} did not converge to {:?}", names, want);
    }
    Ok(())
}
