//! A progress bar for long writes, drawn on stderr only when stderr is a
//! terminal and the write takes long enough to be worth one.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Writes shorter than this draw nothing.
const QUIET_FOR: Duration = Duration::from_millis(300);

pub struct Bar {
    start: Instant,
    enabled: bool,
    drawn: bool,
    last: Option<Instant>,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            start: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
            drawn: false,
            last: None,
        }
    }

    pub fn update(&mut self, done: u64, total: u64) {
        if !self.enabled || self.start.elapsed() < QUIET_FOR || total == 0 {
            return;
        }
        // Redraw at most ten times a second.
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
            && done < total
        {
            return;
        }
        self.last = Some(Instant::now());
        let width = 40;
        let filled = (done as u128 * width as u128 / total as u128) as usize;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] {:3}%  {:.1}/{:.1} MiB",
            "#".repeat(filled),
            " ".repeat(width - filled),
            done * 100 / total,
            done as f64 / (1 << 20) as f64,
            total as f64 / (1 << 20) as f64
        );
        let _ = err.flush();
        self.drawn = true;
    }

    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
        }
    }
}
