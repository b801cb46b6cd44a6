//! Turns README.md's ```` ```rust ```` blocks into one Rust file whose line N is README line N, so
//! a rustc error in `OUT_DIR/README.md.rs:N:C` is README.md line N.
//!
//! Each block's opening fence line becomes the head of its wrapper and its closing fence line the
//! tail, so the wrappers fit into the fences' own lines and the code keeps its line numbers:
//!
//! - a block of items (`use`, `fn`, `struct`, `mod`, `impl`, attributes) becomes a module,
//!   `readme_md_LINE` (or `module=NAME`), LINE being the opening fence's line;
//! - any other block (statements, possibly mixed with items) becomes the body of
//!   `readme_md_LINE::snippet`, an `async fn` returning
//!   `Result<(), Box<dyn Error + Send + Sync>>`, in which `prom` is the module generated from
//!   `specs/` (as in a crate whose root declares `mod prom`);
//! - `<!-- snippet: build.rs -->` blocks must be items (a whole build script): they become a
//!   module, compiled against `prom-codegen`;
//! - `<!-- snippet: mongo -->` blocks are compiled only with the `mongo` feature, and
//!   `<!-- snippet: otel -->` blocks only with the `otel` feature;
//! - `<!-- file: PATH -->` and `<!-- variant: NAME -->` blocks are left to `tests/fresh_crate.rs`,
//!   which builds them as a real crate; other languages are not compiled.
//!
//! Snippets are illustrations, so unused variables and dead code are allowed in them; every other
//! lint applies.

use crate::readme::{Block, Marker, ReadmeError, SnippetOptions};

/// The error type statement snippets return (`?` converts any error into it).
const RESULT: &str = "::std::result::Result<(), ::std::boxed::Box<dyn ::std::error::Error + \
                      ::std::marker::Send + ::std::marker::Sync>>";

/// The Rust file for `blocks` of a README with `line_count` lines; `is_items` tells whether a
/// block's code parses as a file of items.
pub fn render(
    line_count: usize,
    blocks: &[Block],
    is_items: impl Fn(&str) -> bool,
) -> Result<String, ReadmeError> {
    let mut out = vec![String::new(); line_count];
    for block in blocks {
        let fence = block.fence_line;
        let close = fence + block.lines.len() + 1;
        if close > line_count {
            return Err(ReadmeError::Unclosed { line: fence });
        }
        let options = match (&block.marker, block.lang.as_str()) {
            (Some(Marker::File(path)), "rust") => {
                out[fence - 1] = format!(
                    "// README.md:{fence}: `{path}` of the \"Use Prom in your crate\" crate: \
                     tests/fresh_crate.rs builds it"
                );
                continue;
            }
            (Some(Marker::Variant(name)), "rust") => {
                out[fence - 1] = format!(
                    "// README.md:{fence}: variant `{name}` of the \"Use Prom in your crate\" crate: \
                     tests/fresh_crate.rs builds it"
                );
                continue;
            }
            (Some(Marker::Snippet(options)), "rust") => options.clone(),
            (None, "rust") => SnippetOptions::default(),
            (Some(Marker::Snippet(_)), other) => {
                return Err(ReadmeError::BadMarker {
                    line: fence - 1,
                    message: format!(
                        "a `<!-- snippet: ... -->` comment stands above a ```{other} block: only \
                         ```rust blocks are compiled"
                    ),
                });
            }
            _ => continue,
        };
        let code = block.code();
        let items = is_items(&code);
        if options.build_script && !items {
            return Err(ReadmeError::BadMarker {
                line: fence - 1,
                message: "a `build.rs` snippet must be a whole build script (items such as \
                          `fn main() { ... }`), but this block has statements outside any fn"
                    .to_owned(),
            });
        }
        let name = options.module.clone().unwrap_or_else(|| format!("readme_md_{fence}"));
        let cfg = match (options.mongo, options.otel) {
            (false, false) => "",
            (true, false) => "#[cfg(feature = \"mongo\")] ",
            (false, true) => "#[cfg(feature = \"otel\")] ",
            (true, true) => "#[cfg(all(feature = \"mongo\", feature = \"otel\"))] ",
        };
        let head = format!("{cfg}#[allow(unused, dead_code)] pub mod {name} {{");
        let (head, tail) = if items {
            (format!("{head} // README.md:{}", block.first_line()), "}".to_owned())
        } else {
            (
                format!(
                    "{head} #[cfg(feature = \"mongo\")] use crate::prom; \
                     pub async fn snippet() -> {RESULT} {{ // README.md:{}",
                    block.first_line()
                ),
                "#[allow(unreachable_code)] Ok(()) } }".to_owned(),
            )
        };
        out[fence - 1] = head;
        for (index, line) in block.lines.iter().enumerate() {
            out[fence + index].clone_from(line);
        }
        out[close - 1] = tail;
    }
    // Line 1 carries the header unless a block starts there.
    if out.first().is_some_and(String::is_empty) {
        out[0] =
            "// @generated by tests/readme/build.rs from README.md; line N is README.md line N.".to_owned();
    }
    let mut text = String::new();
    for line in &out {
        text.push_str(line);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readme::blocks;

    fn rendered(readme: &str) -> Result<Vec<String>, ReadmeError> {
        let found = blocks(readme)?;
        let text = render(readme.lines().count(), &found, |code| code.starts_with("fn"))?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    #[test]
    fn code_keeps_its_readme_line_numbers() {
        let readme = "# T\n\n```rust\nfn f() {}\n```\ntext\n```rust\nlet x = 1;\n```\n```sh\nls\n```\n";
        let lines = rendered(readme).expect("renders");
        assert_eq!(lines.len(), readme.lines().count());
        assert_eq!(lines[3], "fn f() {}");
        assert_eq!(lines[7], "let x = 1;");
        assert!(lines[2].contains("pub mod readme_md_3 {"), "{}", lines[2]);
        assert!(lines[6].contains("pub async fn snippet()"), "{}", lines[6]);
        assert!(lines[8].ends_with("Ok(()) } }"), "{}", lines[8]);
        assert!(lines[10].is_empty(), "sh blocks are not compiled: {}", lines[10]);
    }

    #[test]
    fn markers_gate_rename_and_skip_blocks() {
        let readme = "# T\n<!-- snippet: mongo, module=projectors -->\n```rust\nfn f() {}\n```\n\
                      <!-- file: src/main.rs -->\n```rust\nfn main() {}\n```\n";
        let lines = rendered(readme).expect("renders");
        assert!(lines[2].starts_with("#[cfg(feature = \"mongo\")]"), "{}", lines[2]);
        assert!(lines[2].contains("pub mod projectors {"), "{}", lines[2]);
        assert!(lines[6].starts_with("// README.md:7: `src/main.rs`"), "{}", lines[6]);
        assert!(lines[7].is_empty(), "file blocks are built by the fresh-crate test");
        let readme = "# T\n<!-- snippet: otel -->\n```rust\nfn f() {}\n```\n";
        let lines = rendered(readme).expect("renders");
        assert!(lines[2].starts_with("#[cfg(feature = \"otel\")] #[allow"), "{}", lines[2]);
    }

    #[test]
    fn a_build_script_of_statements_is_refused_at_its_marker() {
        let readme = "# T\n<!-- snippet: build.rs -->\n```rust\nlet x = 1;\n```\n";
        let error = rendered(readme).expect_err("statements");
        assert!(error.to_string().starts_with("README.md:2: a `build.rs` snippet"), "{error}");
    }
}
