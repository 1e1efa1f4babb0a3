//! The bpftrace language front end: a hand-written lexer and error-tolerant
//! recursive-descent parser for bpftrace 0.17 to 0.23 programs, the syntax
//! tree, a pretty printer, annotation stripping, the checks before load, and
//! diagnostics as data.
//!
//! **Architecture invariants**
//! - Parsing never fails: [`parse`] always returns a [`Program`] and
//!   diagnostics; broken probes and statements become `Error` nodes.
//! - Checking never fails either: [`check`] returns diagnostics for any tree.
//! - No I/O anywhere in this crate: kernel facts arrive through the
//!   [`KernelFacts`] trait (the live catalog in `kgent-agent`, [`StaticFacts`]
//!   fixtures in tests).
//! - Spans are byte offsets; line:column exists only when rendering
//!   ([`LineIndex`], [`render_human`], [`to_json`]).
//! - Tree depth is bounded (`parser::MAX_DEPTH`), so recursive passes over
//!   the tree cannot overflow the stack, whatever the input.
//!
//! Code map: `lexer` (tokens, attach-point mode), `parser` (cursor, recovery,
//! depth budget), `grammar/` (items, attach points, statements, expressions,
//! types), `ast` (tree, dump, span-free equality), `visit` (read-only walks),
//! `passes/` (printer, annotation stripping, and the checks: one file per
//! check, run in the order [`check`] sets), `facts` (what the checks ask of a
//! kernel), `builtins` (bpftrace's builtins by version), `suggest` ("did you
//! mean"), `diagnostic` (data, rendering).
//!
//! ```
//! use kgent_frontend::{parse, print_program, render_human, strip_annotations};
//!
//! let source = "kprobe:vfs_read /pid == 1/ { assume(arg2 < 4096); @bytes = sum(arg2) }";
//! let parsed = parse(source);
//! assert!(!parsed.has_errors());
//! assert_eq!(
//!     print_program(&parsed.program),
//!     "kprobe:vfs_read\n/pid == 1/\n{\n    assume(arg2 < 4096);\n    @bytes = sum(arg2);\n}\n"
//! );
//! // What bpftrace runs: the annotation is gone, everything else is as written.
//! assert_eq!(
//!     strip_annotations(source, &parsed.program),
//!     "kprobe:vfs_read /pid == 1/ {  @bytes = sum(arg2) }"
//! );
//!
//! let broken = parse("BEGIN { printf(\"hi\\n\") exit(); }");
//! let text = render_human("BEGIN { printf(\"hi\\n\") exit(); }", "cell.bt", &broken.diagnostics, false);
//! assert!(text.contains("expected `;` or `}` after statement"));
//! ```

pub mod ast;
pub mod builtins;
pub mod diagnostic;
pub mod facts;
mod grammar;
pub mod lexer;
mod parser;
pub mod passes;
pub mod span;
pub mod suggest;
pub mod visit;

pub use ast::Program;
pub use diagnostic::{render_human, to_json, Diagnostic, Severity, Suggestion};
pub use facts::{
    ByteOrder, FieldInfo, KernelFacts, MatchProblem, MemberLookup, ProbeMatches, ProbeSupport,
    RecordKind, RecordRef, StaticFacts,
};
pub use parser::MAX_DEPTH;
pub use passes::print::print_program;
pub use passes::strip_annotations::{blank_annotations, strip_annotations};
pub use passes::{check, CheckOptions};
pub use span::{LineCol, LineIndex, Span};
pub use visit::Visitor;

/// The result of parsing: always a program, plus what went wrong.
#[derive(Clone, Debug)]
pub struct Parse {
    pub program: Program,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parse {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Parses a bpftrace program. Never fails and never panics: syntax errors are
/// diagnostics, and the program holds `Error` nodes where input was unusable.
pub fn parse(source: &str) -> Parse {
    if source.len() > u32::MAX as usize {
        return Parse {
            program: Program {
                items: Vec::new(),
                span: Span::default(),
            },
            diagnostics: vec![Diagnostic::error(
                diagnostic::codes::UNSUPPORTED_SYNTAX,
                "program larger than 4 GiB",
                Span::default(),
            )],
        };
    }
    let mut p = parser::Parser::new(source);
    let program = grammar::program(&mut p);
    Parse {
        program,
        diagnostics: p.finish(),
    }
}
