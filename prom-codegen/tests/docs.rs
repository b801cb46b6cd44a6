//! `prom-codegen docs`: the site of `specs/` matches its snapshot (`PROM_BLESS=1` re-blesses
//! it), every shipped and corpus spec that lints clean gives a complete, deterministic site
//! whose example payloads validate against their schemas, and `--check` tells a fresh site
//! from a stale one.

use prom_codegen::docs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-docs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prom-codegen")).args(args).current_dir(root()).output().expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every file under `dir`, by `/`-separated relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read dir").flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let p = entry.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let relative = p.strip_prefix(base).expect("inside").to_string_lossy().replace('\\', "/");
                out.insert(relative, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Every spec the project ships, plus every corpus file that lints without errors.
fn every_spec() -> Vec<PathBuf> {
    let mut specs = vec![root().join("specs"), root().join("tests/corpus/codegen/constructs.yaml")];
    let mut found = Vec::new();
    for dir in ["examples", "tests/corpus/lint", "tests/corpus/compat"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else { continue };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.join("specs").is_dir() {
                found.push(p.join("specs"));
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(p);
            }
        }
    }
    found.sort();
    specs.extend(found);
    specs
}

#[test]
fn the_site_of_the_example_specs_matches_its_snapshot() {
    let snapshot = root().join("tests/docs/specs");
    if std::env::var_os("PROM_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&snapshot);
        let out = run(&["docs", "--specs", "specs", "--out", path(&snapshot)]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let dir = temp_dir("snapshot");
    let out = run(&["docs", "--specs", "specs", "--out", path(&dir)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh = read_tree(&dir);
    let expected = read_tree(&snapshot);
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the site's files changed; re-bless with PROM_BLESS=1 if intended"
    );
    for (file, bytes) in &fresh {
        assert!(
            expected.get(file) == Some(bytes),
            "tests/docs/specs/{file} differs from the fresh site; re-bless with PROM_BLESS=1 if intended"
        );
    }
    // The snapshot is itself a current site.
    let out = run(&["docs", "--specs", "specs", "--out", path(&snapshot), "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_spec_gives_a_complete_deterministic_site_with_valid_examples() {
    let mut sites = 0;
    let mut examples = 0;
    for specs in every_spec() {
        let linted = prom_codegen::lint_paths(std::slice::from_ref(&specs));
        if linted.has_errors() {
            continue;
        }
        let shown = specs.display();
        let site = docs::site(&linted.spec).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let again = docs::site(&prom_codegen::lint_paths(std::slice::from_ref(&specs)).spec).expect("site");
        assert!(site == again, "{shown}: two renderings differ");
        let files = site.files();
        for file in ["index.html", "index.md", "style.css", "topology.svg", docs::MANIFEST] {
            assert!(files.contains_key(file), "{shown}: no {file}");
        }
        let pages = [
            ("topics", linted.spec.topics.keys().collect::<Vec<_>>()),
            ("consumers", linted.spec.consumers.keys().collect()),
            ("projectors", linted.spec.projectors.keys().collect()),
            ("changefeeds", linted.spec.changefeeds.keys().collect()),
            ("aggregates", linted.spec.aggregates.keys().collect()),
        ];
        for (dir, names) in pages {
            for name in names {
                for extension in ["html", "md"] {
                    let file = format!("{dir}/{}.{extension}", docs::file_stem(name));
                    let text = files.get(&file).unwrap_or_else(|| panic!("{shown}: no {file}"));
                    assert!(
                        text.contains(&name.replace('&', "&amp;")),
                        "{shown}: {file} does not name {name}"
                    );
                }
                assert!(files["index.html"].contains(&format!("{dir}/{}.html", docs::file_stem(name))));
            }
        }
        for topic in linted.spec.topics.values() {
            let page = &files[&format!("topics/{}.html", docs::file_stem(&topic.name.value))];
            for version in &topic.versions {
                let schema = &version.schema.json;
                let example = docs::example(schema).unwrap_or_else(|e| {
                    panic!("{shown}: {} v{}: {e}", topic.name.value, version.number.value)
                });
                // Checked here with a validator of the test's own, formats asserted.
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(schema)
                    .unwrap_or_else(|e| panic!("{shown}: {} schema: {e}", topic.name.value));
                let errors: Vec<String> = validator.iter_errors(&example).map(|e| e.to_string()).collect();
                assert!(
                    errors.is_empty(),
                    "{shown}: the example of {} v{} is invalid: {errors:?}\n{example:#}",
                    topic.name.value,
                    version.number.value
                );
                // The page shows exactly this example.
                let pretty = serde_json::to_string_pretty(&example).expect("json").replace('"', "&quot;");
                assert!(
                    page.contains(&pretty),
                    "{shown}: {} page lacks its v{} example",
                    topic.name.value,
                    version.number.value
                );
                examples += 1;
            }
        }
        sites += 1;
    }
    assert!(sites >= 3, "only {sites} specs linted clean");
    assert!(examples >= 10, "only {examples} examples checked");
}

#[test]
fn the_graph_links_every_element_and_stays_inside_the_site() {
    let linted = prom_codegen::lint_paths(&[root().join("tests/corpus/codegen/constructs.yaml")]);
    let site = docs::site(&linted.spec).expect("site");
    let index = &site.files()["index.html"];
    let svg = &index[index.find("<svg").expect("inline svg")..index.find("</svg>").expect("svg end")];
    for expected in [
        "href=\"topics/order.placed.html\"",
        "href=\"consumers/order-audit.html\"",
        "href=\"projectors/orders.html\"",
        "href=\"changefeeds/orders-changed.html\"",
        "href=\"aggregates/cart.html\"",
        // dlq.order.placed links to its source topic; the collection to its projector.
        "id=\"node-dlq:dlq.order.placed\"",
        "id=\"node-collection:orders\"",
    ] {
        assert!(svg.contains(expected), "the graph lacks {expected}");
    }
    // No script, no remote resource anywhere: the site works offline.
    for (file, text) in site.files() {
        assert!(!text.contains("<script"), "{file} has a script");
        assert!(
            !text.contains("http://") || text.contains("http://www.w3.org/"),
            "{file} names a remote URL"
        );
        assert!(!text.contains("https://") || file.starts_with("topics/"), "{file} names a remote URL");
    }
    // The Markdown graph links the Markdown pages.
    assert!(site.files()["topology.svg"].contains("href=\"topics/order.placed.md\""));
}

#[test]
fn check_tells_fresh_from_stale_and_write_removes_what_the_spec_dropped() {
    let dir = temp_dir("check");
    let out_dir = dir.join("site");
    let specs = dir.join("specs.yaml");
    let original =
        std::fs::read_to_string(root().join("tests/corpus/codegen/constructs.yaml")).expect("corpus");
    std::fs::write(&specs, &original).expect("write spec");
    let docs_args = |check: bool| {
        let mut args = vec!["docs", "--specs", path(&specs), "--out", path(&out_dir)];
        if check {
            args.push("--check");
        }
        run(&args)
    };
    // Nothing written yet: missing.
    let out = docs_args(true);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("index.html: missing"), "{}", stderr(&out));
    let out = docs_args(false);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = docs_args(true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("up to date"), "{}", stderr(&out));
    // A second write changes nothing.
    let before = read_tree(&out_dir);
    let out = docs_args(false);
    assert!(stderr(&out).contains("wrote 0 file(s)"), "{}", stderr(&out));
    assert_eq!(before, read_tree(&out_dir));

    // An edited page and a deleted page are named.
    std::fs::write(out_dir.join("topics/item.added.html"), "edited by hand").expect("edit");
    std::fs::remove_file(out_dir.join("consumers/order-audit.md")).expect("delete");
    let out = docs_args(true);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("topics/item.added.html: stale"), "{err}");
    assert!(err.contains("consumers/order-audit.md: missing"), "{err}");
    assert!(err.contains("2 file(s) differ"), "{err}");
    assert!(!err.contains("index.html"), "{err}");

    // A spec change: tree.node removed → its pages are left over until the next write.
    let start = original.find("  tree.node:").expect("tree.node");
    let end = original.find("  order.changed:").expect("order.changed");
    std::fs::write(&specs, format!("{}{}", &original[..start], &original[end..])).expect("edit spec");
    let out = docs_args(false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removed"), "{}", stderr(&out));
    assert!(!out_dir.join("topics/tree.node.html").exists());
    // A file of the user's own in the directory is never touched.
    std::fs::write(out_dir.join("NOTES.txt"), "mine").expect("write");
    std::fs::write(&specs, &original).expect("restore spec");
    let out = docs_args(true);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("topics/tree.node.html: missing"), "{}", stderr(&out));
    std::fs::write(&specs, format!("{}{}", &original[..start], &original[end..])).expect("edit spec");
    let out = docs_args(false);
    assert!(out.status.success());
    // An old manifest entry whose page the spec no longer has is reported as left over.
    std::fs::write(out_dir.join("topics/gone.html"), "old").expect("write");
    let manifest = std::fs::read_to_string(out_dir.join(docs::MANIFEST)).expect("manifest");
    std::fs::write(out_dir.join(docs::MANIFEST), format!("topics/gone.html\n../escape.txt\n{manifest}"))
        .expect("write");
    std::fs::write(dir.join("escape.txt"), "outside").expect("write");
    let out = docs_args(true);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("topics/gone.html: left over"), "{}", stderr(&out));
    let out = docs_args(false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!out_dir.join("topics/gone.html").exists());
    assert!(dir.join("escape.txt").exists(), "a manifest line outside the site deleted a file");
    assert_eq!(std::fs::read_to_string(out_dir.join("NOTES.txt")).expect("kept"), "mine");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = temp_dir("bad");
    // Specs with errors: exit 1, located diagnostics, nothing written.
    let out_dir = dir.join("site");
    let out = run(&["docs", "--specs", "tests/corpus/lint/P003-unknown-key.yaml", "--out", path(&out_dir)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("P003-unknown-key.yaml:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("not writing the site"), "{}", stderr(&out));
    assert!(!out_dir.exists());
    // --out names a file: exit 2 with the fix.
    let file = dir.join("file");
    std::fs::write(&file, "x").expect("write");
    for check in [false, true] {
        let mut args = vec!["docs", "--specs", "specs", "--out", path(&file)];
        if check {
            args.push("--check");
        }
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("is not a directory"), "{}", stderr(&out));
    }
    // --out is required.
    let out = run(&["docs", "--specs", "specs"]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_names_and_text_are_escaped() {
    let dir = temp_dir("hostile");
    let specs = dir.join("s.yaml");
    std::fs::write(
        &specs,
        "topics:\n  a.b:\n    description: \"<script>alert(1)</script> & | * _ [x](javascript:y)\"\n    versions:\n      1:\n        schema:\n          type: object\n          properties:\n            \"<img src=x onerror=alert(1)>\": { type: string, description: \"a|b`c\" }\n",
    )
    .expect("write");
    let linted = prom_codegen::lint_paths(std::slice::from_ref(&specs));
    assert!(!linted.has_errors(), "{}", linted.render());
    let site = docs::site(&linted.spec).expect("site");
    let html = &site.files()["topics/a.b.html"];
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    let md = &site.files()["topics/a.b.md"];
    assert!(md.contains("\\<script\\>"), "{md}");
    assert!(md.contains("\\[x\\](javascript:y)"), "{md}");
    // The schema table row of the odd property keeps its table shape.
    let row = md.lines().find(|l| l.contains("img src")).expect("row");
    assert_eq!(row.matches(" | ").count(), 4, "{row}");
    // The graph's inline SVG escapes the same text.
    assert!(!site.files()["index.html"].contains("<script>"));
    let _ = std::fs::remove_dir_all(&dir);
}
