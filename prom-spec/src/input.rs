//! Reading files a user names (specs, `$ref`'d schemas, `compat` inputs, generated files):
//! regular files only, bounded in size, UTF-8 checked with the location of the first bad byte.
//! A device (`/dev/zero`), FIFO or directory is refused before it is opened, so reading can
//! neither block forever nor grow without bound.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// Largest file read; anything bigger is almost surely not a spec, schema or generated file.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a file could not be read as text.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The file system refused (not found, permission denied, ...).
    Io(std::io::Error),
    /// The path names something other than a regular file.
    NotRegular {
        /// What it is instead ("a directory", "a FIFO", "a device", ...).
        kind: &'static str,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge,
    /// The file is not UTF-8.
    NotUtf8 {
        /// 1-based line of the first invalid byte.
        line: u32,
        /// 1-based column (in characters) of the first invalid byte.
        column: u32,
        /// The first invalid byte.
        byte: u8,
        /// The text with invalid sequences replaced by U+FFFD, for rendering the line.
        lossy: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(error) => write!(f, "{error}"),
            ReadError::NotRegular { kind } => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge => write!(f, "it is larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
            ReadError::NotUtf8 { line, column, byte, .. } => {
                write!(f, "invalid UTF-8 (byte 0x{byte:02X}) at line {line}, column {column}")
            }
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ReadError {
    fn from(error: std::io::Error) -> Self {
        ReadError::Io(error)
    }
}

impl ReadError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads a regular UTF-8 file of at most [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    // Checked before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular { kind: kind_of(&meta) });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    let file = std::fs::File::open(path)?;
    // The file may have changed since the check, and /proc files report length 0: read at most
    // one byte past the limit, whatever the metadata said.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    decode(bytes)
}

/// UTF-8 text, or where the first invalid byte is.
pub fn decode(bytes: Vec<u8>) -> Result<String, ReadError> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(error) => {
            let bytes = error.as_bytes();
            let valid = error.utf8_error().valid_up_to();
            // The prefix up to `valid` is UTF-8 by definition.
            let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            let line = prefix.matches('\n').count() + 1;
            let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
            let column = prefix[line_start..].chars().count() + 1;
            Err(ReadError::NotUtf8 {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
                byte: bytes.get(valid).copied().unwrap_or(0),
                lossy: String::from_utf8_lossy(bytes).into_owned(),
            })
        }
    }
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

#[cfg(test)]
mod tests {
    use super::{ReadError, decode};

    #[test]
    fn invalid_utf8_is_located() {
        let Err(ReadError::NotUtf8 { line, column, byte, .. }) = decode(b"ab\ncd\xffe".to_vec()) else {
            panic!("expected a UTF-8 error");
        };
        assert_eq!((line, column, byte), (2, 3, 0xff));
    }
}
