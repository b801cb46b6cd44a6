//! Event-sourced aggregates, typed: the traits generated code implements for each aggregate the
//! spec declares, and [`Stream`], which loads a stream's state (from its latest usable
//! snapshot), appends with an expected version and runs load → decide → append with retries.
//!
//! The storage underneath is [`crate::stream`]: a stream's events are ordinary events of the
//! aggregate's topics, validated like any publish, with a gap-free version per stream.

mod error;
mod retry;
mod snapshot;
mod stream;
pub mod testing;

pub use error::{HandleError, StreamError};
pub use retry::ConflictRetry;
pub use snapshot::{Snapshots, fingerprint};
pub use stream::{Handled, Loaded, Stream, append_events, append_events_in};

use crate::error::Result;
use crate::record::EventRecord;
use crate::registry::Registry;
use serde_json::Value;

/// An aggregate the spec declares; generated code implements it on a marker type per aggregate
/// (`account::Aggregate`).
pub trait Aggregate: Send + Sync + 'static {
    /// The aggregate's name in the spec (`account`).
    const NAME: &'static str;
    /// The JSON pointer to the stream id inside every event (`/accountId`).
    const ID: &'static str;
    /// The generated enum of the aggregate's events, one variant per event topic.
    type Event: AggregateEvent;
}

/// The event enum of an aggregate: encodes to, and decodes from, the events stored on the
/// aggregate's topics.
pub trait AggregateEvent: Sized + Send + Sync + 'static {
    /// The topic this event is stored on.
    fn topic(&self) -> &'static str;

    /// The payload as JSON, at its topic's latest version.
    fn to_payload(&self) -> Result<Value>;

    /// Decodes a stored event of one of the aggregate's topics, validated and upcast to its
    /// topic's latest version by `registry` (as typed consumers decode); an event of another
    /// topic is [`crate::Error::TopicMismatch`].
    fn from_record(registry: &Registry, record: EventRecord) -> Result<Self>;
}
