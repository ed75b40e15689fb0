//! What a run shows while it trains: a progress bar, and messages printed above it.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar for `n` iterations starting at `start` (hidden when `quiet`).
pub fn progress_bar(n: usize, start: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar =
        ProgressBar::with_draw_target(Some(n as u64), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} it  {per_sec}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(start as u64);
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// Prints above the progress bar (or plainly when there is no terminal), unless quiet.
pub struct Printer {
    /// The bar.
    pub bar: ProgressBar,
    quiet: bool,
}

impl Printer {
    /// A bar for `n` iterations starting at `start`.
    pub fn new(n: usize, start: usize, quiet: bool) -> Printer {
        Printer {
            bar: progress_bar(n, start, quiet),
            quiet,
        }
    }

    /// Prints one block of text.
    pub fn say(&self, text: String) {
        if self.quiet {
        } else if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }
}
