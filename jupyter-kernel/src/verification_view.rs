//! A verification as people see it: the annotated program with each
//! annotation's origin (spec, rule, request) and each assertion's verdict on
//! its line, counterexamples under refuted assertions; as HTML and as text.
//! Shared by natural-language cells and `%%verify`.

use kgent_agent::synth::verification::Status;
use kgent_agent::synth::{Comprehension, Verification};
use kgent_agent::verifier::{AnnotationKindData, AssertionData, OriginData, VerdictData};
use kgent_output::render::escape;

use crate::highlight;

pub const OK: &str = "#1a7f37";
pub const WARN: &str = "#9a6700";
pub const FAIL: &str = "#cf222e";

/// The glyph and colour of a verification's outcome.
pub fn status_style(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Proved | Status::NoAssertions => ("✓", OK),
        Status::Refuted => ("✗", FAIL),
        Status::Unknown | Status::NotVerified => ("!", WARN),
    }
}

/// `3 proved (5 assumption(s)) in 12 ms; annotations: 5 from the specs, …`.
pub fn verification_headline(v: &Verification) -> String {
    let mut by_origin = [0usize; 3];
    for a in &v.annotations {
        by_origin[match a.origin {
            OriginData::Spec { .. } => 0,
            OriginData::Rule { .. } => 1,
            OriginData::Request => 2,
        }] += 1;
    }
    format!(
        "{}; annotations: {} from the specs, {} from rules, {} from the request",
        v.summary(),
        by_origin[0],
        by_origin[1],
        by_origin[2],
    )
}

pub fn comprehension_text(c: &Comprehension) -> String {
    match c {
        Comprehension::RulesOnly => "request annotations: rules only (no model)".into(),
        Comprehension::Model {
            model, elapsed_ms, ..
        } => format!("request annotations by {model} in {elapsed_ms} ms"),
        Comprehension::Rejected { reason } => {
            format!("the model's annotations were not used: {reason}")
        }
        Comprehension::Failed { error } => format!("the model could not annotate: {error}"),
    }
}

/// An assertion's verdict in words (the counterexample for a refuted one).
pub fn verdict_text(v: &Verification, a: &AssertionData) -> String {
    match &a.verdict {
        VerdictData::Proved if a.vacuous => "proved (vacuously: no path reaches it)".into(),
        VerdictData::Proved => "proved".into(),
        VerdictData::Refuted { counterexample } => {
            format!("refuted: {}", v.counterexample_text(a, counterexample))
        }
        VerdictData::Unknown { reason } => format!("unknown: {reason}"),
    }
}

fn origin_colour(origin: &OriginData) -> &'static str {
    match origin {
        OriginData::Spec { .. } => "#0969da",
        OriginData::Rule { .. } => "#8250df",
        OriginData::Request => "#bf3989",
    }
}

/// What is said after a line of the annotated program: each annotation's
/// origin and, for an assertion, its verdict; then, under a refuted one, the
/// counterexample and what the program printed on its way there.
struct LineNotes {
    tags: Vec<(String, &'static str)>,
    below: Vec<String>,
}

fn line_notes(v: &Verification, line: u32) -> LineNotes {
    let mut notes = LineNotes {
        tags: Vec::new(),
        below: Vec::new(),
    };
    for a in v.annotations.iter().filter(|a| a.line == line) {
        let kind = match a.kind {
            AnnotationKindData::Assume => "assume",
            AnnotationKindData::Assert => "assert",
        };
        notes
            .tags
            .push((format!("{kind} · {}", a.origin), origin_colour(&a.origin)));
    }
    for a in v.assertions().iter().filter(|a| a.line == line) {
        let (glyph, colour) = match a.verdict {
            VerdictData::Proved => ("✓", OK),
            VerdictData::Refuted { .. } => ("✗", FAIL),
            VerdictData::Unknown { .. } => ("?", WARN),
        };
        let text = match &a.verdict {
            VerdictData::Refuted { .. } => "refuted".to_string(),
            _ => verdict_text(v, a),
        };
        notes.tags.push((format!("{glyph} {text}"), colour));
        if let VerdictData::Refuted { counterexample } = &a.verdict {
            notes.below.push(format!(
                "counterexample: {}",
                v.counterexample_text(a, counterexample)
            ));
            for printed in counterexample.printed.iter().flat_map(|p| p.lines()) {
                notes.below.push(format!("  it printed: {printed}"));
            }
        }
    }
    notes
}

/// The annotated program as text: the notes as trailing `//` comments.
pub fn annotated_plain(v: &Verification) -> String {
    let mut out = String::new();
    for (i, line) in v.annotated_source.trim_end().lines().enumerate() {
        let notes = line_notes(v, i as u32 + 1);
        out.push_str(line);
        if !notes.tags.is_empty() {
            let tags: Vec<&str> = notes.tags.iter().map(|(t, _)| t.as_str()).collect();
            out.push_str(&format!("    // {}", tags.join("; ")));
        }
        out.push('\n');
        let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        for b in &notes.below {
            out.push_str(&format!("{indent}//   {b}\n"));
        }
    }
    out
}

/// The annotated program, highlighted, each annotation's line tinted by
/// origin (spec, rule, request) with its tags, counterexamples under
/// refuted assertions.
pub fn annotated_html(v: &Verification) -> String {
    let source = v.annotated_source.trim_end();
    let mut out = format!("<pre style=\"{}\"><code>", highlight::PRE_STYLE);
    for (i, (html, text)) in highlight::html_lines(source)
        .iter()
        .zip(source.lines())
        .enumerate()
    {
        let notes = line_notes(v, i as u32 + 1);
        let tint = v
            .annotations
            .iter()
            .find(|a| a.line == i as u32 + 1)
            .map(|a| origin_colour(&a.origin));
        match tint {
            Some(colour) => out.push_str(&format!(
                "<span style=\"background:{colour}14;border-left:2px solid {colour}\">{html}</span>"
            )),
            None => out.push_str(html),
        }
        for (tag, colour) in &notes.tags {
            out.push_str(&format!(
                "  <span style=\"color:{colour};font-size:85%\">[{}]</span>",
                escape::html(tag)
            ));
        }
        out.push('\n');
        let indent: String = text.chars().take_while(|c| c.is_whitespace()).collect();
        for b in &notes.below {
            out.push_str(&format!(
                "<span style=\"color:{}\">{indent}  ↳ {}</span>\n",
                FAIL,
                escape::html(b)
            ));
        }
    }
    out.push_str("</code></pre>");
    out
}
