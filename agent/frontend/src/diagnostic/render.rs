//! Turning diagnostics into text for people (ariadne) and JSON for machines.

use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
use serde_json::{json, Value};

use super::{Diagnostic, Severity};
use crate::span::{LineIndex, Span};

/// Renders `diagnostics` against `source` (shown as `name`) the way compilers do:
/// a header with severity and code, the source lines with the spans underlined,
/// then help and the suggestion. ANSI colours only when `color` is true.
pub fn render_human(source: &str, name: &str, diagnostics: &[Diagnostic], color: bool) -> String {
    let cache = (name.to_string(), Source::from(source));
    let mut out = Vec::new();
    for diagnostic in diagnostics {
        let kind = match diagnostic.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
            Severity::Note => ReportKind::Advice,
        };
        let primary = clamp(source, diagnostic.span);
        let mut report = Report::build(kind, (name.to_string(), primary.clone()))
            .with_config(
                Config::default()
                    .with_color(color)
                    .with_index_type(IndexType::Byte),
            )
            .with_code(diagnostic.code)
            .with_message(&diagnostic.message)
            .with_label(Label::new((name.to_string(), primary)).with_message("here"));
        for (span, message) in &diagnostic.labels {
            report = report.with_label(
                Label::new((name.to_string(), clamp(source, *span))).with_message(message),
            );
        }
        if let Some(help) = &diagnostic.help {
            report = report.with_help(help);
        }
        if let Some(suggestion) = &diagnostic.suggestion {
            report = report.with_note(describe_suggestion(source, suggestion));
        }
        // Writing into a Vec cannot fail; a failure would only lose this report.
        let _ = report.finish().write(cache.clone(), &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One JSON object per diagnostic, with byte spans and 1-based line:column
/// (columns count characters) so tools need not re-derive positions.
pub fn to_json(source: &str, diagnostics: &[Diagnostic]) -> Value {
    let index = LineIndex::new(source);
    let position = |span: Span| {
        let start = index.line_col(span.start);
        let end = index.line_col(span.end);
        (start, end)
    };
    let items: Vec<Value> = diagnostics
        .iter()
        .map(|d| {
            let (start, end) = position(d.span);
            let labels: Vec<Value> = d
                .labels
                .iter()
                .map(|(span, message)| {
                    let (s, _) = position(*span);
                    json!({
                        "span": {"start": span.start, "end": span.end},
                        "line": s.line,
                        "column": s.column,
                        "message": message,
                    })
                })
                .collect();
            json!({
                "severity": d.severity.as_str(),
                "code": d.code,
                "message": d.message,
                "span": {"start": d.span.start, "end": d.span.end},
                "line": start.line,
                "column": start.column,
                "end_line": end.line,
                "end_column": end.column,
                "labels": labels,
                "help": d.help,
                "suggestion": d.suggestion.as_ref().map(|s| json!({
                    "span": {"start": s.span.start, "end": s.span.end},
                    "replacement": s.replacement,
                })),
            })
        })
        .collect();
    Value::Array(items)
}

fn describe_suggestion(source: &str, suggestion: &super::Suggestion) -> String {
    let old = suggestion.span.text(source);
    let (new, on_new_line) = match suggestion.replacement.strip_prefix('\n') {
        Some(rest) => (rest, " on a new line"),
        None => (suggestion.replacement.as_str(), ""),
    };
    if suggestion.span.is_empty() {
        format!("suggestion: insert `{new}`{on_new_line}")
    } else if suggestion.replacement.is_empty() {
        format!("suggestion: remove `{old}`")
    } else {
        format!("suggestion: replace `{old}` with `{new}`{on_new_line}")
    }
}

/// Fits a span into the source on character boundaries: ariadne indexes
/// bytes and must not be handed a range that splits a character or runs past the end.
fn clamp(source: &str, span: Span) -> std::ops::Range<usize> {
    let len = source.len();
    let mut start = (span.start as usize).min(len);
    let mut end = (span.end as usize).clamp(start, len);
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    while !source.is_char_boundary(end) {
        end += 1;
    }
    start..end
}
