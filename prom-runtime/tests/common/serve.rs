//! Running the real `prom serve` (or `prom run`) binary in tests: start it, read its stderr
//! lines, stop it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A running `prom serve` or `prom run`; killed on drop if the test fails before stopping it.
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
    #[cfg(feature = "mongo")]
    pub fn start(specs: &Path, target: &super::mongo::Target) -> Server {
        let specs = specs.to_str().expect("a UTF-8 path");
        let url = target.url_with_database();
        Server::spawn(&["serve", "--specs", specs, "--mongo", &url, "--listen", "127.0.0.1:0"])
    }

    /// Starts `prom --store STORE serve --specs SPECS --listen 127.0.0.1:0 EXTRA` on the embedded store.
    pub fn embedded(store: &Path, specs: &Path, extra: &[&str]) -> Server {
        let store = store.to_str().expect("a UTF-8 path");
        let specs = specs.to_str().expect("a UTF-8 path");
        let mut args = vec!["--store", store, "serve", "--specs", specs, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::spawn(&args)
    }

    /// Starts `prom ARGS` (stdout discarded, stderr read line by line), without PROM_MONGO_URL.
    pub fn spawn(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_prom"))
            .env_remove("PROM_MONGO_URL")
            .env_remove("PROM_API_TOKENS")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prom");
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
            assert!(Instant::now() < deadline, "prom did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{status}");
    }

    /// Waits for a stderr line starting with `prefix`; returns the rest of it.
    pub fn wait_for_line(&self, prefix: &str) -> String {
        let lines = self.lines_until(prefix);
        let last = lines.last().map_or("", String::as_str);
        last.strip_prefix(prefix).unwrap_or_default().to_string()
    }

    /// Waits for a stderr line starting with `prefix`; returns the lines read, that one last.
    pub fn lines_until(&self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("prom printed no `{prefix}`; before that: {lines:#?}"));
            let found = line.starts_with(prefix);
            lines.push(line);
            if found {
                return lines;
            }
        }
    }
}
