//! Progress for slow steps (model fetching and loading, adapter encoding, key generation,
//! attack queries): a bar on stderr when stderr is a terminal, a start and an end line
//! otherwise. Never touches stdout, which carries the machine-readable output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    start: Instant,
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
        }
    }

    pub fn advance(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
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
