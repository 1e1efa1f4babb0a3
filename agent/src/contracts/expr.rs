//! Small expression helpers the contracts and rules share: which context
//! values an expression reads, whether it has side effects, splitting `&&`,
//! substituting sub-expressions, and building new expressions that print
//! (through the front end's printer) as valid bpftrace.

use std::collections::BTreeSet;

use kgent_frontend::ast::*;
use kgent_frontend::passes::print::print_expr;
use kgent_frontend::visit::Visitor;
use kgent_frontend::Span;

/// A value a probe reads from its context.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Atom {
    /// `args->NAME` (or `args.NAME`).
    Field(String),
    /// A builtin: `pid`, `arg0`, `retval`, `nsecs`, and `args` itself when
    /// it is used whole.
    Builtin(String),
}

/// `NAME` when `e` is `args->NAME` or `args.NAME`.
pub(crate) fn args_field(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Field { base, field, .. } if matches!(&base.kind, ExprKind::Builtin(b) if b == "args") => {
            Some(&field.name)
        }
        _ => None,
    }
}

/// The direct sub-expressions of `e`.
pub(crate) fn children(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Int(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Var(_)
        | ExprKind::Positional(_)
        | ExprKind::PositionalCount
        | ExprKind::Builtin(_)
        | ExprKind::Ident(_)
        | ExprKind::Error => Vec::new(),
        ExprKind::Map { keys, .. } => keys.iter().collect(),
        ExprKind::Call { args, .. } => args.iter().collect(),
        ExprKind::Tuple(elems) => elems.iter().collect(),
        ExprKind::Field { base, .. } | ExprKind::TupleIndex { base, .. } => vec![base],
        ExprKind::Index { base, index } => vec![base, index],
        ExprKind::Unary { operand, .. } => vec![operand],
        ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
        ExprKind::Ternary {
            cond,
            then_expr,
            else_expr,
        } => vec![cond, then_expr, else_expr],
        ExprKind::Cast { expr, .. } => vec![expr],
        ExprKind::Sizeof(TypeOrExpr::Expr(e))
        | ExprKind::Offsetof {
            of: TypeOrExpr::Expr(e),
            ..
        } => vec![e],
        ExprKind::Sizeof(_) | ExprKind::Offsetof { .. } => Vec::new(),
    }
}

/// Whether `pred` holds for `e` or any expression inside it.
pub(crate) fn any(e: &Expr, pred: &dyn Fn(&Expr) -> bool) -> bool {
    pred(e) || children(e).into_iter().any(|c| any(c, pred))
}

/// The context values `e` reads.
pub(crate) fn atoms(e: &Expr, out: &mut BTreeSet<Atom>) {
    if let Some(name) = args_field(e) {
        out.insert(Atom::Field(name.to_string()));
        return;
    }
    if let ExprKind::Builtin(b) = &e.kind {
        out.insert(Atom::Builtin(b.clone()));
    }
    for c in children(e) {
        atoms(c, out);
    }
}

/// The context values a probe reads anywhere: predicate, body, and the
/// annotations already there (an assert about a field needs the field's
/// preconditions as much as the code does).
pub(crate) fn probe_atoms(probe: &Probe) -> BTreeSet<Atom> {
    struct Collect(BTreeSet<Atom>);
    impl Visitor for Collect {
        fn visit_expr(&mut self, e: &Expr) {
            // Not walking on: `atoms` descends itself.
            atoms(e, &mut self.0);
        }
    }
    let mut c = Collect(BTreeSet::new());
    c.visit_probe(probe);
    c.0
}

/// Functions without side effects that read nothing but their arguments
/// (and memory they point to).
const PURE_CALLS: &[&str] = &["bswap", "str", "ntop", "strncmp", "buf", "kaddr"];

/// No increments, no assignments hidden in calls, no calls with effects.
pub(crate) fn side_effect_free(e: &Expr) -> bool {
    !any(e, &|x| match &x.kind {
        ExprKind::Unary { op, .. } => matches!(
            op,
            UnaryOp::PreInc | UnaryOp::PreDec | UnaryOp::PostInc | UnaryOp::PostDec
        ),
        ExprKind::Call { name, .. } => !PURE_CALLS.contains(&name.name.as_str()),
        ExprKind::Error => true,
        _ => false,
    })
}

/// Whether `e` reads program state (variables, maps) that statements can change.
pub(crate) fn reads_state(e: &Expr) -> bool {
    any(e, &|x| {
        matches!(
            x.kind,
            ExprKind::Var(_) | ExprKind::Map { .. } | ExprKind::Positional(_)
        )
    })
}

/// The top-level operands of `a && b && ...`.
pub(crate) fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            let mut v = conjuncts(lhs);
            v.extend(conjuncts(rhs));
            v
        }
        _ => vec![e],
    }
}

/// A copy of `e` where every sub-expression `f` maps to `Some(new)` is
/// replaced (and not descended into).
pub(crate) fn substitute(e: &Expr, f: &dyn Fn(&Expr) -> Option<Expr>) -> Expr {
    if let Some(new) = f(e) {
        return new;
    }
    let sub = |x: &Expr| Box::new(substitute(x, f));
    let kind = match &e.kind {
        ExprKind::Map { name, keys } => ExprKind::Map {
            name: name.clone(),
            keys: keys.iter().map(|k| substitute(k, f)).collect(),
        },
        ExprKind::Call { name, args } => ExprKind::Call {
            name: name.clone(),
            args: args.iter().map(|a| substitute(a, f)).collect(),
        },
        ExprKind::Tuple(elems) => ExprKind::Tuple(elems.iter().map(|x| substitute(x, f)).collect()),
        ExprKind::Field { base, field, arrow } => ExprKind::Field {
            base: sub(base),
            field: field.clone(),
            arrow: *arrow,
        },
        ExprKind::TupleIndex { base, index } => ExprKind::TupleIndex {
            base: sub(base),
            index: *index,
        },
        ExprKind::Index { base, index } => ExprKind::Index {
            base: sub(base),
            index: sub(index),
        },
        ExprKind::Unary { op, operand } => ExprKind::Unary {
            op: *op,
            operand: sub(operand),
        },
        ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
            op: *op,
            lhs: sub(lhs),
            rhs: sub(rhs),
        },
        ExprKind::Ternary {
            cond,
            then_expr,
            else_expr,
        } => ExprKind::Ternary {
            cond: sub(cond),
            then_expr: sub(then_expr),
            else_expr: sub(else_expr),
        },
        ExprKind::Cast { ty, expr } => ExprKind::Cast {
            ty: ty.clone(),
            expr: sub(expr),
        },
        other => other.clone(),
    };
    Expr { kind, span: e.span }
}

fn node(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

pub(crate) fn int(value: u64) -> Expr {
    node(ExprKind::Int(IntLit {
        value,
        raw: value.to_string(),
    }))
}

pub(crate) fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    node(ExprKind::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    })
}

pub(crate) fn not(e: Expr) -> Expr {
    node(ExprKind::Unary {
        op: UnaryOp::Not,
        operand: Box::new(e),
    })
}

pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    node(ExprKind::Call {
        name: Ident {
            name: name.to_string(),
            span: Span::default(),
        },
        args,
    })
}

/// `a && b && ...`, or `None` for no operands.
pub(crate) fn all_of(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|a, b| binary(BinaryOp::And, a, b))
}

/// `a || b || ...`, or `None` for no operands.
pub(crate) fn any_of(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|a, b| binary(BinaryOp::Or, a, b))
}

/// Canonical text: what the front end's printer makes of it.
pub(crate) fn text(e: &Expr) -> String {
    print_expr(e)
}

/// Parses one expression (as an `assume` condition); `None` when it does not
/// parse cleanly.
pub(crate) fn parse_expr(text: &str) -> Option<Expr> {
    let parsed = kgent_frontend::parse(&format!("BEGIN {{ assume({text}); }}"));
    if parsed.has_errors() {
        return None;
    }
    let probe = parsed.program.probes().next()?;
    match probe.body.stmts.as_slice() {
        [Stmt {
            kind: StmtKind::Assume(e),
            ..
        }] => Some(e.clone()),
        _ => None,
    }
}

/// The canonical text of an expression given as text (its printed form), or
/// the text itself when it does not parse.
pub(crate) fn normalize(text: &str) -> String {
    parse_expr(text).map_or_else(|| text.trim().to_string(), |e| print_expr(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_name_fields_and_builtins() {
        let e = parse_expr("args->family == 2 && pid > 0 || arg0 != 0").unwrap();
        let mut out = BTreeSet::new();
        atoms(&e, &mut out);
        let want: BTreeSet<Atom> = [
            Atom::Field("family".into()),
            Atom::Builtin("pid".into()),
            Atom::Builtin("arg0".into()),
        ]
        .into();
        assert_eq!(out, want);
    }

    #[test]
    fn substitution_prints_as_bpftrace() {
        let e = parse_expr("args->family == 2 && args->dport == 80").unwrap();
        let replaced = substitute(&e, &|x| (args_field(x) == Some("family")).then(|| int(10)));
        assert_eq!(text(&replaced), "10 == 2 && args->dport == 80");
        let parts = conjuncts(&e);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            text(&not(binary(BinaryOp::Or, int(1), int(2)))),
            "!(1 || 2)"
        );
    }

    #[test]
    fn effects_and_state() {
        let e = parse_expr("@x[tid] + 1 > 0").unwrap();
        assert!(side_effect_free(&e) && reads_state(&e));
        let e = parse_expr("count() > 0").unwrap();
        assert!(!side_effect_free(&e));
        let e = parse_expr("bswap(args->x) == 80").unwrap();
        assert!(side_effect_free(&e) && !reads_state(&e));
    }
}
