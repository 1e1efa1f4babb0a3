//! text/html rendering: semantic tables (`<caption>`, `<thead>`, `<tfoot>`)
//! with no scripts, no `<style>` and no inline styles, since untrusted
//! notebooks strip them. Histogram bars are block characters. The markup is
//! also well-formed XML (`<br/>`), which the tests check.

use std::fmt::Write as _;

use super::escape::{html as esc, html_lines};
use super::view::{block_bar, scalar_text, Body, HistView, More, View};

/// Width of the block-character bar column, in character cells.
const BAR_CELLS: usize = 30;

pub(crate) fn render(view: &View<'_>) -> String {
    let name = esc(view.name);
    let mut out = String::new();
    match &view.body {
        Body::Scalar(s) => {
            let _ = write!(
                out,
                "<p><strong>{name}</strong>: {}</p>",
                cell_text(&scalar_text(s))
            );
        }
        Body::Keyed { rows, more } => {
            if rows.is_empty() && more.is_none() {
                return empty(&name);
            }
            table_head(&mut out, &name, &["key", "value"]);
            for (k, v) in rows {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    cell_text(k),
                    cell_text(&scalar_text(v))
                );
            }
            table_foot(&mut out, 2, more);
        }
        Body::Stats(s) => {
            table_head(&mut out, &name, &["count", "average", "total"]);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.count, s.average, s.total
            );
            table_foot(&mut out, 3, &None);
        }
        Body::KeyedStats { rows, more } => {
            if rows.is_empty() && more.is_none() {
                return empty(&name);
            }
            table_head(&mut out, &name, &["key", "count", "average", "total"]);
            for (k, s) in rows {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    cell_text(k),
                    s.count,
                    s.average,
                    s.total
                );
            }
            table_foot(&mut out, 4, more);
        }
        Body::Hist(h) => hist(&mut out, &name, h),
        Body::KeyedHist { sections, more } => {
            if sections.is_empty() && more.is_none() {
                return empty(&name);
            }
            for (key, h) in sections {
                hist(&mut out, &format!("{name}[{}]", esc(key)), h);
            }
            if let Some(m) = more {
                let _ = writeln!(out, "<p>{}</p>", esc(&m.to_string()));
            }
        }
    }
    out.trim_end().to_owned()
}

fn empty(name: &str) -> String {
    format!("<p><strong>{name}</strong>: (empty)</p>")
}

/// Cell content: multi-line values (stacks) keep their layout in `<pre>`.
fn cell_text(s: &str) -> String {
    if s.trim_matches('\n').contains('\n') {
        format!("<pre>{}</pre>", esc(s.trim_matches('\n')))
    } else {
        html_lines(s)
    }
}

/// `caption` is already escaped.
fn table_head(out: &mut String, caption: &str, columns: &[&str]) {
    let _ = write!(out, "<table>\n<caption>{caption}</caption>\n<thead><tr>");
    for c in columns {
        let _ = write!(out, "<th scope=\"col\">{c}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
}

fn table_foot(out: &mut String, columns: usize, more: &Option<More>) {
    out.push_str("</tbody>\n");
    if let Some(m) = more {
        let _ = writeln!(
            out,
            "<tfoot><tr><td colspan=\"{columns}\">{}</td></tr></tfoot>",
            esc(&m.to_string())
        );
    }
    out.push_str("</table>\n");
}

/// `title` is already escaped.
fn hist(out: &mut String, title: &str, h: &HistView) {
    if h.rows.is_empty() {
        let _ = writeln!(out, "{}", empty(title));
        return;
    }
    table_head(out, title, &["range", "count", "distribution"]);
    for row in &h.rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.label),
            row.count,
            block_bar(row.count, h.max, BAR_CELLS)
        );
    }
    table_foot(out, 3, &h.more);
}
