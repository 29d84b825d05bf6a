//! Progress reporting: a terminal bar with rate and ETA (redrawn in place on a TTY, one
//! line every 10% otherwise, e.g. in CI logs).

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Receives progress from long loops.
pub trait Progress {
    /// Called after each unit of work; `done` of `total`, with a short status text.
    fn update(&mut self, done: u64, total: u64, status: &str);
    /// Called once at the end.
    fn finish(&mut self) {}
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn update(&mut self, _: u64, _: u64, _: &str) {}
}

/// A progress bar on stderr.
#[derive(Debug)]
pub struct ProgressBar {
    label: String,
    start: Instant,
    start_done: Option<u64>,
    last_draw: Option<Instant>,
    last_decile: u64,
    tty: bool,
}

impl ProgressBar {
    /// A bar labelled `label`.
    pub fn new(label: &str) -> Self {
        Self {
            label: label.into(),
            start: Instant::now(),
            start_done: None,
            last_draw: None,
            last_decile: 0,
            tty: std::io::stderr().is_terminal(),
        }
    }
}

/// "m:ss" or "h:mm:ss".
pub fn format_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Progress for ProgressBar {
    fn update(&mut self, done: u64, total: u64, status: &str) {
        let first = *self.start_done.get_or_insert(done.saturating_sub(1));
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = (done - first) as f64 / elapsed.max(1e-9);
        let eta = if rate > 0.0 {
            (total - done) as f64 / rate
        } else {
            f64::NAN
        };
        let frac = done as f64 / total.max(1) as f64;
        if self.tty {
            let now = Instant::now();
            if done < total
                && self
                    .last_draw
                    .is_some_and(|t| now.duration_since(t).as_millis() < 100)
            {
                return;
            }
            self.last_draw = Some(now);
            let width = 24;
            let filled = (frac * width as f64) as usize;
            let bar: String = "=".repeat(filled)
                + if filled < width { ">" } else { "" }
                + &" ".repeat(width.saturating_sub(filled + 1));
            eprint!(
                "\r\x1b[2K{} [{bar}] {done}/{total} {rate:.1} it/s ETA {} {status}",
                self.label,
                format_duration(eta)
            );
            let _ = std::io::stderr().flush();
        } else {
            let decile = (frac * 10.0).floor() as u64;
            if decile > self.last_decile || done == total {
                self.last_decile = decile;
                eprintln!(
                    "{} {done}/{total} ({:.0}%) {rate:.1} it/s elapsed {} ETA {} {status}",
                    self.label,
                    frac * 100.0,
                    format_duration(elapsed),
                    format_duration(eta)
                );
            }
        }
    }

    fn finish(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::format_duration(65.2), "1:05");
        assert_eq!(super::format_duration(3725.0), "1:02:05");
    }
}
