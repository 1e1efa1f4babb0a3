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
}

/// The codes this crate emits. Later passes add their own; a code, once
/// published, keeps its meaning.
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
}
