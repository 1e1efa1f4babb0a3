//! text/plain rendering, modelled on bpftrace's own terminal output.

use std::fmt::Write as _;

use super::escape;
use super::view::{bar_units, scalar_text, Body, HistView, View, TEXT_BAR_WIDTH};
use crate::event::{Scalar, Stats};

pub(crate) fn render(view: &View<'_>) -> String {
    let name = escape::plain(view.name);
    let mut out = String::new();
    match &view.body {
        Body::Scalar(s) => {
            let _ = write!(out, "{name}: {}", escape::plain(&scalar_text(s)));
        }
        Body::Keyed { rows, more } => {
            if rows.is_empty() && more.is_none() {
                let _ = write!(out, "{name}: (empty)");
            }
            let lines: Vec<(String, String, bool)> = rows
                .iter()
                .map(|(k, v)| {
                    let label = format!("{name}[{}]:", escape::plain(k));
                    let numeric = matches!(v, Scalar::Int(_));
                    (label, escape::plain(&scalar_text(v)).into_owned(), numeric)
                })
                .collect();
            aligned(&mut out, &lines);
            if let Some(m) = more {
                let _ = write!(out, "\n{m}");
            }
        }
        Body::Stats(s) => {
            let _ = write!(out, "{name}: {}", stats_text(s));
        }
        Body::KeyedStats { rows, more } => {
            if rows.is_empty() && more.is_none() {
                let _ = write!(out, "{name}: (empty)");
            }
            let lines: Vec<(String, String, bool)> = rows
                .iter()
                .map(|(k, s)| {
                    (
                        format!("{name}[{}]:", escape::plain(k)),
                        stats_text(s),
                        false,
                    )
                })
                .collect();
            aligned(&mut out, &lines);
            if let Some(m) = more {
                let _ = write!(out, "\n{m}");
            }
        }
        Body::Hist(h) => hist(&mut out, &name, h),
        Body::KeyedHist { sections, more } => {
            if sections.is_empty() && more.is_none() {
                let _ = write!(out, "{name}: (empty)");
            }
            for (i, (key, h)) in sections.iter().enumerate() {
                if i > 0 {
                    out.push_str("\n\n");
                }
                hist(&mut out, &format!("{name}[{}]", escape::plain(key)), h);
            }
            if let Some(m) = more {
                let _ = write!(out, "\n\n{m}");
            }
        }
    }
    out.trim_start_matches('\n').to_owned()
}

/// `count 1, average 4, total 4`, as bpftrace prints stats.
fn stats_text(s: &Stats) -> String {
    format!(
        "count {}, average {}, total {}",
        s.count, s.average, s.total
    )
}

/// `label: value` lines with labels padded to one width and numbers
/// right-aligned. Multi-line labels (stacks) disable alignment.
fn aligned(out: &mut String, lines: &[(String, String, bool)]) {
    let multiline = lines
        .iter()
        .any(|(l, v, _)| l.contains('\n') || v.contains('\n'));
    let label_w = lines
        .iter()
        .map(|(l, _, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let num_w = lines
        .iter()
        .filter(|(_, _, n)| *n)
        .map(|(_, v, _)| v.chars().count())
        .max()
        .unwrap_or(0);
    for (i, (label, value, numeric)) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if multiline {
            let _ = write!(out, "{label} {value}");
        } else if *numeric {
            let _ = write!(out, "{label:<label_w$} {value:>num_w$}");
        } else {
            let _ = write!(out, "{label:<label_w$} {value}");
        }
    }
}

/// `@h:` followed by bpftrace's histogram rows:
/// `[4, 8)                 1 |@@@@...@@|` (label 16 wide, count 8 wide,
/// bar 52 wide).
fn hist(out: &mut String, title: &str, h: &HistView) {
    if h.rows.is_empty() {
        let _ = write!(out, "{title}: (empty)");
        return;
    }
    let _ = write!(out, "{title}:");
    for row in &h.rows {
        let bar = "@".repeat(bar_units(row.count, h.max, TEXT_BAR_WIDTH));
        let _ = write!(
            out,
            "\n{:<16}{:>8} |{:<width$}|",
            row.label,
            row.count,
            bar,
            width = TEXT_BAR_WIDTH
        );
    }
    if let Some(m) = &h.more {
        let _ = write!(out, "\n{m}");
    }
}
