//! The version a stream must have for an append to go through.

use std::str::FromStr;

/// What an append expects of the stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpectedVersion {
    /// No check: append whatever the version (`any`).
    #[default]
    Any,
    /// The stream must not exist yet (`no-stream`).
    NoStream,
    /// The stream must exist, at any version (`exists`).
    Exists,
    /// The stream must be at exactly this version (`N`; `0` means no stream yet).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` (`None`: no stream) satisfies this expectation.
    pub fn admits(self, actual: Option<u64>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => actual.is_none(),
            ExpectedVersion::Exists => actual.is_some(),
            ExpectedVersion::Exact(n) => actual == Some(n),
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no-stream"),
            ExpectedVersion::Exists => f.write_str("exists"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// Why a text is not an expected version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an expected version; write a version number (0 = no stream), any, no-stream or exists")]
pub struct ParseExpectedVersionError(pub String);

impl FromStr for ExpectedVersion {
    type Err = ParseExpectedVersionError;

    fn from_str(text: &str) -> Result<ExpectedVersion, ParseExpectedVersionError> {
        match text {
            "any" => Ok(ExpectedVersion::Any),
            "no-stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::Exists),
            _ => text
                .parse::<u64>()
                .map(ExpectedVersion::Exact)
                .map_err(|_| ParseExpectedVersionError(text.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExpectedVersion::{self, *};

    #[test]
    fn parses_and_prints_every_spelling() {
        for (text, value) in [("any", Any), ("no-stream", NoStream), ("exists", Exists), ("17", Exact(17))] {
            assert_eq!(text.parse::<ExpectedVersion>(), Ok(value));
            assert_eq!(value.to_string(), text);
        }
        let error = "-1".parse::<ExpectedVersion>().expect_err("-1 is no version").to_string();
        assert!(error.contains("`-1`") && error.contains("no-stream"), "{error}");
    }

    #[test]
    fn admits_what_each_expectation_allows() {
        assert!(Any.admits(None) && Any.admits(Some(3)));
        assert!(NoStream.admits(None) && !NoStream.admits(Some(1)));
        assert!(Exact(0).admits(None) && !Exact(0).admits(Some(1)));
        assert!(Exists.admits(Some(1)) && !Exists.admits(None));
        assert!(Exact(3).admits(Some(3)) && !Exact(3).admits(Some(4)) && !Exact(3).admits(None));
    }
}
