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
