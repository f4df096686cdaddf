//! A progress indicator on stderr for `verify` and `copy`: only when stderr is a terminal,
//! and only once the work has taken longer than `--progress-after` (so that quick runs draw
//! nothing). A spinner while the amount of work is unknown, a bar of records once it is.
//! No colours (nothing to turn off for `NO_COLOR`).

use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a shown indicator redraws by itself (elapsed time, spinner).
const TICK: Duration = Duration::from_millis(200);

/// The `--progress-after` flag of `verify` and `copy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProgressArgs {
    /// On a terminal, show progress on stderr once the work has taken this many seconds
    /// (0: from the start); also read from the APPLOG_PROGRESS_AFTER environment variable.
    /// Never shown when stderr is not a terminal.
    #[arg(
        long,
        value_name = "SECS",
        env = "APPLOG_PROGRESS_AFTER",
        default_value = "1",
        value_parser = crate::append::secs
    )]
    pub progress_after: Duration,
}

/// The indicator; cleared from the terminal when finished or dropped.
pub struct Progress {
    /// `None` when stderr is not a terminal.
    bar: Option<ProgressBar>,
    /// Tells the thread waiting to show the indicator that the work is done.
    done: Option<mpsc::Sender<()>>,
    waiter: Option<JoinHandle<()>>,
}

impl Progress {
    /// A spinner saying `message`, shown after `after` if the work is not done by then.
    pub fn start(message: String, args: &ProgressArgs) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                done: None,
                waiter: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(spinner_style());
        bar.set_message(message);
        let after = args.progress_after;
        if after.is_zero() {
            show(&bar);
            return Progress {
                bar: Some(bar),
                done: None,
                waiter: None,
            };
        }
        let (done, wait) = mpsc::channel::<()>();
        let shown = bar.clone();
        let waiter = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(after) {
                    show(&shown);
                }
            })
            .ok();
        Progress {
            bar: Some(bar),
            done: Some(done),
            waiter,
        }
    }

    /// Says what is being done now.
    pub fn message(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    /// `done` of `total` records: a bar from now on.
    pub fn records(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            if bar.length() != Some(total) {
                bar.set_length(total);
                bar.set_style(bar_style());
            }
            bar.set_position(done);
        }
    }

    /// Back to a spinner (work of unknown length), saying `message`.
    pub fn spinner(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.unset_length();
            bar.set_style(spinner_style());
            bar.set_message(message);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Wake the waiter (it shows nothing then) before clearing.
        drop(self.done.take());
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Draws `bar` now, and from then on every `TICK` too.
fn show(bar: &ProgressBar) {
    bar.set_draw_target(ProgressDrawTarget::stderr());
    // Before the steady tick: once that runs, only it draws a spinner.
    bar.tick();
    bar.enable_steady_tick(TICK);
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| {
        // The template is a constant that parses; keep a plain one should it not.
        ProgressStyle::default_spinner()
    })
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:30}] {human_pos}/{human_len} records ({percent}%, {elapsed}, {eta} left)",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The number and total size of the segment files in `log` (for saying how much there is to
/// read); zeros when it cannot be listed (the command reports that itself).
pub fn segments_of(log: &std::path::Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(log) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter(|e| std::path::Path::new(&e.file_name()).extension() == Some("seg".as_ref()))
        .fold((0, 0), |(n, bytes), e| {
            (n + 1, bytes + e.metadata().map_or(0, |m| m.len()))
        })
}
