//! Type expressions in casts, `sizeof`, `offsetof`, `let` and function signatures.

use crate::ast::*;
use crate::lexer::TokenKind;
use crate::parser::Parser;

/// Whether the `n`th token starts a type that makes `( ... )` a cast: an
/// integer type name or `struct`/`union`/`enum`. A bare typedef name is not
/// enough, since `(x)` is then ambiguous.
pub(crate) fn starts_cast_type(p: &mut Parser, n: usize) -> bool {
    let t = p.nth(n);
    t.kind == TokenKind::Ident && {
        let word = p.text(t);
        INT_TYPES.contains(&word) || matches!(word, "struct" | "union" | "enum")
    }
}

/// `(name *...)`: a typedef pointer cast, unambiguous because `)` cannot follow `*`
/// in an expression.
pub(crate) fn is_named_pointer_cast(p: &mut Parser) -> bool {
    let name = p.nth(1);
    if name.kind != TokenKind::Ident || crate::grammar::is_keyword(p.text(name)) {
        return false;
    }
    let mut i = 2;
    if !p.nth_at(i, TokenKind::Star) {
        return false;
    }
    while p.nth_at(i, TokenKind::Star) {
        i += 1;
        if i > 8 {
            return false;
        }
    }
    p.nth_at(i, TokenKind::RParen)
}

/// A type: a name (`int8`, `string`, `my_t`) or `struct NAME`, then any
/// number of `*` and `[N]` suffixes.
pub(crate) fn type_expr(p: &mut Parser) -> TypeExpr {
    let t = p.peek();
    let mut ty = if t.kind != TokenKind::Ident {
        p.error_expected("a type such as `int64` or `struct task_struct *`");
        return TypeExpr {
            kind: TypeKind::Error,
            span: Span::empty(t.span.start),
        };
    } else {
        p.bump();
        let word = p.text(t);
        let keyword = match word {
            "struct" => Some(RecordKeyword::Struct),
            "union" => Some(RecordKeyword::Union),
            "enum" => Some(RecordKeyword::Enum),
            _ => None,
        };
        match keyword {
            Some(keyword) => {
                let name = p.peek();
                if name.kind == TokenKind::Ident {
                    p.bump();
                    TypeExpr {
                        kind: TypeKind::Record {
                            keyword,
                            name: p.text(name).to_string(),
                        },
                        span: t.span.cover(name.span),
                    }
                } else {
                    p.error_expected(&format!("a name after `{word}`"));
                    TypeExpr {
                        kind: TypeKind::Error,
                        span: t.span,
                    }
                }
            }
            None => TypeExpr {
                kind: TypeKind::Named(word.to_string()),
                span: t.span,
            },
        }
    };
    // Suffixes nest the type one level each; a handful is plenty, and the
    // bound keeps the tree shallow.
    for _ in 0..16 {
        if p.at(TokenKind::Star) {
            let star = p.bump();
            let span = ty.span.cover(star.span);
            ty = TypeExpr {
                kind: TypeKind::Pointer(Box::new(ty)),
                span,
            };
        } else if p.at(TokenKind::LBracket) {
            p.bump();
            let len = if p.at(TokenKind::Int) {
                let lit = super::exprs::int_literal(p);
                match lit.kind {
                    ExprKind::Int(i) => Some(i.value),
                    _ => None,
                }
            } else {
                None
            };
            p.expect(TokenKind::RBracket, "to close the array type");
            let span = ty.span.cover(prev_end_span(p));
            ty = TypeExpr {
                kind: TypeKind::Array {
                    elem: Box::new(ty),
                    len,
                },
                span,
            };
        } else {
            break;
        }
    }
    ty
}

/// An empty span at the end of the last consumed token.
fn prev_end_span(p: &Parser) -> Span {
    Span::empty(p.prev_end)
}
