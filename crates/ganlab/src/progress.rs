//! Progress reporting for every long job (training, feature extraction, experiments): on a
//! terminal a live `indicatif` bar with rate, ETA and the job's key scalars; otherwise (CI
//! logs, files) one plain line every 10%.

use std::io::IsTerminal;
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

/// A progress bar on stderr (see module docs).
#[derive(Debug)]
pub struct ProgressBar {
    label: String,
    start: Instant,
    start_done: Option<u64>,
    last_decile: u64,
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    /// A bar labelled `label`: live on a terminal, plain lines otherwise.
    pub fn new(label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr_with_hz(10),
            );
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:24}] {pos}/{len} {per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b
        });
        Self {
            label: label.into(),
            start: Instant::now(),
            start_done: None,
            last_decile: 0,
            bar,
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
        if let Some(b) = &self.bar {
            if b.length() != Some(total) {
                b.set_length(total);
                // A resumed job starts part-way: the rate counts this process's work only.
                b.set_position(first);
                b.reset_eta();
            }
            b.set_position(done);
            b.set_message(status.to_string());
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = (done - first) as f64 / elapsed.max(1e-9);
        let eta = if rate > 0.0 {
            (total - done) as f64 / rate
        } else {
            f64::NAN
        };
        let frac = done as f64 / total.max(1) as f64;
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

    fn finish(&mut self) {
        if let Some(b) = &self.bar {
            b.finish();
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
