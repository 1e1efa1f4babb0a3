//! Diagnostics as data: what the parser (and later the checker) found, with
//! stable codes, spans, labels, help and machine-applicable suggestions.
//!
//! Nothing here formats for people; `render` does that at the edge.

mod render;

pub use render::{render_human, to_json};

use crate::span::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// A replacement of `span` by `replacement` that fixes the problem; an empty
/// span inserts, an empty replacement deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suggestion {
    pub span: Span,
    pub replacement: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable kebab-case identifier, e.g. `expected-token`; see [`codes`].
    pub code: &'static str,
    pub message: String,
    /// The primary location.
    pub span: Span,
    /// Secondary locations with their own short messages.
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
    pub suggestion: Option<Suggestion>,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        code: &'static str,
        message: impl Into<String>,
        span: Span,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            span,
            labels: Vec::new(),
            help: None,
            suggestion: None,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, message, span)
    }

    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::new(Severity::Warning, code, message, span)
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push((span, message.into()));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_suggestion(mut self, span: Span, replacement: impl Into<String>) -> Diagnostic {
        self.suggestion = Some(Suggestion {
            span,
            replacement: replacement.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The same diagnostic for a source that has `offset` more bytes in front (a
    /// program rendered inside its notebook cell).
    pub fn shifted(mut self, offset: u32) -> Diagnostic {
        let shift = |s: Span| Span {
            start: s.start.saturating_add(offset),
            end: s.end.saturating_add(offset),
        };
        self.span = shift(self.span);
        for (span, _) in &mut self.labels {
            *span = shift(*span);
        }
        if let Some(s) = &mut self.suggestion {
            s.span = shift(s.span);
        }
        self
    }
}

/// The codes this crate emits, the parser's and the checker's; a code, once
/// published, keeps its meaning. `unknown-probe` covers both unknown probe
/// types (parser) and attach points that match nothing (checker).
pub mod codes {
    /// Generic "expected X, found Y".
    pub const EXPECTED_TOKEN: &str = "expected-token";
    /// A `(`, `[` or `{` never closed before the end of the program.
    pub const UNCLOSED_DELIMITER: &str = "unclosed-delimiter";
    pub const UNEXPECTED_CLOSING: &str = "unexpected-closing-delimiter";
    pub const UNTERMINATED_STRING: &str = "unterminated-string";
    pub const UNTERMINATED_COMMENT: &str = "unterminated-comment";
    pub const UNTERMINATED_C_DEFINITION: &str = "unterminated-c-definition";
    pub const INVALID_ESCAPE: &str = "invalid-escape";
    pub const INVALID_NUMBER: &str = "invalid-number";
    pub const INTEGER_OVERFLOW: &str = "integer-overflow";
    pub const UNKNOWN_CHARACTER: &str = "unknown-character";
    pub const UNKNOWN_PROBE: &str = "unknown-probe";
    pub const INVALID_ATTACH_POINT: &str = "invalid-attach-point";
    pub const EMPTY_ATTACH_POINT: &str = "empty-attach-point";
    pub const MISSING_SEMICOLON: &str = "missing-semicolon";
    pub const STRAY_SEMICOLON: &str = "stray-semicolon";
    pub const ASSIGNMENT_IN_PREDICATE: &str = "assignment-in-predicate";
    pub const BRACES_REQUIRED: &str = "braces-required";
    pub const PARENS_REQUIRED: &str = "parens-required";
    pub const C_STYLE_FOR: &str = "c-style-for";
    pub const CALL_WITHOUT_PARENS: &str = "call-without-parens";
    pub const INVALID_ASSIGNMENT_TARGET: &str = "invalid-assignment-target";
    pub const INVALID_INCREMENT_TARGET: &str = "invalid-increment-target";
    pub const INVALID_POSITIONAL: &str = "invalid-positional";
    pub const INVALID_UNROLL_COUNT: &str = "invalid-unroll-count";
    pub const STATEMENT_OUTSIDE_PROBE: &str = "statement-outside-probe";
    pub const ITEM_ORDER: &str = "item-order";
    pub const PREPROCESSOR_IN_BLOCK: &str = "preprocessor-in-block";
    pub const NESTING_TOO_DEEP: &str = "nesting-too-deep";
    pub const TOO_MANY_ERRORS: &str = "too-many-errors";
    pub const UNSUPPORTED_SYNTAX: &str = "unsupported-syntax";

    // The checker's codes (`passes::check`).

    /// A probe type this kernel cannot attach (e.g. kprobe without CONFIG_KPROBES).
    pub const UNSUPPORTED_PROBE_TYPE: &str = "unsupported-probe-type";
    /// A wildcard attach point that expands to more probes than allowed.
    pub const TOO_MANY_PROBES: &str = "too-many-probes";
    /// `args->x` or `ptr->x` where the tracepoint, function or record has no field `x`.
    pub const NO_SUCH_FIELD: &str = "no-such-field";
    /// A cast to a struct or union the kernel's BTF does not have.
    pub const UNKNOWN_TYPE: &str = "unknown-type";
    /// `.` on a pointer or `->` on a struct, or `args.x` before bpftrace 0.19.
    pub const MEMBER_OPERATOR: &str = "member-operator";
    /// A builtin variable the probe type does not provide (`args` in BEGIN, `arg0` in a tracepoint).
    pub const BUILTIN_UNAVAILABLE: &str = "builtin-unavailable";
    /// A call to a function bpftrace (this version) does not have.
    pub const UNKNOWN_FUNCTION: &str = "unknown-function";
    /// A bare name that is neither a builtin nor a known constant.
    pub const UNKNOWN_IDENTIFIER: &str = "unknown-identifier";
    pub const WRONG_ARITY: &str = "wrong-arity";
    /// Format string and arguments of `printf`, `system`, `cat` disagree.
    pub const PRINTF_FORMAT: &str = "printf-format";
    /// A scratch variable read before any assignment in its probe.
    pub const UNDEFINED_VARIABLE: &str = "undefined-variable";
    /// A map read that nothing in the program ever writes.
    pub const MAP_NEVER_WRITTEN: &str = "map-never-written";
    /// A map given different kinds of values or keys.
    pub const MAP_TYPE_CONFLICT: &str = "map-type-conflict";
    /// `str()` of an integer that cannot be an address.
    pub const STR_ON_NON_POINTER: &str = "str-on-non-pointer";
    /// A network-byte-order value printed or compared as if it were host order.
    pub const NETWORK_BYTE_ORDER: &str = "network-byte-order";
    /// `system`, `signal`, `override` without `--unsafe`.
    pub const UNSAFE_BUILTIN: &str = "unsafe-builtin";
}
