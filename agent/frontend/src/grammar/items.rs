//! Top-level items: preprocessor lines, C definitions, `config`, probes,
//! functions and macros, and recovery between them.

use super::{attach, exprs, stmts, types};
use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::lexer::{self, TokenKind};
use crate::parser::Parser;

pub(crate) fn program(p: &mut Parser) -> Program {
    let mut items = Vec::new();
    // Where the first config block and first probe/function were, for the
    // order bpftrace requires: C text, then config, then probes.
    let mut first_config: Option<Span> = None;
    let mut first_code: Option<Span> = None;
    loop {
        let token = p.peek();
        let before = p.raw_pos();
        let item = match token.kind {
            TokenKind::Eof => break,
            TokenKind::Hash => preprocessor(p),
            TokenKind::Ident => {
                let word = p.text(token);
                match word {
                    "struct" | "union" | "enum" | "typedef" => c_definition(p),
                    "config" if p.nth_at(1, TokenKind::Assign) => config(p),
                    "fn" if p.nth_at(1, TokenKind::Ident) => function(p),
                    "macro" if p.nth_at(1, TokenKind::Ident) => macro_def(p),
                    "import" | "let" => unsupported_item(p, word),
                    _ => probe(p),
                }
            }
            TokenKind::RBrace => {
                p.bump();
                p.report(
                    Diagnostic::error(
                        codes::UNEXPECTED_CLOSING,
                        "unexpected `}` with no block to close",
                        token.span,
                    )
                    .with_suggestion(token.span, ""),
                );
                Item {
                    kind: ItemKind::Error,
                    span: token.span,
                }
            }
            TokenKind::Semi => {
                p.bump();
                p.report(
                    Diagnostic::error(
                        codes::STRAY_SEMICOLON,
                        "unexpected `;` between probes",
                        token.span,
                    )
                    .with_suggestion(token.span, ""),
                );
                Item {
                    kind: ItemKind::Error,
                    span: token.span,
                }
            }
            _ => probe(p),
        };
        check_order(p, &item, &mut first_config, &mut first_code);
        items.push(item);
        if p.raw_pos() == before && p.peek().span.start == token.span.start {
            // Nothing consumed: skip a token so the loop always ends.
            p.bump();
        }
    }
    Program {
        items,
        span: Span::new(0, p.src.len() as u32),
    }
}

/// bpftrace reads C definitions and preprocessor lines first, then an optional
/// config block, then probes and functions; anything else is a syntax error.
fn check_order(
    p: &mut Parser,
    item: &Item,
    first_config: &mut Option<Span>,
    first_code: &mut Option<Span>,
) {
    let span = item.span;
    match &item.kind {
        ItemKind::Preprocessor(pre) if pre.kind == PreprocessorKind::Shebang => {}
        ItemKind::Preprocessor(_) | ItemKind::CDefinition(_) => {
            if let Some(later) = first_config.or(*first_code) {
                p.report(
                    Diagnostic::error(
                        codes::ITEM_ORDER,
                        "C definitions and preprocessor lines must come before any config block or probe",
                        span,
                    )
                    .with_label(later, "this comes first"),
                );
            }
        }
        ItemKind::Config(_) => {
            if let Some(code) = *first_code {
                p.report(
                    Diagnostic::error(
                        codes::ITEM_ORDER,
                        "the config block must come before any probe or function",
                        span,
                    )
                    .with_label(code, "first probe or function"),
                );
            }
            first_config.get_or_insert(span);
        }
        ItemKind::Probe(_) | ItemKind::Function(_) | ItemKind::Macro(_) => {
            // Point at the header line, not the whole probe.
            let line_end = p.src[span.start as usize..]
                .find('\n')
                .map_or(span.end, |i| span.start + i as u32);
            first_code.get_or_insert(Span::new(span.start, line_end.min(span.end)));
        }
        ItemKind::Error => {}
    }
}

/// A `#` line, through `\` continuations, verbatim.
fn preprocessor(p: &mut Parser) -> Item {
    let start = p.peek().span.start as usize;
    let bytes = p.src.as_bytes();
    let mut end = start;
    let mut continuation = None;
    while end < bytes.len() && bytes[end] != b'\n' {
        if bytes[end] == b'\\' && bytes.get(end + 1) == Some(&b'\n') {
            continuation.get_or_insert(end);
            end += 2;
        } else {
            end += 1;
        }
    }
    if let Some(at) = continuation {
        // Consumed anyway, so the continued lines do not parse as probes.
        p.report(
            Diagnostic::error(
                codes::UNSUPPORTED_SYNTAX,
                "bpftrace reads a preprocessor directive as one line: `\\` line continuations are not supported",
                Span::new(at as u32, at as u32 + 1),
            )
            .with_help("put the whole directive on one line"),
        );
    }
    // A CRLF file's `\r` belongs to the line ending, not the directive.
    let text = p.src[start..end].trim_end_matches('\r').to_string();
    p.jump_to(end);
    let directive = text[1..]
        .trim_start()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    let kind = if text.starts_with("#!") {
        PreprocessorKind::Shebang
    } else {
        match directive {
            "include" => PreprocessorKind::Include,
            "define" => PreprocessorKind::Define,
            "if" | "ifdef" | "ifndef" | "elif" | "else" | "endif" => PreprocessorKind::Conditional,
            _ => PreprocessorKind::Other,
        }
    };
    let span = Span::new(start as u32, (start + text.len()) as u32);
    Item {
        kind: ItemKind::Preprocessor(Preprocessor { kind, text }),
        span,
    }
}

/// `struct`/`union`/`enum` definitions (through the closing `}` and an optional
/// `;`) and `typedef`s (through `;`), kept verbatim for bpftrace's C parser.
fn c_definition(p: &mut Parser) -> Item {
    let keyword = p.bump();
    let kind = match p.text(keyword) {
        "struct" => CDefinitionKind::Struct,
        "union" => CDefinitionKind::Union,
        "enum" => CDefinitionKind::Enum,
        _ => CDefinitionKind::Typedef,
    };
    let start = keyword.span.start as usize;
    let src = p.src;
    let bytes = src.as_bytes();
    let mut i = keyword.span.end as usize;
    let mut depth = 0usize;
    let mut end = None;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = src[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |c| i + 2 + c + 2);
                continue;
            }
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => depth += 1,
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 && kind != CDefinitionKind::Typedef {
                    let mut j = i + 1;
                    while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                        j += 1;
                    }
                    if bytes.get(j) == Some(&b';') {
                        end = Some(j + 1);
                        break;
                    }
                    // `} __attribute__((packed));` still belongs to the definition.
                    if !src[j..].starts_with("__attribute") {
                        end = Some(i + 1);
                        break;
                    }
                }
            }
            b';' if depth == 0 => {
                end = Some(i + 1);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let end = match end {
        Some(end) => end,
        None => {
            p.report(
                Diagnostic::error(
                    codes::UNTERMINATED_C_DEFINITION,
                    format!("this `{}` definition never ends", p.text(keyword)),
                    keyword.span,
                )
                .with_help("a C definition ends with `};` (or `;` for a typedef)"),
            );
            bytes.len()
        }
    };
    let end = end.min(bytes.len());
    p.jump_to(end);
    let text = src[start..end].to_string();
    let name = c_definition_name(kind, &text);
    Item {
        kind: ItemKind::CDefinition(CDefinition { kind, name, text }),
        span: Span::new(start as u32, end as u32),
    }
}

/// The tag after `struct`/`union`/`enum`, or (best effort) the last name before
/// a typedef's `;`.
fn c_definition_name(kind: CDefinitionKind, text: &str) -> Option<String> {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty() && !w.as_bytes()[0].is_ascii_digit())
            .map(str::to_string)
            .collect()
    };
    match kind {
        CDefinitionKind::Typedef => {
            let tail = text.rsplit('}').next().unwrap_or(text);
            words(tail).pop().filter(|w| w != "typedef")
        }
        _ => {
            let head = text.split(['{', ';']).next().unwrap_or("");
            words(head).into_iter().nth(1)
        }
    }
}

/// `config = { key = value; ... }` (bpftrace 0.20+).
fn config(p: &mut Parser) -> Item {
    let start = p.bump().span.start;
    p.bump(); // `=`
    let mut entries = Vec::new();
    if p.expect(TokenKind::LBrace, "to open the config block") {
        while !p.at(TokenKind::RBrace) && !p.at(TokenKind::Eof) {
            if p.eat(TokenKind::Semi) {
                continue;
            }
            let key_token = p.peek();
            if key_token.kind != TokenKind::Ident {
                p.error_expected("a config key such as `max_strlen`");
                p.skip_statement(&[TokenKind::Semi]);
                continue;
            }
            p.bump();
            let key = Ident {
                name: p.text(key_token).to_string(),
                span: key_token.span,
            };
            if !p.expect(TokenKind::Assign, "after the config key") {
                p.skip_statement(&[TokenKind::Semi]);
                continue;
            }
            let value = exprs::expr(p);
            let span = key.span.cover(value.span);
            entries.push(ConfigEntry { key, value, span });
            if !p.at(TokenKind::RBrace) && !p.expect(TokenKind::Semi, "after a config entry") {
                p.skip_statement(&[TokenKind::Semi]);
            }
        }
        p.expect(TokenKind::RBrace, "to close the config block");
    }
    Item {
        kind: ItemKind::Config(Config { entries }),
        span: Span::new(start, p.prev_end),
    }
}

/// `fn name($a: type, ...): type { ... }` (bpftrace 0.20+).
fn function(p: &mut Parser) -> Item {
    let start = p.bump().span.start;
    let name_token = p.bump();
    let name = Ident {
        name: p.text(name_token).to_string(),
        span: name_token.span,
    };
    let mut params = Vec::new();
    if p.expect(TokenKind::LParen, "after the function name") {
        while !p.at(TokenKind::RParen) && !p.at(TokenKind::Eof) && !p.at(TokenKind::LBrace) {
            let var = p.peek();
            if var.kind != TokenKind::Var {
                p.error_expected("a parameter such as `$x: int64`");
                p.skip_until(&[TokenKind::Comma, TokenKind::RParen, TokenKind::LBrace]);
            } else {
                p.bump();
                let pname = Ident {
                    name: p.text(var).trim_start_matches('$').to_string(),
                    span: var.span,
                };
                p.expect(
                    TokenKind::Colon,
                    "after the parameter name; parameters need a type",
                );
                let ty = types::type_expr(p);
                let span = var.span.cover(ty.span);
                params.push(Param {
                    name: pname,
                    ty,
                    span,
                });
            }
            if !p.eat(TokenKind::Comma) {
                break;
            }
        }
        p.expect(TokenKind::RParen, "to close the parameter list");
    }
    let return_type = if p.eat(TokenKind::Colon) {
        Some(types::type_expr(p))
    } else {
        let next = p.peek();
        p.report(
            Diagnostic::error(
                codes::EXPECTED_TOKEN,
                format!(
                    "expected `:` and a return type after the parameters, found {}",
                    p.describe(next)
                ),
                next.span,
            )
            .with_help("bpftrace functions declare their return type, e.g. `fn f($x: int64): int64 { ... }` or `: void`"),
        );
        None
    };
    let body = stmts::block_or_error(p, "for the function body");
    Item {
        span: Span::new(start, p.prev_end),
        kind: ItemKind::Function(Function {
            name,
            params,
            return_type,
            body,
        }),
    }
}

/// `macro name($a, @b, c) { ... }` (bpftrace 0.23+).
fn macro_def(p: &mut Parser) -> Item {
    let start = p.bump().span.start;
    let name_token = p.bump();
    let name = Ident {
        name: p.text(name_token).to_string(),
        span: name_token.span,
    };
    let mut params = Vec::new();
    if p.expect(TokenKind::LParen, "after the macro name") {
        while !p.at(TokenKind::RParen) && !p.at(TokenKind::Eof) && !p.at(TokenKind::LBrace) {
            let t = p.peek();
            match t.kind {
                TokenKind::Var | TokenKind::Map | TokenKind::Ident => {
                    params.push(exprs::primary_atom(p));
                }
                _ => {
                    p.error_expected("a macro parameter (`$x`, `@x` or a name)");
                    p.skip_until(&[TokenKind::Comma, TokenKind::RParen, TokenKind::LBrace]);
                }
            }
            if !p.eat(TokenKind::Comma) {
                break;
            }
        }
        p.expect(TokenKind::RParen, "to close the parameter list");
    }
    let body = stmts::block_or_error(p, "for the macro body");
    Item {
        span: Span::new(start, p.prev_end),
        kind: ItemKind::Macro(Macro { name, params, body }),
    }
}

/// Top-level `import` and map declarations came after bpftrace 0.23.
fn unsupported_item(p: &mut Parser, word: &str) -> Item {
    let start = p.peek().span.start;
    let message = match word {
        "import" => "`import` is not supported by this front end yet (it is newer than bpftrace 0.23)",
        _ => "top-level `let` map declarations are not supported by this front end yet (they are newer than bpftrace 0.23)",
    };
    let span = p.peek().span;
    p.error_at(codes::UNSUPPORTED_SYNTAX, message, span);
    p.bump();
    p.skip_until(&[TokenKind::Semi]);
    p.eat(TokenKind::Semi);
    Item {
        kind: ItemKind::Error,
        span: Span::new(start, p.prev_end),
    }
}

/// Attach points, an optional `/predicate/`, and the action block.
fn probe(p: &mut Parser) -> Item {
    let first = p.peek();
    let start = first.span.start;
    if first.kind == TokenKind::LBrace {
        p.report(
            Diagnostic::error(
                codes::EXPECTED_TOKEN,
                "expected an attach point such as `BEGIN` or `kprobe:vfs_read` before `{`",
                first.span,
            )
            .with_help("every block belongs to a probe: `BEGIN { ... }`"),
        );
        stmts::block(p);
        return error_item(start, p);
    }
    if first.kind != TokenKind::Ident {
        let code = if matches!(
            first.kind,
            TokenKind::Var
                | TokenKind::Map
                | TokenKind::Positional
                | TokenKind::Int
                | TokenKind::Str
        ) {
            codes::STATEMENT_OUTSIDE_PROBE
        } else {
            codes::EXPECTED_TOKEN
        };
        let message = format!("expected a probe, found {}", p.describe(first));
        let mut diag = Diagnostic::error(code, message, first.span);
        if code == codes::STATEMENT_OUTSIDE_PROBE {
            diag = diag.with_help("statements go inside a probe's block, e.g. `BEGIN { ... }`");
        }
        p.report(diag);
        recover_top_level(p);
        return error_item(start, p);
    }

    let mut attach_points = Vec::new();
    loop {
        let token = p.peek();
        let raw = lexer::lex_attach_point(p.src, token.span.start as usize);
        p.jump_to(raw.span.end as usize);
        let point = attach::attach_point(p, &raw);
        let lone_name = point.parts.is_empty() && point.kind.is_none();
        attach_points.push(point);

        // `printf("hi");` at top level lexes as an attach point `printf`.
        if lone_name && attach_points.len() == 1 && p.at(TokenKind::LParen)
            || lone_name && is_assignment(p.kind())
        {
            let span = token.span;
            let next = p.peek();
            p.diagnostics
                .retain(|d| d.span.start != span.start || d.code != codes::UNKNOWN_PROBE);
            p.report(
                Diagnostic::error(
                    codes::STATEMENT_OUTSIDE_PROBE,
                    format!(
                        "expected a probe, found `{}` followed by {}",
                        p.text(token),
                        p.describe(next)
                    ),
                    span,
                )
                .with_help("statements go inside a probe's block, e.g. `BEGIN { ... }`"),
            );
            recover_top_level(p);
            return error_item(start, p);
        }

        if p.at(TokenKind::Comma) {
            let comma = p.bump();
            if matches!(p.kind(), TokenKind::LBrace | TokenKind::Slash) {
                p.report(
                    Diagnostic::warning(
                        codes::EMPTY_ATTACH_POINT,
                        "trailing `,` after the last attach point",
                        comma.span,
                    )
                    .with_suggestion(comma.span, ""),
                );
                break;
            }
            if p.at(TokenKind::Ident) {
                continue;
            }
            p.error_expected("an attach point after `,`");
            break;
        }
        // `kprobe:a kprobe:b` on separate lines: a forgotten comma.
        if p.at(TokenKind::Ident) && attach::looks_like_attach_point(p) {
            let next = p.peek();
            p.report(
                Diagnostic::error(
                    codes::EXPECTED_TOKEN,
                    format!(
                        "expected `,`, `/` or `{{` after the attach point, found {}",
                        p.describe(next)
                    ),
                    next.span,
                )
                .with_help("separate attach points with `,`")
                .with_suggestion(Span::empty(p.prev_end), ","),
            );
            continue;
        }
        break;
    }

    let predicate = if p.at(TokenKind::Slash) {
        Some(predicate(p))
    } else {
        None
    };

    if !p.at(TokenKind::LBrace) {
        let next = p.peek();
        let what = if predicate.is_some() {
            "`{` after the predicate"
        } else {
            "`,`, `/` or `{` after the attach point"
        };
        p.report(Diagnostic::error(
            codes::EXPECTED_TOKEN,
            format!("expected {what}, found {}", p.describe(next)),
            next.span,
        ));
        // Resume at the block if it is nearby, else at the next item.
        p.skip_until(&[TokenKind::LBrace]);
        if !p.at(TokenKind::LBrace) {
            recover_top_level(p);
            return error_item(start, p);
        }
        // A block follows after some junk: parse it, but the probe is broken.
        stmts::block(p);
        return error_item(start, p);
    }
    let body = stmts::block(p);
    Item {
        span: Span::new(start, p.prev_end),
        kind: ItemKind::Probe(Probe {
            attach_points,
            predicate,
            body,
        }),
    }
}

/// `/ expr /`. The closing `/` is a `/` followed by `{` (see `exprs`).
fn predicate(p: &mut Parser) -> Expr {
    let open = p.bump();
    if p.at(TokenKind::Slash) {
        let span = open.span.cover(p.peek().span);
        p.error_at(
            codes::EXPECTED_TOKEN,
            "empty predicate: expected an expression between the `/`s",
            span,
        );
        p.bump();
        return Expr {
            kind: ExprKind::Error,
            span,
        };
    }
    let mut cond = exprs::expr(p);
    if p.at(TokenKind::Assign) {
        let eq = p.bump();
        p.report(
            Diagnostic::error(
                codes::ASSIGNMENT_IN_PREDICATE,
                "`=` assigns; a predicate compares with `==`",
                eq.span,
            )
            .with_suggestion(eq.span, "=="),
        );
        let rhs = exprs::expr(p);
        let span = cond.span.cover(rhs.span);
        cond = Expr {
            kind: ExprKind::Binary {
                op: BinaryOp::Eq,
                lhs: Box::new(cond),
                rhs: Box::new(rhs),
            },
            span,
        };
    }
    if !p.eat(TokenKind::Slash) {
        let next = p.peek();
        let message = format!(
            "expected `/` to close the predicate, found {}",
            p.describe(next)
        );
        let mut diag = Diagnostic::error(codes::EXPECTED_TOKEN, message, next.span)
            .with_label(open.span, "predicate opened here");
        if next.kind == TokenKind::LBrace {
            diag = diag.with_suggestion(Span::empty(p.prev_end), "/");
        }
        p.report(diag);
        p.skip_until(&[TokenKind::Slash, TokenKind::LBrace]);
        p.eat(TokenKind::Slash);
    }
    cond
}

fn is_assignment(kind: TokenKind) -> bool {
    use TokenKind::*;
    matches!(
        kind,
        Assign
            | PlusAssign
            | MinusAssign
            | StarAssign
            | SlashAssign
            | PercentAssign
            | AmpAssign
            | PipeAssign
            | CaretAssign
            | ShlAssign
            | ShrAssign
    )
}

fn error_item(start: u32, p: &mut Parser) -> Item {
    Item {
        kind: ItemKind::Error,
        span: Span::new(start, p.prev_end.max(start)),
    }
}

/// Skips to where the next item plausibly starts: a name or `#` at the start
/// of a line, with brackets balanced; a `;` or a whole `{ ... }` at depth 0
/// also ends the skip.
pub(crate) fn recover_top_level(p: &mut Parser) {
    let mut depth = 0usize;
    let mut first = true;
    loop {
        let t = p.peek();
        match t.kind {
            TokenKind::Eof => return,
            TokenKind::Ident | TokenKind::Hash if depth == 0 && t.newline_before && !first => {
                return
            }
            TokenKind::Semi if depth == 0 => {
                p.bump();
                return;
            }
            TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                if depth == 0 {
                    if t.kind == TokenKind::RBrace {
                        // A stray `}` would otherwise be reported again at top level.
                        p.bump();
                    }
                    return;
                }
                depth -= 1;
                if depth == 0 && t.kind == TokenKind::RBrace {
                    p.bump();
                    return;
                }
            }
            _ => {}
        }
        first = false;
        p.bump();
    }
}
