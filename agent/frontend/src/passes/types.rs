//! Conservative types for every expression: an analysis the checks share,
//! not a pass (it reports nothing).
//!
//! A type is only as precise as the program and the kernel facts make it
//! certain; everything else is [`Ty::Unknown`], and checks say nothing about
//! unknown types. Scratch variables carry the type of their latest assignment
//! in source order (joined where branches meet), maps the join of every
//! value written to them anywhere. Field accesses are resolved against the
//! probe's `args` and BTF records; what fails to resolve is kept for the
//! `fields` pass to report.

use std::collections::HashMap;

use crate::ast::*;
use crate::builtins::{builtins_named, BuiltinKind, Yields};
use crate::facts::{ByteOrder, FieldInfo, MemberLookup, RecordKind, RecordRef};

use super::context::{ArgsSource, Ctx, ProbeCtx};

/// The type of an expression, as far as the checker is sure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Unknown,
    Int(IntTy),
    Ptr(Pointee),
    /// A string, or something printed as one (`ksym()`, `ntop()`, char arrays).
    Str,
    Buffer,
    Stack,
    Tuple,
    /// An array of non-`char` elements.
    Array(ArrayTy),
    /// A struct or union by value.
    Record(RecordRef),
    /// The `args` builtin of a probe whose fields are known.
    Args,
    /// The value of an aggregation call (`count()`), by function name.
    Agg(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IntTy {
    /// `None` when it depends on the path taken.
    pub order: Option<ByteOrder>,
    pub bits: Option<u16>,
    /// Certainly not an address (a pid, a `size_t`, a 4-byte int).
    pub non_address: bool,
    /// The C type it was read as, for messages.
    pub c_type: Option<String>,
    /// Its value, when it is an integer literal.
    pub literal: Option<u64>,
    /// Where a network-order value was read (the field access), for messages.
    pub origin: Option<Span>,
}

impl IntTy {
    pub fn plain() -> IntTy {
        IntTy {
            order: Some(ByteOrder::Host),
            bits: None,
            non_address: false,
            c_type: None,
            literal: None,
            origin: None,
        }
    }

    fn counter() -> IntTy {
        IntTy {
            non_address: true,
            ..IntTy::plain()
        }
    }

    fn join(a: &IntTy, b: &IntTy) -> IntTy {
        IntTy {
            order: if a.order == b.order { a.order } else { None },
            bits: if a.bits == b.bits { a.bits } else { None },
            non_address: a.non_address && b.non_address,
            c_type: if a.c_type == b.c_type {
                a.c_type.clone()
            } else {
                None
            },
            literal: None,
            origin: a.origin.or(b.origin),
        }
    }

    pub fn is_network(&self) -> bool {
        self.order == Some(ByteOrder::Network)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pointee {
    Record(RecordRef),
    Char,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ArrayTy {
    pub c_type: String,
    pub elem_bits: Option<u16>,
    pub elem_order: ByteOrder,
    /// Elements are bytes (`__u8`, `unsigned char`): perhaps an address for `ntop()`.
    pub bytes: bool,
    pub len: Option<u64>,
}

/// Where a field name was looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A probe's `args` (its display name).
    Probe(String),
    Record(RecordRef),
}

/// A field access that did not resolve cleanly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldIssue {
    Missing {
        owner: Owner,
        /// The owner's field names, for "did you mean".
        names: Vec<String>,
        /// Other probes of the same `args` that do have the field.
        present_in: Vec<String>,
    },
    /// `.` where `->` is needed (`arrow_needed`), or the other way round.
    Operator { arrow_needed: bool, what: String },
}

/// The result of the analysis.
#[derive(Default)]
pub(crate) struct Types {
    exprs: HashMap<*const Expr, Ty>,
    issues: HashMap<*const Expr, FieldIssue>,
}

static UNKNOWN: Ty = Ty::Unknown;

impl Types {
    /// The type of `e` (which must belong to the checked program).
    pub fn of(&self, e: &Expr) -> &Ty {
        self.exprs.get(&(e as *const Expr)).unwrap_or(&UNKNOWN)
    }

    /// What went wrong with the field access `e`, if anything.
    pub fn field_issue(&self, e: &Expr) -> Option<&FieldIssue> {
        self.issues.get(&(e as *const Expr))
    }
}

/// Infers types for the whole program. Runs twice: the first round learns
/// what each map holds, the second uses it for map reads.
pub(crate) fn infer(ctx: &Ctx<'_>) -> Types {
    let mut infer = Infer {
        ctx,
        types: Types::default(),
        maps: HashMap::new(),
        map_writes: HashMap::new(),
        members: HashMap::new(),
        env: HashMap::new(),
        probe: None,
    };
    for _round in 0..2 {
        infer.run();
        infer.maps = std::mem::take(&mut infer.map_writes)
            .into_iter()
            .filter(|(_, t)| !matches!(t, Ty::Agg(_)))
            .collect();
    }
    infer.types
}

struct Infer<'c, 'a> {
    ctx: &'c Ctx<'a>,
    types: Types,
    /// Map value types learnt in the previous round.
    maps: HashMap<String, Ty>,
    /// Map value types written in this round, joined.
    map_writes: HashMap<String, Ty>,
    members: HashMap<(RecordRef, String), MemberLookup>,
    env: HashMap<String, Ty>,
    probe: Option<&'c ProbeCtx<'a>>,
}

/// Integer C types (besides those under 8 bytes) that never hold an address.
const NON_ADDRESS_TYPES: &[&str] = &[
    "int",
    "unsigned int",
    "signed int",
    "short",
    "unsigned short",
    "char",
    "unsigned char",
    "signed char",
    "bool",
    "_Bool",
    "size_t",
    "ssize_t",
    "loff_t",
    "off_t",
    "pid_t",
    "uid_t",
    "gid_t",
    "umode_t",
    "mode_t",
    "dev_t",
    "time_t",
    "clockid_t",
    "qid_t",
    "key_serial_t",
    "rwf_t",
    "u8",
    "u16",
    "u32",
    "s8",
    "s16",
    "s32",
    "__u8",
    "__u16",
    "__u32",
    "__s8",
    "__s16",
    "__s32",
    "uint8_t",
    "uint16_t",
    "uint32_t",
    "int8_t",
    "int16_t",
    "int32_t",
];

/// `const volatile char` -> `char`; `char * const` -> `char *`.
pub(crate) fn strip_qualifiers(c_type: &str) -> &str {
    let mut t = c_type.trim();
    loop {
        let next = t
            .strip_prefix("const ")
            .or_else(|| t.strip_prefix("volatile "))
            .or_else(|| t.strip_suffix(" const"))
            .or_else(|| t.strip_suffix(" volatile"))
            .map(str::trim);
        match next {
            Some(n) => t = n,
            None => return t,
        }
    }
}

fn is_char(base: &str) -> bool {
    matches!(base, "char" | "signed char")
}

fn is_byte(base: &str) -> bool {
    matches!(
        base,
        "unsigned char" | "__u8" | "u8" | "uint8_t" | "unsigned __int8"
    )
}

/// The type of a value read from a field of type `f`; `origin` is the access.
pub(crate) fn ty_of_field(f: &FieldInfo, origin: Span) -> Ty {
    let c = strip_qualifiers(&f.c_type);
    if c.starts_with("__data_loc") {
        // A dynamic array: an offset the tracepoint resolves; str() reads it.
        return Ty::Int(IntTy {
            c_type: Some(c.to_string()),
            ..IntTy::plain()
        });
    }
    if let (Some(open), true) = (c.find('['), c.ends_with(']')) {
        let elem = strip_qualifiers(&c[..open]);
        if is_char(elem) {
            return Ty::Str;
        }
        let len = c[open + 1..c.len() - 1].trim().parse::<u64>().ok();
        let elem_bits = len
            .filter(|&n| n > 0)
            .map(|n| (f.size / n).saturating_mul(8))
            .and_then(|b| u16::try_from(b).ok());
        return Ty::Array(ArrayTy {
            c_type: c.to_string(),
            elem_bits,
            elem_order: f.byte_order,
            bytes: is_byte(elem),
            len,
        });
    }
    if f.pointer || c.ends_with('*') {
        let pointee = match &f.record {
            Some(r) => Pointee::Record(r.clone()),
            None => {
                let base = strip_qualifiers(c.trim_end_matches('*').trim_end());
                if !c.trim_end_matches('*').contains('*')
                    && (is_char(base) || base == "unsigned char")
                {
                    Pointee::Char
                } else {
                    Pointee::Other
                }
            }
        };
        return Ty::Ptr(pointee);
    }
    if let Some(r) = &f.record {
        return Ty::Record(r.clone());
    }
    let base = strip_qualifiers(c);
    let network = f.byte_order == ByteOrder::Network;
    Ty::Int(IntTy {
        order: Some(f.byte_order),
        bits: (f.size > 0).then(|| u16::try_from(f.size.saturating_mul(8)).unwrap_or(u16::MAX)),
        non_address: (f.size > 0 && f.size < 8)
            || NON_ADDRESS_TYPES.contains(&base)
            || base.starts_with("enum "),
        c_type: Some(c.to_string()),
        literal: None,
        origin: network.then_some(origin),
    })
}

fn join(a: &Ty, b: &Ty) -> Ty {
    match (a, b) {
        (Ty::Int(x), Ty::Int(y)) => Ty::Int(IntTy::join(x, y)),
        (x, y) if x == y => x.clone(),
        _ => Ty::Unknown,
    }
}

fn join_envs(a: &HashMap<String, Ty>, b: HashMap<String, Ty>) -> HashMap<String, Ty> {
    let mut out = b;
    for (k, v) in a {
        let merged = match out.get(k) {
            Some(other) => join(v, other),
            None => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    out
}

/// Bits of bpftrace's integer type names.
fn int_type_bits(name: &str) -> Option<u16> {
    Some(match name {
        "bool" | "int8" | "uint8" => 8,
        "int16" | "uint16" => 16,
        "int32" | "uint32" => 32,
        "int64" | "uint64" => 64,
        _ => return None,
    })
}

impl<'c, 'a> Infer<'c, 'a> {
    fn run(&mut self) {
        let ctx = self.ctx;
        for p in &ctx.probes {
            self.probe = Some(p);
            self.env.clear();
            if let Some(pred) = &p.probe.predicate {
                self.expr(pred);
            }
            self.block(&p.probe.body);
        }
        self.probe = None;
        for item in &ctx.program.items {
            if let ItemKind::Function(f) = &item.kind {
                self.env.clear();
                self.block(&f.body);
            }
        }
    }

    fn record(&mut self, e: &Expr, ty: Ty) -> Ty {
        self.types.exprs.insert(e as *const Expr, ty.clone());
        ty
    }

    fn block(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    /// Runs `f` on a copy of the environment and joins the result with the
    /// environment before (the code may not run at all).
    fn maybe(&mut self, f: impl FnOnce(&mut Self)) {
        let before = self.env.clone();
        f(self);
        let after = std::mem::take(&mut self.env);
        self.env = join_envs(&before, after);
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Expr(e) | StmtKind::Assume(e) => {
                self.expr(e);
            }
            StmtKind::Assign { target, op, value } => {
                let value_ty = self.expr(value);
                let ty = match op.binary_op() {
                    None => value_ty,
                    Some(bin) => {
                        let current = self.expr(target);
                        binary(bin, &current, &value_ty)
                    }
                };
                self.assign(target, ty);
            }
            StmtKind::Let { var, init, .. } => {
                let ty = match init {
                    Some(e) => self.expr(e),
                    None => Ty::Unknown,
                };
                self.env.insert(var.name.clone(), ty);
            }
            StmtKind::If(if_stmt) => self.if_stmt(if_stmt),
            StmtKind::Unroll { count: e, body } | StmtKind::While { cond: e, body } => {
                self.expr(e);
                self.maybe(|me| me.block(body));
            }
            StmtKind::For { var, iter, body } => {
                match iter {
                    ForIter::Expr(e) => {
                        self.expr(e);
                    }
                    ForIter::Range { start, end } => {
                        self.expr(start);
                        self.expr(end);
                    }
                }
                self.maybe(|me| {
                    me.env.insert(var.name.clone(), Ty::Unknown);
                    me.block(body);
                });
            }
            StmtKind::Return(e) => {
                if let Some(e) = e {
                    self.expr(e);
                }
            }
            StmtKind::Block(b) => self.block(b),
            StmtKind::Assert { cond, .. } => {
                self.expr(cond);
            }
            StmtKind::Break | StmtKind::Continue | StmtKind::Error => {}
        }
    }

    fn if_stmt(&mut self, i: &IfStmt) {
        self.expr(&i.cond);
        let before = self.env.clone();
        self.block(&i.then_block);
        let after_then = std::mem::replace(&mut self.env, before);
        match &i.else_branch {
            Some(ElseBranch::Block(b)) => self.block(b),
            Some(ElseBranch::If(nested)) => self.if_stmt(nested),
            None => {}
        }
        let after_else = std::mem::take(&mut self.env);
        self.env = join_envs(&after_then, after_else);
    }

    fn assign(&mut self, target: &Expr, ty: Ty) {
        match &target.kind {
            ExprKind::Var(name) => {
                self.env.insert(name.clone(), ty.clone());
            }
            ExprKind::Map { name, keys } => {
                for k in keys {
                    self.expr(k);
                }
                let merged = match self.map_writes.get(name) {
                    Some(prev) => join(prev, &ty),
                    None => ty.clone(),
                };
                self.map_writes.insert(name.clone(), merged);
            }
            _ => {
                self.expr(target);
            }
        }
        self.record(target, ty);
    }

    fn expr(&mut self, e: &Expr) -> Ty {
        let ty = self.expr_inner(e);
        self.record(e, ty)
    }

    fn expr_inner(&mut self, e: &Expr) -> Ty {
        match &e.kind {
            ExprKind::Int(lit) => Ty::Int(IntTy {
                bits: Some(64),
                literal: Some(lit.value),
                ..IntTy::plain()
            }),
            ExprKind::Str(_) => Ty::Str,
            ExprKind::Bool(_) | ExprKind::PositionalCount => Ty::Int(IntTy::counter()),
            ExprKind::Var(name) => self.env.get(name).cloned().unwrap_or(Ty::Unknown),
            ExprKind::Positional(_) | ExprKind::Error => Ty::Unknown,
            ExprKind::Map { name, keys } => {
                for k in keys {
                    self.expr(k);
                }
                self.maps.get(name).cloned().unwrap_or(Ty::Unknown)
            }
            ExprKind::Builtin(name) => self.builtin(name),
            ExprKind::Ident(name) => match self.ctx.facts.enum_constant(name) {
                Some(_) => Ty::Int(IntTy::counter()),
                None => Ty::Unknown,
            },
            ExprKind::Call { name, args } => {
                let arg_tys: Vec<Ty> = args.iter().map(|a| self.expr(a)).collect();
                self.call(&name.name, &arg_tys)
            }
            ExprKind::Field { base, field, arrow } => {
                let base_ty = self.expr(base);
                self.field(e, &base_ty, field, *arrow)
            }
            ExprKind::Index { base, index } => {
                let base_ty = self.expr(base);
                self.expr(index);
                match base_ty {
                    Ty::Array(a) => Ty::Int(IntTy {
                        order: Some(a.elem_order),
                        bits: a.elem_bits,
                        non_address: a.elem_bits.is_some_and(|b| b < 64),
                        c_type: None,
                        literal: None,
                        origin: None,
                    }),
                    Ty::Ptr(Pointee::Record(r)) => Ty::Record(r),
                    Ty::Ptr(Pointee::Char) | Ty::Str => Ty::Int(IntTy {
                        bits: Some(8),
                        non_address: true,
                        ..IntTy::plain()
                    }),
                    _ => Ty::Unknown,
                }
            }
            ExprKind::TupleIndex { base, .. } => {
                self.expr(base);
                Ty::Unknown
            }
            ExprKind::Unary { op, operand } => {
                let t = self.expr(operand);
                match op {
                    UnaryOp::Not => Ty::Int(IntTy::counter()),
                    UnaryOp::BitNot | UnaryOp::Neg | UnaryOp::Plus => match t {
                        Ty::Int(_) => Ty::Int(IntTy::plain()),
                        _ => Ty::Unknown,
                    },
                    UnaryOp::Deref => match t {
                        Ty::Ptr(Pointee::Record(r)) => Ty::Record(r),
                        Ty::Ptr(Pointee::Char) => Ty::Int(IntTy {
                            bits: Some(8),
                            non_address: true,
                            ..IntTy::plain()
                        }),
                        _ => Ty::Unknown,
                    },
                    UnaryOp::AddrOf => Ty::Ptr(Pointee::Other),
                    UnaryOp::PreInc | UnaryOp::PreDec | UnaryOp::PostInc | UnaryOp::PostDec => {
                        // The variable or map keeps (and gets) an integer.
                        let ty = match t {
                            Ty::Int(i) => Ty::Int(IntTy { literal: None, ..i }),
                            Ty::Ptr(p) => Ty::Ptr(p),
                            _ => Ty::Int(IntTy::plain()),
                        };
                        if matches!(operand.kind, ExprKind::Var(_) | ExprKind::Map { .. }) {
                            self.assign(operand, ty.clone());
                        }
                        ty
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.expr(lhs);
                let r = self.expr(rhs);
                binary(*op, &l, &r)
            }
            ExprKind::Ternary {
                cond,
                then_expr,
                else_expr,
            } => {
                self.expr(cond);
                let t = self.expr(then_expr);
                let f = self.expr(else_expr);
                join(&t, &f)
            }
            ExprKind::Cast { ty, expr } => {
                let inner = self.expr(expr);
                cast(ty, &inner)
            }
            ExprKind::Tuple(elems) => {
                for el in elems {
                    self.expr(el);
                }
                Ty::Tuple
            }
            ExprKind::Sizeof(arg) | ExprKind::Offsetof { of: arg, .. } => {
                if let TypeOrExpr::Expr(inner) = arg {
                    self.expr(inner);
                }
                Ty::Int(IntTy::counter())
            }
        }
    }

    fn builtin(&mut self, name: &str) -> Ty {
        match name {
            "args" => match self.probe.map(|p| &p.args) {
                Some(ArgsSource::Fields(_)) => Ty::Args,
                _ => Ty::Unknown,
            },
            "curtask" => Ty::Ptr(Pointee::Record(RecordRef::new(
                RecordKind::Struct,
                "task_struct",
            ))),
            _ => {
                let Some(b) = builtins_named(name).find(|b| b.kind == BuiltinKind::Variable) else {
                    return Ty::Unknown;
                };
                match b.yields {
                    Yields::Int => Ty::Int(IntTy::counter()),
                    Yields::Address => Ty::Int(IntTy::plain()),
                    Yields::Str => Ty::Str,
                    Yields::Stack => Ty::Stack,
                    _ => Ty::Unknown,
                }
            }
        }
    }

    fn call(&mut self, name: &str, args: &[Ty]) -> Ty {
        if self.ctx.user_callables.contains(name) {
            return Ty::Unknown;
        }
        if name == "bswap" {
            return match args.first() {
                Some(Ty::Int(i)) => Ty::Int(IntTy {
                    order: Some(ByteOrder::Host),
                    bits: i.bits,
                    non_address: true,
                    c_type: None,
                    literal: None,
                    origin: None,
                }),
                _ => Ty::Int(IntTy::counter()),
            };
        }
        let Some(b) = builtins_named(name).find(|b| b.kind != BuiltinKind::Variable) else {
            return Ty::Unknown;
        };
        match b.yields {
            Yields::Int => Ty::Int(IntTy::counter()),
            Yields::Address => Ty::Int(IntTy::plain()),
            Yields::Str => Ty::Str,
            Yields::Buffer => Ty::Buffer,
            Yields::Stack => Ty::Stack,
            Yields::Aggregation => Ty::Agg(b.name),
            Yields::FirstArgument => args.first().cloned().unwrap_or(Ty::Unknown),
            Yields::Nothing | Yields::Other => Ty::Unknown,
        }
    }

    fn field(&mut self, e: &Expr, base: &Ty, field: &Ident, arrow: bool) -> Ty {
        match base {
            Ty::Args => {
                if !arrow && !self.ctx.version_at_least((0, 19)) {
                    self.issue(
                        e,
                        FieldIssue::Operator {
                            arrow_needed: true,
                            what: "args".to_string(),
                        },
                    );
                }
                self.args_field(e, field)
            }
            Ty::Ptr(Pointee::Record(r)) => {
                if !arrow {
                    self.issue(
                        e,
                        FieldIssue::Operator {
                            arrow_needed: true,
                            what: format!("a pointer to {}", r.spelled()),
                        },
                    );
                }
                self.member(e, r, field)
            }
            Ty::Record(r) => {
                if arrow {
                    self.issue(
                        e,
                        FieldIssue::Operator {
                            arrow_needed: false,
                            what: format!("a {} (not a pointer)", r.spelled()),
                        },
                    );
                }
                self.member(e, r, field)
            }
            _ => Ty::Unknown,
        }
    }

    fn issue(&mut self, e: &Expr, issue: FieldIssue) {
        self.types.issues.insert(e as *const Expr, issue);
    }

    fn args_field(&mut self, e: &Expr, field: &Ident) -> Ty {
        let Some(ArgsSource::Fields(lists)) = self.probe.map(|p| &p.args) else {
            return Ty::Unknown;
        };
        let mut ty: Option<Ty> = None;
        let mut missing: Option<(String, Vec<String>)> = None;
        let mut present_in = Vec::new();
        for (probe, fields) in lists {
            match fields.iter().find(|f| f.name == field.name) {
                Some(f) => {
                    present_in.push(probe.clone());
                    let t = ty_of_field(f, e.span);
                    ty = Some(match ty {
                        None => t,
                        Some(prev) => join(&prev, &t),
                    });
                }
                None => {
                    if missing.is_none() {
                        missing = Some((
                            probe.clone(),
                            fields.iter().map(|f| f.name.clone()).collect(),
                        ));
                    }
                }
            }
        }
        if let Some((probe, names)) = missing {
            if !matches!(
                self.types.issues.get(&(e as *const Expr)),
                Some(FieldIssue::Operator { .. })
            ) {
                self.issue(
                    e,
                    FieldIssue::Missing {
                        owner: Owner::Probe(probe),
                        names,
                        present_in,
                    },
                );
            }
            return Ty::Unknown;
        }
        ty.unwrap_or(Ty::Unknown)
    }

    fn member(&mut self, e: &Expr, record: &RecordRef, field: &Ident) -> Ty {
        if self.ctx.defines_record(record) {
            return Ty::Unknown;
        }
        let key = (record.clone(), field.name.clone());
        let lookup = match self.members.get(&key) {
            Some(l) => l.clone(),
            None => {
                let l = self.ctx.facts.member(record, &field.name);
                self.members.insert(key, l.clone());
                l
            }
        };
        match lookup {
            MemberLookup::Found(f) => ty_of_field(&f, e.span),
            MemberLookup::UnknownRecord => Ty::Unknown,
            MemberLookup::Missing => {
                let names = self
                    .ctx
                    .facts
                    .record_fields(record)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| f.name)
                    .filter(|n| !n.is_empty())
                    .collect();
                self.issue(
                    e,
                    FieldIssue::Missing {
                        owner: Owner::Record(record.clone()),
                        names,
                        present_in: Vec::new(),
                    },
                );
                Ty::Unknown
            }
        }
    }
}

fn binary(op: BinaryOp, l: &Ty, r: &Ty) -> Ty {
    use BinaryOp::*;
    match op {
        Or | And | Eq | Ne | Lt | Le | Gt | Ge => Ty::Int(IntTy::counter()),
        Add | Sub => match (l, r) {
            (Ty::Ptr(p), Ty::Int(_)) | (Ty::Int(_), Ty::Ptr(p)) => Ty::Ptr(p.clone()),
            (Ty::Int(_), Ty::Int(_)) => Ty::Int(IntTy::plain()),
            _ => Ty::Unknown,
        },
        BitAnd => match (l, r) {
            (Ty::Int(a), Ty::Int(b)) => {
                // Masking keeps the byte order of the masked value.
                let network = [a, b].into_iter().find(|i| i.is_network());
                match network {
                    Some(n) => Ty::Int(IntTy {
                        literal: None,
                        ..n.clone()
                    }),
                    None => Ty::Int(IntTy::plain()),
                }
            }
            _ => Ty::Unknown,
        },
        // Shifts and ors are how byte orders get converted by hand.
        BitOr | BitXor | Shl | Shr | Mul | Div | Mod => match (l, r) {
            (Ty::Int(_) | Ty::Ptr(_), Ty::Int(_) | Ty::Ptr(_)) => Ty::Int(IntTy::plain()),
            _ => Ty::Unknown,
        },
    }
}

fn cast(ty: &TypeExpr, inner: &Ty) -> Ty {
    match &ty.kind {
        TypeKind::Pointer(target) => match &target.kind {
            TypeKind::Record {
                keyword: RecordKeyword::Struct,
                name,
            } => Ty::Ptr(Pointee::Record(RecordRef::new(RecordKind::Struct, name))),
            TypeKind::Record {
                keyword: RecordKeyword::Union,
                name,
            } => Ty::Ptr(Pointee::Record(RecordRef::new(RecordKind::Union, name))),
            TypeKind::Named(n) if matches!(n.as_str(), "char" | "int8" | "uint8") => {
                Ty::Ptr(Pointee::Char)
            }
            _ => Ty::Ptr(Pointee::Other),
        },
        TypeKind::Named(n) => match int_type_bits(n) {
            Some(bits) => {
                let (order, origin) = match inner {
                    Ty::Int(i) => (i.order, i.origin),
                    _ => (Some(ByteOrder::Host), None),
                };
                Ty::Int(IntTy {
                    order,
                    bits: Some(bits),
                    non_address: bits < 64,
                    c_type: Some(n.clone()),
                    literal: None,
                    origin,
                })
            }
            None => Ty::Unknown,
        },
        _ => Ty::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(c_type: &str, size: u64) -> FieldInfo {
        FieldInfo {
            name: "x".into(),
            c_type: c_type.into(),
            size,
            signed: false,
            pointer: false,
            byte_order: ByteOrder::Host,
            record: None,
        }
    }

    #[test]
    fn field_types() {
        let s = Span::default();
        assert_eq!(ty_of_field(&field("char[16]", 16), s), Ty::Str);
        assert_eq!(
            ty_of_field(&field("const char *", 8), s),
            Ty::Ptr(Pointee::Char)
        );
        assert!(matches!(
            ty_of_field(&field("__u8[4]", 4), s),
            Ty::Array(ArrayTy { bytes: true, .. })
        ));
        let Ty::Int(i) = ty_of_field(&field("size_t", 8), s) else {
            panic!()
        };
        assert!(i.non_address);
        let Ty::Int(i) = ty_of_field(&field("unsigned long", 8), s) else {
            panic!()
        };
        assert!(!i.non_address);
        let Ty::Int(i) = ty_of_field(&field("__data_loc char[]", 4), s) else {
            panic!()
        };
        assert!(!i.non_address);
    }
}
