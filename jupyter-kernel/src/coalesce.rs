//! Coalescing of a program's text output into few, bounded `stream` messages.
//!
//! Notebook servers drop IOPub traffic above ~1,000 messages/s or 1 MB/s, and a notebook
//! cannot hold millions of lines, so text is batched per tick, capped in bytes per second
//! and in lines per cell; whatever is not shown is counted (the full text is in the log).

use std::time::{Duration, Instant};

/// Default cap on lines shown per cell (`--max-lines` overrides it).
pub const DEFAULT_MAX_LINES: u64 = 10_000;
/// Bytes shown per second of a cell's run; a quarter of what the server tolerates.
pub const BYTES_PER_SECOND: usize = 256 * 1024;

/// Why text was held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suppression {
    /// More than the notebook can take per second.
    Rate,
    /// The cell's line cap was reached.
    MaxLines,
}

/// What a coalescer carries, for its notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carries {
    /// The program's output; `--max-lines` sets its cap.
    Output,
    /// bpftrace's runtime errors and warnings.
    Errors,
}

/// Batches text between ticks.
#[derive(Debug)]
pub struct Coalescer {
    carries: Carries,
    pending: String,
    max_lines: u64,
    bytes_per_second: usize,
    shown_lines: u64,
    hidden_lines: u64,
    window_start: Instant,
    window_bytes: usize,
    first_suppression: Option<Suppression>,
    announced: bool,
}

impl Coalescer {
    pub fn new(carries: Carries, max_lines: Option<u64>, now: Instant) -> Self {
        Coalescer {
            carries,
            pending: String::new(),
            max_lines: max_lines.unwrap_or(DEFAULT_MAX_LINES),
            bytes_per_second: BYTES_PER_SECOND,
            shown_lines: 0,
            hidden_lines: 0,
            window_start: now,
            window_bytes: 0,
            first_suppression: None,
            announced: false,
        }
    }

    /// Sets the byte budget per second (tests use small ones).
    #[cfg(test)]
    pub fn with_bytes_per_second(mut self, bytes: usize) -> Self {
        self.bytes_per_second = bytes.max(1);
        self
    }

    /// Adds text; returns false when it was held back.
    pub fn push(&mut self, text: &str, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.window_bytes = 0;
        }
        let lines = count_lines(text);
        let reason = if self.shown_lines + lines > self.max_lines {
            Some(Suppression::MaxLines)
        } else if self.window_bytes + text.len() > self.bytes_per_second {
            Some(Suppression::Rate)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.hidden_lines += lines;
            self.first_suppression.get_or_insert(reason);
            return false;
        }
        self.shown_lines += lines;
        self.window_bytes += text.len();
        self.pending.push_str(text);
        true
    }

    /// Counts lines that were dropped before reaching the coalescer.
    pub fn count_hidden(&mut self, lines: u64, reason: Suppression) {
        if lines > 0 {
            self.hidden_lines += lines;
            self.first_suppression.get_or_insert(reason);
        }
    }

    /// Text to send now, if any.
    pub fn take(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }

    /// A one-time notice when output first starts being held back.
    pub fn take_notice(&mut self, log_path: &str) -> Option<String> {
        if self.announced {
            return None;
        }
        let reason = self.first_suppression?;
        self.announced = true;
        Some(match (self.carries, reason) {
            (Carries::Output, Suppression::Rate) => format!(
                "[kgent] output arrives faster than a notebook can show it; showing part of it. Full output: {log_path}\n"
            ),
            (Carries::Output, Suppression::MaxLines) => format!(
                "[kgent] {} lines shown, the cap for this cell (--max-lines); the rest goes only to {log_path}\n",
                self.max_lines
            ),
            (Carries::Errors, _) => format!(
                "[kgent] bpftrace reports more errors than are worth showing; all of them are in {log_path}\n"
            ),
        })
    }

    #[cfg(test)]
    pub fn shown_lines(&self) -> u64 {
        self.shown_lines
    }

    pub fn hidden_lines(&self) -> u64 {
        self.hidden_lines
    }
}

/// Counts lines the way a reader sees them: a trailing partial line counts as one.
fn count_lines(text: &str) -> u64 {
    let newlines = text.bytes().filter(|b| *b == b'\n').count() as u64;
    if text.ends_with('\n') || text.is_empty() {
        newlines
    } else {
        newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_until_taken() {
        let t = Instant::now();
        let mut c = Coalescer::new(Carries::Output, None, t);
        assert!(c.push("a\n", t));
        assert!(c.push("b\n", t));
        assert_eq!(c.take().as_deref(), Some("a\nb\n"));
        assert_eq!(c.take(), None);
        assert_eq!(c.shown_lines(), 2);
    }

    #[test]
    fn line_cap_counts_the_rest() {
        let t = Instant::now();
        let mut c = Coalescer::new(Carries::Output, Some(3), t);
        for _ in 0..10 {
            c.push("x\n", t);
        }
        assert_eq!(c.take().unwrap().lines().count(), 3);
        assert_eq!(c.hidden_lines(), 7);
        let notice = c.take_notice("/tmp/log").unwrap();
        assert!(notice.contains("--max-lines") && notice.contains("/tmp/log"));
        assert_eq!(c.take_notice("/tmp/log"), None);
    }

    #[test]
    fn error_notices_say_what_was_held_back() {
        let t = Instant::now();
        let mut c = Coalescer::new(Carries::Errors, Some(1), t);
        c.push("e1\n", t);
        c.push("e2\n", t);
        c.count_hidden(5, Suppression::MaxLines);
        assert_eq!(c.hidden_lines(), 6);
        let notice = c.take_notice("/log").unwrap();
        assert!(
            notice.contains("errors") && !notice.contains("--max-lines"),
            "{notice}"
        );
    }

    #[test]
    fn byte_rate_resets_each_second() {
        let t = Instant::now();
        let mut c = Coalescer::new(Carries::Output, None, t).with_bytes_per_second(10);
        assert!(c.push("12345\n", t));
        assert!(!c.push("12345\n", t));
        assert!(c.push("12345\n", t + Duration::from_millis(1001)));
        assert_eq!(c.hidden_lines(), 1);
        assert!(c.take_notice("f").unwrap().contains("faster"));
    }
}
