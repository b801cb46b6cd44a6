//! Read-ahead of partition pages: a consumer working through a backlog asks next for the page
//! after the one it just got, so that page is read on a blocking thread while the consumer hands
//! out the current one.
//!
//! A page read earlier is still right: offsets are assigned in commit order and stored events
//! never change, so what one read found after an offset is the start of what any later read
//! finds there. It may be shorter (events stored since are missing), so the caller reads the
//! rest of its page itself.

use crate::error::Result;
use crate::record::EventRecord;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Smaller pages are not read ahead: one-off lookups ask for one event or a few.
const MIN_PAGE: usize = 32;
/// Nor larger ones: a page read ahead is held outside every consumer's in-flight window.
const MAX_PAGE: usize = 1000;
/// Most pages being read ahead at once (each takes a read connection and a thread).
const MAX_READING: usize = 2;
/// Most pages kept; the oldest goes first.
const MAX_KEPT: usize = 16;
/// A page nobody took within this long is dropped: its reader stopped or moved elsewhere.
const STALE: Duration = Duration::from_secs(5);

/// A page being read, or the exact rest of one.
pub(super) enum Page {
    /// Being read on a blocking thread.
    Reading(JoinHandle<Result<Vec<EventRecord>>>),
    /// Events following the position.
    Ready(Vec<EventRecord>),
}

struct Entry {
    topic: String,
    partition: u32,
    after: i64,
    since: Instant,
    page: Page,
}

impl Entry {
    fn at(&self, topic: &str, partition: u32, after: i64) -> bool {
        self.after == after && self.partition == partition && self.topic == topic
    }
}

/// The pages read ahead for one store.
#[derive(Default)]
pub(super) struct ReadAhead {
    entries: Mutex<Vec<Entry>>,
}

impl ReadAhead {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // Every mutation is a push or a remove, which leave the list sound if one panicked.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The first events following `after` in the partition, when a page was read ahead there
    /// (possibly fewer than a read would return now, never other ones); empty when none was or
    /// reading it failed (the caller then reads, and reports any error itself).
    pub(super) async fn take(&self, topic: &str, partition: u32, after: i64) -> Vec<EventRecord> {
        let entry = {
            let mut entries = self.lock();
            match entries.iter().position(|e| e.at(topic, partition, after)) {
                Some(i) => entries.swap_remove(i),
                None => return Vec::new(),
            }
        };
        match entry.page {
            Page::Ready(events) => events,
            Page::Reading(reading) => match reading.await {
                Ok(Ok(events)) => events,
                _ => Vec::new(),
            },
        }
    }

    /// Whether a page of `limit` events after `after` is worth reading ahead now: a consumer's
    /// page size, nothing kept there already, and few reads ahead under way.
    pub(super) fn wanted(&self, topic: &str, partition: u32, after: i64, limit: usize) -> bool {
        if !(MIN_PAGE..=MAX_PAGE).contains(&limit) {
            return false;
        }
        let entries = self.lock();
        let reading =
            entries.iter().filter(|e| matches!(&e.page, Page::Reading(r) if !r.is_finished())).count();
        reading < MAX_READING && !entries.iter().any(|e| e.at(topic, partition, after))
    }

    /// Keeps `page` as what follows `after` in the partition, dropping stale and surplus pages.
    pub(super) fn keep(&self, topic: &str, partition: u32, after: i64, page: Page) {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|e| now.duration_since(e.since) < STALE && !e.at(topic, partition, after));
        if entries.len() >= MAX_KEPT {
            entries.remove(0);
        }
        entries.push(Entry { topic: topic.to_owned(), partition, after, since: now, page });
    }
}

#[cfg(test)]
mod tests {
    use crate::bus::{EventBus, SqliteBus};
    use crate::record::NewEvent;
    use serde_json::json;

    async fn publish(bus: &SqliteBus, range: std::ops::Range<usize>) {
        let events =
            range.map(|n| NewEvent::new("t", json!({ "n": n })).keyed(format!("k{n}"), (n % 2) as u32));
        bus.publish(events.collect()).await.expect("publish");
    }

    fn offsets(events: &[crate::record::EventRecord]) -> Vec<i64> {
        events.iter().map(|e| e.offset).collect()
    }

    #[tokio::test]
    async fn pages_read_ahead_are_what_one_read_returns() {
        pages_match_plain_reads().await;
    }

    /// On a multi-threaded runtime pages are read in place on the worker (see `read_in_place`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_read_in_place_are_what_one_read_returns() {
        pages_match_plain_reads().await;
        a_short_page_is_completed().await;
    }

    async fn pages_match_plain_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = SqliteBus::open(dir.path()).expect("open");
        publish(&bus, 0..900).await;
        // Another handle on the file keeps no pages of its own: every read is a plain one.
        let plain = SqliteBus::open_read_only(dir.path()).expect("open read-only");
        let mut after = 0;
        // Growing, shrinking and equal page sizes: kept rests, top-ups and whole pages.
        for limit in [100, 100, 40, 150, 150, 60, 100, 500] {
            let got = bus.read("t", 1, after, limit).await.expect("read");
            let want = plain.read("t", 1, after, limit).await.expect("plain read");
            assert_eq!(got, want, "page of {limit} after {after}");
            after = got.last().map_or(after, |e| e.offset);
        }
        assert_eq!(after, 900, "the partition was read to its end");
    }

    #[tokio::test]
    async fn a_page_read_ahead_before_more_events_were_stored_is_completed() {
        a_short_page_is_completed().await;
    }

    async fn a_short_page_is_completed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = SqliteBus::open(dir.path()).expect("open");
        publish(&bus, 0..300).await;
        // Partition 0 holds 150 events (odd offsets 1..=299): the page after the first 100
        // is read ahead and finds only 50.
        let first = bus.read("t", 0, 0, 100).await.expect("read");
        assert_eq!(offsets(&first).last(), Some(&199));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        publish(&bus, 300..500).await;
        let next = bus.read("t", 0, 199, 100).await.expect("read");
        assert_eq!(
            offsets(&next),
            (100..200).map(|i| i * 2 + 1).collect::<Vec<_>>(),
            "events stored since are read"
        );
    }

    /// Reading a page binds new values every time; the reader's cached statement must not be
    /// planned again for each (SQLite does so unless told the plan is stable).
    #[tokio::test]
    async fn a_reader_plans_the_page_read_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = SqliteBus::open(dir.path()).expect("open");
        publish(&bus, 0..300).await;
        let conn = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
        crate::bus::sqlite::schema::configure_reader(&conn).expect("configure");
        let mut page = conn.prepare(&super::super::page_sql()).expect("prepare");
        for (partition, after) in [(0, 0), (1, 10), (0, 50), (1, 100), (0, 7)] {
            let read = page
                .query_map(rusqlite::params!["t", partition, after, 100], |_| Ok(()))
                .expect("query")
                .count();
            assert!(read > 0, "partition {partition} after {after}");
        }
        assert_eq!(page.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
