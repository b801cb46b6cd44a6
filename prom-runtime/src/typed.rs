//! The typed surface generated code and derives build on: events, versions, topic handles.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A payload type of one version of one topic.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic's name.
    const TOPIC: &'static str;
    /// The payload version this type encodes.
    const VERSION: u32;
    /// The version's JSON Schema, as JSON text.
    const SCHEMA: &'static str;
}

/// "A payload of any version" of a topic, with its upcast chain to the latest version.
pub trait Versioned: Sized + Send + 'static {
    /// The payload type readers see.
    type Latest: Event;
    /// The topic's name.
    const TOPIC: &'static str;
    /// The newest version.
    const LATEST_VERSION: u32;
    /// Decodes a stored payload of `version`, reading the JSON in place (deserializing from
    /// `&Value`), so the stored payload is neither moved nor copied.
    fn decode(version: u32, payload: &serde_json::Value) -> Result<Self, DecodeError>;
    /// The version of this payload.
    fn version(&self) -> u32;
    /// Walks the upcast chain to the latest version.
    fn into_latest(self) -> Result<Self::Latest, UpcastError>;
}

/// A typed topic handle: publishes take `V::Latest`, subscribers receive it.
pub struct Topic<V> {
    versions: PhantomData<fn() -> V>,
}

impl<V: Versioned> Topic<V> {
    /// The handle (generated code creates one constant per topic).
    pub const fn new() -> Self {
        Topic { versions: PhantomData }
    }

    /// The topic's name.
    pub const fn name(&self) -> &'static str {
        V::TOPIC
    }

    /// The newest payload version.
    pub const fn latest_version(&self) -> u32 {
        V::LATEST_VERSION
    }

    /// Decodes a stored payload of any version into the latest shape; returns the payload and
    /// the version it was upcast from (`None` when it was stored at the latest version).
    pub fn decode_latest(
        &self,
        version: u32,
        payload: &serde_json::Value,
    ) -> Result<(V::Latest, Option<u32>), DecodeError> {
        let any = V::decode(version, payload)?;
        let from = (any.version() != V::LATEST_VERSION).then(|| any.version());
        let latest =
            any.into_latest().map_err(|source| DecodeError::Upcast { topic: V::TOPIC, version, source })?;
        Ok((latest, from))
    }
}

impl<V: Versioned> Default for Topic<V> {
    fn default() -> Self {
        Topic::new()
    }
}

impl<V> Clone for Topic<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Topic<V> {}

impl<V: Versioned> std::fmt::Debug for Topic<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Topic({:?})", V::TOPIC)
    }
}

/// An upcaster could not turn a payload into the next version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpcastError {
    message: String,
}

impl UpcastError {
    /// An error with a message saying what could not be converted.
    pub fn new(message: impl Into<String>) -> Self {
        UpcastError { message: message.into() }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for UpcastError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upcast failed: {}", self.message)
    }
}

impl std::error::Error for UpcastError {}

impl From<serde_json::Error> for UpcastError {
    fn from(error: serde_json::Error) -> Self {
        UpcastError::new(error.to_string())
    }
}

/// A stored payload could not be decoded into its typed form.
#[derive(Debug)]
pub enum DecodeError {
    /// The topic declares no such version.
    UnknownVersion {
        /// Topic name.
        topic: &'static str,
        /// The version found.
        version: u32,
    },
    /// The payload does not match its version's type.
    Payload {
        /// Topic name.
        topic: &'static str,
        /// The payload's version.
        version: u32,
        /// What serde reported.
        source: serde_json::Error,
    },
    /// The upcast chain failed.
    Upcast {
        /// Topic name.
        topic: &'static str,
        /// The payload's version.
        version: u32,
        /// What the upcaster reported.
        source: UpcastError,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::UnknownVersion { topic, version } => {
                write!(f, "`{topic}` has no version {version}; is the reader's spec older than the writer's?")
            }
            DecodeError::Payload { topic, version, source } => {
                write!(f, "`{topic}` v{version} payload does not decode: {source}")
            }
            DecodeError::Upcast { topic, version, source } => write!(f, "`{topic}` v{version}: {source}"),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::UnknownVersion { .. } => None,
            DecodeError::Payload { source, .. } => Some(source),
            DecodeError::Upcast { source, .. } => Some(source),
        }
    }
}
