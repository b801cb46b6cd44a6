//! Runs the bad-spec corpus in `tests/corpus/lint`: every file (or directory) declares the
//! diagnostics it must produce as `# expect: CODE LINE:COL` comments, and produces no others.

use prom_spec::lint_paths;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/lint")
}

fn expectations(file: &Path) -> BTreeSet<(String, u32, u32)> {
    let text = std::fs::read_to_string(file).expect("corpus file is readable");
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let (code, pos) = rest.split_once(' ').expect("`# expect: CODE LINE:COL`");
            let (line, col) = pos.trim().split_once(':').expect("LINE:COL");
            (code.to_owned(), line.parse().expect("line"), col.parse().expect("col"))
        })
        .collect()
}

#[test]
fn every_rule_fires_where_expected() {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(corpus()).expect("corpus exists").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    let mut failures = Vec::new();
    let mut codes_seen = BTreeSet::new();
    for entry in &entries {
        let files: Vec<PathBuf> = if entry.is_dir() {
            let mut f: Vec<_> =
                std::fs::read_dir(entry).expect("dir").map(|e| e.expect("entry").path()).collect();
            f.sort();
            f
        } else {
            vec![entry.clone()]
        };
        let linted = lint_paths(std::slice::from_ref(entry));
        for file in files {
            let expected = expectations(&file);
            let actual: BTreeSet<(String, u32, u32)> = linted
                .diagnostics
                .iter()
                .filter(|d| *d.span.file == *file)
                .map(|d| (d.code.id().to_owned(), d.span.start.line, d.span.start.column))
                .collect();
            codes_seen.extend(actual.iter().map(|(c, _, _)| c.clone()));
            if expected != actual {
                failures.push(format!(
                    "{}:\n  expected {expected:?}\n  actual   {actual:?}\n{}",
                    file.display(),
                    linted.render()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} corpus file(s) failed:\n{}", failures.len(), failures.join("\n"));
    // Every rule has a bad-spec file, except the undecidable-compat warning, I/O failures and
    // symlink loops: a committed symlink loop would trip every tool that walks the repository,
    // so `tests/hostile.rs` builds those at test time. The P7xx codes compare two specs
    // (`prom-codegen breaking`): `prom-codegen/tests/breaking.rs` covers them.
    use prom_spec::diag::Code;
    for code in Code::ALL {
        let breaking_only =
            [Code::CompatLoosened, Code::PartitioningChanged, Code::ConsumerRemoved, Code::DualWriteRemoved];
        if ![Code::CompatUndecided, Code::Io, Code::SymlinkLoop].contains(code)
            && !breaking_only.contains(code)
        {
            assert!(
                codes_seen.contains(code.id()),
                "no corpus file exercises {} ({})",
                code.id(),
                code.name()
            );
        }
    }
}

#[test]
fn readme_documents_every_rule() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md");
    for code in prom_spec::diag::Code::ALL {
        let row = format!("| {} | {} |", code.id(), code.name());
        assert!(readme.contains(&row), "README.md has no row `{row}`");
    }
}
