//! Builds the crate README.md's "Use Prom in your crate" describes, in a temporary directory
//! outside this workspace, and runs it. The first test creates it with `prom-codegen new` and
//! checks every file equals the README's `<!-- file: PATH -->` block; the second writes the blocks
//! itself and applies the README's `include_specs!` variant.
//!
//! The one change made to the files: each `prom-runtime = { version = "...", ... }` /
//! `prom-codegen = { version = "...", ... }` dependency line of Cargo.toml gets
//! `path = "<this workspace>/<crate>"` instead of its `version` (the crates are not published);
//! features and `default-features` stay as the README writes them. The workspace's Cargo.lock is
//! copied in so that `cargo build --offline` picks the versions this workspace was tested with.
//!
//! Everything builds into `<workspace>/target/tests/fresh-crate` (reruns are warm), including the
//! `prom-codegen` binary the test lints with, so it never waits for the lock of the outer
//! `cargo test`'s target directory.

use prom_readme_tests::readme::{self, Marker};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Generous: a cold build of the crate's dependencies takes minutes on a loaded machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// The service bills one order and stops; this only guards against a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The tests share one target directory; one build at a time keeps them from waiting on each
/// other's locks with their timeouts running.
static BUILDS: Mutex<()> = Mutex::new(());

#[test]
fn prom_codegen_new_writes_the_readme_crate_which_lints_builds_runs_and_resumes() {
    let _serial = BUILDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let krate = FreshCrate::from_new();

    let lint = krate.run(Command::new(prom_codegen_binary()).args(["lint", "specs"]), BUILD_TIMEOUT);
    assert!(lint.ok, "prom-codegen lint specs failed:\n{}", lint.text());

    krate.build();
    let first = krate.service();
    assert!(first.stdout.contains("placed o-1 at offset 1"), "{}", first.text());
    assert!(first.stdout.contains("billed 4200 cents for o-1 (offset 1)"), "{}", first.text());
    // The second run finds the group's cursor after o-1: it bills only its own order.
    let second = krate.service();
    assert!(second.stdout.contains("placed o-2 at offset 2"), "{}", second.text());
    assert!(second.stdout.contains("billed 4200 cents for o-2 (offset 2)"), "{}", second.text());
    assert!(!second.stdout.contains("for o-1"), "o-1 was billed again:\n{}", second.text());
}

#[test]
fn the_include_specs_variant_builds_and_runs_without_a_build_script() {
    let _serial = BUILDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let krate = FreshCrate::from_readme();
    let variant =
        readme_blocks().variants.remove("include_specs").expect("README has no include_specs variant");
    krate.use_include_specs(&variant);

    krate.build();
    let run = krate.service();
    assert!(run.stdout.contains("billed 4200 cents for o-1 (offset 1)"), "{}", run.text());
}

/// The README's file blocks and variants.
struct ReadmeBlocks {
    files: BTreeMap<String, String>,
    variants: BTreeMap<String, String>,
}

fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().expect("the workspace root")
}

fn readme_blocks() -> ReadmeBlocks {
    let path = workspace().join("README.md");
    let text = std::fs::read_to_string(&path).expect("README.md");
    let blocks = readme::blocks(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut found = ReadmeBlocks { files: BTreeMap::new(), variants: BTreeMap::new() };
    for block in blocks {
        match block.marker.clone() {
            Some(Marker::File(path)) => {
                let previous = found.files.insert(path.clone(), block.code());
                assert!(
                    previous.is_none(),
                    "README.md:{}: a second `<!-- file: {path} -->`",
                    block.fence_line
                );
            }
            Some(Marker::Variant(name)) => {
                found.variants.insert(name, block.code());
            }
            _ => {}
        }
    }
    found
}

/// Points `prom-runtime`/`prom-codegen` dependency lines at this workspace (see the module docs).
fn path_dependencies(manifest: &str, workspace: &Path) -> String {
    let mut rewritten = 0;
    let lines: Vec<String> = manifest
        .lines()
        .map(|line| {
            let Some(name) =
                ["prom-runtime", "prom-codegen"].into_iter().find(|n| line.starts_with(&format!("{n} ")))
            else {
                return line.to_owned();
            };
            let start =
                line.find("version = \"").unwrap_or_else(|| panic!("no `version = \"...\"` in `{line}`"));
            let end =
                line[start + 11..].find('"').map(|e| start + 11 + e + 1).expect("a closed version string");
            rewritten += 1;
            format!("{}path = \"{}\"{}", &line[..start], workspace.join(name).display(), &line[end..])
        })
        .collect();
    assert_eq!(rewritten, 2, "expected the prom-runtime and prom-codegen dependency lines in:\n{manifest}");
    lines.join("\n") + "\n"
}

/// The workspace's `prom-codegen` binary, built (once) into the fresh crate's target directory.
fn prom_codegen_binary() -> PathBuf {
    let built = run_in(
        &workspace(),
        Command::new(cargo()).args(["build", "--offline", "-p", "prom-codegen", "--bin", "prom-codegen"]),
        BUILD_TIMEOUT,
    );
    assert!(built.ok, "cannot build prom-codegen:\n{}", built.text());
    target_dir().join("debug/prom-codegen")
}

fn target_dir() -> PathBuf {
    workspace().join("target/tests/fresh-crate")
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A crate in a temporary directory.
struct FreshCrate {
    _root: tempfile::TempDir,
    dir: PathBuf,
}

impl FreshCrate {
    /// `prom-codegen new <tmp>/orders --prom-path <workspace>`, checked against the README.
    fn from_new() -> FreshCrate {
        let root =
            tempfile::Builder::new().prefix("prom-fresh-crate-").tempdir().expect("a temporary directory");
        let dir = root.path().join("orders");
        let workspace = workspace();
        let created = run_in(
            root.path(),
            Command::new(prom_codegen_binary()).arg("new").arg(&dir).arg("--prom-path").arg(&workspace),
            RUN_TIMEOUT,
        );
        assert!(created.ok, "prom-codegen new failed:\n{}", created.text());
        for (path, block) in &readme_blocks().files {
            let block =
                if path == "Cargo.toml" { path_dependencies(block, &workspace) } else { block.clone() };
            let written = std::fs::read_to_string(dir.join(path))
                .unwrap_or_else(|e| panic!("prom-codegen new wrote no {path}: {e}"));
            assert_eq!(written, block, "prom-codegen new wrote a {path} unlike the README's block");
        }
        std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
        FreshCrate { _root: root, dir }
    }

    fn from_readme() -> FreshCrate {
        let blocks = readme_blocks();
        for needed in ["Cargo.toml", "build.rs", "src/main.rs", "specs/orders.yaml"] {
            assert!(blocks.files.contains_key(needed), "README.md has no `<!-- file: {needed} -->` block");
        }
        let root =
            tempfile::Builder::new().prefix("prom-fresh-crate-").tempdir().expect("a temporary directory");
        let dir = root.path().to_path_buf();
        for (path, text) in &blocks.files {
            let text =
                if path == "Cargo.toml" { path_dependencies(text, &workspace()) } else { text.clone() };
            let target = dir.join(path);
            std::fs::create_dir_all(target.parent().expect("a parent")).expect("create the directory");
            std::fs::write(&target, text).expect("write the file");
        }
        std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
        FreshCrate { _root: root, dir }
    }

    /// Replaces `mod prom { include!(...) }` with the README's `include_specs!` variant and drops
    /// the build script and its dependencies, as the README says.
    fn use_include_specs(&self, variant: &str) {
        let main = self.dir.as_path().join("src/main.rs");
        let text = std::fs::read_to_string(&main).expect("src/main.rs");
        let start = text.find("mod prom {").expect("`mod prom {` in src/main.rs");
        let end = start + text[start..].find("\n}\n").expect("the end of `mod prom`") + 3;
        std::fs::write(&main, format!("{}{variant}{}", &text[..start], &text[end..]))
            .expect("write src/main.rs");
        std::fs::remove_file(self.dir.as_path().join("build.rs")).expect("remove build.rs");
        let manifest = self.dir.as_path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
        let start = text.find("[build-dependencies]").expect("a [build-dependencies] section");
        // The README: "turn on prom-runtime's `macros` feature".
        let runtime =
            text[..start].lines().find(|l| l.starts_with("prom-runtime =")).expect("a prom-runtime line");
        let with_macros = runtime.replacen(
            "default-features = false",
            "default-features = false, features = [\"macros\"]",
            1,
        );
        assert_ne!(runtime, with_macros, "the prom-runtime line has no `default-features = false`");
        std::fs::write(&manifest, text[..start].replacen(runtime, &with_macros, 1))
            .expect("write Cargo.toml");
    }

    fn build(&self) {
        let built = self.run(Command::new(cargo()).args(["build", "--offline"]), BUILD_TIMEOUT);
        assert!(built.ok, "cargo build of the README crate failed:\n{}", built.text());
    }

    /// Runs the service on the embedded store in the crate's directory, until it stops by itself.
    fn service(&self) -> Outcome {
        let outcome = self.run(Command::new(target_dir().join("debug/orders")).arg("--once"), RUN_TIMEOUT);
        assert!(outcome.ok, "the service failed:\n{}", outcome.text());
        outcome
    }

    fn run(&self, command: &mut Command, timeout: Duration) -> Outcome {
        run_in(self.dir.as_path(), command, timeout)
    }
}

/// What a finished command printed.
struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn text(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `command` in `dir` with the fresh crate's target directory; kills it after `timeout`.
fn run_in(dir: &Path, command: &mut Command, timeout: Duration) -> Outcome {
    let logs = tempfile::tempdir().expect("a log directory");
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            panic!("{command:?} did not finish within {timeout:?}; killed it. stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    Outcome { ok: status.success(), stdout: read(&out), stderr: read(&err) }
}
