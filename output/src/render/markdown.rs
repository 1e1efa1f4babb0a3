//! text/markdown rendering: GFM tables headed by the map name in bold.

use std::fmt::Write as _;

use super::escape::markdown as md;
use super::view::{block_bar, scalar_text, Body, HistView, More, View};

/// Width of the block-character bar column, in character cells.
const BAR_CELLS: usize = 20;

pub(crate) fn render(view: &View<'_>) -> String {
    let name = md(view.name);
    let mut out = String::new();
    match &view.body {
        Body::Scalar(s) => {
            let _ = write!(out, "**{name}**: {}", md(&scalar_text(s)));
        }
        Body::Keyed { rows, more } => {
            if rows.is_empty() && more.is_none() {
                let _ = write!(out, "**{name}**: (empty)");
                return out;
            }
            let _ = write!(out, "**{name}**\n\n| key | value |\n| :-- | --: |");
            for (k, v) in rows {
                let _ = write!(out, "\n| {} | {} |", md(k), md(&scalar_text(v)));
            }
            more_line(&mut out, more);
        }
        Body::Stats(s) => {
            let _ = write!(
                out,
                "**{name}**\n\n| count | average | total |\n| --: | --: | --: |\n| {} | {} | {} |",
                s.count, s.average, s.total
            );
        }
        Body::KeyedStats { rows, more } => {
            if rows.is_empty() && more.is_none() {
                let _ = write!(out, "**{name}**: (empty)");
                return out;
            }
            let _ = write!(
                out,
                "**{name}**\n\n| key | count | average | total |\n| :-- | --: | --: | --: |"
            );
            for (k, s) in rows {
                let _ = write!(
                    out,
                    "\n| {} | {} | {} | {} |",
                    md(k),
                    s.count,
                    s.average,
                    s.total
                );
            }
            more_line(&mut out, more);
        }
        Body::Hist(h) => hist(&mut out, &name, h),
        Body::KeyedHist { sections, more } => {
            if sections.is_empty() && more.is_none() {
                let _ = write!(out, "**{name}**: (empty)");
                return out;
            }
            for (i, (key, h)) in sections.iter().enumerate() {
                if i > 0 {
                    out.push_str("\n\n");
                }
                hist(&mut out, &format!("{name}\\[{}\\]", md(key)), h);
            }
            more_line(&mut out, more);
        }
    }
    out
}

/// `title` is already escaped.
fn hist(out: &mut String, title: &str, h: &HistView) {
    if h.rows.is_empty() {
        let _ = write!(out, "**{title}**: (empty)");
        return;
    }
    let _ = write!(
        out,
        "**{title}**\n\n| range | count | distribution |\n| :-- | --: | :-- |"
    );
    for row in &h.rows {
        let _ = write!(
            out,
            "\n| {} | {} | {} |",
            md(&row.label),
            row.count,
            block_bar(row.count, h.max, BAR_CELLS)
        );
    }
    more_line(out, &h.more);
}

fn more_line(out: &mut String, more: &Option<More>) {
    if let Some(m) = more {
        // A blank line ends the table; the note is a paragraph.
        let _ = write!(out, "\n\n{m}");
    }
}
