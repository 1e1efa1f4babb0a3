//! The parser's cursor: lookahead over on-demand tokens, `at`/`eat`/`expect`,
//! error reporting with de-duplication, recovery, and the nesting budget.
//!
//! The grammar itself lives in `grammar/`; this file knows no bpftrace syntax
//! beyond which tokens exist.

use crate::diagnostic::{codes, Diagnostic, Severity};
use crate::lexer::{self, Token, TokenKind};
use crate::span::Span;

/// How deeply blocks, statements and expressions may nest (counting each
/// binary operator of a chain as a level). Beyond it the parser reports
/// `nesting-too-deep` and skips the rest of the construct, so neither the
/// parser nor any later recursive walk of the tree can overflow the stack.
pub const MAX_DEPTH: u32 = 256;

/// After this many errors, the rest are summarised in one note: cascades
/// help nobody and would make a hostile input slow.
const MAX_ERRORS: usize = 100;

pub(crate) struct Parser<'s> {
    pub(crate) src: &'s str,
    /// End of the last consumed token: where lexing continues.
    pos: usize,
    /// Expression-mode tokens lexed ahead from `pos`.
    lookahead: Vec<Token>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    depth: u32,
    too_deep_reported: bool,
    errors: usize,
    /// End of the previous consumed token: where a missing `;` belongs.
    pub(crate) prev_end: u32,
}

impl<'s> Parser<'s> {
    pub(crate) fn new(src: &'s str) -> Parser<'s> {
        Parser {
            src,
            pos: 0,
            lookahead: Vec::with_capacity(4),
            diagnostics: Vec::new(),
            depth: 0,
            too_deep_reported: false,
            errors: 0,
            prev_end: 0,
        }
    }

    // ---- looking ----

    pub(crate) fn nth(&mut self, n: usize) -> Token {
        while self.lookahead.len() <= n {
            let from = self
                .lookahead
                .last()
                .map_or(self.pos, |t| t.span.end as usize);
            let token = lexer::next_token(self.src, from);
            self.lookahead.push(token);
            if token.kind == TokenKind::Eof {
                // Eof repeats forever; no need to cache more than one.
                while self.lookahead.len() <= n {
                    self.lookahead.push(token);
                }
            }
        }
        self.lookahead[n]
    }

    pub(crate) fn peek(&mut self) -> Token {
        self.nth(0)
    }

    pub(crate) fn kind(&mut self) -> TokenKind {
        self.nth(0).kind
    }

    pub(crate) fn at(&mut self, kind: TokenKind) -> bool {
        self.kind() == kind
    }

    pub(crate) fn nth_at(&mut self, n: usize, kind: TokenKind) -> bool {
        self.nth(n).kind == kind
    }

    pub(crate) fn text(&self, token: Token) -> &'s str {
        token.span.text(self.src)
    }

    /// At the identifier (or keyword) `word`.
    pub(crate) fn at_word(&mut self, word: &str) -> bool {
        let t = self.peek();
        t.kind == TokenKind::Ident && self.text(t) == word
    }

    /// The raw offset where the next token would be lexed from; trivia not skipped.
    pub(crate) fn raw_pos(&self) -> usize {
        self.pos
    }

    // ---- consuming ----

    pub(crate) fn bump(&mut self) -> Token {
        let token = self.peek();
        if token.kind == TokenKind::Eof {
            return token;
        }
        self.lookahead.remove(0);
        self.pos = token.span.end as usize;
        self.prev_end = token.span.end;
        if token.unterminated {
            let end = token.span.end;
            self.report(
                Diagnostic::error(
                    codes::UNTERMINATED_STRING,
                    "unterminated string: missing closing `\"`",
                    token.span,
                )
                .with_help("strings end on the same line they start; close it with `\"`")
                .with_suggestion(Span::empty(end), "\""),
            );
        }
        token
    }

    pub(crate) fn eat(&mut self, kind: TokenKind) -> bool {
        if self.at(kind) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Consumes `kind` or reports "expected `kind` {context}, found ...".
    pub(crate) fn expect(&mut self, kind: TokenKind, context: &str) -> bool {
        if self.eat(kind) {
            return true;
        }
        let found = self.peek();
        let message = format!(
            "expected {} {context}, found {}",
            kind.describe(),
            self.describe(found)
        );
        let mut diag = Diagnostic::error(
            codes::EXPECTED_TOKEN,
            message,
            self.missing_token_span(found),
        );
        if let Some(insert) = insertion_text(kind) {
            diag = diag.with_suggestion(Span::empty(self.prev_end), insert);
        }
        self.report(diag);
        false
    }

    /// Moves the cursor to `offset` (just after text the grammar consumed
    /// itself, such as an attach point or a verbatim C definition).
    pub(crate) fn jump_to(&mut self, offset: usize) {
        self.lookahead.clear();
        self.pos = offset;
        self.prev_end = offset as u32;
    }

    /// Where to point at a missing token: right after the previous token when
    /// the next one is on a later line (the gap is where it belongs), else at
    /// the unexpected token.
    pub(crate) fn missing_token_span(&self, found: Token) -> Span {
        if found.newline_before || found.kind == TokenKind::Eof {
            Span::empty(self.prev_end)
        } else {
            found.span
        }
    }

    // ---- describing ----

    /// "identifier `foo`", "keyword `if`", "`;`", "end of file", ...
    pub(crate) fn describe(&self, token: Token) -> String {
        let text = self.text(token);
        match token.kind {
            TokenKind::Ident if crate::grammar::is_keyword(text) => format!("keyword `{text}`"),
            TokenKind::Ident
            | TokenKind::Var
            | TokenKind::Positional
            | TokenKind::Map
            | TokenKind::Int => {
                format!("{} `{}`", token.kind.describe(), truncate(text))
            }
            TokenKind::Str => format!("string {}", truncate(text)),
            TokenKind::Unknown => format!("unknown character `{}`", text),
            kind => kind.describe().to_string(),
        }
    }

    // ---- reporting ----

    /// Records a diagnostic. A second error at the same offset as the previous
    /// one is dropped: it is a cascade of the first.
    pub(crate) fn report(&mut self, diagnostic: Diagnostic) {
        if diagnostic.severity == Severity::Error {
            if let Some(last) = self
                .diagnostics
                .iter()
                .rev()
                .find(|d| d.severity == Severity::Error)
            {
                if last.span.start == diagnostic.span.start {
                    return;
                }
            }
            self.errors += 1;
            if self.errors == MAX_ERRORS + 1 {
                self.diagnostics.push(Diagnostic::new(
                    Severity::Note,
                    codes::TOO_MANY_ERRORS,
                    format!("more than {MAX_ERRORS} errors; the rest are not shown"),
                    diagnostic.span,
                ));
            }
            if self.errors > MAX_ERRORS {
                return;
            }
        }
        self.diagnostics.push(diagnostic);
    }

    pub(crate) fn error_at(&mut self, code: &'static str, message: impl Into<String>, span: Span) {
        self.report(Diagnostic::error(code, message, span));
    }

    /// "expected {what}, found {next token}" at the next token.
    pub(crate) fn error_expected(&mut self, what: &str) {
        let found = self.peek();
        let message = format!("expected {what}, found {}", self.describe(found));
        self.error_at(codes::EXPECTED_TOKEN, message, found.span);
    }

    // ---- nesting budget ----

    /// Enters one level of nesting; false (after reporting once) when the
    /// budget is spent, in which case the caller must not recurse.
    pub(crate) fn enter(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                let span = self.peek().span;
                self.report(
                    Diagnostic::error(
                        codes::NESTING_TOO_DEEP,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                        span,
                    )
                    .with_help("split the expression or block into smaller pieces"),
                );
            }
            return false;
        }
        self.depth += 1;
        true
    }

    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Adds `n` levels for nodes a loop builds without recursing (a chain of
    /// binary operators); returns false if that exceeds the budget.
    pub(crate) fn enter_n(&mut self, n: u32) -> bool {
        if self.depth + n > MAX_DEPTH {
            return self.enter_at_limit();
        }
        self.depth += n;
        true
    }

    fn enter_at_limit(&mut self) -> bool {
        let saved = self.depth;
        self.depth = MAX_DEPTH;
        let ok = self.enter();
        self.depth = saved;
        ok
    }

    pub(crate) fn leave_n(&mut self, n: u32) {
        self.depth -= n;
    }

    // ---- recovery ----

    /// Skips tokens, keeping brackets balanced, until one of `stop` at nesting
    /// level 0 (not consumed) or an unmatched closing bracket or end of file.
    pub(crate) fn skip_until(&mut self, stop: &[TokenKind]) {
        let mut depth = 0usize;
        loop {
            let kind = self.kind();
            if kind == TokenKind::Eof {
                return;
            }
            if depth == 0 && stop.contains(&kind) {
                return;
            }
            match kind {
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => depth += 1,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                _ => {}
            }
            self.bump();
        }
    }

    /// Statement-level recovery: like `skip_until`, but a stray `)` or `]`
    /// is skipped too (it cannot close anything a statement opened); stops at
    /// an unmatched `}`, which closes the enclosing block.
    pub(crate) fn skip_statement(&mut self, stop: &[TokenKind]) {
        loop {
            self.skip_until(stop);
            match self.kind() {
                TokenKind::RParen | TokenKind::RBracket if !stop.contains(&self.kind()) => {
                    let t = self.bump();
                    let message = format!("unexpected {} with nothing to close", t.kind.describe());
                    self.report(
                        Diagnostic::error(codes::UNEXPECTED_CLOSING, message, t.span)
                            .with_suggestion(t.span, ""),
                    );
                }
                _ => return,
            }
        }
    }

    /// Final checks once the grammar is done.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        let trivia = lexer::skip_trivia(self.src, self.pos);
        if let Some(start) = trivia.unterminated_comment {
            self.report(
                Diagnostic::error(
                    codes::UNTERMINATED_COMMENT,
                    "unterminated block comment: missing `*/`",
                    Span::new(start, start + 2),
                )
                .with_help("close the comment with `*/`"),
            );
        }
        // Reports come mostly in source order; make it exact for readers.
        self.diagnostics.sort_by_key(|d| d.span.start);
        self.diagnostics
    }
}

/// Text to insert for a missing token that is worth suggesting.
fn insertion_text(kind: TokenKind) -> Option<&'static str> {
    Some(match kind {
        TokenKind::Semi => ";",
        TokenKind::RParen => ")",
        TokenKind::RBracket => "]",
        TokenKind::RBrace => "}",
        TokenKind::LParen => "(",
        TokenKind::Comma => ",",
        TokenKind::Colon => ":",
        _ => return None,
    })
}

fn truncate(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}
