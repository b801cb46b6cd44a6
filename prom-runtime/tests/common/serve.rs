//! Running the real `prom serve` binary in tests: start it, read its stderr lines, stop it.

use super::mongo::Target;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running `prom serve`; killed on drop if the test fails before stopping it.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its stderr, line by line.
    pub lines: Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `prom serve --specs SPECS --mongo URL --listen 127.0.0.1:0` on the test database.
    pub fn start(specs: &Path, target: &Target) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_prom"))
            .env_remove("PROM_MONGO_URL")
            .arg("serve")
            .arg("--specs")
            .arg(specs)
            .args(["--mongo", &url_with_database(target), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prom serve");
        let stderr = child.stderr.take().expect("stderr");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Server { child, lines }
    }

    /// Sends SIGTERM by pid and waits (at most 20 s) for a clean exit with status 0.
    pub async fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "prom serve did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{status}");
    }

    /// Waits for a stderr line starting with `prefix`; returns the rest of it.
    pub fn wait_for_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("prom serve printed no `{prefix}`"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
    }
}

/// The test's URL with its per-test database in the path, as `prom --mongo` takes it.
pub fn url_with_database(target: &Target) -> String {
    let url = target.url.trim();
    match url.split_once("/?") {
        Some((hosts, query)) => format!("{hosts}/{}?{query}", target.database),
        None if !url.contains('?') => format!("{}/{}", url.trim_end_matches('/'), target.database),
        None => panic!("write PROM_MONGO_URL as mongodb://HOST:PORT/?OPTIONS for this test: {url}"),
    }
}
