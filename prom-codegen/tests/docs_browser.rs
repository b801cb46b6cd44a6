//! The topology site in headless Chromium (Debian's `chromium`, driven by playwright-core; both
//! installed by `scripts/chromium.sh`): every page reachable from the index loads without console
//! errors or failed requests, every internal link resolves, nothing is fetched from the network,
//! and the graph is visible (its screenshot is not blank). Skips with a message when Chromium
//! cannot be installed, unless `PROM_REQUIRE_CHROMIUM=1`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prom-docs-browser-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `(chromium, node_modules)`, or `None` (with the reason printed) when they cannot be had.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let script = root().join("scripts/chromium.sh");
    let run = |verb: &str| {
        Command::new("bash").arg(&script).arg(verb).output().expect("bash runs scripts/chromium.sh")
    };
    let (chromium, driver) = (run("path"), run("driver"));
    let node = Command::new("node").arg("--version").output();
    if chromium.status.success() && driver.status.success() && node.is_ok_and(|o| o.status.success()) {
        let line = |o: &std::process::Output| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        return Some((line(&chromium), line(&driver)));
    }
    let why =
        format!("{}{}", String::from_utf8_lossy(&chromium.stderr), String::from_utf8_lossy(&driver.stderr));
    if std::env::var_os("PROM_REQUIRE_CHROMIUM").is_some_and(|v| v == "1") {
        panic!("PROM_REQUIRE_CHROMIUM=1, but Chromium or playwright-core could not be installed:\n{why}");
    }
    eprintln!(
        "SKIPPED: headless Chromium or playwright-core could not be installed by scripts/chromium.sh; \
         set PROM_REQUIRE_CHROMIUM=1 to fail instead:\n{why}"
    );
    None
}

/// Crawls the site in `dir` and returns the script's report.
fn crawl(browser: &(PathBuf, PathBuf), dir: &Path, screenshot: &Path) -> Value {
    let out = Command::new("timeout")
        .arg("300")
        .arg("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docs_browser.js"))
        .arg(dir)
        .arg(&browser.0)
        .arg(screenshot)
        .env("NODE_PATH", &browser.1)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser script failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints one JSON report")
}

fn write_site(specs: &str, dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_prom-codegen"))
        .args(["docs", "--specs", specs, "--out"])
        .arg(dir)
        .current_dir(root())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn html_pages(dir: &Path) -> usize {
    let mut count = 0;
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "html") {
            count += 1;
        }
    }
    count
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = entry.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn strings(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn every_page_loads_cleanly_every_link_resolves_and_the_graph_is_visible() {
    let Some(browser) = browser() else { return };
    let base = temp_dir("sites");
    for (i, specs) in
        ["specs", "tests/corpus/codegen/constructs.yaml", "examples/bank/specs"].iter().enumerate()
    {
        let dir = base.join(format!("site{i}"));
        write_site(specs, &dir);
        let report = crawl(&browser, &dir, &base.join(format!("graph{i}.png")));
        assert_eq!(strings(&report, "errors"), Vec::<String>::new(), "{specs}: console errors");
        assert_eq!(strings(&report, "broken"), Vec::<String>::new(), "{specs}: broken links");
        assert_eq!(strings(&report, "external"), Vec::<String>::new(), "{specs}: network use");
        let pages = report["pages"].as_array().map_or(0, Vec::len);
        assert_eq!(pages, html_pages(&dir), "{specs}: not every page is reachable from index.html");
        assert!(report["links"].as_u64().unwrap_or(0) > pages as u64, "{specs}: {report}");
        let graph = &report["graph"];
        let linted = prom_codegen::lint_paths(&[root().join(specs)]);
        let elements = linted.spec.topics.len()
            + linted.spec.consumers.len()
            + linted.spec.projectors.len()
            + linted.spec.changefeeds.len()
            + linted.spec.aggregates.len();
        assert!(graph["nodes"].as_u64().unwrap_or(0) >= elements as u64, "{specs}: {graph}");
        assert!(graph["width"].as_f64().unwrap_or(0.0) > 300.0, "{specs}: {graph}");
        assert!(graph["height"].as_f64().unwrap_or(0.0) > 60.0, "{specs}: {graph}");
        // Boxes, labels and arrows cover a good part of the picture; a blank one has no ink.
        let ink = graph["ink"].as_f64().unwrap_or(0.0) / graph["total"].as_f64().unwrap_or(1.0);
        assert!(
            ink > 0.03,
            "{specs}: the graph looks blank ({ink:.4} of its pixels are not background): {graph}"
        );
        assert!(std::fs::metadata(base.join(format!("graph{i}.png"))).is_ok_and(|m| m.len() > 1000));
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn the_crawler_catches_broken_links_and_console_errors() {
    let Some(browser) = browser() else { return };
    let dir = temp_dir("broken");
    write_site("specs", &dir);
    let index = dir.join("index.html");
    let html = std::fs::read_to_string(&index).expect("index");
    let html = html.replace(
        "</main>",
        "<a href=\"topics/nope.html\">x</a><script>console.error('boom')</script></main>",
    );
    std::fs::write(&index, html).expect("write");
    let report = crawl(&browser, &dir, &dir.join("graph.png"));
    let broken = strings(&report, "broken");
    assert!(broken.iter().any(|b| b.contains("topics/nope.html")), "{report}");
    let errors = strings(&report, "errors");
    assert!(errors.iter().any(|e| e.contains("boom")), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
