//! Opening the database file: what to refuse before SQLite sees it, and error messages that
//! name the file and the operating system's reason.
//!
//! SQLite reports most failures to open as "unable to open database file", whatever the cause;
//! the file is probed with the standard library to say *why* (permission denied, not a file,
//! ...), and what to do about it.

use std::io::ErrorKind;
use std::path::Path;

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads and writes; the store is created when the directory has no database file.
    ReadWrite,
    /// Reads only (`prom tail`): works on read-only files and directories.
    ReadOnly,
}

impl Mode {
    fn verb(self) -> &'static str {
        match self {
            Mode::ReadWrite => "read and write",
            Mode::ReadOnly => "read",
        }
    }
}

/// Refuses a database file that cannot be a store before SQLite would silently turn it into a
/// new empty one: a 0-byte file (a crash while creating it, a truncated copy), or a directory.
/// A missing file is fine for [`Mode::ReadWrite`] (the store is created).
pub fn check_file(path: &Path, mode: Mode) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(format!(
            "`{}` is a directory, not a store file; remove it or point --store at another directory",
            path.display()
        )),
        Ok(meta) if meta.len() == 0 => Err(format!(
            "the store file `{}` is empty (0 bytes), so it holds no store: a crash while it was being \
             created, or a truncated copy. Nothing was changed. If no events should be in it, delete the \
             file and a new empty store is created; otherwise restore it from a backup",
            path.display()
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound && mode == Mode::ReadWrite => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
            "there is no store at `{}` (nothing was published there); check --store",
            path.display()
        )),
        Err(e) => Err(os_error(path, mode, &e)),
    }
}

/// Explains a failure to open or configure the file: SQLite's message, plus the OS error the
/// file gives when opened the same way, when there is one.
pub fn open_error(path: &Path, mode: Mode, error: &rusqlite::Error) -> String {
    let probe = std::fs::OpenOptions::new().read(true).write(mode == Mode::ReadWrite).open(path);
    match probe {
        Err(e) if e.kind() != ErrorKind::NotFound => os_error(path, mode, &e),
        _ if is_not_a_database(error) => format!(
            "`{}` is not a SQLite database ({error}); it is not a Prom store: point --store at \
             another directory, or restore the file from a backup",
            path.display()
        ),
        _ => format!("cannot open `{}` to {}: {error}", path.display(), mode.verb()),
    }
}

/// Why a file SQLite could only open read-only cannot be written: the OS error of opening it
/// for writing, when there is one.
pub fn read_only_error(path: &Path) -> String {
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Err(e) => os_error(path, Mode::ReadWrite, &e),
        Ok(_) => format!(
            "`{}` can only be opened read-only here (a read-only mount?); use a command that only \
             reads (`prom tail` without --group), or copy the store somewhere writable",
            path.display()
        ),
    }
}

/// The message for an OS error on the store file, with what to do about it.
pub fn os_error(path: &Path, mode: Mode, error: &std::io::Error) -> String {
    let help = match (error.kind(), mode) {
        (ErrorKind::PermissionDenied, Mode::ReadWrite) => {
            "; give this user read and write access to the file and its directory (SQLite also \
             writes `events.db-wal` and `events.db-shm` beside it), or use a command that only \
             reads (`prom tail` without --group)"
        }
        (ErrorKind::PermissionDenied, Mode::ReadOnly) => "; give this user read access to the file",
        (ErrorKind::ReadOnlyFilesystem, _) => {
            "; the file system is read-only: copy the store elsewhere, or use `prom tail` without --group"
        }
        _ => "",
    };
    format!("cannot open `{}` to {}: {error}{help}", path.display(), mode.verb())
}

/// `path` for a `file:` URI: every byte outside the unreserved set percent-encoded, so `?`, `#`
/// and `%` in directory names keep their meaning as path characters.
pub fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn is_not_a_database(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::NotADatabase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_the_path_and_the_os_reason() {
        // Tests run as root, where permission bits do not bind, so the mapping is tested on the
        // error the OS would give.
        let denied = std::io::Error::from_raw_os_error(13);
        let message = os_error(Path::new("/srv/store/events.db"), Mode::ReadWrite, &denied);
        assert!(message.contains("/srv/store/events.db"), "{message}");
        assert!(message.to_lowercase().contains("permission denied"), "{message}");
        assert!(message.contains("prom tail"), "{message}");
        let message = os_error(Path::new("/srv/store/events.db"), Mode::ReadOnly, &denied);
        assert!(message.contains("to read") && message.contains("read access"), "{message}");
    }

    #[test]
    fn empty_files_and_directories_are_refused_missing_files_are_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.db");
        assert!(check_file(&path, Mode::ReadWrite).is_ok());
        assert!(check_file(&path, Mode::ReadOnly).expect_err("missing").contains("no store"));
        std::fs::write(&path, b"").expect("write");
        let message = check_file(&path, Mode::ReadWrite).expect_err("empty");
        assert!(message.contains("0 bytes") && message.contains("delete the file"), "{message}");
        std::fs::remove_file(&path).expect("remove");
        std::fs::create_dir(&path).expect("mkdir");
        assert!(check_file(&path, Mode::ReadWrite).expect_err("dir").contains("is a directory"));
    }
}
