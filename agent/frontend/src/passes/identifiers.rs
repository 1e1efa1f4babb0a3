//! `unknown-identifier`: bare names that are not builtins of the bpftrace
//! version checked for (`pidd`, `jiffies` before 0.20) and not constants the
//! program can see.
//!
//! A bare name may be a kernel enum value (BTF), something the program's C
//! text or `#define`s declare, or something an `#include`d header declares,
//! which the checker cannot see. So: a name close to a builtin variable is
//! reported unless the program defines it; any other name only when nothing
//! could define it (no `#include`, not in BTF, BTF available).

use crate::ast::*;
use crate::builtins::{builtins_named, BuiltinKind, BUILTINS, LATER_BUILTINS};
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

/// Stack modes, valid as arguments of `kstack()`/`ustack()` (with the version that added them).
const STACK_MODES: &[(&str, (u32, u32))] =
    &[("bpftrace", (0, 9)), ("perf", (0, 9)), ("raw", (0, 18))];

impl Visitor for Walker<'_, '_, '_> {
    fn visit_expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Call { name, args } if matches!(name.name.as_str(), "kstack" | "ustack") => {
                // A stack mode is a bare name; check the rest.
                for a in args {
                    match &a.kind {
                        ExprKind::Ident(mode) => self.stack_mode(a, mode),
                        _ => self.visit_expr(a),
                    }
                }
                return;
            }
            ExprKind::Call { name, args }
                if name.name == "nsecs" || name.name == "pid" || name.name == "tid" =>
            {
                // Clock and namespace names (`nsecs(monotonic)`) are bare names.
                for a in args {
                    if !matches!(a.kind, ExprKind::Ident(_)) {
                        self.visit_expr(a);
                    }
                }
                return;
            }
            // `sizeof(task_struct)`: a type name, which bpftrace resolves itself.
            ExprKind::Sizeof(TypeOrExpr::Expr(inner))
            | ExprKind::Offsetof {
                of: TypeOrExpr::Expr(inner),
                ..
            } if matches!(inner.kind, ExprKind::Ident(_)) => {
                return;
            }
            ExprKind::Ident(name) => self.ident(e, name),
            ExprKind::Builtin(name) => self.builtin(e, name),
            _ => {}
        }
        visit::walk_expr(self, e);
    }
}

impl Walker<'_, '_, '_> {
    fn version(&self) -> String {
        let (a, b) = self.ctx.options.version;
        format!("{a}.{b}")
    }

    fn stack_mode(&mut self, e: &Expr, mode: &str) {
        let version = self.ctx.options.version;
        match STACK_MODES.iter().find(|(m, _)| *m == mode) {
            Some((_, since)) if version >= *since => {}
            Some((_, since)) => self.out.push(Diagnostic::error(
                codes::UNKNOWN_IDENTIFIER,
                format!(
                    "stack mode `{mode}` needs bpftrace {}.{}; this checks for {}",
                    since.0,
                    since.1,
                    self.version()
                ),
                e.span,
            )),
            None => {
                let modes = STACK_MODES
                    .iter()
                    .filter(|(_, s)| version >= *s)
                    .map(|(m, _)| *m);
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_IDENTIFIER,
                    format!("`{mode}` is not a stack mode"),
                    e.span,
                )
                .with_help("stack modes: bpftrace, perf (and raw from 0.18)");
                if let Some(best) = suggest::nearest(mode, modes, 1).first() {
                    d.message.push_str(&format!("; did you mean `{best}`?"));
                    d = d.with_suggestion(e.span, *best);
                }
                self.out.push(d);
            }
        }
    }

    /// Builtin variables the version checked for does not have (`jiffies` in 0.17).
    fn builtin(&mut self, e: &Expr, name: &str) {
        let version = self.ctx.options.version;
        let vars: Vec<_> = builtins_named(name)
            .filter(|b| b.kind == BuiltinKind::Variable)
            .collect();
        if vars.is_empty() || vars.iter().any(|b| b.available_in(version)) {
            return;
        }
        if self.defined_elsewhere(name) {
            return;
        }
        let b = vars[0];
        let message = if version < b.since {
            format!(
                "`{name}` needs bpftrace {}.{} or later; this checks for {}",
                b.since.0,
                b.since.1,
                self.version()
            )
        } else {
            let (a, c) = b.until.unwrap_or_default();
            format!("`{name}` was removed in bpftrace {a}.{c}")
        };
        self.out
            .push(Diagnostic::error(codes::UNKNOWN_IDENTIFIER, message, e.span).with_help(b.doc));
    }

    /// Whether the program or the kernel may define `name`.
    fn defined_elsewhere(&self, name: &str) -> bool {
        self.ctx.c_words.contains(name) || self.ctx.facts.enum_constant(name).is_some()
    }

    fn ident(&mut self, e: &Expr, name: &str) {
        if self.defined_elsewhere(name) {
            return;
        }
        let version = self.ctx.options.version;
        let variables = BUILTINS
            .iter()
            .chain(LATER_BUILTINS)
            .filter(|b| b.kind == BuiltinKind::Variable && b.available_in(version))
            .map(|b| b.name);
        let near = suggest::nearest(name, variables, 1).first().copied();
        let lowercase = name.chars().all(|c| !c.is_ascii_uppercase());
        match near {
            // A misspelt builtin: headers do not define lowercase names like these.
            Some(best) if lowercase => {
                self.out.push(
                    Diagnostic::error(
                        codes::UNKNOWN_IDENTIFIER,
                        format!("unknown identifier `{name}`; did you mean the builtin `{best}`?"),
                        e.span,
                    )
                    .with_suggestion(e.span, best),
                );
            }
            _ if self.ctx.has_includes || !self.ctx.facts.types_available() => {}
            _ => {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_IDENTIFIER,
                    format!("unknown identifier `{name}`: not a builtin, not a kernel enum value, and the program does not define it"),
                    e.span,
                );
                d = d.with_help(if lowercase {
                    "scratch variables start with `$` ($name), maps with `@` (@name)"
                } else {
                    "C macros such as AF_INET come from headers: #include the one that defines it (e.g. #include <sys/socket.h> for AF_INET), or write the number"
                });
                if let (Some(best), false) = (near, lowercase) {
                    d = d.with_suggestion(e.span, best);
                }
                self.out.push(d);
            }
        }
    }
}
