//! Progress for slow steps (key generation, model loading, long loops): a bar on stderr
//! when stderr is a terminal, a start and an end line otherwise; steps started with
//! [`Progress::start_long`] also print a line with the rate and an ETA at every tenth of
//! the way when stderr is not a terminal (a log shows they are moving). Never touches
//! stdout, which carries the machine-readable output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    start: Instant,
    total: u64,
    done: AtomicU64,
    /// For long steps without a terminal: the unit counted, and the last tenth printed.
    lines: Option<(String, Mutex<u64>)>,
}

impl Progress {
    /// Starts a step of `total` units.
    pub fn start(what: &str, total: u64) -> Self {
        Self::with_template(what, total, "{msg} [{bar:20}] {pos}/{len} ({elapsed})")
    }

    /// Starts a step of `total` bytes (moved on with [`set_position`](Self::set_position)).
    pub fn start_bytes(what: &str, total: u64) -> Self {
        Self::with_template(
            what,
            total,
            "{msg} [{bar:20}] {bytes}/{total_bytes} ({elapsed})",
        )
    }

    /// Starts a long step of `total` `unit`s: the bar shows the ETA, and a log gets a line
    /// with the rate and the ETA at every tenth of the way.
    pub fn start_long(what: &str, total: u64, unit: &str) -> Self {
        let mut progress = Self::with_template(
            what,
            total,
            &format!("{{msg}} [{{bar:20}}] {{pos}}/{{len}} {unit} ({{elapsed}}, ETA {{eta}})"),
        );
        if progress.bar.is_none() {
            progress.lines = Some((unit.to_string(), Mutex::new(0)));
        }
        progress
    }

    fn with_template(what: &str, total: u64, template: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            // The template is a constant; fall back to the default style if it is ever rejected.
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_string());
            bar
        });
        if bar.is_none() {
            eprintln!("{what} ...");
        }
        Self {
            bar,
            what: what.to_string(),
            start: Instant::now(),
            total,
            done: AtomicU64::new(0),
            lines: None,
        }
    }

    pub fn advance(&self) {
        self.advance_noting(1, "");
    }

    /// Moves on by `n` units; `note` (e.g. a rate in the caller's terms) goes beside the
    /// bar and into the log lines.
    pub fn advance_noting(&self, n: u64, note: &str) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            if !note.is_empty() {
                bar.set_message(format!("{} ({note})", self.what));
            }
            bar.inc(n);
        }
        let Some((unit, printed)) = &self.lines else {
            return;
        };
        let tenth = (done.min(self.total) * 10) / self.total.max(1);
        let Ok(mut printed) = printed.lock() else {
            return;
        };
        if tenth > *printed && done < self.total {
            *printed = tenth;
            let elapsed = self.start.elapsed().as_secs_f64();
            let eta = elapsed * (self.total - done) as f64 / done as f64;
            let note = if note.is_empty() {
                String::new()
            } else {
                format!(", {note}")
            };
            eprintln!(
                "{}: {done}/{} {unit} ({}%), {}/s{note}, {elapsed:.1} s, ETA {eta:.0} s",
                self.what,
                self.total,
                tenth * 10,
                rate(done as f64 / elapsed.max(1e-9)),
            );
        }
    }

    /// Units the step counts to.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Share of the step done, 0 … 1.
    pub fn fraction(&self) -> f64 {
        self.done.load(Ordering::Relaxed) as f64 / self.total.max(1) as f64
    }

    /// Seconds since the step started.
    pub fn elapsed_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    /// Ends the step with a summary line.
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "{}: done in {:.2} s",
            self.what,
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// A rate with three significant figures.
fn rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.3}")
    }
}
