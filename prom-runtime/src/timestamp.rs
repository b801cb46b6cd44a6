//! [`Timestamp`]: a UTC instant (`format: date-time` in a schema), so user crates need no
//! direct chrono dependency and chrono stays out of the public API.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A UTC instant, written as RFC 3339 text (`2026-11-24T13:00:00Z`).
///
/// Its JSON is exactly chrono's `DateTime<Utc>` (the type it wraps): seconds, then as many
/// fractional digits as needed (3, 6 or 9), then `Z`; reading accepts what chrono reads (any
/// offset, converted to UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now())
    }

    /// The instant `millis` milliseconds after the Unix epoch; `None` when it is out of the
    /// representable range (about ±262,000 years).
    pub fn from_unix_millis(millis: i64) -> Option<Timestamp> {
        DateTime::from_timestamp_millis(millis).map(Timestamp)
    }

    /// Milliseconds since the Unix epoch (sub-millisecond digits are dropped, rounding down).
    pub fn unix_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The wrapped chrono value, for code that works with chrono.
    pub fn as_chrono(&self) -> &DateTime<Utc> {
        &self.0
    }

    /// Unwraps into chrono's type.
    pub fn into_chrono(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Timestamp {
        Timestamp(time)
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(time: Timestamp) -> DateTime<Utc> {
        time.0
    }
}

/// RFC 3339, the same text the timestamp's JSON holds.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // AutoSi + `Z` is what chrono's serializer writes, so Display and JSON never differ.
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// Parses RFC 3339 text (any offset, converted to UTC); accepts exactly what deserializing
/// accepts.
impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(text: &str) -> Result<Timestamp, ParseTimestampError> {
        // The parser chrono's deserializer uses, so a string that reads from JSON also parses.
        text.parse::<DateTime<chrono::FixedOffset>>()
            .map(|time| Timestamp(time.with_timezone(&Utc)))
            .map_err(|e| ParseTimestampError { input: quoted(text), reason: e.to_string() })
    }
}

/// Text that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input} is not an RFC 3339 timestamp ({reason}); write a date, `T`, a time and an offset, \
     e.g. 2026-11-24T13:00:00Z or 2026-11-24T14:00:00.250+01:00"
)]
pub struct ParseTimestampError {
    input: String,
    reason: String,
}

/// The input as it is echoed in errors: quoted, escaped, and cut to 64 characters.
fn quoted(text: &str) -> String {
    const SHOWN: usize = 64;
    let mut shown: String = text.chars().take(SHOWN).collect();
    if text.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instants whose text exercises every shape chrono writes: whole seconds, ms, µs, ns,
    /// before the epoch, a leap second, far years.
    fn samples() -> Vec<DateTime<Utc>> {
        let mut out: Vec<DateTime<Utc>> =
            [0, 1, 999, 1_764_600_000_000, -1, -86_400_001, 253_402_300_799_999]
                .into_iter()
                .filter_map(DateTime::from_timestamp_millis)
                .collect();
        out.extend(DateTime::from_timestamp(1_764_600_000, 123_456_000));
        out.extend(DateTime::from_timestamp(1_764_600_000, 123_456_789));
        out.extend(DateTime::from_timestamp(1_764_600_059, 1_500_000_000)); // leap second
        out.extend(DateTime::from_timestamp(-62_135_596_800, 0)); // year 1
        out.extend(DateTime::from_timestamp(300_000_000_000, 0)); // after year 9999
        out
    }

    #[test]
    fn json_is_byte_identical_to_chronos() -> Result<(), serde_json::Error> {
        for time in samples() {
            let chrono_text = serde_json::to_string(&time)?;
            let ours = serde_json::to_string(&Timestamp::from(time))?;
            assert_eq!(ours, chrono_text, "{time:?}");
            assert_eq!(serde_json::from_str::<Timestamp>(&chrono_text)?.into_chrono(), time);
            assert_eq!(format!("\"{}\"", Timestamp::from(time)), chrono_text, "Display = JSON text");
        }
        Ok(())
    }

    #[test]
    fn pinned_texts_still_read_and_write_the_same() -> Result<(), serde_json::Error> {
        // Texts as chrono wrote them into stored events before the newtype.
        let pinned = [
            ("\"2026-11-24T13:00:00Z\"", 1_795_525_200_000),
            ("\"2026-11-24T13:00:00.250Z\"", 1_795_525_200_250),
            ("\"1969-12-31T23:59:59.999Z\"", -1),
        ];
        for (text, millis) in pinned {
            let time: Timestamp = serde_json::from_str(text)?;
            assert_eq!(time.unix_millis(), millis);
            assert_eq!(serde_json::to_string(&time)?, text);
        }
        // What other writers stored: offsets and lowercase separators read as chrono read them.
        let other: Timestamp = serde_json::from_str("\"2026-11-24T14:00:00+01:00\"")?;
        assert_eq!(other.to_string(), "2026-11-24T13:00:00Z");
        Ok(())
    }

    #[test]
    fn parse_accepts_what_json_accepts_and_explains_what_it_does_not() {
        for time in samples() {
            let text = Timestamp::from(time).to_string();
            assert_eq!(text.parse::<Timestamp>().map(Timestamp::into_chrono), Ok(time), "{text}");
        }
        let error = "yesterday".parse::<Timestamp>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.starts_with("\"yesterday\" is not an RFC 3339 timestamp ("), "{error}");
        assert!(error.contains("e.g. 2026-11-24T13:00:00Z"), "{error}");
        let long = "9".repeat(500);
        let error = long.parse::<Timestamp>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.len() < 300 && error.contains('…'), "long input is cut: {error}");
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn millis_round_trip_and_out_of_range_is_none() {
        assert_eq!(
            Timestamp::from_unix_millis(1_795_525_200_250).map(|t| t.unix_millis()),
            Some(1_795_525_200_250)
        );
        assert_eq!(Timestamp::from_unix_millis(i64::MAX), None);
        let written = Timestamp::from_unix_millis(1_764_600_000_000);
        assert!(written.is_some_and(|written| Timestamp::now() > written), "now is after this was written");
    }
}
