//! Diagnostics as a notebook shows them: compact, compiler-like, with cell line numbers
//! and a caret line under the span, in the same shape as bpftrace's classified failures.

use kgent_frontend::{Diagnostic, LineIndex, Severity};

use crate::execute::{RED, RESET};

const YELLOW: &str = "\x1b[1;33m";
const CYAN: &str = "\x1b[1;36m";

/// Renders `diagnostics` (spans into `program`) as traceback lines; `first_line` is the
/// cell line where the program starts.
pub fn render_lines(diagnostics: &[Diagnostic], program: &str, first_line: usize) -> Vec<String> {
    let index = LineIndex::new(program);
    let lines: Vec<&str> = program.split('\n').collect();
    let mut out = Vec::new();
    for d in diagnostics {
        let (color, label) = match d.severity {
            Severity::Error => (RED, "error"),
            Severity::Warning => (YELLOW, "warning"),
            Severity::Note => (CYAN, "note"),
        };
        out.push(format!("{color}{label}[{}]{RESET}: {}", d.code, d.message));
        if d.span.end > d.span.start || d.span.start > 0 {
            let at = |offset: u32| {
                let lc = index.line_col(offset.min(program.len() as u32));
                (lc.line as usize, lc.column as usize)
            };
            let (start_line, start_col) = at(d.span.start);
            let (end_line, end_col) = at(d.span.end);
            let line_text = lines
                .get(start_line.saturating_sub(1))
                .copied()
                .unwrap_or("");
            let gutter = format!("{:>4} | ", first_line + start_line - 1);
            out.push(format!("{gutter}{line_text}"));
            let width = if end_line == start_line {
                end_col.saturating_sub(start_col).max(1)
            } else {
                line_text
                    .chars()
                    .count()
                    .saturating_sub(start_col - 1)
                    .max(1)
            };
            out.push(format!(
                "{}{}{color}{}{RESET}",
                " ".repeat(gutter.len()),
                " ".repeat(start_col.saturating_sub(1)),
                "^".repeat(width)
            ));
        }
        for (span, text) in &d.labels {
            let line = index.line_col(span.start.min(program.len() as u32)).line as usize;
            out.push(format!(
                "     = cell line {}: {text}",
                first_line + line - 1
            ));
        }
        if let Some(help) = &d.help {
            out.push(format!("help: {help}"));
        }
        if let Some(s) = &d.suggestion {
            let old = program
                .get(s.span.start as usize..s.span.end as usize)
                .unwrap_or("");
            if old.is_empty() {
                out.push(format!("suggestion: insert `{}`", s.replacement));
            } else {
                out.push(format!(
                    "suggestion: replace `{old}` with `{}`",
                    s.replacement
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgent_frontend::Span;

    #[test]
    fn caret_under_the_span_with_cell_lines() {
        let program = "BEGIN {\n    printf(\"%d\\n\", nosuch);\n}";
        let start = program.find("nosuch").unwrap() as u32;
        let d = Diagnostic::error(
            "unknown-identifier",
            "unknown identifier `nosuch`",
            Span {
                start,
                end: start + 6,
            },
        )
        .with_help("did you mean `nsecs`?")
        .with_suggestion(
            Span {
                start,
                end: start + 6,
            },
            "nsecs",
        );
        let lines = render_lines(&[d], program, 2);
        assert!(lines[0].contains("error[unknown-identifier]"));
        assert_eq!(lines[1], "   3 |     printf(\"%d\\n\", nosuch);");
        let caret = lines[2].replace(RED, "").replace(RESET, "");
        assert_eq!(caret.find('^'), lines[1].find("nosuch"));
        assert_eq!(caret.trim(), "^^^^^^");
        assert!(lines
            .iter()
            .any(|l| l == "suggestion: replace `nosuch` with `nsecs`"));
    }
}
