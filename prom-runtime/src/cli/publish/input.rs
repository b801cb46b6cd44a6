//! Reading `prom publish` input from an argument, stdin or a file, never more than a limit.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the payload text comes from.
#[derive(Debug)]
pub enum Source {
    /// The command-line argument itself.
    Argument(String),
    /// Standard input (`-`).
    Stdin,
    /// A file (`--file PATH`); FIFOs and devices are read like stdin, up to the limit.
    File(PathBuf),
}

impl Source {
    /// How error messages name the input.
    pub fn name(&self) -> String {
        match self {
            Source::Argument(_) => "the payload argument".into(),
            Source::Stdin => "stdin".into(),
            Source::File(path) => format!("`{}`", path.display()),
        }
    }

    /// The whole input as UTF-8 text, reading at most `limit` bytes (one more is read to tell
    /// that the input is larger, never the rest of it).
    pub fn read(&self, limit: u64) -> Result<String, String> {
        let bytes = match self {
            Source::Argument(text) => {
                return if text.len() as u64 > limit {
                    Err(too_large(&self.name(), limit))
                } else {
                    Ok(text.clone())
                };
            }
            Source::Stdin => {
                bounded(std::io::stdin().lock(), limit).map_err(|e| format!("cannot read stdin: {e}"))?
            }
            Source::File(path) => read_file(path, limit)?,
        };
        let bytes = bytes.ok_or_else(|| too_large(&self.name(), limit))?;
        String::from_utf8(bytes).map_err(|e| {
            format!(
                "{} is not UTF-8 text (invalid byte at offset {}); JSON must be UTF-8",
                self.name(),
                e.utf8_error().valid_up_to()
            )
        })
    }
}

fn read_file(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{name}`: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read `{name}`: {e}"))?;
    if meta.is_dir() {
        return Err(format!(
            "`{name}` is a directory; --file takes a file of JSON (or NDJSON with --ndjson)"
        ));
    }
    // A regular file says its size up front: refuse it before reading anything.
    if meta.is_file() && meta.len() > limit {
        return Ok(None);
    }
    bounded(file, limit).map_err(|e| format!("cannot read `{name}`: {e}"))
}

/// Reads to the end, or `None` as soon as more than `limit` bytes arrive.
fn bounded(reader: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

fn too_large(name: &str, limit: u64) -> String {
    format!(
        "{name} is larger than the limit of {limit} bytes ({}); nothing was published. Raise it with \
         --max-bytes if the payload is meant to be this large",
        human(limit)
    )
}

/// `16 MiB`-style sizes for messages.
pub fn human(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_one_byte_past_the_limit() {
        assert_eq!(bounded(&b"abcd"[..], 4).expect("read"), Some(b"abcd".to_vec()));
        assert_eq!(
            bounded(std::io::repeat(0), 1024).expect("read"),
            None,
            "an endless input ends at the limit"
        );
        assert_eq!(human(16 << 20), "16 MiB");
        let big = Source::Argument("x".repeat(10));
        assert!(big.read(4).expect_err("too large").contains("--max-bytes"));
    }
}
