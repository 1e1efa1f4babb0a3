//! Removing `assume(...)`/`assert(...)` annotations from the source text before
//! bpftrace runs it (bpftrace does not know them). Everything else is kept
//! byte for byte, so the program people read is the program that runs.

use crate::ast::*;
use crate::visit::{self, Visitor};

/// Returns `source` without the annotation statements of `program` (which
/// must be `parse(source).program`). Each annotation goes with its `;`; a line
/// left holding only whitespace is removed entirely.
pub fn strip_annotations(source: &str, program: &Program) -> String {
    let mut finder = Finder { spans: Vec::new() };
    finder.visit_program(program);
    let mut spans = finder.spans;
    spans.sort();

    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut copied = 0;
    for span in spans {
        let (mut start, mut end) = (span.start as usize, span.end as usize);
        if start < copied || end > source.len() || start > end {
            continue;
        }
        // Take the `;` (after optional spaces) with the statement.
        let mut j = end;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        if bytes.get(j) == Some(&b';') {
            end = j + 1;
        }
        // Take the whole line if nothing else is on it.
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let mut line_end = end;
        while line_end < bytes.len() && matches!(bytes[line_end], b' ' | b'\t' | b'\r') {
            line_end += 1;
        }
        let alone_before = source[line_start..start]
            .bytes()
            .all(|b| b == b' ' || b == b'\t');
        let at_eol = line_end == bytes.len() || bytes[line_end] == b'\n';
        if alone_before && at_eol && line_start >= copied {
            start = line_start;
            end = (line_end + 1).min(bytes.len());
        }
        out.push_str(&source[copied..start]);
        copied = end;
    }
    out.push_str(&source[copied..]);
    out
}

/// Like [`strip_annotations`], but each annotation (with its `;`) becomes spaces, so
/// every other byte keeps its offset: line:column positions that bpftrace reports on
/// the result point at the same place in `source`.
pub fn blank_annotations(source: &str, program: &Program) -> String {
    let mut finder = Finder { spans: Vec::new() };
    finder.visit_program(program);
    let bytes = source.as_bytes();
    let mut out = bytes.to_vec();
    for span in finder.spans {
        let (start, mut end) = (span.start as usize, span.end as usize);
        if start > end || end > bytes.len() {
            continue;
        }
        let mut j = end;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        if bytes.get(j) == Some(&b';') {
            end = j + 1;
        }
        for b in &mut out[start..end] {
            // Newlines stay, so line numbers do too; multi-byte characters become
            // spaces byte by byte, which keeps byte offsets (columns may count fewer).
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| source.to_string())
}

struct Finder {
    spans: Vec<Span>,
}

impl Visitor for Finder {
    fn visit_stmt(&mut self, stmt: &Stmt) {
        match stmt.kind {
            StmtKind::Assume(_) | StmtKind::Assert { .. } => self.spans.push(stmt.span),
            _ => visit::walk_stmt(self, stmt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_keeps_every_offset() {
        let source = "BEGIN {\n    assume(pid > 0);\n    assert(1 == 1, \"x\") ;\n    printf(\"é\\n\");\n}\n";
        let parsed = crate::parse(source);
        assert!(!parsed.has_errors());
        let blanked = blank_annotations(source, &parsed.program);
        assert_eq!(blanked.len(), source.len());
        assert_eq!(blanked.lines().count(), source.lines().count());
        assert!(!blanked.contains("assume") && !blanked.contains("assert"));
        assert_eq!(blanked.find("printf"), source.find("printf"));
        assert!(!crate::parse(&blanked).has_errors());
    }
}
