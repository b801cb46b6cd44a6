//! An append-only sequence kept in fixed-size chunks, so a push never moves what is stored.
//!
//! A topic's log grows by one record per event; in one `Vec` every doubling copied all the
//! records held so far (a fifth of `publish_all`'s instructions in the hot-path bench, and
//! memory traffic that grew with the topic).

/// Records per chunk: large enough that the chunk list stays short, small enough that a topic
/// with a few events does not reserve much.
const CHUNK: usize = 256;

/// An append-only, indexable sequence of `T`.
pub(super) struct Chunks<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks { chunks: Vec::new(), len: 0 }
    }
}

impl<T> Chunks<T> {
    /// How many items are stored.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends `item` at index `len()`.
    pub(super) fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(item),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// The item at `index`.
    pub(super) fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// The items from `start` on, in order.
    pub(super) fn iter_from(&self, start: usize) -> impl Iterator<Item = &T> {
        let (first, skip) = (start / CHUNK, start % CHUNK);
        let head = self.chunks.get(first).and_then(|c| c.get(skip..)).unwrap_or_default();
        head.iter().chain(self.chunks.iter().skip(first + 1).flatten())
    }

    /// The last item.
    pub(super) fn last(&self) -> Option<&T> {
        self.chunks.last()?.last()
    }

    /// The index of the first item `before` is false for, when it holds for a prefix (a
    /// binary search, like `slice::partition_point`).
    pub(super) fn partition_point(&self, mut before: impl FnMut(&T) -> bool) -> usize {
        // Every chunk but the last is full, so chunk `c` starts at `c * CHUNK`.
        let chunk = self.chunks.partition_point(|c| c.last().is_some_and(&mut before));
        match self.chunks.get(chunk) {
            Some(c) => chunk * CHUNK + c.partition_point(before),
            None => self.len,
        }
    }

    /// The index of the last item matching `f`.
    pub(super) fn rposition(&self, mut f: impl FnMut(&T) -> bool) -> Option<usize> {
        let chunks = self.chunks.iter().enumerate().rev();
        chunks
            .flat_map(|(c, chunk)| chunk.iter().enumerate().rev().map(move |(i, t)| (c * CHUNK + i, t)))
            .find_map(|(i, t)| f(t).then_some(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_iterates_and_searches_across_chunk_boundaries() {
        let mut c = Chunks::default();
        let n = CHUNK * 3 + 7;
        for i in 0..n {
            c.push(i);
        }
        assert_eq!(c.len(), n);
        assert!((0..n).all(|i| c.get(i) == Some(&i)));
        assert_eq!(c.get(n), None);
        for start in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, n - 1, n, n + 5] {
            let from: Vec<usize> = c.iter_from(start).copied().collect();
            assert_eq!(from, (start.min(n)..n).collect::<Vec<_>>(), "from {start}");
        }
        assert_eq!(c.rposition(|&i| i % CHUNK == 3), Some(CHUNK * 3 + 3));
        assert_eq!(c.rposition(|&i| i == 0), Some(0));
        assert_eq!(c.rposition(|&i| i == n), None);
        assert_eq!(Chunks::<u8>::default().iter_from(0).count(), 0);
        for point in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK * 3, n - 1, n] {
            assert_eq!(c.partition_point(|&i| i < point), point, "point {point}");
        }
        assert_eq!(Chunks::<u8>::default().partition_point(|_| true), 0);
        assert_eq!(c.last(), Some(&(n - 1)));
        assert_eq!(Chunks::<u8>::default().last(), None);
    }
}
