//! A progress bar for long CLI work (`prom rebuild`, `prom dlq replay`, `prom tail --from
//! earliest`): an indicatif bar on stderr when stderr is a terminal; when it is not (a pipe, a
//! file, a test), plain lines every few seconds or nothing, so scripts parsing the output see
//! exactly what they saw before.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a plain progress line is printed at most.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// What a bar prints when stderr is not a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piped {
    /// A line every few seconds: `label: position/total (rate/s)`.
    Lines,
    /// Nothing.
    Silent,
}

/// A progress bar, or its plain-line stand-in.
pub struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
    plain: Option<Mutex<Plain>>,
}

/// The state of plain lines.
struct Plain {
    label: String,
    unit: &'static str,
    started: Instant,
    printed: Instant,
    first: Option<u64>,
}

impl ProgressBar {
    /// A bar labelled `label`, counting `unit`s (`"events"`, `"offsets"`).
    pub fn new(label: &str, unit: &'static str, piped: Piped) -> ProgressBar {
        ProgressBar::with_terminal(label, unit, piped, std::io::stderr().is_terminal())
    }

    fn with_terminal(label: &str, unit: &'static str, piped: Piped, terminal: bool) -> ProgressBar {
        if terminal {
            let bar = indicatif::ProgressBar::new(0);
            let template =
                format!("{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}}) {{msg}}");
            if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            return ProgressBar { bar: Some(bar), plain: None };
        }
        let plain = (piped == Piped::Lines).then(|| {
            let now = Instant::now();
            Mutex::new(Plain { label: label.to_owned(), unit, started: now, printed: now, first: None })
        });
        ProgressBar { bar: None, plain }
    }

    /// Shows `position` of `total`.
    pub fn set(&self, position: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(position));
            bar.set_position(position);
        }
        if let Some(plain) = &self.plain
            && let Ok(mut plain) = plain.lock()
        {
            let first = *plain.first.get_or_insert(position);
            let now = Instant::now();
            if now.duration_since(plain.printed) >= PLAIN_EVERY {
                plain.printed = now;
                let secs = now.duration_since(plain.started).as_secs_f64().max(0.001);
                let rate = position.saturating_sub(first) as f64 / secs;
                eprintln!("{}: {position}/{total} {} ({rate:.0}/s)", plain.label, plain.unit);
            }
        }
    }

    /// Moves the position by `n`.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// The total shown (0 when hidden).
    pub fn total(&self) -> u64 {
        self.bar.as_ref().and_then(|b| b.length()).unwrap_or(0)
    }

    /// A bar that prints nothing that would mix with the output on stdout.
    pub fn hidden(&self) -> bool {
        self.bar.is_none()
    }

    /// Runs `print` with the bar hidden, so lines on the terminal do not tear it.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Removes the bar (its last state stays in the plain lines, if any).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piped_bars_are_plain_or_silent() {
        let silent = ProgressBar::with_terminal("x", "events", Piped::Silent, false);
        assert!(silent.bar.is_none() && silent.plain.is_none());
        let lines = ProgressBar::with_terminal("x", "events", Piped::Lines, false);
        assert!(lines.bar.is_none() && lines.plain.is_some());
        lines.set(5, 10);
        assert_eq!(lines.plain.as_ref().and_then(|p| p.lock().ok()).and_then(|p| p.first), Some(5));
    }

    #[test]
    fn a_terminal_gets_a_bar() {
        let bar = ProgressBar::with_terminal("x", "events", Piped::Silent, true);
        bar.set(3, 10);
        bar.inc(2);
        assert_eq!(bar.bar.as_ref().map(|b| (b.position(), b.length())), Some((5, Some(10))));
        bar.finish();
    }
}
