//! `printf-format`: the format string of `printf`, `system`, `cat` and
//! `debugf` against their arguments: a literal format, as many arguments as
//! conversions, and each argument of the type its conversion prints (`%d` an
//! integer, `%s` a string, `%r` a buffer), with the fix spelled out (`%s` for
//! a string, `str(ptr)` for a `char *`, `ntop(addr)` for an address).
//!
//! Only types the checker is sure of are compared; the rules are bpftrace
//! 0.17's (`validate_format_string`).

use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::visit::{self, Visitor};

use super::context::Ctx;
use super::format::{self, Expects, Spec};
use super::types::{ArrayTy, Pointee, Ty, Types};

/// Functions whose first argument is a format string.
pub(crate) const FORMATTED: &[&str] = &["printf", "system", "cat", "debugf", "errorf", "warnf"];

pub(crate) fn run(ctx: &Ctx<'_>, types: &Types, out: &mut Vec<Diagnostic>) {
    let mut w = Walker { ctx, types, out };
    for p in &ctx.probes {
        w.visit_probe(p.probe);
    }
    for item in &ctx.program.items {
        if let ItemKind::Function(f) = &item.kind {
            w.visit_function(f);
        }
    }
}

struct Walker<'c, 'a, 'o> {
    ctx: &'c Ctx<'a>,
    types: &'c Types,
    out: &'o mut Vec<Diagnostic>,
}

impl Visitor for Walker<'_, '_, '_> {
    fn visit_expr(&mut self, e: &Expr) {
        if let ExprKind::Call { name, args } = &e.kind {
            if FORMATTED.contains(&name.name.as_str())
                && !self.ctx.user_callables.contains(name.name.as_str())
            {
                self.call(e, &name.name, args);
            }
        }
        visit::walk_expr(self, e);
    }
}

impl Walker<'_, '_, '_> {
    fn call(&mut self, e: &Expr, func: &str, args: &[Expr]) {
        let Some((fmt_expr, rest)) = args.split_first() else {
            return; // wrong-arity says it
        };
        if rest.iter().any(|a| a.kind == ExprKind::Error) {
            return; // the parser reported it
        }
        let lit = match &fmt_expr.kind {
            ExprKind::Str(lit) => lit,
            ExprKind::Positional(_) | ExprKind::Error => return,
            _ => {
                self.out.push(
                    Diagnostic::error(
                        codes::PRINTF_FORMAT,
                        format!("the format of `{func}()` must be a string literal"),
                        fmt_expr.span,
                    )
                    .with_help(format!("write the text in place: {func}(\"%s\\n\", ...)")),
                );
                return;
            }
        };
        let specs = format::parse(&lit.raw);
        let spec_span = |s: &Spec| {
            format::span_in_literal(self.ctx.source, fmt_expr.span, &lit.raw, s.start, s.end)
                .unwrap_or(fmt_expr.span)
        };
        if specs.len() != rest.len() {
            let d = self.count_mismatch(e, func, fmt_expr, lit, &specs, rest);
            self.out.push(d);
            return;
        }
        if func == "debugf" && rest.len() > 3 {
            self.out.push(Diagnostic::error(
                codes::PRINTF_FORMAT,
                "`debugf()` takes at most 3 arguments after the format (a limit of bpf_trace_printk)",
                e.span,
            ));
            return;
        }
        for (spec, arg) in specs.iter().zip(rest) {
            if let Some(d) = self.mismatch(func, spec, spec_span(spec), fmt_expr, &lit.raw, arg) {
                self.out.push(d);
            }
        }
    }

    fn count_mismatch(
        &self,
        e: &Expr,
        func: &str,
        fmt_expr: &Expr,
        lit: &StrLit,
        specs: &[Spec],
        rest: &[Expr],
    ) -> Diagnostic {
        let (n, m) = (specs.len(), rest.len());
        let plural = |k: usize, w: &str| format!("{k} {w}{}", if k == 1 { "" } else { "s" });
        let verb = if m == 1 { "follows" } else { "follow" };
        let message = format!(
            "`{func}()` format has {} but {} {verb} it",
            plural(n, "conversion"),
            plural(m, "argument")
        );
        let in_literal = |start: usize, end: usize| {
            format::span_in_literal(self.ctx.source, fmt_expr.span, &lit.raw, start, end)
        };
        if n > m {
            // Point at the first conversion left without an argument.
            let spans: Vec<Span> = specs[m..]
                .iter()
                .filter_map(|s| in_literal(s.start, s.end))
                .collect();
            let mut d = Diagnostic::error(
                codes::PRINTF_FORMAT,
                message,
                spans.first().copied().unwrap_or(e.span),
            );
            for span in spans.iter().skip(1) {
                d = d.with_label(*span, "no argument for this either");
            }
            return d.with_help(
                "add the missing arguments, or remove the conversions (write %% for a literal %)",
            );
        }
        // Point at the first conversion bpftrace does not know, or the first extra argument.
        let foreign = format::foreign(&lit.raw, specs);
        let foreign_span = foreign.first().and_then(|f| in_literal(f.start, f.end));
        let mut d = Diagnostic::error(
            codes::PRINTF_FORMAT,
            message,
            foreign_span.unwrap_or(rest[n].span),
        );
        for a in &rest[n..] {
            d = d.with_label(a.span, "no conversion for this");
        }
        if let Some(f) = foreign.first() {
            d.message.push_str(&format!(
                ": bpftrace does not know `{}` and prints it as text",
                f.text
            ));
            match (&f.instead, foreign_span) {
                (Some(instead), Some(span)) => {
                    d.message.push_str(&format!("; use `{instead}`"));
                    d = d.with_suggestion(span, instead.clone());
                }
                _ => {
                    d = d.with_help("bpftrace has no floating point or `*` widths: print integers with %d (e.g. a value in tenths: $x / 100 with %d)");
                }
            }
            return d;
        }
        d.with_help("remove the extra arguments, or add a conversion for each (%d integer, %s string, %r buffer)")
    }

    fn mismatch(
        &self,
        func: &str,
        spec: &Spec,
        spec_span: Span,
        fmt_expr: &Expr,
        raw: &str,
        arg: &Expr,
    ) -> Option<Diagnostic> {
        let ty = self.types.of(arg);
        let what = describe(ty)?;
        // bpftrace 0.22 prints enum values by name with %s.
        let enum_as_name = self.ctx.version_at_least((0, 22))
            && matches!(ty, Ty::Int(i) if i.c_type.as_deref().is_some_and(|c| c.starts_with("enum ")));
        let ok = match spec.expects {
            Expects::Integer => matches!(ty, Ty::Int(_) | Ty::Ptr(_)),
            Expects::String => matches!(ty, Ty::Str | Ty::Stack) || enum_as_name,
            Expects::Buffer => matches!(ty, Ty::Buffer),
        };
        if ok {
            return None;
        }
        let conv = &raw[spec.start..spec.end];
        let expected = match spec.expects {
            Expects::Integer => "an integer",
            Expects::String => "a string",
            Expects::Buffer => "a buffer (from buf())",
        };
        let written = arg.span.text(self.ctx.source);
        let mut d = Diagnostic::error(
            codes::PRINTF_FORMAT,
            format!("`{func}()`: `{conv}` prints {expected}, but `{written}` is {what}"),
            arg.span,
        )
        .with_label(spec_span, "this conversion");
        // The conversion with its flags and width kept: `%-16d` -> `%-16s`.
        let swap = |letter: &str| -> Option<(Span, String)> {
            let span = format::span_in_literal(
                self.ctx.source,
                fmt_expr.span,
                raw,
                spec.conv_start,
                spec.end,
            )?;
            Some((span, letter.to_string()))
        };
        let wrap = |f: &str| (arg.span, format!("{f}({written})"));
        let fix: Option<((Span, String), String)> = match (spec.expects, ty) {
            (Expects::Integer, Ty::Str | Ty::Stack) => {
                swap("s").map(|s| (s, format!("use `%s` for {what}")))
            }
            (Expects::String, Ty::Ptr(Pointee::Char)) => Some((
                wrap("str"),
                format!("read the string it points to: `str({written})`"),
            )),
            (Expects::String, Ty::Int(i))
                if i.c_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("__data_loc")) =>
            {
                Some((wrap("str"), format!("read the string: `str({written})`")))
            }
            (Expects::String, Ty::Int(_)) => {
                swap("d").map(|s| (s, "use `%d` for an integer".to_string()))
            }
            (
                Expects::String | Expects::Integer,
                Ty::Array(ArrayTy {
                    bytes: true,
                    len: Some(4 | 16),
                    ..
                }),
            ) => {
                let fix = wrap("ntop");
                match spec.expects {
                    Expects::String => {
                        Some((fix, format!("an address as text: `ntop({written})`")))
                    }
                    _ => None,
                }
            }
            (Expects::String, Ty::Buffer) => {
                swap("r").map(|s| (s, "use `%r` for a buffer".to_string()))
            }
            (Expects::Buffer, Ty::Str | Ty::Stack) => {
                swap("s").map(|s| (s, "use `%s` for a string".to_string()))
            }
            _ => None,
        };
        match fix {
            Some(((span, text), note)) => {
                d.message.push_str(&format!("; {note}"));
                d = d.with_suggestion(span, text);
            }
            None => {
                d = d.with_help(match spec.expects {
                    Expects::Integer => "integers print with %d, %u, %x; strings with %s; buffers with %r",
                    Expects::String => "strings print with %s: use str(ptr) for a char *, ntop() for an address, %d for a number",
                    Expects::Buffer => "%r prints a buffer: buf(ptr, length)",
                });
            }
        }
        Some(d)
    }
}

/// How a value of type `ty` is described in a message; `None` when unknown.
fn describe(ty: &Ty) -> Option<String> {
    Some(match ty {
        Ty::Unknown | Ty::Args | Ty::Agg(_) => return None,
        Ty::Int(i) => match &i.c_type {
            Some(c) => format!("an integer (`{c}`)"),
            None => "an integer".to_string(),
        },
        Ty::Ptr(Pointee::Char) => "a `char *` (a pointer, printed as a number)".to_string(),
        Ty::Ptr(Pointee::Record(r)) => format!("a pointer to {}", r.spelled()),
        Ty::Ptr(Pointee::Other) => "a pointer".to_string(),
        Ty::Str => "a string".to_string(),
        Ty::Stack => "a stack".to_string(),
        Ty::Buffer => "a buffer".to_string(),
        Ty::Tuple => "a tuple".to_string(),
        Ty::Array(a) => format!("an array (`{}`)", a.c_type),
        Ty::Record(r) => format!("a {} value", r.spelled()),
    })
}
