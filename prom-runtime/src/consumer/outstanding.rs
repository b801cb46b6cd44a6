//! The offsets of one partition read and not yet acked, which bound where its cursor may move.
//!
//! Reads append offsets in increasing order and acks mostly come in that order too, so a deque
//! of offsets with a done mark replaces an ordered set: adding is a push, acking a binary search
//! and a mark, and the smallest unacked offset is the front. Acks that run ahead of a slow front
//! leave marks behind it; they are swept out once they outnumber the unacked offsets, so the
//! memory stays proportional to what is outstanding.

use std::collections::VecDeque;

/// Marks kept besides the unacked offsets before a sweep: sweeping small deques buys nothing.
const SLACK: usize = 64;

/// Offsets read and not yet acked, in offset order.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    /// `(offset, acked)` in increasing offset order; the front, when any, is never acked.
    offsets: VecDeque<(i64, bool)>,
    /// How many are not acked.
    live: usize,
}

impl Outstanding {
    /// How many offsets are not acked.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The smallest unacked offset.
    pub(crate) fn first(&self) -> Option<i64> {
        self.offsets.front().map(|&(offset, _)| offset)
    }

    /// Adds an offset read from the store (a second add of an unacked offset changes nothing).
    pub(crate) fn insert(&mut self, offset: i64) {
        match self.offsets.back() {
            Some(&(last, _)) if last >= offset => match self.search(offset) {
                Ok(at) => {
                    if std::mem::replace(&mut self.offsets[at].1, false) {
                        self.live += 1;
                    }
                }
                // Reads come in offset order; should one not, the order still holds.
                Err(at) => {
                    self.offsets.insert(at, (offset, false));
                    self.live += 1;
                }
            },
            _ => {
                self.offsets.push_back((offset, false));
                self.live += 1;
            }
        }
    }

    /// Whether `offset` is read and not acked.
    pub(crate) fn contains(&self, offset: i64) -> bool {
        self.search(offset).is_ok_and(|at| !self.offsets[at].1)
    }

    /// Marks `offset` acked; `false` if it was not outstanding.
    pub(crate) fn remove(&mut self, offset: i64) -> bool {
        let Ok(at) = self.search(offset) else { return false };
        if std::mem::replace(&mut self.offsets[at].1, true) {
            return false;
        }
        self.live -= 1;
        while self.offsets.front().is_some_and(|&(_, acked)| acked) {
            self.offsets.pop_front();
        }
        if self.offsets.len() > 2 * self.live + SLACK {
            self.offsets.retain(|&(_, acked)| !acked);
        }
        true
    }

    /// The unacked offsets in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.offsets.iter().filter(|&&(_, acked)| !acked).map(|&(offset, _)| offset)
    }

    /// Where `offset` is (`Ok`) or would go (`Err`); acks come mostly in order, so the front is
    /// tried first.
    fn search(&self, offset: i64) -> Result<usize, usize> {
        match self.offsets.front() {
            Some(&(first, _)) if first == offset => Ok(0),
            _ => self.offsets.binary_search_by_key(&offset, |&(o, _)| o),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Outstanding;
    use std::collections::BTreeSet;

    /// Drives an `Outstanding` and a `BTreeSet` through the same operations, in and out of order.
    #[test]
    fn it_answers_as_an_ordered_set_does() {
        let mut fast = Outstanding::default();
        let mut set = BTreeSet::new();
        let mut seed = 7_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        let mut read = 0_i64;
        for step in 0..20_000 {
            match next() % 4 {
                0 | 1 => {
                    read += 1 + i64::try_from(next() % 3).unwrap_or(0);
                    fast.insert(read);
                    set.insert(read);
                }
                2 => {
                    // Mostly the oldest, sometimes any: acks that run ahead of a stuck front.
                    let pick = if next() % 3 == 0 {
                        set.iter().nth(usize::try_from(next()).unwrap_or(0) % set.len().max(1)).copied()
                    } else {
                        set.iter().nth(1).copied()
                    };
                    let offset = pick.unwrap_or(read + 1);
                    assert_eq!(fast.remove(offset), set.remove(&offset), "step {step}: remove {offset}");
                }
                _ => {
                    let offset = i64::try_from(next()).unwrap_or(0) % (read + 2);
                    assert_eq!(
                        fast.contains(offset),
                        set.contains(&offset),
                        "step {step}: contains {offset}"
                    );
                    fast.insert(offset.max(1));
                    set.insert(offset.max(1));
                }
            }
            assert_eq!(fast.len(), set.len(), "step {step}");
            assert_eq!(fast.first(), set.first().copied(), "step {step}");
        }
        assert!(fast.iter().eq(set.iter().copied()));
        assert!(fast.offsets.len() <= 2 * fast.live + super::SLACK, "acked marks are swept");
    }

    #[test]
    fn a_stuck_front_keeps_memory_bounded() {
        let mut outstanding = Outstanding::default();
        outstanding.insert(1);
        for offset in 2..100_000 {
            outstanding.insert(offset);
            assert!(outstanding.remove(offset));
        }
        assert_eq!(outstanding.first(), Some(1));
        assert_eq!(outstanding.len(), 1);
        assert!(outstanding.offsets.len() <= 2 + super::SLACK);
    }
}
