//! `network-byte-order` (a warning): values the kernel keeps in network byte
//! order (`__be16` ports such as `sock_common.skc_dport` and
//! `sockaddr_in.sin_port`, `__be32` addresses) printed with `%d`/`%u` or
//! compared with a number, without converting them first.
//!
//! Conversions are recognised as `bswap(x)` and as shifts and ors by hand
//! (`($x >> 8) | (($x << 8) & 0xff00)`): any shift or or gives a host-order
//! result. `ntop()` takes network order, so it needs no conversion. Host-order
//! fields (the `__u16` ports of `sock:inet_sock_set_state`) are never flagged.

use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::visit::{self, Visitor};

use super::context::Ctx;
use super::format;
use super::printf::FORMATTED;
use super::types::{IntTy, Ty, Types};

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

/// `v` with its low `bits` bits byte-swapped.
fn swapped(v: u64, bits: u16) -> Option<u64> {
    Some(match bits {
        16 => u64::from((v as u16).swap_bytes()),
        32 => u64::from((v as u32).swap_bytes()),
        64 => v.swap_bytes(),
        _ => return None,
    })
}

impl Visitor for Walker<'_, '_, '_> {
    fn visit_expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Call { name, args } if FORMATTED.contains(&name.name.as_str()) => {
                self.printed(args);
            }
            ExprKind::Binary { op, lhs, rhs }
                if matches!(
                    op,
                    BinaryOp::Eq
                        | BinaryOp::Ne
                        | BinaryOp::Lt
                        | BinaryOp::Le
                        | BinaryOp::Gt
                        | BinaryOp::Ge
                ) =>
            {
                self.compared(e, lhs, rhs, *op);
            }
            _ => {}
        }
        visit::walk_expr(self, e);
    }
}

impl Walker<'_, '_, '_> {
    fn network(&self, e: &Expr) -> Option<IntTy> {
        match self.types.of(e) {
            Ty::Int(i) if i.is_network() => Some(i.clone()),
            _ => None,
        }
    }

    /// The fix: `bswap(x)` (bpftrace 0.15+), or shifts for a 16-bit value before.
    fn converted(&self, e: &Expr, bits: Option<u16>) -> Option<String> {
        let text = e.span.text(self.ctx.source);
        if self.ctx.options.version >= (0, 15) {
            return bits.map(|_| format!("bswap({text})"));
        }
        (bits == Some(16)).then(|| format!("(({text} >> 8) | (({text} << 8) & 0xff00))"))
    }

    fn describe(&self, e: &Expr, i: &IntTy) -> String {
        let text = e.span.text(self.ctx.source);
        let ty = i.c_type.as_deref().unwrap_or("network order");
        let origin = i
            .origin
            .filter(|o| *o != e.span)
            .map(|o| format!(" (from `{}`)", o.text(self.ctx.source)))
            .unwrap_or_default();
        format!("`{text}` is a `{ty}`{origin}, in network byte order")
    }

    fn printed(&mut self, args: &[Expr]) {
        let Some((fmt, rest)) = args.split_first() else {
            return;
        };
        let ExprKind::Str(lit) = &fmt.kind else {
            return;
        };
        let specs = format::parse(&lit.raw);
        if specs.len() != rest.len() {
            return; // printf-format reports it
        }
        for (spec, arg) in specs.iter().zip(rest) {
            if !spec.is_decimal() {
                continue;
            }
            let Some(i) = self.network(arg) else {
                continue;
            };
            let example = match i.bits {
                Some(16) => " (port 80 would print as 20480)",
                _ => "",
            };
            let conv = &lit.raw[spec.start..spec.end];
            let mut d = Diagnostic::warning(
                codes::NETWORK_BYTE_ORDER,
                format!(
                    "{}, and `{conv}` prints it unconverted{example}",
                    self.describe(arg, &i)
                ),
                arg.span,
            );
            if let Some(origin) = i.origin.filter(|o| *o != arg.span) {
                d = d.with_label(origin, "read here, in network byte order");
            }
            if i.bits == Some(32) {
                d = d.with_help(
                    "an IPv4 address prints as text with ntop(): printf(\"%s\", ntop(addr))",
                );
            }
            if let Some(fix) = self.converted(arg, i.bits) {
                d.message.push_str(&format!("; convert it: `{fix}`"));
                d = d.with_suggestion(arg.span, fix);
            }
            self.out.push(d);
        }
    }

    fn compared(&mut self, e: &Expr, lhs: &Expr, rhs: &Expr, op: BinaryOp) {
        let (value, number) = match (self.network(lhs), self.network(rhs)) {
            (Some(i), None) => ((lhs, i), rhs),
            (None, Some(i)) => ((rhs, i), lhs),
            _ => return,
        };
        let (value_expr, i) = value;
        let Ty::Int(n) = self.types.of(number) else {
            return;
        };
        let (Some(lit), Some(bits)) = (n.literal, i.bits) else {
            return;
        };
        let Some(swapped) = swapped(lit, bits) else {
            return;
        };
        if swapped == lit {
            return; // 0, 0xffff, 0x5050: the same either way
        }
        let mut d = Diagnostic::warning(
            codes::NETWORK_BYTE_ORDER,
            format!(
                "{}, compared with {lit} in host order: `{}` holds when the value is {lit} byte-swapped ({swapped})",
                self.describe(value_expr, &i),
                op.as_str()
            ),
            e.span,
        );
        if let Some(origin) = i.origin.filter(|o| *o != value_expr.span) {
            d = d.with_label(origin, "read here, in network byte order");
        }
        if let Some(fix) = self.converted(value_expr, i.bits) {
            d.message.push_str(&format!("; convert it first: `{fix}`"));
            d = d.with_suggestion(value_expr.span, fix);
        }
        self.out.push(d);
    }
}
