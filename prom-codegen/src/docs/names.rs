//! Safe file names for spec names: one-to-one, portable, never a path.

/// The file stem of `name`: `[a-z0-9.-]` kept, anything else (upper case, `_`, `/`, `\`, spaces,
/// non-ASCII) written as `_XX` per UTF-8 byte. `_` only ever starts an escape, so distinct
/// names get distinct stems, and without upper case they stay distinct on case-insensitive
/// file systems. A leading `.` is escaped too: no hidden files, no `.` or `..`.
pub fn file_stem(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let keep =
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || (byte == b'.' && i > 0);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02x}"));
        }
    }
    if out.is_empty() {
        // An empty mapping key is a lint error upstream; still never an empty file name.
        out.push_str("_empty");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::file_stem;

    #[test]
    fn names_become_distinct_safe_stems() {
        assert_eq!(file_stem("heartbeat.received"), "heartbeat.received");
        assert_eq!(file_stem("../etc/passwd"), "_2e._2fetc_2fpasswd");
        assert_eq!(file_stem(".."), "_2e.");
        assert_eq!(file_stem("A"), "_41");
        assert_ne!(file_stem("a_b"), file_stem("a_5fb"));
        assert_eq!(file_stem("a_b"), "a_5fb");
        assert_eq!(file_stem("é"), "_c3_a9");
        assert_eq!(file_stem(""), "_empty");
        for name in ["x/y", "x\\y", "con:1", "a b", "\u{0}"] {
            let stem = file_stem(name);
            assert!(
                stem.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
                "{stem}"
            );
        }
    }
}
