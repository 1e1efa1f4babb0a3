//! Blocks and statements, including the `assume`/`assert` annotations and
//! targeted messages for common mistakes (missing `;`, C-style `for`,
//! `if` without braces, `printf "..."`).

use super::{attach, exprs, items, types};
use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::lexer::TokenKind;
use crate::parser::Parser;

/// `{ statements }`. The cursor must be at `{`.
pub(crate) fn block(p: &mut Parser) -> Block {
    let open = p.bump();
    let mut stmts = Vec::new();
    if !p.enter() {
        // Too deep: skip to the matching `}` without building anything.
        p.skip_until(&[]);
        p.eat(TokenKind::RBrace);
        return Block {
            stmts,
            span: open.span.cover(Span::empty(p.prev_end)),
        };
    }
    loop {
        let t = p.peek();
        match t.kind {
            TokenKind::RBrace => {
                p.bump();
                break;
            }
            TokenKind::Eof => {
                p.report(
                    Diagnostic::error(
                        codes::UNCLOSED_DELIMITER,
                        "expected `}` to close this block, found end of file",
                        p.missing_token_span(t),
                    )
                    .with_label(open.span, "block opened here")
                    .with_suggestion(Span::empty(p.prev_end), "\n}"),
                );
                break;
            }
            TokenKind::Semi => {
                p.bump();
                p.report(
                    Diagnostic::error(
                        codes::STRAY_SEMICOLON,
                        "unexpected `;`: empty statement",
                        t.span,
                    )
                    .with_help("bpftrace does not allow empty statements")
                    .with_suggestion(t.span, ""),
                );
                continue;
            }
            _ => {}
        }
        if t.newline_before && attach::looks_like_attach_point(p) {
            // The next probe starts here: this block lost its `}`.
            p.report(
                Diagnostic::error(
                    codes::UNCLOSED_DELIMITER,
                    format!(
                        "expected `}}` to close this block before the next probe, found {}",
                        p.describe(t)
                    ),
                    t.span,
                )
                .with_label(open.span, "block opened here")
                .with_suggestion(Span::empty(p.prev_end), "\n}"),
            );
            break;
        }
        let start = t.span.start;
        let stmt = statement(p);
        let block_like = is_block_like(&stmt.kind);
        stmts.push(stmt);
        if p.peek().span.start == start {
            // The statement consumed nothing: skip to a point we can resume from.
            p.skip_statement(&[TokenKind::Semi, TokenKind::RBrace]);
            p.eat(TokenKind::Semi);
            continue;
        }
        if block_like {
            let semi = p.peek();
            if semi.kind == TokenKind::Semi {
                p.bump();
                p.report(
                    Diagnostic::error(
                        codes::STRAY_SEMICOLON,
                        "unexpected `;` after a block",
                        semi.span,
                    )
                    .with_help("statements ending in `}` take no `;` in bpftrace")
                    .with_suggestion(semi.span, ""),
                );
            }
            continue;
        }
        match p.kind() {
            TokenKind::Semi => {
                p.bump();
            }
            TokenKind::RBrace | TokenKind::Eof => {}
            _ => {
                let next = p.peek();
                p.report(
                    Diagnostic::error(
                        codes::MISSING_SEMICOLON,
                        format!(
                            "expected `;` or `}}` after statement, found {}",
                            p.describe(next)
                        ),
                        p.missing_token_span(next),
                    )
                    .with_suggestion(Span::empty(p.prev_end), ";"),
                );
                // On a new line it is most likely just the `;` that is missing.
                if !next.newline_before {
                    p.skip_statement(&[TokenKind::Semi, TokenKind::RBrace]);
                    p.eat(TokenKind::Semi);
                }
            }
        }
    }
    p.leave();
    Block {
        stmts,
        span: open.span.cover(Span::empty(p.prev_end)),
    }
}

/// A block where one is required; reports and returns an empty block otherwise.
pub(crate) fn block_or_error(p: &mut Parser, context: &str) -> Block {
    if p.at(TokenKind::LBrace) {
        return block(p);
    }
    p.error_expected(&format!("`{{` {context}"));
    items::recover_top_level(p);
    Block {
        stmts: Vec::new(),
        span: Span::empty(p.prev_end),
    }
}

fn is_block_like(kind: &StmtKind) -> bool {
    matches!(
        kind,
        StmtKind::If(_)
            | StmtKind::Unroll { .. }
            | StmtKind::While { .. }
            | StmtKind::For { .. }
            | StmtKind::Block(_)
    )
}

pub(crate) fn statement(p: &mut Parser) -> Stmt {
    let start = p.peek().span.start;
    if !p.enter() {
        p.skip_until(&[TokenKind::Semi, TokenKind::RBrace]);
        return Stmt {
            kind: StmtKind::Error,
            span: Span::new(start, p.prev_end.max(start)),
        };
    }
    let kind = statement_kind(p);
    p.leave();
    Stmt {
        kind,
        span: Span::new(start, p.prev_end.max(start)),
    }
}

fn statement_kind(p: &mut Parser) -> StmtKind {
    let t = p.peek();
    match t.kind {
        TokenKind::LBrace => return StmtKind::Block(block(p)),
        TokenKind::Hash => {
            p.report(
                Diagnostic::error(
                    codes::PREPROCESSOR_IN_BLOCK,
                    "preprocessor lines are only allowed at the top of the program",
                    t.span,
                )
                .with_help("move `#include`/`#define` lines before the first probe"),
            );
            let eol = p.src[t.span.start as usize..]
                .find('\n')
                .map_or(p.src.len(), |i| t.span.start as usize + i);
            p.jump_to(eol);
            return StmtKind::Error;
        }
        TokenKind::Ident => {}
        _ => return expr_or_assign(p),
    }
    match p.text(t) {
        "if" => StmtKind::If(if_stmt(p)),
        "unroll" => {
            p.bump();
            let count = paren_expr(p, "unroll");
            if !matches!(
                count.kind,
                ExprKind::Int(_) | ExprKind::Positional(_) | ExprKind::Error
            ) {
                p.report(Diagnostic::error(
                    codes::INVALID_UNROLL_COUNT,
                    "the `unroll` count must be an integer literal or a positional parameter",
                    count.span,
                ));
            }
            let body = body_block(p, "unroll");
            StmtKind::Unroll { count, body }
        }
        "while" => {
            p.bump();
            let cond = paren_expr(p, "while");
            let body = body_block(p, "while");
            StmtKind::While { cond, body }
        }
        "for" => for_stmt(p),
        "return" => {
            p.bump();
            if matches!(
                p.kind(),
                TokenKind::Semi | TokenKind::RBrace | TokenKind::Eof
            ) {
                StmtKind::Return(None)
            } else {
                StmtKind::Return(Some(exprs::expr(p)))
            }
        }
        "break" => {
            p.bump();
            StmtKind::Break
        }
        "continue" => {
            p.bump();
            StmtKind::Continue
        }
        "let" => let_stmt(p),
        "assume" | "assert" if p.nth_at(1, TokenKind::LParen) => annotation(p),
        "else" => {
            p.report(
                Diagnostic::error(
                    codes::EXPECTED_TOKEN,
                    "`else` without a matching `if`",
                    t.span,
                )
                .with_help("`else` must follow the `}` of an `if` block directly"),
            );
            p.bump();
            if p.at_word("if") {
                StmtKind::If(if_stmt(p))
            } else if p.at(TokenKind::LBrace) {
                StmtKind::Block(block(p))
            } else {
                StmtKind::Error
            }
        }
        _ => expr_or_assign(p),
    }
}

fn if_stmt(p: &mut Parser) -> IfStmt {
    let start = p.bump().span.start;
    let cond = paren_expr(p, "if");
    let then_block = body_block(p, "if");
    let else_branch = if p.at_word("else") {
        p.bump();
        if p.at_word("if") {
            if p.enter() {
                let nested = if_stmt(p);
                p.leave();
                Some(ElseBranch::If(Box::new(nested)))
            } else {
                p.skip_until(&[TokenKind::RBrace]);
                None
            }
        } else {
            Some(ElseBranch::Block(body_block(p, "else")))
        }
    } else {
        None
    };
    IfStmt {
        cond,
        then_block,
        else_branch,
        span: Span::new(start, p.prev_end),
    }
}

/// `( expr )` after `if`/`while`/`unroll`; without the parentheses the
/// expression is still parsed (up to `{`) so the body can be checked.
fn paren_expr(p: &mut Parser, keyword: &str) -> Expr {
    if p.eat(TokenKind::LParen) {
        let e = exprs::expr(p);
        if !p.expect(
            TokenKind::RParen,
            &format!("to close the `{keyword}` condition"),
        ) {
            p.skip_until(&[TokenKind::RParen, TokenKind::LBrace, TokenKind::Semi]);
            p.eat(TokenKind::RParen);
        }
        return e;
    }
    let next = p.peek();
    let e = exprs::expr(p);
    let text = e.span.text(p.src);
    let mut diag = Diagnostic::error(
        codes::PARENS_REQUIRED,
        format!("expected `(` after `{keyword}`, found {}", p.describe(next)),
        next.span,
    )
    .with_help(format!(
        "bpftrace needs parentheses: `{keyword} (...) {{ ... }}`"
    ));
    if !text.is_empty() {
        diag = diag.with_suggestion(e.span, format!("({text})"));
    }
    p.report(diag);
    e
}

/// The `{ }` body of `if`/`else`/`while`/`unroll`/`for`. Without braces, one
/// statement is parsed as the body so that the rest of the program still lines up.
fn body_block(p: &mut Parser, keyword: &str) -> Block {
    if p.at(TokenKind::LBrace) {
        return block(p);
    }
    let next = p.peek();
    p.report(
        Diagnostic::error(
            codes::BRACES_REQUIRED,
            format!(
                "expected `{{` after `{keyword}`, found {}",
                p.describe(next)
            ),
            next.span,
        )
        .with_help(format!(
            "bpftrace needs braces around the body of `{keyword}`, even for one statement"
        )),
    );
    if matches!(
        next.kind,
        TokenKind::RBrace | TokenKind::Eof | TokenKind::Semi
    ) {
        return Block {
            stmts: Vec::new(),
            span: Span::empty(p.prev_end),
        };
    }
    let stmt = statement(p);
    p.eat(TokenKind::Semi);
    Block {
        span: stmt.span,
        stmts: vec![stmt],
    }
}

/// `for ($kv : @map) { }` or `for ($i : a..b) { }`.
fn for_stmt(p: &mut Parser) -> StmtKind {
    let keyword = p.bump();
    let open = p.peek();
    if !p.eat(TokenKind::LParen) {
        p.report(
            Diagnostic::error(
                codes::PARENS_REQUIRED,
                format!("expected `(` after `for`, found {}", p.describe(open)),
                open.span,
            )
            .with_help("write `for ($kv : @map) { ... }`"),
        );
        p.skip_until(&[TokenKind::LBrace, TokenKind::Semi]);
        if p.at(TokenKind::LBrace) {
            block(p);
        }
        return StmtKind::Error;
    }
    let var = p.peek();
    if var.kind != TokenKind::Var || !p.nth_at(1, TokenKind::Colon) {
        let looks_c_style = {
            // Look for a `;` before the closing `)`: `for (init; cond; step)`.
            let mut i = 0;
            let mut depth = 0;
            loop {
                let t = p.nth(i);
                match t.kind {
                    TokenKind::LParen => depth += 1,
                    TokenKind::RParen if depth == 0 => break false,
                    TokenKind::RParen => depth -= 1,
                    TokenKind::Semi => break true,
                    TokenKind::LBrace | TokenKind::RBrace | TokenKind::Eof => break false,
                    _ => {}
                }
                i += 1;
                if i > 64 {
                    break false;
                }
            }
        };
        let span = keyword.span.cover(var.span);
        if looks_c_style {
            p.report(
                Diagnostic::error(
                    codes::C_STYLE_FOR,
                    "bpftrace has no C-style `for (init; condition; step)` loop",
                    span,
                )
                .with_help(
                    "iterate a range with `for ($i : 0..N) { ... }` (bpftrace 0.24+), \
                     or use `while (...) { ... }` or `unroll (N) { ... }`",
                ),
            );
        } else {
            p.report(
                Diagnostic::error(
                    codes::EXPECTED_TOKEN,
                    format!(
                        "expected `$variable :` after `for (`, found {}",
                        p.describe(var)
                    ),
                    var.span,
                )
                .with_help("write `for ($kv : @map) { ... }` or `for ($i : 0..10) { ... }`"),
            );
        }
        // Skip the header, then the body, so that what follows parses cleanly.
        p.skip_until(&[TokenKind::LBrace]);
        p.eat(TokenKind::RParen);
        if p.at(TokenKind::LBrace) {
            block(p);
        }
        return StmtKind::Error;
    }
    p.bump();
    p.bump(); // `:`
    let var = Ident {
        name: p.text(var).trim_start_matches('$').to_string(),
        span: var.span,
    };
    let first = exprs::expr(p);
    let iter = if p.eat(TokenKind::DotDot) {
        let end = exprs::expr(p);
        ForIter::Range { start: first, end }
    } else {
        ForIter::Expr(first)
    };
    if !p.expect(TokenKind::RParen, "to close the `for` header") {
        p.skip_until(&[TokenKind::RParen, TokenKind::LBrace]);
        p.eat(TokenKind::RParen);
    }
    let body = body_block(p, "for");
    StmtKind::For { var, iter, body }
}

/// `let $x;`, `let $x: type;`, `let $x = e;`, `let $x: type = e;`.
fn let_stmt(p: &mut Parser) -> StmtKind {
    p.bump();
    let var = p.peek();
    if var.kind != TokenKind::Var {
        let message = if var.kind == TokenKind::Map {
            format!(
                "`let` declares `$` variables, found {}; maps need no declaration",
                p.describe(var)
            )
        } else {
            format!(
                "expected a `$variable` after `let`, found {}",
                p.describe(var)
            )
        };
        p.error_at(codes::EXPECTED_TOKEN, message, var.span);
        p.skip_until(&[TokenKind::Semi, TokenKind::RBrace]);
        return StmtKind::Error;
    }
    p.bump();
    let var = Ident {
        name: p.text(var).trim_start_matches('$').to_string(),
        span: var.span,
    };
    let ty = if p.eat(TokenKind::Colon) {
        Some(types::type_expr(p))
    } else {
        None
    };
    let init = if p.eat(TokenKind::Assign) {
        Some(exprs::expr(p))
    } else {
        None
    };
    StmtKind::Let { var, ty, init }
}

/// `assume(cond)`, `assert(cond)`, `assert(cond, "message")`.
fn annotation(p: &mut Parser) -> StmtKind {
    let keyword = p.bump();
    let is_assert = p.text(keyword) == "assert";
    p.bump(); // `(`
    let cond = exprs::expr(p);
    let mut message = None;
    if p.eat(TokenKind::Comma) {
        let m = exprs::expr(p);
        match m.kind {
            ExprKind::Str(s) if is_assert => message = Some(s),
            _ => {
                let text = if is_assert {
                    "the second argument of `assert` must be a string literal"
                } else {
                    "`assume` takes exactly one condition"
                };
                p.error_at(codes::EXPECTED_TOKEN, text, m.span);
            }
        }
        if p.at(TokenKind::Comma) {
            let extra = p.peek();
            p.error_at(
                codes::EXPECTED_TOKEN,
                format!("`{}` takes at most two arguments", p.text(keyword)),
                extra.span,
            );
            p.skip_until(&[TokenKind::RParen, TokenKind::Semi]);
        }
    }
    if !p.expect(
        TokenKind::RParen,
        &format!("to close `{}(`", p.text(keyword)),
    ) {
        p.skip_until(&[TokenKind::RParen, TokenKind::Semi, TokenKind::RBrace]);
        p.eat(TokenKind::RParen);
    }
    if is_assert {
        StmtKind::Assert { cond, message }
    } else {
        StmtKind::Assume(cond)
    }
}

fn assign_op(kind: TokenKind) -> Option<AssignOp> {
    use TokenKind::*;
    Some(match kind {
        Assign => AssignOp::Assign,
        PlusAssign => AssignOp::Add,
        MinusAssign => AssignOp::Sub,
        StarAssign => AssignOp::Mul,
        SlashAssign => AssignOp::Div,
        PercentAssign => AssignOp::Mod,
        AmpAssign => AssignOp::BitAnd,
        PipeAssign => AssignOp::BitOr,
        CaretAssign => AssignOp::BitXor,
        ShlAssign => AssignOp::Shl,
        ShrAssign => AssignOp::Shr,
        _ => return None,
    })
}

fn expr_or_assign(p: &mut Parser) -> StmtKind {
    let target = exprs::expr(p);
    if let Some(op) = assign_op(p.kind()) {
        let op_token = p.bump();
        match &target.kind {
            ExprKind::Var(_) | ExprKind::Map { .. } | ExprKind::Error => {}
            kind => {
                let (message, help) = match kind {
                    ExprKind::TupleIndex { .. } => (
                        "tuples cannot be changed once created",
                        "build a new tuple and assign that instead",
                    ),
                    ExprKind::Builtin(_) => (
                        "cannot assign to a builtin",
                        "store the value in a `$variable` or an `@map`",
                    ),
                    _ => (
                        "only `$variables` and `@maps` can be assigned to",
                        "store the value in a `$variable` or an `@map`",
                    ),
                };
                p.report(
                    Diagnostic::error(codes::INVALID_ASSIGNMENT_TARGET, message, target.span)
                        .with_label(op_token.span, "assignment here")
                        .with_help(help),
                );
            }
        }
        let value = exprs::expr(p);
        return StmtKind::Assign { target, op, value };
    }
    // `printf "x", 1;`: a function name followed by its arguments without `(`.
    if let ExprKind::Ident(name) | ExprKind::Builtin(name) = &target.kind {
        let next = p.peek();
        let argument_like = matches!(
            next.kind,
            TokenKind::Str
                | TokenKind::Int
                | TokenKind::Var
                | TokenKind::Map
                | TokenKind::Ident
                | TokenKind::Positional
        );
        if argument_like && !next.newline_before {
            p.skip_until(&[TokenKind::Semi, TokenKind::RBrace]);
            let args = Span::new(next.span.start, p.prev_end.max(next.span.start));
            p.report(
                Diagnostic::error(
                    codes::CALL_WITHOUT_PARENS,
                    format!("`{name}` must be called with parentheses"),
                    target.span.cover(next.span),
                )
                .with_help(format!(
                    "write `{name}(...)`, e.g. `printf(\"%d\\n\", pid)`"
                ))
                .with_suggestion(
                    Span::new(target.span.end, args.end),
                    format!("({})", args.text(p.src)),
                ),
            );
        }
    }
    StmtKind::Expr(target)
}
