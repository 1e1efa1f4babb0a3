//! Attach points: splitting, provider normalisation and the checks bpftrace
//! makes while parsing them (known provider, number of parts, units).

use super::closest;
use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::lexer::{self, RawAttachPoint, TokenKind};
use crate::parser::Parser;

pub(super) fn attach_point(p: &mut Parser, raw: &RawAttachPoint) -> AttachPoint {
    let src = p.src;
    let provider_part = &raw.parts[0];
    let provider = provider_part.span.text(src).to_string();
    let mut parts = Vec::new();
    let mut wildcard = false;
    for part in &raw.parts[1..] {
        let text = part.span.text(src).to_string();
        if part.unterminated {
            p.report(
                Diagnostic::error(
                    codes::UNTERMINATED_STRING,
                    "unterminated string in attach point: missing closing `\"`",
                    part.span,
                )
                .with_suggestion(Span::empty(part.span.end), "\""),
            );
        }
        let value = if part.quoted {
            let inner = text
                .strip_prefix('"')
                .map(|t| t.strip_suffix('"').unwrap_or(t))
                .unwrap_or(&text);
            inner.replace("\\\"", "\"")
        } else {
            wildcard |= text.contains('*');
            text.clone()
        };
        parts.push(AttachPart {
            text,
            value,
            quoted: part.quoted,
            span: part.span,
        });
    }
    let kind = ProbeKind::from_provider(&provider);
    let point = AttachPoint {
        raw: raw.span.text(src).to_string(),
        provider,
        kind,
        parts,
        wildcard,
        span: raw.span,
        provider_span: provider_part.span,
    };
    check(p, &point);
    point
}

/// What a provider's parts look like, for messages: `(min parts, max parts, form)`.
fn shape(kind: ProbeKind) -> (usize, Option<usize>, &'static str) {
    use ProbeKind::*;
    match kind {
        Begin | End => (0, Some(0), "BEGIN"),
        Kprobe => (1, Some(2), "kprobe:[MODULE:]FUNCTION[+OFFSET]"),
        Kretprobe => (1, Some(2), "kretprobe:[MODULE:]FUNCTION"),
        Uprobe => (2, None, "uprobe:BINARY:FUNCTION"),
        Uretprobe => (2, None, "uretprobe:BINARY:FUNCTION"),
        Usdt => (2, None, "usdt:BINARY:[PROVIDER:]NAME"),
        Tracepoint => (2, Some(2), "tracepoint:CATEGORY:EVENT"),
        Rawtracepoint => (1, Some(2), "rawtracepoint:[MODULE:]EVENT"),
        Profile => (2, Some(2), "profile:hz:RATE"),
        Interval => (2, Some(2), "interval:s:COUNT"),
        Software => (1, Some(2), "software:EVENT[:COUNT]"),
        Hardware => (1, Some(2), "hardware:EVENT[:COUNT]"),
        Watchpoint => (3, Some(3), "watchpoint:ADDRESS:LENGTH:MODE"),
        Asyncwatchpoint => (3, Some(3), "asyncwatchpoint:ADDRESS:LENGTH:MODE"),
        Fentry => (1, Some(2), "fentry:[MODULE:]FUNCTION"),
        Fexit => (1, Some(2), "fexit:[MODULE:]FUNCTION"),
        Iter => (1, Some(2), "iter:OBJECT[:PIN]"),
        SelfProbe => (2, Some(2), "self:signal:SIGNAL"),
    }
}

fn check(p: &mut Parser, point: &AttachPoint) {
    let provider = point.provider.as_str();
    let valid_name = provider.bytes().next().is_some_and(lexer::is_ident_start)
        && provider.bytes().all(lexer::is_ident_continue);
    if !valid_name {
        p.report(
            Diagnostic::error(
                codes::INVALID_ATTACH_POINT,
                format!("`{}` is not a valid attach point", point.raw),
                point.span,
            )
            .with_help("an attach point starts with a probe type, e.g. `kprobe:vfs_read`"),
        );
        return;
    }
    let Some(kind) = point.kind else {
        let spellings = ProbeKind::SPELLINGS.iter().map(|(s, _)| *s);
        let mut diag = Diagnostic::error(
            codes::UNKNOWN_PROBE,
            format!("unknown probe type `{provider}`"),
            point.provider_span,
        );
        // Case-insensitive exact matches first (`begin` -> `BEGIN`), then typos.
        let suggestion = ProbeKind::SPELLINGS
            .iter()
            .map(|(s, _)| *s)
            .find(|s| s.eq_ignore_ascii_case(provider))
            .or_else(|| closest(provider, spellings.filter(|s| s.len() > 2)));
        if let Some(s) = suggestion {
            diag = diag
                .with_help(format!("did you mean `{s}`?"))
                .with_suggestion(point.provider_span, s);
        } else {
            diag = diag.with_help(
                "probe types include BEGIN, END, kprobe, kretprobe, uprobe, uretprobe, tracepoint, \
                 usdt, profile, interval, software, hardware, fentry, fexit, rawtracepoint, iter, watchpoint",
            );
        }
        p.report(diag);
        return;
    };
    let (min, max, form) = shape(kind);
    let n = point.parts.len();
    if matches!(kind, ProbeKind::Begin | ProbeKind::End) {
        if n > 0 {
            p.report(
                Diagnostic::error(
                    codes::INVALID_ATTACH_POINT,
                    format!("`{provider}` takes no arguments"),
                    point.span,
                )
                .with_suggestion(point.span, provider.to_string()),
            );
        }
        return;
    }
    if let Some(empty) = point.parts.iter().find(|part| part.text.is_empty()) {
        // `uprobe:/bin/x:cpp::ns` style C++ names may leave empty pieces in the
        // middle; only a missing last piece is surely wrong.
        if std::ptr::eq(empty, point.parts.last().unwrap_or(empty)) || n < min {
            p.report(
                Diagnostic::error(
                    codes::INVALID_ATTACH_POINT,
                    format!("incomplete attach point `{}`", point.raw),
                    point.span,
                )
                .with_help(format!("the form is `{form}`")),
            );
            return;
        }
    }
    if n < min || max.is_some_and(|max| n > max) {
        let message = if n < min {
            format!("attach point `{}` is missing parts", point.raw)
        } else {
            format!("attach point `{}` has too many parts", point.raw)
        };
        p.report(
            Diagnostic::error(codes::INVALID_ATTACH_POINT, message, point.span)
                .with_help(format!("the form is `{form}`")),
        );
        return;
    }
    let takes_paths = matches!(
        kind,
        ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Usdt | ProbeKind::Iter
    );
    if !takes_paths {
        // `kprobe:f/arg0/{` lexes as one attach point, in bpftrace too: the
        // predicate needs a space before it.
        if let Some(part) = point
            .parts
            .iter()
            .find(|part| !part.quoted && part.text.contains('/'))
        {
            let slash = part.span.start + part.text.find('/').unwrap_or(0) as u32;
            p.report(
                Diagnostic::error(
                    codes::INVALID_ATTACH_POINT,
                    format!("`/` in the {} attach point `{}`", kind.as_str(), point.raw),
                    part.span,
                )
                .with_help("a predicate must be separated from the attach point by a space: `kprobe:f /pid == 1/ {`")
                .with_suggestion(Span::empty(slash), " "),
            );
            return;
        }
    }
    if matches!(kind, ProbeKind::Profile | ProbeKind::Interval) && n == 2 {
        let unit = &point.parts[0];
        let units: &[&str] = &["hz", "s", "ms", "us"];
        if !units.contains(&unit.text.as_str()) && !unit.text.starts_with('$') {
            let mut diag = Diagnostic::error(
                codes::INVALID_ATTACH_POINT,
                format!("unknown {} unit `{}`", kind.as_str(), unit.text),
                unit.span,
            )
            .with_help("the unit is one of `hz`, `s`, `ms`, `us`");
            let alias = match unit.text.to_ascii_lowercase().as_str() {
                "sec" | "secs" | "second" | "seconds" => Some("s"),
                "msec" | "msecs" | "millis" => Some("ms"),
                "usec" | "usecs" | "micros" => Some("us"),
                "hertz" => Some("hz"),
                _ => None,
            };
            if let Some(s) = alias.or_else(|| closest(&unit.text, units.iter().copied())) {
                diag = diag.with_suggestion(unit.span, s);
            }
            p.report(diag);
        }
    }
}

/// Whether the next token starts another attach point: a known provider
/// directly followed by `:`, or `BEGIN`/`END`. Used to spot a forgotten `,`
/// and a missing `}` before the next probe.
pub(crate) fn looks_like_attach_point(p: &mut Parser) -> bool {
    let t = p.peek();
    if t.kind != TokenKind::Ident {
        return false;
    }
    let word = p.text(t);
    if word == "BEGIN" || word == "END" {
        return matches!(
            p.nth(1).kind,
            TokenKind::LBrace | TokenKind::Comma | TokenKind::Slash
        );
    }
    ProbeKind::from_provider(word).is_some() && {
        let colon = p.nth(1);
        colon.kind == TokenKind::Colon && colon.span.start == t.span.end
    }
}
