//! image/svg+xml rendering: a standalone horizontal bar chart (labels on
//! the left, counts at the bar ends, the map name as title), one chart per
//! map stacked vertically, one section per key of a keyed histogram.
//! Presentation attributes only (no CSS), so it survives sanitizers, and a
//! white background so it stays readable in dark notebook themes.

use std::fmt::Write as _;

use super::escape::{html as esc, one_line};
use super::view::{Body, HistView, More, View};
use crate::event::Scalar;

/// One chart: a titled group of sections.
pub(crate) struct Chart {
    title: String,
    sections: Vec<Section>,
    note: Option<String>,
}

struct Section {
    subtitle: Option<String>,
    bars: Vec<(String, u128)>,
    note: Option<String>,
}

/// The chart for a view, if its values are counts: histograms, and keyed
/// maps whose shown values are all non-negative integers.
pub(crate) fn chart(view: &View<'_>) -> Option<Chart> {
    let title = view.name.to_owned();
    match &view.body {
        Body::Keyed { rows, more } => {
            let bars = rows
                .iter()
                .map(|(k, v)| match v {
                    Scalar::Int(i) => u128::try_from(*i).ok().map(|n| (one_line(k), n)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            if bars.is_empty() {
                return None;
            }
            Some(Chart {
                title,
                sections: vec![Section {
                    subtitle: None,
                    bars,
                    note: note(more),
                }],
                note: None,
            })
        }
        Body::Hist(h) => Some(Chart {
            title,
            sections: vec![hist_section(None, h)],
            note: None,
        }),
        Body::KeyedHist { sections, more } => Some(Chart {
            sections: sections
                .iter()
                .map(|(k, h)| hist_section(Some(format!("{}[{}]", view.name, one_line(k))), h))
                .collect(),
            title,
            note: note(more).or_else(|| sections.is_empty().then(|| "(empty)".to_owned())),
        }),
        Body::Scalar(_) | Body::Stats(_) | Body::KeyedStats { .. } => None,
    }
}

fn hist_section(subtitle: Option<String>, h: &HistView) -> Section {
    Section {
        subtitle,
        bars: h
            .rows
            .iter()
            .map(|r| (r.label.clone(), u128::from(r.count)))
            .collect(),
        note: note(&h.more),
    }
}

fn note(more: &Option<More>) -> Option<String> {
    more.as_ref().map(More::to_string)
}

const FONT: f64 = 12.0;
/// Advance of one monospace character at `FONT` (0.6em is typical).
const CHAR_W: f64 = 7.2;
const PAD: f64 = 10.0;
const ROW_H: f64 = 18.0;
const BAR_H: f64 = 13.0;
const TITLE_H: f64 = 24.0;
const LINE_H: f64 = 18.0;
const GAP: f64 = 6.0;
const MIN_BAR: f64 = 80.0;
const MAX_LABEL_CHARS: usize = 48;
const MIN_WIDTH: u32 = 240;
const BAR_FILL: &str = "#4e79a7";

/// Renders charts into one standalone SVG document.
pub(crate) fn render(charts: &[Chart], chart_width: u32) -> String {
    let width = f64::from(chart_width.max(MIN_WIDTH));
    let bars = || {
        charts
            .iter()
            .flat_map(|c| &c.sections)
            .flat_map(|s| &s.bars)
    };
    let longest_label = bars().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let count_chars = bars().map(|(_, n)| n.to_string().len()).max().unwrap_or(1);

    // Fit the label column so the bars keep at least MIN_BAR pixels.
    let count_w = count_chars as f64 * CHAR_W + 8.0;
    let room = ((width - 2.0 * PAD - GAP - count_w - MIN_BAR) / CHAR_W)
        .floor()
        .max(3.0) as usize;
    let label_chars = longest_label.min(MAX_LABEL_CHARS).min(room).max(1);
    let bar_x = PAD + label_chars as f64 * CHAR_W + GAP;
    let bar_max = (width - PAD - count_w - bar_x).max(10.0);
    let text_chars = ((width - 2.0 * PAD) / CHAR_W).floor().max(4.0) as usize;

    let mut body = String::new();
    let mut y = PAD;
    for chart in charts {
        let _ = writeln!(
            body,
            "<text x=\"{PAD}\" y=\"{:.1}\" font-size=\"14\" font-weight=\"bold\">{}</text>",
            y + 15.0,
            esc(&fit(&chart.title, text_chars))
        );
        y += TITLE_H;
        for section in &chart.sections {
            if let Some(sub) = &section.subtitle {
                let _ = writeln!(
                    body,
                    "<text x=\"{PAD}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
                    y + 13.0,
                    esc(&fit(sub, text_chars))
                );
                y += LINE_H;
            }
            if section.bars.is_empty() {
                y = text_line(&mut body, y, "(empty)", text_chars);
            }
            let max = section.bars.iter().map(|(_, n)| *n).max().unwrap_or(0);
            let top = y;
            for (label, n) in &section.bars {
                let len = if max == 0 {
                    0.0
                } else {
                    (*n as f64 / max as f64 * bar_max).max(if *n > 0 { 1.0 } else { 0.0 })
                };
                let text_y = y + 13.0;
                let label_text = esc(&fit(label, label_chars));
                let _ = writeln!(
                    body,
                    "<text x=\"{:.1}\" y=\"{text_y:.1}\" text-anchor=\"end\">{label_text}</text>\n\
                     <rect x=\"{bar_x:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{BAR_H}\" fill=\"{BAR_FILL}\"><title>{}: {n}</title></rect>\n\
                     <text x=\"{:.1}\" y=\"{text_y:.1}\">{n}</text>",
                    bar_x - GAP,
                    y + (ROW_H - BAR_H) / 2.0,
                    esc(label),
                    bar_x + len + 4.0,
                );
                y += ROW_H;
            }
            if !section.bars.is_empty() {
                // The value axis' baseline.
                let _ = writeln!(
                    body,
                    "<line x1=\"{bar_x:.1}\" y1=\"{top:.1}\" x2=\"{bar_x:.1}\" y2=\"{y:.1}\" stroke=\"#888888\" stroke-width=\"1\"/>"
                );
            }
            if let Some(n) = &section.note {
                y = text_line(&mut body, y, n, text_chars);
            }
            y += GAP;
        }
        if let Some(n) = &chart.note {
            y = text_line(&mut body, y, n, text_chars);
        }
        y += GAP;
    }
    let height = (y + PAD).ceil();
    let title = charts
        .iter()
        .map(|c| c.title.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"{FONT}\" \
         role=\"img\" aria-label=\"{t}\">\n<title>{t}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n\
         {body}</svg>\n",
        t = esc(&title),
    )
}

/// A line of italic text; returns the next y.
fn text_line(body: &mut String, y: f64, text: &str, max_chars: usize) -> f64 {
    let _ = writeln!(
        body,
        "<text x=\"{PAD}\" y=\"{:.1}\" font-style=\"italic\">{}</text>",
        y + 13.0,
        esc(&fit(text, max_chars))
    );
    y + LINE_H
}

/// Shortens `s` to `max` characters with a trailing ellipsis.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
