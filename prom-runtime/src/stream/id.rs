//! Stream identity: an aggregate's name and the id its events carry.

/// One stream: the events of one aggregate instance (`account/42`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The aggregate's name.
    pub aggregate: String,
    /// The instance's id, as the payload's id pointer gives it (integers as decimal text).
    pub id: String,
}

impl StreamId {
    /// The stream of instance `id` of `aggregate`.
    pub fn new(aggregate: impl Into<String>, id: impl Into<String>) -> StreamId {
        StreamId { aggregate: aggregate.into(), id: id.into() }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.aggregate, self.id)
    }
}
