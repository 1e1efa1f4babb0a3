//! Expressions: a Pratt parser over C precedence, with prefix operators and
//! casts, postfix field/index/call forms, and literal validation.

use super::types;
use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::lexer::{self, TokenKind};
use crate::parser::Parser;

pub(crate) fn expr(p: &mut Parser) -> Expr {
    expr_bp(p, 0)
}

fn infix_op(kind: TokenKind) -> Option<BinaryOp> {
    use TokenKind::*;
    Some(match kind {
        OrOr => BinaryOp::Or,
        AndAnd => BinaryOp::And,
        Pipe => BinaryOp::BitOr,
        Caret => BinaryOp::BitXor,
        Amp => BinaryOp::BitAnd,
        EqEq => BinaryOp::Eq,
        NotEq => BinaryOp::Ne,
        Lt => BinaryOp::Lt,
        Le => BinaryOp::Le,
        Gt => BinaryOp::Gt,
        Ge => BinaryOp::Ge,
        Shl => BinaryOp::Shl,
        Shr => BinaryOp::Shr,
        Plus => BinaryOp::Add,
        Minus => BinaryOp::Sub,
        Star => BinaryOp::Mul,
        Slash => BinaryOp::Div,
        Percent => BinaryOp::Mod,
        _ => return None,
    })
}

/// Where an expression that hit the nesting limit is abandoned.
const EXPR_RECOVERY: &[TokenKind] = &[TokenKind::Semi, TokenKind::Comma, TokenKind::LBrace];

fn error_expr(p: &Parser, start: u32) -> Expr {
    Expr {
        kind: ExprKind::Error,
        span: Span::new(start, p.prev_end.max(start)),
    }
}

/// Operators binding at least as tightly as `min_prec` (ternary is 0, `||` 1,
/// `*` 10); left-associative except the ternary.
fn expr_bp(p: &mut Parser, min_prec: u8) -> Expr {
    let start = p.peek().span.start;
    if !p.enter() {
        p.skip_until(EXPR_RECOVERY);
        return error_expr(p, start);
    }
    let mut lhs = unary(p);
    let mut chain = 0;
    loop {
        let t = p.peek();
        if t.kind == TokenKind::Question {
            if min_prec > 0 {
                break;
            }
            if !p.enter_n(1) {
                p.skip_until(EXPR_RECOVERY);
                break;
            }
            chain += 1;
            p.bump();
            let then_expr = expr_bp(p, 0);
            p.expect(
                TokenKind::Colon,
                "in the conditional expression `c ? a : b`",
            );
            let else_expr = expr_bp(p, 0);
            let span = lhs.span.cover(else_expr.span);
            lhs = Expr {
                kind: ExprKind::Ternary {
                    cond: Box::new(lhs),
                    then_expr: Box::new(then_expr),
                    else_expr: Box::new(else_expr),
                },
                span,
            };
            continue;
        }
        let Some(op) = infix_op(t.kind) else { break };
        let prec = op.precedence();
        if prec < min_prec {
            break;
        }
        // A `/` followed by `{` closes a predicate: `/pid == 1/ {`. It can
        // never be a division, whose right operand cannot start with `{`.
        if op == BinaryOp::Div && matches!(p.nth(1).kind, TokenKind::LBrace | TokenKind::Eof) {
            break;
        }
        if !p.enter_n(1) {
            p.skip_until(EXPR_RECOVERY);
            break;
        }
        chain += 1;
        p.bump();
        let rhs = expr_bp(p, prec + 1);
        let span = lhs.span.cover(rhs.span);
        lhs = Expr {
            kind: ExprKind::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
        };
    }
    p.leave_n(chain);
    p.leave();
    lhs
}

/// Prefix operators and casts, which bind tighter than any binary operator
/// and looser than postfix forms: `-x.y` is `-(x.y)`.
fn unary(p: &mut Parser) -> Expr {
    let t = p.peek();
    let op = match t.kind {
        TokenKind::Bang => UnaryOp::Not,
        TokenKind::Tilde => UnaryOp::BitNot,
        TokenKind::Minus => UnaryOp::Neg,
        TokenKind::Plus => UnaryOp::Plus,
        TokenKind::Star => UnaryOp::Deref,
        TokenKind::Amp => UnaryOp::AddrOf,
        TokenKind::PlusPlus => UnaryOp::PreInc,
        TokenKind::MinusMinus => UnaryOp::PreDec,
        TokenKind::LParen if types::starts_cast_type(p, 1) || types::is_named_pointer_cast(p) => {
            return cast(p);
        }
        _ => return postfix(p),
    };
    p.bump();
    if !p.enter() {
        p.skip_until(EXPR_RECOVERY);
        return error_expr(p, t.span.start);
    }
    let operand = unary(p);
    p.leave();
    if matches!(op, UnaryOp::PreInc | UnaryOp::PreDec) {
        check_increment_target(p, &operand, t.span);
    }
    Expr {
        span: t.span.cover(operand.span),
        kind: ExprKind::Unary {
            op,
            operand: Box::new(operand),
        },
    }
}

fn check_increment_target(p: &mut Parser, operand: &Expr, op_span: Span) {
    if !matches!(
        operand.kind,
        ExprKind::Var(_) | ExprKind::Map { .. } | ExprKind::Error
    ) {
        p.report(
            Diagnostic::error(
                codes::INVALID_INCREMENT_TARGET,
                format!(
                    "`{}` applies only to a `$variable` or an `@map`",
                    op_span.text(p.src)
                ),
                operand.span,
            )
            .with_label(op_span, "operator here"),
        );
    }
}

/// `(type) operand`.
fn cast(p: &mut Parser) -> Expr {
    let open = p.bump();
    let ty = types::type_expr(p);
    if !p.expect(TokenKind::RParen, "to close the cast type") {
        p.skip_until(&[TokenKind::RParen, TokenKind::Semi]);
        p.eat(TokenKind::RParen);
    }
    if !p.enter() {
        p.skip_until(EXPR_RECOVERY);
        return error_expr(p, open.span.start);
    }
    let operand = unary(p);
    p.leave();
    Expr {
        span: open.span.cover(operand.span),
        kind: ExprKind::Cast {
            ty,
            expr: Box::new(operand),
        },
    }
}

/// A primary expression followed by `.field`, `->field`, `.0`, `[index]`, `++`, `--`.
fn postfix(p: &mut Parser) -> Expr {
    let mut e = primary(p);
    let mut levels = 0;
    loop {
        let t = p.peek();
        let kind = match t.kind {
            TokenKind::Dot | TokenKind::Arrow => {
                p.bump();
                let arrow = t.kind == TokenKind::Arrow;
                let name = p.peek();
                match name.kind {
                    TokenKind::Int if !arrow => {
                        p.bump();
                        let text = p.text(name);
                        let index = match text.parse::<u32>() {
                            Ok(i) => i,
                            Err(_) => {
                                p.error_at(
                                    codes::INVALID_NUMBER,
                                    format!("`{text}` is not a tuple index"),
                                    name.span,
                                );
                                0
                            }
                        };
                        ExprKind::TupleIndex {
                            base: Box::new(e),
                            index,
                        }
                    }
                    // Field names may be keywords: `$x->if`, `args.struct`.
                    TokenKind::Ident => {
                        p.bump();
                        ExprKind::Field {
                            base: Box::new(e),
                            field: Ident {
                                name: p.text(name).to_string(),
                                span: name.span,
                            },
                            arrow,
                        }
                    }
                    _ => {
                        let what = if arrow {
                            "a field name after `->`"
                        } else {
                            "a field name or tuple index after `.`"
                        };
                        p.error_expected(what);
                        return Expr {
                            span: e.span.cover(t.span),
                            kind: ExprKind::Error,
                        };
                    }
                }
            }
            TokenKind::LBracket => {
                p.bump();
                let index = expr(p);
                if !p.expect(TokenKind::RBracket, "to close the index") {
                    p.skip_until(&[TokenKind::RBracket, TokenKind::Semi]);
                    p.eat(TokenKind::RBracket);
                }
                ExprKind::Index {
                    base: Box::new(e),
                    index: Box::new(index),
                }
            }
            TokenKind::PlusPlus | TokenKind::MinusMinus => {
                p.bump();
                check_increment_target(p, &e, t.span);
                let op = if t.kind == TokenKind::PlusPlus {
                    UnaryOp::PostInc
                } else {
                    UnaryOp::PostDec
                };
                ExprKind::Unary {
                    op,
                    operand: Box::new(e),
                }
            }
            _ => break,
        };
        let span = Span::new(start_of(&kind), p.prev_end);
        e = Expr { kind, span };
        levels += 1;
        if !p.enter_n(1) {
            levels -= 1;
            p.skip_until(EXPR_RECOVERY);
            break;
        }
    }
    p.leave_n(levels);
    e
}

fn start_of(kind: &ExprKind) -> u32 {
    match kind {
        ExprKind::Field { base, .. }
        | ExprKind::Index { base, .. }
        | ExprKind::TupleIndex { base, .. } => base.span.start,
        ExprKind::Unary { operand, .. } => operand.span.start,
        _ => 0,
    }
}

/// A `$var`, `@map` or name: what macro parameters may be.
pub(crate) fn primary_atom(p: &mut Parser) -> Expr {
    primary(p)
}

fn primary(p: &mut Parser) -> Expr {
    let t = p.peek();
    let text = p.text(t);
    let simple = |kind| Expr { kind, span: t.span };
    match t.kind {
        TokenKind::Int => int_literal(p),
        TokenKind::Str => {
            p.bump();
            simple(ExprKind::Str(string_literal(p, t.span, t.unterminated)))
        }
        TokenKind::Var => {
            p.bump();
            simple(ExprKind::Var(text[1..].to_string()))
        }
        TokenKind::Positional => {
            p.bump();
            let n = match text[1..].parse::<u64>() {
                Ok(0) => {
                    p.report(
                        Diagnostic::error(
                            codes::INVALID_POSITIONAL,
                            "positional parameters start at `$1`",
                            t.span,
                        )
                        .with_help("`$#` is the number of positional parameters"),
                    );
                    0
                }
                Ok(n) => n,
                Err(_) => {
                    p.error_at(
                        codes::INVALID_POSITIONAL,
                        format!("`{text}` is out of range"),
                        t.span,
                    );
                    0
                }
            };
            simple(ExprKind::Positional(n))
        }
        TokenKind::PositionalCount => {
            p.bump();
            simple(ExprKind::PositionalCount)
        }
        TokenKind::Map => {
            p.bump();
            let name = text[1..].to_string();
            let mut keys = Vec::new();
            if p.at(TokenKind::LBracket) {
                p.bump();
                keys = comma_list(p, TokenKind::RBracket, "map key");
            }
            Expr {
                kind: ExprKind::Map { name, keys },
                span: t.span.cover(Span::empty(p.prev_end)),
            }
        }
        TokenKind::Ident => match text {
            "true" | "false" => {
                p.bump();
                simple(ExprKind::Bool(text == "true"))
            }
            "sizeof" if p.nth_at(1, TokenKind::LParen) => sizeof(p),
            "offsetof" if p.nth_at(1, TokenKind::LParen) => offsetof(p),
            _ if super::is_keyword(text) => {
                p.error_expected("an expression");
                error_expr(p, t.span.start)
            }
            _ if p.nth_at(1, TokenKind::LParen) => {
                p.bump();
                p.bump();
                let args = comma_list(p, TokenKind::RParen, "argument");
                Expr {
                    kind: ExprKind::Call {
                        name: Ident {
                            name: text.to_string(),
                            span: t.span,
                        },
                        args,
                    },
                    span: t.span.cover(Span::empty(p.prev_end)),
                }
            }
            _ => {
                p.bump();
                if is_builtin(text) {
                    simple(ExprKind::Builtin(text.to_string()))
                } else {
                    simple(ExprKind::Ident(text.to_string()))
                }
            }
        },
        TokenKind::LParen => paren_or_tuple(p),
        _ => {
            p.error_expected("an expression");
            Expr {
                kind: ExprKind::Error,
                span: Span::empty(t.span.start),
            }
        }
    }
}

/// Comma-separated expressions up to `close` (consumed); the opener is already consumed.
fn comma_list(p: &mut Parser, close: TokenKind, what: &str) -> Vec<Expr> {
    let mut items = Vec::new();
    if p.eat(close) {
        if close == TokenKind::RBracket {
            p.error_at(
                codes::EXPECTED_TOKEN,
                "expected a map key between `[` and `]`",
                Span::new(p.prev_end - 1, p.prev_end),
            );
        }
        return items;
    }
    loop {
        items.push(expr(p));
        if p.eat(TokenKind::Comma) {
            if p.at(close) {
                let t = p.peek();
                p.error_at(
                    codes::EXPECTED_TOKEN,
                    format!(
                        "expected another {what} after `,`, found {}",
                        close.describe()
                    ),
                    t.span,
                );
                p.bump();
                return items;
            }
            continue;
        }
        if p.eat(close) {
            return items;
        }
        let t = p.peek();
        p.report(
            Diagnostic::error(
                codes::EXPECTED_TOKEN,
                format!(
                    "expected `,` or {} after {what}, found {}",
                    close.describe(),
                    p.describe(t)
                ),
                t.span,
            )
            .with_suggestion(
                Span::empty(p.prev_end),
                if close == TokenKind::RParen { ")" } else { "]" },
            ),
        );
        p.skip_until(&[close, TokenKind::Semi]);
        p.eat(close);
        return items;
    }
}

fn paren_or_tuple(p: &mut Parser) -> Expr {
    let open = p.bump();
    if p.at(TokenKind::RParen) {
        let close = p.bump();
        let span = open.span.cover(close.span);
        p.error_at(
            codes::EXPECTED_TOKEN,
            "expected an expression inside `()`",
            span,
        );
        return Expr {
            kind: ExprKind::Error,
            span,
        };
    }
    let first = expr(p);
    if p.at(TokenKind::Comma) {
        p.bump();
        let mut elems = vec![first];
        elems.extend(comma_list(p, TokenKind::RParen, "tuple element"));
        return Expr {
            kind: ExprKind::Tuple(elems),
            span: open.span.cover(Span::empty(p.prev_end)),
        };
    }
    if !p.eat(TokenKind::RParen) {
        let t = p.peek();
        p.report(
            Diagnostic::error(
                codes::EXPECTED_TOKEN,
                format!("expected `)` to close `(`, found {}", p.describe(t)),
                t.span,
            )
            .with_label(open.span, "opened here")
            .with_suggestion(Span::empty(p.prev_end), ")"),
        );
        p.skip_until(&[TokenKind::RParen, TokenKind::Semi]);
        p.eat(TokenKind::RParen);
    }
    // Parentheses only group: the node keeps its own span.
    first
}

fn sizeof(p: &mut Parser) -> Expr {
    let start = p.bump().span.start;
    p.bump(); // `(`
    let arg = type_or_expr(p);
    if !p.expect(TokenKind::RParen, "to close `sizeof(`") {
        p.skip_until(&[TokenKind::RParen, TokenKind::Semi]);
        p.eat(TokenKind::RParen);
    }
    Expr {
        kind: ExprKind::Sizeof(arg),
        span: Span::new(start, p.prev_end),
    }
}

fn type_or_expr(p: &mut Parser) -> TypeOrExpr {
    if types::starts_cast_type(p, 0) {
        TypeOrExpr::Type(types::type_expr(p))
    } else {
        TypeOrExpr::Expr(Box::new(expr(p)))
    }
}

/// `offsetof(struct x, a.b.c)` or `offsetof(expr, field)`.
fn offsetof(p: &mut Parser) -> Expr {
    let start = p.bump().span.start;
    p.bump(); // `(`
    let of = type_or_expr(p);
    let mut fields = Vec::new();
    if p.expect(
        TokenKind::Comma,
        "between the type and the field in `offsetof`",
    ) {
        loop {
            let t = p.peek();
            if t.kind != TokenKind::Ident {
                p.error_expected("a field name");
                break;
            }
            p.bump();
            fields.push(Ident {
                name: p.text(t).to_string(),
                span: t.span,
            });
            if !p.eat(TokenKind::Dot) {
                break;
            }
        }
    }
    if !p.expect(TokenKind::RParen, "to close `offsetof(`") {
        p.skip_until(&[TokenKind::RParen, TokenKind::Semi]);
        p.eat(TokenKind::RParen);
    }
    Expr {
        kind: ExprKind::Offsetof { of, fields },
        span: Span::new(start, p.prev_end),
    }
}

fn string_literal(p: &mut Parser, span: Span, unterminated: bool) -> StrLit {
    let text = span.text(p.src);
    let inner_end = if unterminated {
        text.len()
    } else {
        text.len() - 1
    };
    let raw = &text[1..inner_end.max(1)];
    let (value, errors) = lexer::decode_string(raw);
    for (start, end, message) in errors {
        let offset = span.start + 1;
        p.report(
            Diagnostic::error(
                codes::INVALID_ESCAPE,
                message,
                Span::new(offset + start as u32, offset + end as u32),
            )
            .with_help("valid escapes: \\n \\t \\r \\\" \\\\ \\NNN (octal) \\xHH (hex)"),
        );
    }
    StrLit {
        raw: raw.to_string(),
        value,
    }
}

/// Integer literals as bpftrace reads them: decimal with `_` separators,
/// octal with a leading `0`, hex `0x..`, `MeN` meaning M * 10^N, and C suffixes
/// (`u`, `l`, `ul`, `ll`, `ull`) that do not change the value.
pub(crate) fn int_literal(p: &mut Parser) -> Expr {
    let t = p.bump();
    let raw = p.text(t);
    let value = match parse_int(raw) {
        Ok(v) => v,
        Err((code, message, help)) => {
            let mut diag = Diagnostic::error(code, message, t.span);
            if let Some(help) = help {
                diag = diag.with_help(help);
            }
            p.report(diag);
            0
        }
    };
    Expr {
        kind: ExprKind::Int(IntLit {
            value,
            raw: raw.to_string(),
        }),
        span: t.span,
    }
}

type IntError = (&'static str, String, Option<&'static str>);

pub(crate) fn parse_int(raw: &str) -> Result<u64, IntError> {
    let overflow = || {
        (
            codes::INTEGER_OVERFLOW,
            format!("`{raw}` does not fit in 64 bits"),
            None,
        )
    };
    let invalid = |why: &str, help: Option<&'static str>| {
        (
            codes::INVALID_NUMBER,
            format!("invalid number `{raw}`: {why}"),
            help,
        )
    };
    if let Some(hex) = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        if hex.is_empty() {
            return Err(invalid("no digits after `0x`", None));
        }
        if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(invalid(&format!("`{bad}` is not a hex digit"), None));
        }
        return u64::from_str_radix(hex, 16).map_err(|_| overflow());
    }
    // Split off a C suffix: [uU]?[lL]{0,2} (only the combinations C allows).
    let body_end = raw
        .trim_end_matches(['l', 'L'])
        .trim_end_matches(['u', 'U'])
        .len();
    let (body, suffix) = raw.split_at(body_end);
    let suffix_ok = matches!(
        suffix.to_ascii_lowercase().as_str(),
        "" | "u" | "l" | "ul" | "ll" | "ull"
    );
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits_ok = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'_') && !s.ends_with('_')
    };
    if !suffix_ok || !digits_ok(mantissa) || exponent.is_some_and(|e| !digits_ok(e)) {
        let tail = raw.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
        let help = if ["ns", "us", "ms", "s", "m", "h", "d"].contains(&tail) {
            Some("duration suffixes such as `1ms` need bpftrace 0.24 or later; write the value in nanoseconds")
        } else {
            None
        };
        let why = if raw.ends_with('_') {
            "a `_` separator must be followed by a digit".to_string()
        } else if tail.is_empty() {
            "misplaced `_`".to_string()
        } else {
            format!("unexpected `{tail}` after the digits")
        };
        return Err(invalid(&why, help));
    }
    let clean = |s: &str| s.replace('_', "");
    let mantissa = clean(mantissa);
    let mut value = if mantissa.len() > 1 && mantissa.starts_with('0') && exponent.is_none() {
        if let Some(bad) = mantissa.chars().find(|c| *c > '7') {
            return Err(invalid(
                &format!("`{bad}` is not an octal digit (a leading 0 means octal)"),
                None,
            ));
        }
        u64::from_str_radix(&mantissa, 8).map_err(|_| overflow())?
    } else {
        mantissa.parse::<u64>().map_err(|_| overflow())?
    };
    if let Some(exponent) = exponent {
        let exponent: u32 = clean(exponent).parse().map_err(|_| overflow())?;
        let scale = 10u64.checked_pow(exponent).ok_or_else(overflow)?;
        value = value.checked_mul(scale).ok_or_else(overflow)?;
    }
    Ok(value)
}
