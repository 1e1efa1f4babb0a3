//! `unknown-function`, `wrong-arity` and `unsafe-builtin`: calls to functions
//! bpftrace (the version checked for) does not have, builtin variables called
//! like functions, wrong argument counts, and `system`/`signal`/`override`
//! without `--unsafe`.

use crate::ast::*;
use crate::builtins::{builtins_named, Builtin, BuiltinKind, BUILTINS, LATER_BUILTINS};
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest;
use crate::visit::{self, Visitor};

use super::context::Ctx;

pub(crate) fn run(ctx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let mut w = Walker { ctx, out };
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
    out: &'o mut Vec<Diagnostic>,
}

/// Functions other languages have, and what bpftrace offers instead.
const FOREIGN: &[(&str, &str, Option<&str>)] = &[
    (
        "ntohs",
        "bpftrace has no ntohs(); bswap() reverses the bytes of a 16-bit value",
        Some("bswap"),
    ),
    (
        "htons",
        "bpftrace has no htons(); bswap() reverses the bytes of a 16-bit value",
        Some("bswap"),
    ),
    (
        "ntohl",
        "bpftrace has no ntohl(); bswap() reverses the bytes of a 32-bit value",
        Some("bswap"),
    ),
    (
        "htonl",
        "bpftrace has no htonl(); bswap() reverses the bytes of a 32-bit value",
        Some("bswap"),
    ),
    (
        "strcmp",
        "compare strings with == (e.g. comm == \"bash\") or strncmp(a, b, n)",
        None,
    ),
    (
        "sprintf",
        "bpftrace cannot format into a string; print with printf()",
        None,
    ),
    ("print_f", "print with printf()", None),
    ("printk", "print with printf()", None),
    (
        "abs",
        "bpftrace has no abs(); use a ternary: $x < 0 ? -$x : $x",
        None,
    ),
];

impl Visitor for Walker<'_, '_, '_> {
    fn visit_expr(&mut self, e: &Expr) {
        if let ExprKind::Call { name, args } = &e.kind {
            if let Some(d) = self.call(e, name, args) {
                self.out.push(d);
            }
            if let Some(d) = self.unsafe_call(name) {
                self.out.push(d);
            }
        }
        if let ExprKind::Offsetof { .. } = &e.kind {
            if self.ctx.options.version < (0, 18) {
                self.out.push(Diagnostic::error(
                    codes::UNKNOWN_FUNCTION,
                    format!(
                        "`offsetof()` needs bpftrace 0.18 or later; this checks for {}",
                        self.version()
                    ),
                    e.span,
                ));
            }
        }
        visit::walk_expr(self, e);
    }
}

impl Walker<'_, '_, '_> {
    fn version(&self) -> String {
        let (a, b) = self.ctx.options.version;
        format!("{a}.{b}")
    }

    fn call(&self, e: &Expr, name: &Ident, args: &[Expr]) -> Option<Diagnostic> {
        let n = name.name.as_str();
        // A call the parser could not finish: its syntax error says enough.
        if self.ctx.user_callables.contains(n) || args.iter().any(|a| a.kind == ExprKind::Error) {
            return None;
        }
        let version = self.ctx.options.version;
        let functions: Vec<&Builtin> = builtins_named(n)
            .filter(|b| b.kind != BuiltinKind::Variable)
            .collect();
        let available = functions.iter().find(|b| b.available_in(version));
        let Some(b) = available else {
            // bpftrace 0.24 lets builtin variables be called: `comm()`.
            let variable = builtins_named(n)
                .any(|b| b.kind == BuiltinKind::Variable && b.available_in(version));
            if variable && version >= (0, 24) && args.is_empty() {
                return None;
            }
            return Some(self.unknown(e, name, args, &functions));
        };
        let (min, max) = b.arity_in(version)?;
        let given = args.len();
        if given >= min && given <= max {
            return None;
        }
        let wanted = match (min, max) {
            (a, b) if a == b => format!("{a} argument{}", if a == 1 { "" } else { "s" }),
            (a, u8max) if u8max == usize::from(u8::MAX) => {
                format!("at least {a} argument{}", if a == 1 { "" } else { "s" })
            }
            (a, b) => format!("{a} to {b} arguments"),
        };
        Some(
            Diagnostic::error(
                codes::WRONG_ARITY,
                format!("`{n}()` takes {wanted}, {given} given"),
                e.span,
            )
            .with_help(format!("{}: {}", b.signature, b.doc)),
        )
    }

    fn unknown(&self, e: &Expr, name: &Ident, args: &[Expr], known: &[&Builtin]) -> Diagnostic {
        let n = name.name.as_str();
        let version = self.ctx.options.version;
        if let Some(b) = known.first() {
            let message = if version < b.since {
                format!(
                    "`{n}()` needs bpftrace {}.{} or later; this checks for {}",
                    b.since.0,
                    b.since.1,
                    self.version()
                )
            } else {
                let (a, c) = b.until.unwrap_or_default();
                format!("`{n}()` was removed in bpftrace {a}.{c}")
            };
            return Diagnostic::error(codes::UNKNOWN_FUNCTION, message, name.span)
                .with_help(format!("{}: {}", b.signature, b.doc));
        }
        // A builtin variable called like a function (`pid()`).
        let variable =
            builtins_named(n).find(|b| b.kind == BuiltinKind::Variable && b.available_in(version));
        if let (Some(_), true) = (variable, args.is_empty()) {
            return Diagnostic::error(
                codes::UNKNOWN_FUNCTION,
                format!("`{n}` is a builtin variable, not a function: write `{n}`"),
                e.span,
            )
            .with_suggestion(e.span, n);
        }
        let mut d = Diagnostic::error(
            codes::UNKNOWN_FUNCTION,
            format!("bpftrace {} has no function `{n}()`", self.version()),
            name.span,
        );
        if let Some((_, help, replacement)) = FOREIGN.iter().find(|(f, _, _)| *f == n) {
            d = d.with_help(*help);
            if let Some(r) = replacement {
                d.message.push_str(&format!("; did you mean `{r}`?"));
                d = d.with_suggestion(name.span, *r);
            }
            return d;
        }
        let names = BUILTINS
            .iter()
            .chain(LATER_BUILTINS)
            .filter(|b| b.kind != BuiltinKind::Variable && b.available_in(version))
            .map(|b| b.name)
            .chain(self.ctx.user_callables.iter().copied());
        if let Some(best) = suggest::nearest(n, names, 1).first() {
            d.message.push_str(&format!("; did you mean `{best}`?"));
            d = d.with_suggestion(name.span, *best);
        }
        d
    }

    fn unsafe_call(&self, name: &Ident) -> Option<Diagnostic> {
        if self.ctx.options.allow_unsafe || self.ctx.user_callables.contains(name.name.as_str()) {
            return None;
        }
        let version = self.ctx.options.version;
        let b = builtins_named(&name.name)
            .find(|b| b.kind != BuiltinKind::Variable && b.available_in(version))?;
        b.unsafe_.then(|| {
            Diagnostic::error(
                codes::UNSAFE_BUILTIN,
                format!(
                    "`{}()` is unsafe: bpftrace refuses it unless run with --unsafe",
                    name.name
                ),
                name.span,
            )
            .with_help("add --unsafe if you mean it (in a notebook cell: %%bpftrace --unsafe)")
        })
    }
}
