//! Partitioning: keys to partitions (jump consistent hash) and partitions to group members
//! (rendezvous hashing with bounded loads).
//!
//! Both hashes must give the same answer in every process and every release, so they are
//! spelled out here instead of using `std`'s randomly seeded `DefaultHasher`.

use std::collections::{BTreeMap, BTreeSet};

/// A stable 64-bit hash: FNV-1a followed by the SplitMix64 finalizer.
///
/// FNV-1a alone mixes the high bits poorly for short keys, and jump hash reads the high bits,
/// so the finalizer spreads every input bit over the whole word.
pub fn hash64(bytes: &[u8]) -> u64 {
    mix(fnv(FNV_OFFSET, bytes))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes`, continuing from `h`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Jump consistent hash (Lamping & Veach, 2014): a bucket in `0..buckets` for `key`.
///
/// Growing `buckets` from n to n+1 moves only 1/(n+1) of the keys. `buckets` of 0 is treated
/// as 1.
pub fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // The algorithm is defined with floating point; the casts are exact for these ranges.
        j = ((b + 1) as f64 * ((1_i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // `b` is in 0..buckets, and buckets fits in u32.
    u32::try_from(b).unwrap_or(0)
}

/// The partition of a key; keyless events go to partition 0.
pub fn partition_for(key: Option<&str>, partitions: u32) -> u32 {
    key.map_or(0, |k| jump_hash(hash64(k.as_bytes()), partitions))
}

/// The member with the highest rendezvous score for `unit`, or `None` without members.
///
/// Ties (astronomically unlikely) go to the smaller member id so every process agrees.
pub fn rendezvous<'a>(unit: &str, members: &'a [String]) -> Option<&'a str> {
    members
        .iter()
        .map(|m| (score(m, unit), m.as_str()))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, m)| m)
}

/// Which member owns each partition.
///
/// Unpartitioned groups elect one member (rendezvous on `"*"`) for all partitions. Partitioned
/// groups use rendezvous hashing with bounded loads: every live member holds ⌊P/N⌋ or ⌈P/N⌉
/// of the P partitions (N distinct members), see [`balanced`].
pub fn assign(partitions: u32, members: &[String], partitioned: bool) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    if !partitioned {
        if let Some(owner) = rendezvous("*", members) {
            out.extend((0..partitions).map(|p| (p, owner.to_string())));
        }
        return out;
    }
    balanced(partitions, members)
}

/// Rendezvous hashing with bounded loads: the stable matching of partitions and members under
/// the rendezvous scores, each member holding ⌊P/N⌋ or ⌈P/N⌉ partitions.
///
/// Every (partition, member) pair is scored as in [`rendezvous`]; walking the pairs from the
/// highest score down, a partition goes to the member of the pair unless it is already placed
/// or the member is full. A member is full at ⌈P/N⌉, or at ⌊P/N⌋ once `P mod N` members have
/// reached ⌈P/N⌉, so the loads come out balanced. The result depends only on the set of member
/// ids (not their order, not duplicates), so every member computes the same assignment with no
/// coordinator. It is stable: no partition and member both score each other higher than what
/// they hold. A partition stays with its plain rendezvous winner unless that member is full,
/// so a join or leave moves at most the partitions whose rendezvous winner changed plus those
/// displaced from their winner before and after (see `tests/rebalance.rs`).
pub fn balanced(partitions: u32, members: &[String]) -> BTreeMap<u32, String> {
    let members: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    let mut out = BTreeMap::new();
    let Ok(count) = u32::try_from(members.len()) else { return out };
    if count == 0 {
        return out;
    }
    let (base, extra) = (partitions / count, partitions % count);
    let mut pairs: Vec<(u64, u32, &str)> = Vec::with_capacity(members.len() * partitions as usize);
    for p in 0..partitions {
        let unit = p.to_string();
        pairs.extend(members.iter().map(|m| (score(m, &unit), p, *m)));
    }
    // Highest score first; ties (astronomically unlikely) by partition, then member id.
    pairs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    let mut load: BTreeMap<&str, u32> = BTreeMap::new();
    let mut at_ceiling = 0;
    for (_, p, m) in pairs {
        if out.len() == partitions as usize {
            break;
        }
        if out.contains_key(&p) {
            continue;
        }
        let held = load.entry(m).or_insert(0);
        let cap = if at_ceiling < extra { base + 1 } else { base };
        if *held >= cap {
            continue;
        }
        *held += 1;
        if *held == base + 1 {
            at_ceiling += 1;
        }
        out.insert(p, m.to_string());
    }
    out
}

/// The rendezvous score of `member` for `unit` (a partition number, or `"*"`): higher wins.
pub fn score(member: &str, unit: &str) -> u64 {
    // `hash64(member ++ [0] ++ unit)`, streamed: assignment scores every (partition, member)
    // pair on every tick, so no buffer is allocated per pair.
    mix(fnv(fnv(fnv(FNV_OFFSET, member.as_bytes()), &[0]), unit.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_moves_keys_only_to_the_new_bucket() {
        // Cross-checked against an independent transcription of the paper's algorithm.
        assert_eq!(jump_hash(1, 1), 0);
        assert_eq!(jump_hash(0xDEAD_BEEF, 1000), 285);
        assert_eq!(jump_hash(12_345_678, 1_000_000), 202_955);
        let keys: Vec<u64> = (0..10_000).map(mix).collect();
        let moved = keys.iter().filter(|&&k| jump_hash(k, 8) != jump_hash(k, 9)).count();
        // Growing 8 → 9 buckets moves about 1/9 of keys, and every moved key lands in the new one.
        assert!((800..1400).contains(&moved), "moved {moved}");
        assert!(keys.iter().filter(|&&k| jump_hash(k, 8) != jump_hash(k, 9)).all(|&k| jump_hash(k, 9) == 8));
    }

    #[test]
    fn partitions_spread_keys_evenly() {
        let mut counts = [0_u32; 8];
        for pid in 0..8_000 {
            counts[partition_for(Some(&pid.to_string()), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // Changing these values re-partitions every stored topic: never do it.
        assert_eq!(hash64(b"42"), 0xa428_ce54_7116_3b02);
        let parts: Vec<u32> =
            ["1", "2", "3", "42", "4242"].iter().map(|k| partition_for(Some(k), 8)).collect();
        assert_eq!(parts, [4, 6, 5, 5, 3]);
        assert_eq!(partition_for(None, 8), 0);
    }
}
