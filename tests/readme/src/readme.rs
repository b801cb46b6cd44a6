//! The code blocks of README.md and the HTML comment that marks each one.
//!
//! Shared by the build script (which compiles the ```` ```rust ```` blocks) and the fresh-crate
//! test (which writes the `<!-- file: PATH -->` blocks into a new crate), so both read the README
//! the same way.

use std::fmt;

/// One fenced code block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// README line (1-based) of the opening fence.
    pub fence_line: usize,
    /// The info string's first word (`rust`, `toml`, `yaml`, `sh`, ...; empty when none).
    pub lang: String,
    /// The HTML comment on the line right above the fence, if any.
    pub marker: Option<Marker>,
    /// The lines between the fences, each without its line ending.
    pub lines: Vec<String>,
}

impl Block {
    /// README line (1-based) of the block's first code line.
    pub fn first_line(&self) -> usize {
        self.fence_line + 1
    }

    /// The block's code, lines joined with `\n` (and a final `\n`).
    pub fn code(&self) -> String {
        self.lines.iter().map(|line| format!("{line}\n")).collect()
    }
}

/// What the comment above a block says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// `<!-- snippet: OPTION[, OPTION...] -->`: how the harness compiles a ```` ```rust ```` block.
    Snippet(SnippetOptions),
    /// `<!-- file: PATH -->`: the block is the whole file PATH of the crate "Use Prom in your
    /// crate" describes; the fresh-crate test builds it as a real crate.
    File(String),
    /// `<!-- variant: NAME -->`: a replacement the fresh-crate test makes in that crate (NAME
    /// `include_specs`: the `mod prom` of `src/main.rs`, without a build script).
    Variant(String),
}

/// The options of a `<!-- snippet: ... -->` comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnippetOptions {
    /// `build.rs`: a build script, compiled as a module with `prom-codegen` as a dependency.
    pub build_script: bool,
    /// `mongo`: compiled only with the harness's `mongo` feature.
    pub mongo: bool,
    /// `otel`: compiled only with the harness's `otel` feature (OpenTelemetry crates).
    pub otel: bool,
    /// `module=NAME`: the module's name at the crate root (for paths a spec names, such as
    /// `crate::projectors::process_stats`) instead of `readme_md_LINE`.
    pub module: Option<String>,
}

/// Why the README could not be read into blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadmeError {
    /// A fence is opened and never closed.
    Unclosed {
        /// README line of the opening fence.
        line: usize,
    },
    /// A `<!-- snippet: ... -->` or `<!-- file: ... -->` comment that cannot be read.
    BadMarker {
        /// README line of the comment.
        line: usize,
        /// What is wrong with it and what is allowed.
        message: String,
    },
}

impl fmt::Display for ReadmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadmeError::Unclosed { line } => {
                write!(f, "README.md:{line}: this ``` fence is never closed: add a closing ``` line")
            }
            ReadmeError::BadMarker { line, message } => write!(f, "README.md:{line}: {message}"),
        }
    }
}

impl std::error::Error for ReadmeError {}

/// Every fenced block of `readme`, in order.
pub fn blocks(readme: &str) -> Result<Vec<Block>, ReadmeError> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines().enumerate().map(|(index, line)| (index + 1, line));
    let mut previous: Option<(usize, &str)> = None;
    while let Some((number, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            previous = Some((number, line));
            continue;
        };
        let marker = match previous {
            Some((at, text)) => marker(at, text)?,
            None => None,
        };
        let lang = info.split([',', ' ']).next().unwrap_or_default().trim().to_owned();
        let mut body = Vec::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            if line.trim_end() == "```" {
                closed = true;
                break;
            }
            body.push(line.to_owned());
        }
        if !closed {
            return Err(ReadmeError::Unclosed { line: number });
        }
        blocks.push(Block { fence_line: number, lang, marker, lines: body });
        previous = None;
    }
    Ok(blocks)
}

/// Reads `<!-- snippet: ... -->` / `<!-- file: ... -->` on README line `at`; other lines (and
/// other comments) are no marker.
fn marker(at: usize, text: &str) -> Result<Option<Marker>, ReadmeError> {
    let Some(inner) = text.trim().strip_prefix("<!--").and_then(|t| t.strip_suffix("-->")) else {
        return Ok(None);
    };
    let inner = inner.trim();
    if let Some(path) = inner.strip_prefix("file:") {
        let path = path.trim();
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(ReadmeError::BadMarker {
                line: at,
                message: format!("`<!-- file: {path} -->` must name a relative path inside the crate"),
            });
        }
        return Ok(Some(Marker::File(path.to_owned())));
    }
    if let Some(name) = inner.strip_prefix("variant:") {
        let name = name.trim();
        if !is_identifier(name) {
            return Err(ReadmeError::BadMarker {
                line: at,
                message: format!("`<!-- variant: {name} -->` must name the variant with a plain identifier"),
            });
        }
        return Ok(Some(Marker::Variant(name.to_owned())));
    }
    let Some(options) = inner.strip_prefix("snippet:") else {
        return Ok(None);
    };
    let mut parsed = SnippetOptions::default();
    for option in options.split(',').map(str::trim) {
        match option.split_once('=') {
            None if option == "build.rs" => parsed.build_script = true,
            None if option == "mongo" => parsed.mongo = true,
            None if option == "otel" => parsed.otel = true,
            Some(("module", name)) if is_identifier(name.trim()) => {
                parsed.module = Some(name.trim().to_owned());
            }
            _ => {
                return Err(ReadmeError::BadMarker {
                    line: at,
                    message: format!(
                        "unknown snippet option `{option}`: use `build.rs`, `mongo`, `otel` or `module=NAME` \
                         (comma-separated), e.g. `<!-- snippet: mongo, module=projectors -->`"
                    ),
                });
            }
        }
    }
    Ok(Some(Marker::Snippet(parsed)))
}

/// Whether `name` is a plain Rust identifier (a module name).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_carry_their_line_language_and_marker() {
        let text = "# T\n\n<!-- snippet: mongo, module=projectors -->\n```rust\nfn f() {}\n```\n\
                    <!-- file: Cargo.toml -->\n```toml\n[package]\n```\n```sh\nls\n```\n";
        let found = blocks(text).expect("blocks");
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].fence_line, 4);
        assert_eq!(found[0].lang, "rust");
        assert_eq!(
            found[0].marker,
            Some(Marker::Snippet(SnippetOptions {
                mongo: true,
                module: Some("projectors".into()),
                ..SnippetOptions::default()
            }))
        );
        assert_eq!(found[0].code(), "fn f() {}\n");
        assert_eq!(found[1].marker, Some(Marker::File("Cargo.toml".into())));
        assert_eq!(found[2].marker, None);
        assert_eq!(found[2].lang, "sh");
    }

    #[test]
    fn an_unclosed_fence_names_its_line() {
        let error = blocks("a\n```rust\nfn f() {}\n").expect_err("unclosed");
        assert_eq!(error, ReadmeError::Unclosed { line: 2 });
        assert!(error.to_string().starts_with("README.md:2: "));
    }

    #[test]
    fn a_bad_marker_names_its_line_and_what_is_allowed() {
        let error = blocks("<!-- snippet: mongoo -->\n```rust\n```\n").expect_err("bad option");
        let text = error.to_string();
        assert!(text.starts_with("README.md:1: unknown snippet option `mongoo`"), "{text}");
        assert!(text.contains("module=NAME"), "{text}");
        let error = blocks("<!-- file: ../x.rs -->\n```rust\n```\n").expect_err("escaping path");
        assert!(error.to_string().contains("relative path inside the crate"), "{error}");
    }
}
