//! The session's input history, answering `history_request` (tail, range, search).

use jupyter_protocol::{HistoryEntry, HistoryRequest};

/// Session number reported to clients; IPython numbers sessions from 1.
pub const SESSION: usize = 1;

/// Cap on remembered cells, so a long session stays small.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
pub struct History {
    entries: Vec<(usize, String, String)>,
}

impl History {
    /// Records a cell's input and a short text of its output.
    pub fn record(&mut self, line: usize, code: &str, output: String) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push((line, code.to_string(), output));
    }

    pub fn answer(&self, req: &HistoryRequest) -> Vec<HistoryEntry> {
        match req {
            HistoryRequest::Tail { n, output, .. } => {
                let n = (*n).max(0) as usize;
                let start = self.entries.len().saturating_sub(n);
                self.entries[start..]
                    .iter()
                    .map(|e| entry(e, *output))
                    .collect()
            }
            HistoryRequest::Range {
                session,
                start,
                stop,
                output,
                ..
            } => {
                // Only this session is known; 0 and negative numbers mean "current".
                if let Some(s) = session {
                    if *s > 0 && *s as usize != SESSION {
                        return Vec::new();
                    }
                }
                let (start, stop) = (*start as i64, *stop as i64);
                self.entries
                    .iter()
                    .filter(|(line, _, _)| {
                        let l = *line as i64;
                        l >= start && (stop <= 0 || l < stop)
                    })
                    .map(|e| entry(e, *output))
                    .collect()
            }
            HistoryRequest::Search {
                pattern,
                unique,
                output,
                n,
                ..
            } => {
                let mut hits: Vec<&(usize, String, String)> = self
                    .entries
                    .iter()
                    .filter(|(_, code, _)| glob_match(pattern, code))
                    .collect();
                if *unique {
                    // Keep the latest occurrence of each input.
                    let mut seen = std::collections::HashSet::new();
                    let mut kept: Vec<_> = hits
                        .iter()
                        .rev()
                        .filter(|e| seen.insert(e.1.as_str()))
                        .copied()
                        .collect();
                    kept.reverse();
                    hits = kept;
                }
                if *n > 0 {
                    let start = hits.len().saturating_sub(*n as usize);
                    hits = hits[start..].to_vec();
                }
                hits.into_iter().map(|e| entry(e, *output)).collect()
            }
        }
    }
}

fn entry((line, code, out): &(usize, String, String), output: bool) -> HistoryEntry {
    if output {
        HistoryEntry::InputOutput(SESSION, *line, (code.clone(), out.clone()))
    } else {
        HistoryEntry::Input(SESSION, *line, code.clone())
    }
}

/// Shell-style glob (`*`, `?`) over the whole input, as IPython's history search does.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut h = History::default();
        h.record(1, "%lsmagic", "a".into());
        h.record(2, "BEGIN { exit(); }", "b".into());
        h.record(3, "%lsmagic", "c".into());
        h.record(4, "BEGIN { exit(); }", "d".into());
        h
    }

    #[test]
    fn tail_range_search() {
        let h = sample();
        let tail = h.answer(&HistoryRequest::Tail {
            n: 2,
            output: false,
            raw: true,
        });
        assert_eq!(tail.len(), 2);
        assert!(matches!(&tail[0], HistoryEntry::Input(1, 3, c) if c == "%lsmagic"));
        let range = h.answer(&HistoryRequest::Range {
            session: Some(1),
            start: 2,
            stop: 3,
            output: true,
            raw: true,
        });
        assert_eq!(range.len(), 1);
        assert!(matches!(&range[0], HistoryEntry::InputOutput(1, 2, (_, o)) if o == "b"));
        let search = |pattern: &str, unique, n| {
            h.answer(&HistoryRequest::Search {
                pattern: pattern.into(),
                unique,
                output: false,
                raw: true,
                n,
            })
        };
        assert_eq!(search("*exit*", false, 0).len(), 2);
        assert_eq!(search("*exit*", true, 0).len(), 1);
        assert_eq!(search("*", false, 3).len(), 3);
        assert_eq!(search("%lsmagi?", false, 0).len(), 2);
        assert_eq!(search("nothing", false, 0).len(), 0);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*a*b?", "xxaxxbc"));
        assert!(!glob_match("a*", "ba"));
        assert!(glob_match("", ""));
    }
}
