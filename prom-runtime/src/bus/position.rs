//! Where a topic-wide reader is: one offset per partition.
//!
//! Offsets increase strictly per partition, and on some stores they are not comparable across
//! partitions, so one number cannot say where a reader of the whole topic is. A
//! [`TopicPosition`] keeps a `floor` that every partition is at least at, plus the partitions
//! that are further on. On a store whose offsets are topic-wide in commit order
//! ([`super::EventBus::ordered`]) a reader advancing through the topic keeps `parts` empty, so
//! the position stays the one number it always was.
//!
//! Text form (SSE ids, `Last-Event-ID`, CLI flags, stored checkpoints): `N` when every
//! partition is at `N`, else `N.p:o.p:o` (the floor, then each further partition and its
//! offset, ascending by partition): safe in an SSE id, a header and a URL query unescaped.

use crate::record::EventRecord;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A reader's position in a whole topic: partition `p` is at [`TopicPosition::at`]`(p)`, and
/// every event of `p` with an offset at or below that is behind the reader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TopicPosition {
    floor: i64,
    /// Partitions past `floor` (never one at or below it).
    parts: BTreeMap<u32, i64>,
}

/// Why a text is not a [`TopicPosition`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a topic position ({reason}); write an offset like `42`, or `42.0:57.3:61` (after 42 in every partition, 57 in partition 0, 61 in partition 3)"
)]
#[non_exhaustive]
pub struct PositionError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TopicPosition {
    /// Nothing read: every partition before its first event.
    pub fn start() -> TopicPosition {
        TopicPosition::default()
    }

    /// Every partition at `offset`.
    pub fn after(offset: i64) -> TopicPosition {
        TopicPosition { floor: offset, parts: BTreeMap::new() }
    }

    /// Every partition at `floor`, except those in `parts`, which are at the higher of the two.
    pub fn with_parts(floor: i64, parts: impl IntoIterator<Item = (u32, i64)>) -> TopicPosition {
        let parts = parts.into_iter().filter(|&(_, offset)| offset > floor).collect();
        TopicPosition { floor, parts }
    }

    /// The offset every partition is at, at least.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    /// The partitions past [`TopicPosition::floor`], with their offsets.
    pub fn parts(&self) -> &BTreeMap<u32, i64> {
        &self.parts
    }

    /// Where partition `partition` is: its events at or below this offset are behind.
    pub fn at(&self, partition: u32) -> i64 {
        self.parts.get(&partition).map_or(self.floor, |&offset| offset.max(self.floor))
    }

    /// Puts `partition` at `offset` (never moving it backwards).
    pub fn set(&mut self, partition: u32, offset: i64) {
        if offset > self.at(partition) {
            self.parts.insert(partition, offset);
        }
    }

    /// Moves past `record`. On an `ordered` store (offsets topic-wide in commit order, records
    /// read in that order) everything up to the record's offset is behind, so the floor moves;
    /// otherwise only the record's partition does.
    pub fn advance(&mut self, record: &EventRecord, ordered: bool) {
        if ordered {
            if record.offset > self.floor {
                self.floor = record.offset;
                let floor = self.floor;
                self.parts.retain(|_, offset| *offset > floor);
            }
        } else {
            self.set(record.partition, record.offset);
        }
    }

    /// Whether some partition is further on here than in `seen` (the floor standing for every
    /// partition not listed): with `self` a store's heads, whether events were added since.
    pub fn passes(&self, seen: &TopicPosition) -> bool {
        self.floor > seen.floor || self.parts.iter().any(|(&p, &offset)| offset > seen.at(p))
    }

    /// How many events a store's heads stand for: offsets start at 1 and have no gaps (per
    /// topic on an ordered store, else per partition), so the floor plus what each partition
    /// adds past it. Meaningful for [`super::EventBus::heads`] only.
    pub fn total(&self) -> i64 {
        self.floor + self.parts.values().map(|&offset| offset - self.floor).sum::<i64>()
    }
}

impl fmt::Display for TopicPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.floor)?;
        for (partition, offset) in &self.parts {
            write!(f, ".{partition}:{offset}")?;
        }
        Ok(())
    }
}

impl FromStr for TopicPosition {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<TopicPosition, PositionError> {
        let fail = |reason: String| PositionError { text: text.to_owned(), reason };
        let offset = |s: &str, what: &str| -> Result<i64, PositionError> {
            match s.parse::<i64>() {
                Ok(n) if n >= 0 && !s.starts_with('+') => Ok(n),
                _ => Err(fail(format!("{what} `{s}` is not an offset (0 or more)"))),
            }
        };
        let mut pieces = text.split('.');
        let floor = offset(pieces.next().unwrap_or_default(), "the first number")?;
        let mut parts = BTreeMap::new();
        for piece in pieces {
            let Some((partition, at)) = piece.split_once(':') else {
                return Err(fail(format!("`{piece}` is not `partition:offset`")));
            };
            let partition = match partition.parse::<u32>() {
                Ok(p) if !partition.starts_with('+') => p,
                _ => return Err(fail(format!("`{partition}` is not a partition number"))),
            };
            let at = offset(at, &format!("partition {partition}'s"))?;
            if parts.insert(partition, at).is_some() {
                return Err(fail(format!("partition {partition} is given twice")));
            }
        }
        Ok(TopicPosition::with_parts(floor, parts))
    }
}

impl serde::Serialize for TopicPosition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewEvent;
    use proptest::prelude::*;
    use serde_json::json;

    fn record(partition: u32, offset: i64) -> EventRecord {
        let mut record = NewEvent::new("t", json!(1)).into_record(offset);
        record.partition = partition;
        record
    }

    #[test]
    fn ordered_advance_keeps_one_number() {
        let mut position = TopicPosition::start();
        for (partition, offset) in [(2, 1), (0, 2), (2, 3)] {
            position.advance(&record(partition, offset), true);
        }
        assert_eq!(position, TopicPosition::after(3));
        assert_eq!(position.to_string(), "3");
        assert_eq!((position.at(0), position.at(7)), (3, 3));
    }

    #[test]
    fn ordered_advance_drops_partitions_it_passes() {
        let mut position = TopicPosition::with_parts(2, [(0, 9), (1, 4)]);
        position.advance(&record(3, 5), true);
        assert_eq!(position, TopicPosition::with_parts(5, [(0, 9)]));
        assert_eq!(position.to_string(), "5.0:9");
    }

    #[test]
    fn unordered_advance_moves_the_record_partition_only() {
        let mut position = TopicPosition::after(1);
        position.advance(&record(1, 3), false);
        position.advance(&record(0, 2), false);
        position.advance(&record(1, 2), false);
        assert_eq!((position.at(0), position.at(1), position.at(2)), (2, 3, 1));
        assert_eq!(position.to_string(), "1.0:2.1:3");
    }

    #[test]
    fn integers_read_as_today() {
        assert_eq!("0".parse(), Ok(TopicPosition::start()));
        assert_eq!("42".parse(), Ok(TopicPosition::after(42)));
        assert_eq!(" 42".parse::<TopicPosition>().map_err(|e| e.text), Err(" 42".to_string()));
    }

    #[test]
    fn malformed_text_says_the_expected_form() {
        for bad in
            ["", "-1", "+1", "x", "1.", "1.2", "1.2:", "1.:3", "1.-2:3", "1.2:-3", "1.2:3.2:4", "1,2:3"]
        {
            let error = bad.parse::<TopicPosition>().expect_err(bad);
            assert!(error.to_string().contains("42.0:57.3:61"), "{bad}: {error}");
        }
    }

    #[test]
    fn passes_compares_partition_by_partition() {
        let seen = TopicPosition::with_parts(4, [(1, 6)]);
        assert!(!TopicPosition::with_parts(4, [(1, 6), (2, 3)]).passes(&seen));
        assert!(TopicPosition::with_parts(4, [(2, 5)]).passes(&seen));
        assert!(TopicPosition::after(5).passes(&seen));
        assert_eq!(TopicPosition::with_parts(0, [(0, 3), (2, 4)]).total(), 7);
        assert_eq!(TopicPosition::after(9).total(), 9);
    }

    proptest! {
        #[test]
        fn text_round_trips(floor in 0i64..1 << 40, parts in proptest::collection::btree_map(0u32..512, 0i64..1 << 40, 0..20)) {
            let position = TopicPosition::with_parts(floor, parts);
            let text = position.to_string();
            prop_assert!(text.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ':'));
            prop_assert_eq!(text.parse::<TopicPosition>(), Ok(position));
        }
    }
}
