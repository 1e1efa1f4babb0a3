//! `str-on-non-pointer`: `str()` of an integer that cannot be an address: a
//! field of a non-pointer type narrower than a pointer or named like a count
//! (`str(args->count)`, a `size_t`; `str(args->fd)`, an `int`), or a builtin
//! such as `pid`. bpftrace accepts these and reads memory at that number.
//!
//! `str(args->filename)` (a `char *`), `str(arg0)` and `str(retval)`
//! (addresses by convention in kprobes and uprobes) are fine, and so is any
//! value whose type is not certain.

use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::visit::{self, Visitor};

use super::context::{ArgsSource, Ctx, ProbeCtx};
use super::types::{Ty, Types};

pub(crate) fn run(ctx: &Ctx<'_>, types: &Types, out: &mut Vec<Diagnostic>) {
    for p in &ctx.probes {
        let mut w = Walker {
            ctx,
            types,
            out: &mut *out,
            probe: p,
        };
        w.visit_probe(p.probe);
    }
}

struct Walker<'c, 'a, 'o> {
    ctx: &'c Ctx<'a>,
    types: &'c Types,
    out: &'o mut Vec<Diagnostic>,
    probe: &'c ProbeCtx<'a>,
}

impl Visitor for Walker<'_, '_, '_> {
    fn visit_expr(&mut self, e: &Expr) {
        if let ExprKind::Call { name, args } = &e.kind {
            if name.name == "str" && !self.ctx.user_callables.contains("str") {
                if let Some(arg) = args.first() {
                    self.check(e, arg);
                }
            }
        }
        visit::walk_expr(self, e);
    }
}

impl Walker<'_, '_, '_> {
    fn check(&mut self, call: &Expr, arg: &Expr) {
        let Ty::Int(i) = self.types.of(arg) else {
            return;
        };
        if !i.non_address || i.literal.is_some() {
            return;
        }
        let written = arg.span.text(self.ctx.source);
        let what = match &i.c_type {
            Some(c) => format!("an integer (`{c}`)"),
            None => "an integer".to_string(),
        };
        let mut d = Diagnostic::error(
            codes::STR_ON_NON_POINTER,
            format!(
                "`str({written})`: `{written}` is {what}, not a pointer to a string; str() would read memory at that number"
            ),
            call.span,
        );
        let mut help = vec![format!(
            "to print the number itself, drop str(): printf(\"%d\\n\", {written})"
        )];
        if let ArgsSource::Fields(lists) = &self.probe.args {
            let texts: Vec<String> = lists
                .first()
                .map(|(_, fields)| {
                    fields
                        .iter()
                        .filter(|f| {
                            let t = f.c_type.replace(' ', "");
                            t.ends_with("char*")
                                || t.contains("char[")
                                || t.starts_with("__data_loc")
                        })
                        .map(|f| format!("args->{}", f.name))
                        .collect()
                })
                .unwrap_or_default();
            if !texts.is_empty() {
                help.push(format!("fields here that hold text: {}", texts.join(", ")));
            }
        }
        d = d.with_help(help.join("\n"));
        self.out.push(d);
    }
}
