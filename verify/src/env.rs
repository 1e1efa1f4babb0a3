//! What both evaluators know before they run a probe: the program's
//! `#define` constants, the firings of each probe (attach points with their
//! `args` fields), declared types of variables and maps (bpftrace types a
//! scratch variable by its first assignment in source order, a map by its
//! first write), and the names inputs are reported by.

use std::collections::HashMap;

use kgent_frontend::ast::*;
use kgent_frontend::facts::{FieldInfo, KernelFacts, MemberLookup, RecordRef};

use crate::ty::{
    builtin_model, cast_int_ty, field_ty, BuiltinModel, IntTy, Pointee, Semantics, ValTy,
};

/// Aggregation functions: a map written with one holds an aggregate.
pub(crate) const AGGREGATIONS: &[&str] = &[
    "count", "sum", "avg", "min", "max", "stats", "hist", "lhist", "tseries",
];

/// A map's value type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MapTy {
    /// Integers are stored as 64 bits (keeping their signedness).
    Value(ValTy),
    Agg,
}

/// One way a probe fires: an attach point (or several with the same `args`).
#[derive(Clone, Debug)]
pub(crate) struct Firing {
    /// The attach point, as written (the first one of a group).
    pub label: String,
    pub kind: Option<ProbeKind>,
    /// `args` fields, when known.
    pub fields: Option<Vec<FieldInfo>>,
}

/// Program-wide knowledge shared by the evaluators.
pub(crate) struct Env<'a> {
    pub source: &'a str,
    pub facts: &'a dyn KernelFacts,
    pub sem: Semantics,
    /// `#define NAME <integer>` lines.
    pub defines: HashMap<String, u64>,
    pub maps: HashMap<String, MapTy>,
    /// Names of `fn`s and macros the program declares.
    pub user_callables: Vec<String>,
}

impl<'a> Env<'a> {
    pub fn new(
        source: &'a str,
        program: &Program,
        facts: &'a dyn KernelFacts,
        sem: Semantics,
    ) -> Env<'a> {
        let mut env = Env {
            source,
            facts,
            sem,
            defines: HashMap::new(),
            maps: HashMap::new(),
            user_callables: Vec::new(),
        };
        for item in &program.items {
            match &item.kind {
                ItemKind::Preprocessor(p) if p.kind == PreprocessorKind::Define => {
                    let mut words = p.text.split_whitespace();
                    if let (Some("#define"), Some(name), Some(value), None) =
                        (words.next(), words.next(), words.next(), words.next())
                    {
                        if let Some(v) = parse_c_int(value) {
                            env.defines.insert(name.to_string(), v);
                        }
                    }
                }
                ItemKind::Function(f) => env.user_callables.push(f.name.name.clone()),
                ItemKind::Macro(m) => env.user_callables.push(m.name.name.clone()),
                _ => {}
            }
        }
        // Map types: the first write in source order, typed in its probe's first firing.
        for probe in program.probes() {
            let firing = firings(probe, facts, 1).into_iter().next();
            let mut decls = Decls::default();
            let mut writes = Vec::new();
            collect_writes(&probe.body, &mut writes);
            for (target, value) in writes {
                match target {
                    Write::Var(name) => {
                        if !decls.vars.contains_key(&name) {
                            if let Some(t) = env.static_ty(firing.as_ref(), &decls, value) {
                                decls.vars.insert(name, t);
                            }
                        }
                    }
                    Write::Map(name) => {
                        if env.maps.contains_key(&name) {
                            continue;
                        }
                        let t = match &value.kind {
                            ExprKind::Call { name: f, .. }
                                if AGGREGATIONS.contains(&f.name.as_str()) =>
                            {
                                Some(MapTy::Agg)
                            }
                            _ => env
                                .static_ty(firing.as_ref(), &decls, value)
                                .map(|t| match t {
                                    ValTy::Int(i) => {
                                        MapTy::Value(ValTy::Int(IntTy::new(64, i.signed)))
                                    }
                                    other => MapTy::Value(other),
                                }),
                        };
                        if let Some(t) = t {
                            env.maps.insert(name, t);
                        }
                    }
                }
            }
        }
        env
    }

    /// The declared types of a probe's variables in one firing.
    pub fn var_decls(&self, probe: &Probe, firing: &Firing) -> Decls {
        let mut decls = Decls::default();
        let mut writes = Vec::new();
        collect_writes(&probe.body, &mut writes);
        let mut lets = Vec::new();
        collect_lets(&probe.body, &mut lets);
        for (name, ty) in lets {
            decls.vars.entry(name).or_insert(ty);
        }
        for (target, value) in writes {
            if let Write::Var(name) = target {
                if !decls.vars.contains_key(&name) {
                    if let Some(t) = self.static_ty(Some(firing), &decls, value) {
                        decls.vars.insert(name, t);
                    }
                }
            }
        }
        decls
    }

    /// A struct or union member, through the kernel facts.
    pub fn member(&self, record: &RecordRef, name: &str) -> Option<FieldInfo> {
        match self.facts.member(record, name) {
            MemberLookup::Found(f) => Some(f),
            _ => None,
        }
    }

    /// The value of a bare identifier: a `#define` or a kernel enum constant.
    pub fn constant(&self, name: &str) -> Option<u64> {
        if let Some(v) = self.defines.get(name) {
            return Some(*v);
        }
        self.facts.enum_constant(name).map(|v| v as u64)
    }

    /// The type `e` has, as far as it can be known without running it; used
    /// only to declare variables and maps.
    pub fn static_ty(&self, firing: Option<&Firing>, decls: &Decls, e: &Expr) -> Option<ValTy> {
        let sem = self.sem;
        Some(match &e.kind {
            ExprKind::Int(lit) => ValTy::Int(sem.literal(lit.value)),
            ExprKind::Bool(_) => ValTy::Int(IntTy::U8),
            ExprKind::Str(_) => ValTy::Str,
            ExprKind::Var(name) => decls.vars.get(name)?.clone(),
            ExprKind::Positional(_) => ValTy::Int(IntTy::I64),
            ExprKind::PositionalCount => ValTy::Int(IntTy::U64),
            ExprKind::Map { name, .. } => match self.maps.get(name)? {
                MapTy::Value(t) => t.clone(),
                MapTy::Agg => ValTy::Int(IntTy::U64),
            },
            ExprKind::Builtin(name) => match builtin_model(name, sem)? {
                BuiltinModel::Int { ty, .. } => ValTy::Int(ty),
                BuiltinModel::Str | BuiltinModel::ProbeName => ValTy::Str,
                BuiltinModel::Ptr(p) => ValTy::Ptr(p),
                BuiltinModel::Args | BuiltinModel::Opaque(_) => return None,
            },
            ExprKind::Ident(name) => {
                self.constant(name)?;
                ValTy::Int(IntTy::I64)
            }
            ExprKind::Field { base, field, .. } => {
                if matches!(&base.kind, ExprKind::Builtin(b) if b == "args") {
                    let f = firing?.field(&field.name)?;
                    return Some(field_ty(&f, self.facts));
                }
                match self.static_ty(firing, decls, base)? {
                    ValTy::Ptr(Pointee::Record(r)) | ValTy::Record(r) => {
                        field_ty(&self.member(&r, &field.name)?, self.facts)
                    }
                    _ => return None,
                }
            }
            ExprKind::Index { base, .. } => match self.static_ty(firing, decls, base)? {
                ValTy::Array { elem, .. } => ValTy::Int(elem),
                ValTy::Ptr(Pointee::Int(t)) => ValTy::Int(t),
                _ => return None,
            },
            ExprKind::Unary { op, operand } => {
                let t = self.static_ty(firing, decls, operand)?;
                match op {
                    UnaryOp::Not => ValTy::Int(t.as_int()?.unsigned()),
                    UnaryOp::Deref => match t {
                        ValTy::Ptr(Pointee::Int(i)) => ValTy::Int(i),
                        ValTy::Ptr(Pointee::Record(r)) => ValTy::Record(r),
                        ValTy::Ptr(_) | ValTy::Int(_) => ValTy::Int(IntTy::U64),
                        _ => return None,
                    },
                    UnaryOp::AddrOf => return None,
                    _ => ValTy::Int(t.as_int()?),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.static_ty(firing, decls, lhs)?;
                let r = self.static_ty(firing, decls, rhs)?;
                match (l.as_int(), r.as_int()) {
                    (Some(l), Some(r)) => ValTy::Int(sem.binop(*op, l, r).result),
                    // String comparisons give 0 or 1.
                    _ => ValTy::Int(IntTy::U64),
                }
            }
            ExprKind::Ternary {
                then_expr,
                else_expr,
                ..
            } => {
                let l = self.static_ty(firing, decls, then_expr)?;
                match l {
                    ValTy::Int(li) => {
                        let ri = self
                            .static_ty(firing, decls, else_expr)
                            .and_then(|t| t.as_int())
                            .unwrap_or(li);
                        ValTy::Int(sem.ternary(li, ri))
                    }
                    other => other,
                }
            }
            ExprKind::Cast { ty, .. } => cast_target(ty)?,
            ExprKind::Call { name, args } => match name.name.as_str() {
                "bswap" => ValTy::Int(self.static_ty(firing, decls, args.first()?)?.as_int()?),
                "kptr" | "uptr" => self.static_ty(firing, decls, args.first()?)?,
                "str" | "ksym" | "usym" | "ntop" | "path" | "strftime" | "strerror"
                | "cgroup_path" | "macaddr" | "kstack" | "ustack" => ValTy::Str,
                "strncmp" | "kaddr" | "uaddr" | "cgroupid" | "reg" | "sizeof" | "strlen"
                | "strcontains" | "has_key" => ValTy::Int(IntTy::U64),
                _ => return None,
            },
            ExprKind::Sizeof(_) | ExprKind::Offsetof { .. } => ValTy::Int(IntTy::U64),
            _ => return None,
        })
    }
}

/// Declared types of a probe's scratch variables.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decls {
    pub vars: HashMap<String, ValTy>,
}

/// The type a cast names: an integer type, or a pointer (`(struct sock *)`).
pub(crate) fn cast_target(ty: &TypeExpr) -> Option<ValTy> {
    match &ty.kind {
        TypeKind::Named(name) => cast_int_ty(name).map(ValTy::Int),
        TypeKind::Pointer(inner) => Some(ValTy::Ptr(match &inner.kind {
            TypeKind::Record { keyword, name } => match keyword {
                RecordKeyword::Struct => Pointee::Record(RecordRef::new(
                    kgent_frontend::RecordKind::Struct,
                    name.clone(),
                )),
                RecordKeyword::Union => Pointee::Record(RecordRef::new(
                    kgent_frontend::RecordKind::Union,
                    name.clone(),
                )),
                RecordKeyword::Enum => Pointee::Int(IntTy::U32),
            },
            TypeKind::Named(n) if n == "char" || n == "int8" || n == "uint8" => {
                if n == "char" {
                    Pointee::Char
                } else {
                    Pointee::Int(cast_int_ty(n).unwrap_or(IntTy::U8))
                }
            }
            TypeKind::Named(n) => cast_int_ty(n).map_or(Pointee::Unknown, Pointee::Int),
            _ => Pointee::Unknown,
        })),
        TypeKind::Record { keyword, name } => Some(ValTy::Record(RecordRef::new(
            match keyword {
                RecordKeyword::Union => kgent_frontend::RecordKind::Union,
                _ => kgent_frontend::RecordKind::Struct,
            },
            name.clone(),
        ))),
        _ => None,
    }
}

impl Firing {
    pub fn field(&self, name: &str) -> Option<FieldInfo> {
        self.fields
            .as_ref()?
            .iter()
            .find(|f| f.name == name)
            .cloned()
    }
}

/// `123`, `0x7b`, `0173`, optionally with `U`/`L` suffixes.
fn parse_c_int(text: &str) -> Option<u64> {
    let t = text
        .trim_end_matches(['u', 'U', 'l', 'L'])
        .trim_start_matches('(')
        .trim_end_matches(')');
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()
    } else if let Some(neg) = t.strip_prefix('-') {
        neg.parse::<u64>().ok().map(|v| v.wrapping_neg())
    } else {
        t.parse().ok()
    }
}

enum Write {
    Var(String),
    Map(String),
}

/// Assignments in source order (plain and compound; `++`/`--` do not declare).
fn collect_writes<'p>(block: &'p Block, out: &mut Vec<(Write, &'p Expr)>) {
    for stmt in &block.stmts {
        match &stmt.kind {
            StmtKind::Assign { target, value, .. } => match &target.kind {
                ExprKind::Var(name) => out.push((Write::Var(name.clone()), value)),
                ExprKind::Map { name, .. } => out.push((Write::Map(name.clone()), value)),
                _ => {}
            },
            StmtKind::Let {
                var,
                init: Some(init),
                ..
            } => out.push((Write::Var(var.name.clone()), init)),
            StmtKind::If(if_stmt) => collect_if(if_stmt, out),
            StmtKind::Unroll { body, .. }
            | StmtKind::While { body, .. }
            | StmtKind::For { body, .. }
            | StmtKind::Block(body) => collect_writes(body, out),
            _ => {}
        }
    }
}

fn collect_if<'p>(if_stmt: &'p IfStmt, out: &mut Vec<(Write, &'p Expr)>) {
    collect_writes(&if_stmt.then_block, out);
    match &if_stmt.else_branch {
        Some(ElseBranch::Block(b)) => collect_writes(b, out),
        Some(ElseBranch::If(i)) => collect_if(i, out),
        None => {}
    }
}

/// `let $x: type` declarations with an integer or string type.
fn collect_lets(block: &Block, out: &mut Vec<(String, ValTy)>) {
    for stmt in &block.stmts {
        match &stmt.kind {
            StmtKind::Let {
                var, ty: Some(ty), ..
            } => {
                if let Some(t) = cast_target(ty).or(match &ty.kind {
                    TypeKind::Named(n) if n == "string" => Some(ValTy::Str),
                    _ => None,
                }) {
                    out.push((var.name.clone(), t));
                }
            }
            StmtKind::If(i) => {
                collect_lets(&i.then_block, out);
                let mut e = &i.else_branch;
                while let Some(b) = e {
                    match b {
                        ElseBranch::Block(b) => {
                            collect_lets(b, out);
                            break;
                        }
                        ElseBranch::If(i) => {
                            collect_lets(&i.then_block, out);
                            e = &i.else_branch;
                        }
                    }
                }
            }
            StmtKind::Unroll { body, .. }
            | StmtKind::While { body, .. }
            | StmtKind::For { body, .. }
            | StmtKind::Block(body) => collect_lets(body, out),
            _ => {}
        }
    }
}

struct ArgsFinder(bool);

impl kgent_frontend::Visitor for ArgsFinder {
    fn visit_expr(&mut self, expr: &Expr) {
        if matches!(&expr.kind, ExprKind::Builtin(b) if b == "args") {
            self.0 = true;
        }
        kgent_frontend::visit::walk_expr(self, expr);
    }
}

/// Whether the probe reads `args` (in its predicate or body).
fn uses_args(probe: &Probe) -> bool {
    let mut f = ArgsFinder(false);
    if let Some(p) = &probe.predicate {
        kgent_frontend::Visitor::visit_expr(&mut f, p);
    }
    kgent_frontend::Visitor::visit_block(&mut f, &probe.body);
    f.0
}

/// The firings of `probe`: one per attach point (wildcard tracepoints
/// expanded, up to `max`), attach points with the same kind and `args`
/// merged; a single firing when the probe never reads `args`.
pub(crate) fn firings(probe: &Probe, facts: &dyn KernelFacts, max: usize) -> Vec<Firing> {
    if !uses_args(probe) {
        let label = probe
            .attach_points
            .iter()
            .map(|ap| ap.raw.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return vec![Firing {
            label,
            kind: probe.attach_points.first().and_then(|ap| ap.kind),
            fields: None,
        }];
    }
    let mut out: Vec<Firing> = Vec::new();
    for ap in &probe.attach_points {
        let kind = ap.kind;
        let parts: Vec<&str> = ap.parts.iter().map(|p| p.value.as_str()).collect();
        let mut found: Vec<(String, Option<Vec<FieldInfo>>)> = Vec::new();
        match (kind, parts.as_slice()) {
            (Some(ProbeKind::Tracepoint), [cat, event]) => {
                let query = format!("tracepoint:{cat}:{event}");
                if ap.wildcard {
                    for name in facts.matching_probes(&query, max).names {
                        let f = facts.probe_fields(&name);
                        found.push((name, f));
                    }
                } else {
                    found.push((ap.raw.clone(), facts.probe_fields(&query)));
                }
            }
            (Some(ProbeKind::Fentry | ProbeKind::Fexit), [func]) => {
                found.push((ap.raw.clone(), facts.probe_fields(&format!("kfunc:{func}"))));
            }
            _ => {}
        }
        if found.is_empty() {
            found.push((ap.raw.clone(), None));
        }
        for (label, fields) in found {
            if out.iter().any(|f| f.fields == fields && f.kind == kind) {
                continue;
            }
            if out.len() >= max {
                break;
            }
            out.push(Firing {
                label,
                kind,
                fields,
            });
        }
    }
    if out.is_empty() {
        out.push(Firing {
            label: String::new(),
            kind: None,
            fields: None,
        });
    }
    out
}

/// The text of `span` in `source`, whitespace runs collapsed: how inputs and
/// assertions are named in reports.
pub(crate) fn snippet(source: &str, span: Span) -> String {
    let text = source.get(span.range()).unwrap_or("");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_integers() {
        assert_eq!(parse_c_int("10"), Some(10));
        assert_eq!(parse_c_int("0x1f"), Some(31));
        assert_eq!(parse_c_int("010"), Some(8));
        assert_eq!(parse_c_int("4096UL"), Some(4096));
        assert_eq!(parse_c_int("-1"), Some(u64::MAX));
        assert_eq!(parse_c_int("abc"), None);
    }
}
