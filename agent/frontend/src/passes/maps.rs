//! `map-never-written` and `map-type-conflict`: maps read (in expressions,
//! `print`, `delete`, `clear`, `zero`, `for`) that nothing in the program
//! writes, which bpftrace rejects as "Undefined map"; and maps given values
//! of different kinds (`count()` and `hist()`, an integer and a string) or
//! keys of different numbers or kinds.

use std::collections::HashMap;

use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest;
use crate::visit::{self, Visitor};

use super::context::Ctx;
use super::types::{Ty, Types};

pub(crate) fn run(ctx: &Ctx<'_>, types: &Types, out: &mut Vec<Diagnostic>) {
    let mut c = Collector {
        types,
        writes: Vec::new(),
        reads: Vec::new(),
        keyed: Vec::new(),
    };
    for p in &ctx.probes {
        c.visit_probe(p.probe);
    }
    for item in &ctx.program.items {
        if let ItemKind::Function(f) = &item.kind {
            c.visit_function(f);
        }
    }
    never_written(ctx, &c, out);
    value_conflicts(&c, out);
    key_conflicts(&c, out);
}

/// What a map holds, as bpftrace tells kinds apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Agg(&'static str),
    Int,
    Str,
    Tuple,
    Buffer,
    Stack,
    Record,
}

impl Kind {
    fn of(ty: &Ty) -> Option<Kind> {
        Some(match ty {
            Ty::Agg(a) => Kind::Agg(a),
            Ty::Int(_) => Kind::Int,
            Ty::Str => Kind::Str,
            Ty::Tuple => Kind::Tuple,
            Ty::Buffer => Kind::Buffer,
            Ty::Stack => Kind::Stack,
            Ty::Record(_) => Kind::Record,
            _ => return None,
        })
    }

    fn describe(self) -> String {
        match self {
            Kind::Agg(a) => format!("{a}()"),
            Kind::Int => "an integer".into(),
            Kind::Str => "a string".into(),
            Kind::Tuple => "a tuple".into(),
            Kind::Buffer => "a buffer".into(),
            Kind::Stack => "a stack".into(),
            Kind::Record => "a struct".into(),
        }
    }
}

struct Write {
    name: String,
    span: Span,
    kind: Option<Kind>,
}

struct Read {
    name: String,
    /// The `@name` part.
    name_span: Span,
}

/// A use of a map with keys (or none): the key kinds, for arity and kind checks.
struct Keyed {
    name: String,
    span: Span,
    keys: Vec<Option<Kind>>,
}

struct Collector<'t> {
    types: &'t Types,
    writes: Vec<Write>,
    reads: Vec<Read>,
    keyed: Vec<Keyed>,
}

fn name_span(e: &Expr, name: &str) -> Span {
    Span::new(e.span.start, e.span.start + 1 + name.len() as u32)
}

impl Collector<'_> {
    fn keyed(&mut self, e: &Expr, name: &str, keys: &[Expr]) {
        let kinds = keys
            .iter()
            .map(|k| match self.types.of(k) {
                Ty::Ptr(_) => Some(Kind::Int),
                t => Kind::of(t),
            })
            .collect();
        self.keyed.push(Keyed {
            name: name.to_string(),
            span: e.span,
            keys: kinds,
        });
    }

    fn read(&mut self, e: &Expr, name: &str) {
        self.reads.push(Read {
            name: name.to_string(),
            name_span: name_span(e, name),
        });
    }

    fn write(&mut self, target: &Expr, kind: Option<Kind>) {
        if let ExprKind::Map { name, keys } = &target.kind {
            self.writes.push(Write {
                name: name.clone(),
                span: target.span,
                kind,
            });
            self.keyed(target, name, keys);
            for k in keys {
                self.visit_expr(k);
            }
        }
    }
}

/// Calls whose first argument names a whole map (no keys needed).
const WHOLE_MAP: &[&str] = &["print", "clear", "zero", "len", "has_key", "delete"];

impl Visitor for Collector<'_> {
    fn visit_stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Assign { target, op, value }
                if matches!(target.kind, ExprKind::Map { .. }) =>
            {
                let kind = if op.binary_op().is_some() {
                    Some(Kind::Int)
                } else {
                    Kind::of(self.types.of(value))
                };
                self.write(target, kind);
                self.visit_expr(value);
            }
            StmtKind::For {
                iter: ForIter::Expr(e),
                body,
                ..
            } => {
                match &e.kind {
                    ExprKind::Map { name, keys } if keys.is_empty() => self.read(e, name),
                    _ => self.visit_expr(e),
                }
                self.visit_block(body);
            }
            _ => visit::walk_stmt(self, s),
        }
    }

    fn visit_expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Unary { op, operand }
                if matches!(
                    op,
                    UnaryOp::PreInc | UnaryOp::PreDec | UnaryOp::PostInc | UnaryOp::PostDec
                ) && matches!(operand.kind, ExprKind::Map { .. }) =>
            {
                self.write(operand, Some(Kind::Int));
            }
            ExprKind::Call { name, args } if WHOLE_MAP.contains(&name.name.as_str()) => {
                for (i, a) in args.iter().enumerate() {
                    match &a.kind {
                        ExprKind::Map { name: m, keys } if i == 0 => {
                            self.read(a, m);
                            if !keys.is_empty() {
                                self.keyed(a, m, keys);
                            }
                            for k in keys {
                                self.visit_expr(k);
                            }
                        }
                        _ => self.visit_expr(a),
                    }
                }
            }
            // A map the parser could not finish (`@x[` at the end): its
            // syntax error says enough.
            ExprKind::Map { keys, .. } if keys.iter().any(|k| k.kind == ExprKind::Error) => {}
            ExprKind::Map { name, keys } => {
                self.read(e, name);
                self.keyed(e, name, keys);
                visit::walk_expr(self, e);
            }
            _ => visit::walk_expr(self, e),
        }
    }
}

fn display(name: &str) -> String {
    format!("@{name}")
}

fn never_written(ctx: &Ctx<'_>, c: &Collector<'_>, out: &mut Vec<Diagnostic>) {
    let written: Vec<&str> = {
        let mut w: Vec<&str> = c.writes.iter().map(|w| w.name.as_str()).collect();
        w.sort_unstable();
        w.dedup();
        w
    };
    let mut reported: Vec<&str> = Vec::new();
    for r in &c.reads {
        if written.binary_search(&r.name.as_str()).is_ok() || reported.contains(&r.name.as_str()) {
            continue;
        }
        reported.push(&r.name);
        let shown = display(&r.name);
        let mut d = Diagnostic::error(
            codes::MAP_NEVER_WRITTEN,
            format!("`{shown}` is read here, but nothing in the program writes it"),
            r.name_span,
        );
        let source_ok = r.name_span.text(ctx.source) == shown;
        match suggest::nearest(&r.name, written.iter().copied(), 1).first() {
            Some(best) if source_ok => {
                d.message.push_str(&format!("; did you mean `@{best}`?"));
                d = d.with_suggestion(r.name_span, format!("@{best}"));
            }
            _ => {
                d = d.with_help("bpftrace rejects reads of maps that are never assigned (\"Undefined map\"): assign it somewhere, e.g. @x[key] = value");
            }
        }
        out.push(d);
    }
}

fn value_conflicts(c: &Collector<'_>, out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<&str, (Kind, Span)> = HashMap::new();
    let mut reported: Vec<&str> = Vec::new();
    for w in &c.writes {
        let Some(kind) = w.kind else { continue };
        match first.get(w.name.as_str()) {
            None => {
                first.insert(&w.name, (kind, w.span));
            }
            Some(&(k, at)) if k != kind && !reported.contains(&w.name.as_str()) => {
                reported.push(&w.name);
                out.push(
                    Diagnostic::error(
                        codes::MAP_TYPE_CONFLICT,
                        format!(
                            "`{}` is given {} here, but {} elsewhere: a map holds one kind of value",
                            display(&w.name),
                            kind.describe(),
                            k.describe()
                        ),
                        w.span,
                    )
                    .with_label(at, format!("{} assigned here", k.describe()))
                    .with_help("use a different map for each kind of value"),
                );
            }
            Some(_) => {}
        }
    }
}

fn key_conflicts(c: &Collector<'_>, out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<&str, &Keyed> = HashMap::new();
    let mut reported: Vec<&str> = Vec::new();
    for k in &c.keyed {
        let Some(f) = first.get(k.name.as_str()).copied() else {
            first.insert(&k.name, k);
            continue;
        };
        if reported.contains(&k.name.as_str()) {
            continue;
        }
        let shown = display(&k.name);
        let plural = |n: usize| format!("{n} key{}", if n == 1 { "" } else { "s" });
        if f.keys.len() != k.keys.len() {
            reported.push(&k.name);
            out.push(
                Diagnostic::error(
                    codes::MAP_TYPE_CONFLICT,
                    format!(
                        "`{shown}` is used with {} here, but with {} elsewhere: every use of a map needs the same keys",
                        plural(k.keys.len()),
                        plural(f.keys.len())
                    ),
                    k.span,
                )
                .with_label(f.span, format!("{} here", plural(f.keys.len()))),
            );
            continue;
        }
        let clash = f
            .keys
            .iter()
            .zip(&k.keys)
            .position(|(a, b)| matches!((a, b), (Some(a), Some(b)) if a != b));
        if let Some(i) = clash {
            reported.push(&k.name);
            let (a, b) = (
                f.keys[i].unwrap_or(Kind::Int),
                k.keys[i].unwrap_or(Kind::Int),
            );
            out.push(
                Diagnostic::error(
                    codes::MAP_TYPE_CONFLICT,
                    format!(
                        "key {} of `{shown}` is {} here, but {} elsewhere: a map's keys keep one kind",
                        i + 1,
                        b.describe(),
                        a.describe()
                    ),
                    k.span,
                )
                .with_label(f.span, format!("{} here", a.describe())),
            );
        }
    }
}
