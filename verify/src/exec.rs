//! The symbolic executor: runs one probe firing over Z3 terms.
//!
//! Execution merges paths instead of forking them: both branches of an `if`
//! run on copies of the state whose path conditions (`guard`) exclude each
//! other, and the copies are joined with `ite` terms. Every statement is
//! therefore visited once per loop unrolling, in source order, and what
//! happens on a path is recorded in one log of guarded events (`printf`
//! lines, map writes, loop cut-offs): a path's events are those whose guard
//! holds. `assume(c)` strengthens the guard; each `assert(c)` is checked
//! where it stands, against `guard ∧ ¬c`.
//!
//! Inputs are Z3 constants registered with the name the program gives them
//! (`args->family`, `pid`, `@start[tid]`), one per firing and access path.
//! Constants that stand for something not modelled are marked approximate:
//! a refutation that depends on one becomes `Unknown`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use kgent_agent::verifier::{
    CounterexampleData, InputData, InputValueData, UnknownReasonData, VerdictData,
};
use kgent_frontend::ast::*;
use kgent_frontend::facts::RecordRef;
use kgent_frontend::LineIndex;
use z3::ast::{Ast, Bool, Dynamic, Int, String as ZStr, BV};
use z3::{Context, DeclKind, Model, Params, SatResult, Solver, SortKind};

use crate::env::{cast_target, snippet, Decls, Env, Firing, MapTy, AGGREGATIONS};
use crate::format::{Format, Printable};
use crate::ty::{builtin_model, field_ty, retval_is_u64, BuiltinModel, IntTy, Pointee, ValTy};
use crate::VerifyOptions;

/// An integer (or pointer) term with its bpftrace type.
#[derive(Clone)]
struct SInt<'c> {
    /// `ty.bits` wide.
    bv: BV<'c>,
    ty: IntTy,
    /// What it points to, when it is a pointer.
    ptr: Option<Pointee>,
    /// The condition it is the 0/1 value of (comparisons, `&&`, `!`).
    cond: Option<Bool<'c>>,
}

#[derive(Clone)]
enum SVal<'c> {
    Int(SInt<'c>),
    Str(ZStr<'c>),
    /// A struct or union by value, located by `key`.
    Record {
        record: RecordRef,
        key: String,
    },
    Array {
        elem: IntTy,
        key: String,
    },
    Args,
    Opaque(String),
}

impl<'c> SVal<'c> {
    /// An integer that is neither a pointer nor the value of a condition.
    fn plain(bv: BV<'c>, ty: IntTy) -> SVal<'c> {
        SVal::Int(SInt {
            bv,
            ty,
            ptr: None,
            cond: None,
        })
    }
}

/// Per-program verdict accumulation for one `assert`.
#[derive(Clone, Debug)]
pub(crate) struct AssertAcc {
    pub verdict: Option<VerdictData>,
    /// Every visit was proved only because the path condition is unsatisfiable.
    pub vacuous: bool,
    pub visits: u32,
    pub elapsed: Duration,
}

impl Default for AssertAcc {
    fn default() -> Self {
        AssertAcc {
            verdict: None,
            vacuous: true,
            visits: 0,
            elapsed: Duration::ZERO,
        }
    }
}

impl AssertAcc {
    fn refuted(&self) -> bool {
        matches!(self.verdict, Some(VerdictData::Refuted { .. }))
    }

    fn add(&mut self, v: VerdictData, vacuous: bool) {
        self.visits += 1;
        self.vacuous &= vacuous;
        match (&self.verdict, &v) {
            (Some(VerdictData::Refuted { .. }), _) => {}
            (_, VerdictData::Refuted { .. }) => self.verdict = Some(v),
            (Some(VerdictData::Unknown { .. }), _) => {}
            _ => self.verdict = Some(v),
        }
    }
}

/// Notes, each once, in the order they were made.
#[derive(Default)]
pub(crate) struct Notes {
    pub list: Vec<String>,
    seen: HashSet<String>,
}

impl Notes {
    pub fn add(&mut self, note: String) {
        if self.seen.insert(note.clone()) {
            self.list.push(note);
        }
    }
}

enum InKind {
    Int(IntTy),
    Str,
}

struct InputSym<'c> {
    name: String,
    term: Dynamic<'c>,
    kind: InKind,
    /// Why this constant only approximates the program (`None`: a true input).
    approx: Option<(String, u32)>,
}

enum PrintLine<'c> {
    Format(Format, Vec<SVal<'c>>),
    Value(SVal<'c>),
    Text(String),
}

enum Event<'c> {
    Print {
        guard: Bool<'c>,
        line: PrintLine<'c>,
    },
    /// `value: None`: an aggregation (its value is not modelled).
    Write {
        guard: Bool<'c>,
        map: String,
        keys: Vec<Dynamic<'c>>,
        value: Option<SVal<'c>>,
    },
    Clear {
        guard: Bool<'c>,
        map: String,
    },
    /// Paths not explored further (a loop bound); `sat` caches whether any exists.
    Cut {
        guard: Bool<'c>,
        reason: UnknownReasonData,
        sat: Option<bool>,
    },
}

/// One set of paths: their path condition as a list of conjuncts (kept
/// flat, so that `assume`d equalities stay top-level facts the solver can
/// substitute), and the variables.
#[derive(Clone)]
struct State<'c> {
    conj: Vec<Bool<'c>>,
    vars: HashMap<String, SVal<'c>>,
}

#[derive(Default)]
struct LoopCtx<'c> {
    breaks: Vec<State<'c>>,
    continues: Vec<State<'c>>,
}

enum Solved<'c> {
    Sat(Model<'c>),
    Unsat,
    Unknown(UnknownReasonData),
}

/// Calls without side effects (safe to evaluate on both sides of a branch).
const PURE_CALLS: &[&str] = &[
    "bswap",
    "str",
    "ntop",
    "kptr",
    "uptr",
    "ksym",
    "usym",
    "kaddr",
    "uaddr",
    "reg",
    "buf",
    "strncmp",
    "cgroupid",
    "path",
    "macaddr",
    "strftime",
    "strerror",
    "cgroup_path",
    "sizeof",
    "strlen",
    "strcontains",
    "has_key",
    "pton",
    "percpu_kaddr",
    "offsetof",
    "ustack",
    "kstack",
];

/// String-valued calls modelled as uninterpreted functions of their arguments.
const STRING_CALLS: &[&str] = &[
    "str",
    "ntop",
    "ksym",
    "usym",
    "path",
    "strftime",
    "strerror",
    "cgroup_path",
    "macaddr",
];

/// Integer-valued calls modelled as uninterpreted functions of their arguments.
const INT_CALLS: &[&str] = &[
    "kaddr",
    "uaddr",
    "reg",
    "cgroupid",
    "strlen",
    "strcontains",
    "has_key",
    "percpu_kaddr",
];

/// Effects bpftrace has that do not change what an assertion can see.
const NO_OP_CALLS: &[&str] = &[
    "time", "join", "cat", "system", "signal", "override", "unwatch", "debugf", "errorf",
];

pub(crate) struct Exec<'c, 'e, 'a> {
    ctx: &'c Context,
    env: &'e Env<'a>,
    opts: &'e VerifyOptions,
    lines: &'e LineIndex,
    firing: &'e Firing,
    decls: &'e Decls,
    /// Assertion index by the start offset of its statement.
    assert_index: &'e HashMap<u32, usize>,
    acc: &'e mut [AssertAcc],
    notes: &'e mut Notes,
    pub queries: u32,
    inputs: Vec<InputSym<'c>>,
    by_name: HashMap<String, usize>,
    memo: HashMap<String, SVal<'c>>,
    ufs: HashMap<String, Vec<(Vec<Dynamic<'c>>, SVal<'c>)>>,
    events: Vec<Event<'c>>,
    loops: Vec<LoopCtx<'c>>,
    /// Facts about inputs asserted in every query (also given to the sampler).
    axioms: Vec<Bool<'c>>,
    /// Auxiliary constants with what they equal (quotients, remainders), in
    /// creation order.
    defs: Vec<(BV<'c>, BV<'c>)>,
}

impl<'c, 'e, 'a> Exec<'c, 'e, 'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &'c Context,
        env: &'e Env<'a>,
        opts: &'e VerifyOptions,
        lines: &'e LineIndex,
        firing: &'e Firing,
        decls: &'e Decls,
        assert_index: &'e HashMap<u32, usize>,
        acc: &'e mut [AssertAcc],
        notes: &'e mut Notes,
    ) -> Self {
        Exec {
            ctx,
            env,
            opts,
            lines,
            firing,
            decls,
            assert_index,
            acc,
            notes,
            queries: 0,
            inputs: Vec::new(),
            by_name: HashMap::new(),
            memo: HashMap::new(),
            ufs: HashMap::new(),
            events: Vec::new(),
            loops: Vec::new(),
            axioms: Vec::new(),
            defs: Vec::new(),
        }
    }

    fn axiom(&mut self, fact: Bool<'c>) {
        self.axioms.push(fact);
    }

    // ---- small helpers -------------------------------------------------

    fn line(&self, span: Span) -> u32 {
        self.lines.line_col(span.start).line
    }

    fn note(&mut self, span: Span, text: impl AsRef<str>) {
        let line = self.line(span);
        self.notes.add(format!("line {line}: {}", text.as_ref()));
    }

    fn tt(&self) -> Bool<'c> {
        Bool::from_bool(self.ctx, true)
    }

    fn ff(&self) -> Bool<'c> {
        Bool::from_bool(self.ctx, false)
    }

    fn and(&self, a: &Bool<'c>, b: &Bool<'c>) -> Bool<'c> {
        match (a.as_bool(), b.as_bool()) {
            (Some(false), _) | (_, Some(false)) => self.ff(),
            (Some(true), _) => b.clone(),
            (_, Some(true)) => a.clone(),
            _ => Bool::and(self.ctx, &[a, b]),
        }
    }

    fn or(&self, a: &Bool<'c>, b: &Bool<'c>) -> Bool<'c> {
        match (a.as_bool(), b.as_bool()) {
            (Some(true), _) | (_, Some(true)) => self.tt(),
            (Some(false), _) => b.clone(),
            (_, Some(false)) => a.clone(),
            _ => Bool::or(self.ctx, &[a, b]),
        }
    }

    fn not(&self, a: &Bool<'c>) -> Bool<'c> {
        match a.as_bool() {
            Some(b) => Bool::from_bool(self.ctx, !b),
            None => a.not(),
        }
    }

    fn bv(&self, v: u64, bits: u32) -> BV<'c> {
        BV::from_u64(self.ctx, v, bits)
    }

    fn int(&self, v: u64, ty: IntTy) -> SVal<'c> {
        SVal::plain(self.bv(v & ty.mask(), ty.bits), ty)
    }

    /// A 0/1 integer of type `ty` standing for `c`.
    fn bool_value(&self, c: Bool<'c>, ty: IntTy) -> SVal<'c> {
        SVal::Int(SInt {
            bv: c.ite(&self.bv(1, ty.bits), &self.bv(0, ty.bits)),
            ty,
            ptr: None,
            cond: Some(c),
        })
    }

    fn str_lit(&self, bytes: &[u8]) -> ZStr<'c> {
        // A C string ends at its first NUL.
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
        ZStr::from_str(self.ctx, &text).unwrap_or_else(|_| ZStr::from_str(self.ctx, "").unwrap())
    }

    /// `bv` (of type `from`) extended or truncated to `bits`, extending by `signed`.
    fn resize(&self, bv: &BV<'c>, from_bits: u32, bits: u32, signed: bool) -> BV<'c> {
        if bits == from_bits {
            bv.clone()
        } else if bits < from_bits {
            bv.extract(bits - 1, 0)
        } else if signed {
            bv.sign_ext(bits - from_bits)
        } else {
            bv.zero_ext(bits - from_bits)
        }
    }

    /// bpftrace's cast: truncate, or extend by the target's signedness.
    fn cast(&self, v: &SInt<'c>, to: IntTy) -> SInt<'c> {
        SInt {
            bv: self.resize(&v.bv, v.ty.bits, to.bits, to.signed),
            ty: to,
            ptr: None,
            cond: if to.bits >= v.ty.bits {
                v.cond.clone()
            } else {
                None
            },
        }
    }

    /// `v` extended to 64 bits by its own signedness (map values and keys, printf).
    fn ext64(&self, v: &SInt<'c>) -> BV<'c> {
        self.resize(&v.bv, v.ty.bits, 64, v.ty.signed)
    }

    fn truthy(&mut self, v: &SVal<'c>, span: Span) -> Bool<'c> {
        match v {
            SVal::Int(i) => match &i.cond {
                Some(c) => c.clone(),
                None => i.bv._eq(&self.bv(0, i.ty.bits)).not(),
            },
            _ => {
                let x = self.unmodelled("a condition that is not an integer", span);
                self.truthy(&x, span)
            }
        }
    }

    fn zero_of(&self, ty: Option<&ValTy>) -> SVal<'c> {
        match ty {
            Some(ValTy::Str) => SVal::Str(self.str_lit(b"")),
            Some(t) => self.int(0, t.as_int().unwrap_or(IntTy::U64)),
            None => self.int(0, IntTy::U64),
        }
    }

    fn var_zero(&self, name: &str) -> SVal<'c> {
        self.zero_of(self.decls.vars.get(name))
    }

    /// Variable `name` in `st` (zero before its first assignment).
    fn var(&self, st: &State<'c>, name: &str) -> SVal<'c> {
        st.vars
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.var_zero(name))
    }

    // ---- inputs ---------------------------------------------------------

    fn register(
        &mut self,
        name: &str,
        term: Dynamic<'c>,
        kind: InKind,
        approx: Option<(String, u32)>,
    ) {
        let idx = self.inputs.len();
        if let Ok(decl) = term.safe_decl() {
            self.by_name.insert(decl.name(), idx);
        }
        self.inputs.push(InputSym {
            name: name.to_string(),
            term,
            kind,
            approx,
        });
    }

    fn z3_name(&self, name: &str) -> String {
        format!("{name}!{}", self.inputs.len())
    }

    fn fresh_bv(&mut self, name: &str, ty: IntTy, approx: Option<(String, u32)>) -> BV<'c> {
        let bv = BV::new_const(self.ctx, self.z3_name(name), ty.bits);
        self.register(name, Dynamic::from_ast(&bv), InKind::Int(ty), approx);
        bv
    }

    fn fresh_str(&mut self, name: &str, approx: Option<(String, u32)>) -> ZStr<'c> {
        let s = ZStr::new_const(self.ctx, self.z3_name(name));
        self.register(name, Dynamic::from_ast(&s), InKind::Str, approx);
        s
    }

    /// A new input of type `ty` named `name`.
    fn fresh_of(
        &mut self,
        name: &str,
        key: &str,
        ty: &ValTy,
        approx: Option<(String, u32)>,
    ) -> SVal<'c> {
        match ty {
            ValTy::Int(t) => SVal::plain(self.fresh_bv(name, *t, approx), *t),
            ValTy::Ptr(p) => SVal::Int(SInt {
                bv: self.fresh_bv(name, IntTy::U64, approx),
                ty: IntTy::U64,
                ptr: Some(p.clone()),
                cond: None,
            }),
            ValTy::Str => SVal::Str(self.fresh_str(name, approx)),
            ValTy::Record(r) => SVal::Record {
                record: r.clone(),
                key: key.to_string(),
            },
            ValTy::Array { elem, .. } => SVal::Array {
                elem: *elem,
                key: key.to_string(),
            },
            ValTy::Opaque(what) => SVal::Opaque(format!("<{what}>")),
        }
    }

    /// The input at `key` (one per firing), created on first use.
    fn memo_input(&mut self, key: &str, name: &str, ty: &ValTy) -> SVal<'c> {
        if let Some(v) = self.memo.get(key) {
            return v.clone();
        }
        let v = self.fresh_of(name, key, ty, None);
        self.memo.insert(key.to_string(), v.clone());
        v
    }

    /// A constant standing for something not modelled: refutations that
    /// depend on it are reported as unknown.
    fn approx_int(&mut self, name: &str, what: &str, span: Span, ty: IntTy) -> SVal<'c> {
        let line = self.line(span);
        self.note(
            span,
            format!("{what} (`{name}`) is not modelled: treated as an unknown value"),
        );
        let bv = self.fresh_bv(name, ty, Some((format!("{what} `{name}`"), line)));
        SVal::plain(bv, ty)
    }

    /// [`Self::approx_int`] for the expression at `span`, a `uint64`.
    fn unmodelled(&mut self, what: &str, span: Span) -> SVal<'c> {
        let name = snippet(self.env.source, span);
        self.approx_int(&name, what, span, IntTy::U64)
    }

    /// `f(args)` for an uninterpreted `f`: the same arguments give the same
    /// result (Ackermann constraints against earlier applications).
    fn apply_uf(&mut self, f: &str, name: &str, args: Vec<Dynamic<'c>>, ty: &ValTy) -> SVal<'c> {
        let previous: Vec<(Vec<Dynamic<'c>>, SVal<'c>)> =
            self.ufs.get(f).cloned().unwrap_or_default();
        for (a, v) in &previous {
            if *a == args {
                return v.clone();
            }
        }
        let key = format!("{f}#{}", previous.len());
        let v = self.fresh_of(name, &key, ty, None);
        for (a, w) in &previous {
            if let (Some(same_args), Some(same_result)) =
                (self.args_eq(a, &args), self.vals_eq(w, &v))
            {
                self.axiom(same_args.implies(&same_result));
            }
        }
        self.ufs
            .entry(f.to_string())
            .or_default()
            .push((args, v.clone()));
        v
    }

    fn args_eq(&self, a: &[Dynamic<'c>], b: &[Dynamic<'c>]) -> Option<Bool<'c>> {
        if a.len() != b.len() {
            return None;
        }
        let mut all = self.tt();
        for (x, y) in a.iter().zip(b) {
            if x.get_sort() != y.get_sort() {
                return None;
            }
            all = self.and(&all, &x._eq(y));
        }
        Some(all)
    }

    fn vals_eq(&self, a: &SVal<'c>, b: &SVal<'c>) -> Option<Bool<'c>> {
        match (a, b) {
            (SVal::Int(x), SVal::Int(y)) if x.ty.bits == y.ty.bits => Some(x.bv._eq(&y.bv)),
            (SVal::Str(x), SVal::Str(y)) => Some(x._eq(y)),
            _ => None,
        }
    }

    /// A map key or uninterpreted-function argument as a term.
    fn key_term(&mut self, v: &SVal<'c>) -> Dynamic<'c> {
        match v {
            SVal::Int(i) => Dynamic::from_ast(&self.ext64(i)),
            SVal::Str(s) => Dynamic::from_ast(s),
            // An array or struct in memory stands for its address.
            SVal::Array { key, .. } | SVal::Record { key, .. } => {
                Dynamic::from_ast(&BV::new_const(self.ctx, format!("address of {key}"), 64))
            }
            // Stacks, tuples: equal to nothing known.
            _ => {
                let bv = BV::fresh_const(self.ctx, "opaque_key", 64);
                Dynamic::from_ast(&bv)
            }
        }
    }

    // ---- states ----------------------------------------------------------

    fn dead(st: &State<'c>) -> bool {
        st.conj.first().is_some_and(|c| c.as_bool() == Some(false))
    }

    fn and_all(&self, conj: &[Bool<'c>]) -> Bool<'c> {
        match conj {
            [] => self.tt(),
            [c] => c.clone(),
            _ => {
                let refs: Vec<&Bool<'c>> = conj.iter().collect();
                Bool::and(self.ctx, &refs)
            }
        }
    }

    /// The path condition of `st`.
    fn guard(&self, st: &State<'c>) -> Bool<'c> {
        self.and_all(&st.conj)
    }

    /// Adds `c` to the path condition.
    fn restrict(&self, st: &mut State<'c>, c: &Bool<'c>) {
        match c.as_bool() {
            Some(true) => {}
            Some(false) => st.conj = vec![self.ff()],
            None if Self::dead(st) => {}
            None => st.conj.push(c.clone()),
        }
    }

    fn restricted(&self, st: &State<'c>, c: &Bool<'c>) -> State<'c> {
        let mut s = st.clone();
        self.restrict(&mut s, c);
        s
    }

    fn ite_val(&self, c: &Bool<'c>, a: &SVal<'c>, b: &SVal<'c>) -> SVal<'c> {
        match (a, b) {
            (SVal::Int(x), SVal::Int(y)) => {
                if x.bv == y.bv && x.ty == y.ty {
                    return a.clone();
                }
                let y = if y.ty == x.ty {
                    y.clone()
                } else {
                    self.cast(y, x.ty)
                };
                SVal::Int(SInt {
                    bv: c.ite(&x.bv, &y.bv),
                    ty: x.ty,
                    ptr: if x.ptr == y.ptr { x.ptr.clone() } else { None },
                    cond: match (&x.cond, &y.cond) {
                        (Some(p), Some(q)) => Some(c.ite(p, q)),
                        _ => None,
                    },
                })
            }
            (SVal::Str(x), SVal::Str(y)) => {
                if x == y {
                    a.clone()
                } else {
                    SVal::Str(c.ite(x, y))
                }
            }
            _ => a.clone(),
        }
    }

    /// Joins two states whose guards exclude each other.
    fn merge(&self, a: State<'c>, b: State<'c>) -> State<'c> {
        if Self::dead(&a) {
            return b;
        }
        if Self::dead(&b) {
            return a;
        }
        // The conjuncts both share stay as they are; the rest is a disjunction.
        let common = a
            .conj
            .iter()
            .zip(&b.conj)
            .take_while(|(x, y)| x == y)
            .count();
        let ra = self.and_all(&a.conj[common..]);
        let rb = self.and_all(&b.conj[common..]);
        let mut names: Vec<&String> = a.vars.keys().chain(b.vars.keys()).collect();
        names.sort();
        names.dedup();
        let mut vars = HashMap::new();
        for name in names {
            let (va, vb) = (self.var(&a, name), self.var(&b, name));
            vars.insert(name.clone(), self.ite_val(&ra, &va, &vb));
        }
        let mut conj = a.conj[..common].to_vec();
        // `c ∨ ¬c` (an if/else without assumptions inside) adds nothing.
        let complementary = ra.not() == rb || rb.not() == ra;
        let either = self.or(&ra, &rb);
        if either.as_bool() != Some(true) && !complementary {
            conj.push(either);
        }
        State { conj, vars }
    }

    fn merge_all(&self, first: State<'c>, rest: Vec<State<'c>>) -> State<'c> {
        rest.into_iter().fold(first, |acc, s| self.merge(acc, s))
    }

    fn killed(&self, st: &State<'c>) -> State<'c> {
        State {
            conj: vec![self.ff()],
            vars: st.vars.clone(),
        }
    }

    // ---- probes and statements ------------------------------------------

    pub fn run_probe(&mut self, probe: &Probe) {
        let mut st = State {
            conj: Vec::new(),
            vars: HashMap::new(),
        };
        if let Some(pred) = &probe.predicate {
            let v = self.expr(&mut st, pred);
            let c = self.truthy(&v, pred.span);
            self.restrict(&mut st, &c);
        }
        self.block(&mut st, &probe.body);
    }

    fn block(&mut self, st: &mut State<'c>, block: &Block) {
        for stmt in &block.stmts {
            if Self::dead(st) {
                // Unreachable statements: their assertions have no visit here.
                break;
            }
            self.stmt(st, stmt);
        }
    }

    fn stmt(&mut self, st: &mut State<'c>, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Expr(e) => {
                let exits = matches!(&e.kind, ExprKind::Call { name, .. } if name.name == "exit");
                self.expr(st, e);
                if exits {
                    *st = self.killed(st);
                }
            }
            StmtKind::Assign { target, op, value } => {
                self.assign(st, target, *op, value, stmt.span)
            }
            StmtKind::Let { var, init, .. } => {
                let v = match init {
                    Some(e) => self.expr(st, e),
                    None => self.var_zero(&var.name),
                };
                self.store_var(st, &var.name, v);
            }
            StmtKind::If(if_stmt) => self.if_stmt(st, if_stmt),
            StmtKind::Unroll { count, body } => {
                let n = match &count.kind {
                    ExprKind::Int(lit) => lit.value.min(100),
                    _ => {
                        self.note(
                            count.span,
                            "unroll with a count that is not a literal: run as a bounded loop",
                        );
                        self.bounded_loop(st, None, body, stmt.span);
                        return;
                    }
                };
                self.loops.push(LoopCtx::default());
                for _ in 0..n {
                    if Self::dead(st) {
                        break;
                    }
                    self.iteration(st, body);
                }
                let ctx = self.loops.pop().expect("loop");
                *st = self.merge_all(st.clone(), ctx.breaks);
            }
            StmtKind::While { cond, body } => self.bounded_loop(st, Some(cond), body, stmt.span),
            StmtKind::For { var, iter, body } => {
                self.for_loop(st, &var.name, iter, body, stmt.span)
            }
            StmtKind::Return(_) => *st = self.killed(st),
            StmtKind::Break | StmtKind::Continue => {
                let brk = matches!(stmt.kind, StmtKind::Break);
                match self.loops.last_mut() {
                    Some(l) => {
                        if brk {
                            l.breaks.push(st.clone());
                        } else {
                            l.continues.push(st.clone());
                        }
                    }
                    None => self.note(stmt.span, "break/continue outside a loop"),
                }
                *st = self.killed(st);
            }
            StmtKind::Block(b) => self.block(st, b),
            StmtKind::Assume(cond) => {
                let v = self.expr(st, cond);
                let c = self.truthy(&v, cond.span);
                self.restrict(st, &c);
            }
            StmtKind::Assert { cond, .. } => {
                let v = self.expr(st, cond);
                let c = self.truthy(&v, cond.span);
                self.check_assert(st, stmt.span, &c);
            }
            StmtKind::Error => {}
        }
    }

    fn if_stmt(&mut self, st: &mut State<'c>, if_stmt: &IfStmt) {
        let v = self.expr(st, &if_stmt.cond);
        let c = self.truthy(&v, if_stmt.cond.span);
        let mut then_st = self.restricted(st, &c);
        self.block(&mut then_st, &if_stmt.then_block);
        let mut else_st = self.restricted(st, &self.not(&c));
        match &if_stmt.else_branch {
            Some(ElseBranch::Block(b)) => self.block(&mut else_st, b),
            Some(ElseBranch::If(i)) if !Self::dead(&else_st) => self.if_stmt(&mut else_st, i),
            Some(ElseBranch::If(_)) | None => {}
        }
        *st = self.merge(then_st, else_st);
    }

    /// `while (cond)` (or, with no condition, a loop of unknown count).
    fn bounded_loop(&mut self, st: &mut State<'c>, cond: Option<&Expr>, body: &Block, span: Span) {
        self.unrolled_loop(
            st,
            span,
            |ex, st| {
                let c = match cond {
                    Some(cond) => {
                        let v = ex.expr(st, cond);
                        ex.truthy(&v, cond.span)
                    }
                    None => {
                        let line = ex.line(span);
                        let more = ex.approx_int(
                            &format!("loop at line {line} continues"),
                            "a loop count",
                            span,
                            IntTy::U8,
                        );
                        ex.truthy(&more, span)
                    }
                };
                Some((c, ()))
            },
            |ex, st, ()| ex.iteration(st, body),
        );
    }

    /// A loop unrolled `max_loop_iterations` times. `next` gives the
    /// condition of one more iteration and what `iterate` needs to run it
    /// (`None`: the loop ends here); paths still looping after the last are
    /// cut and recorded, so that what they might reach is not proved.
    fn unrolled_loop<T>(
        &mut self,
        st: &mut State<'c>,
        span: Span,
        mut next: impl FnMut(&mut Self, &mut State<'c>) -> Option<(Bool<'c>, T)>,
        mut iterate: impl FnMut(&mut Self, &mut State<'c>, T),
    ) {
        let max = self.opts.max_loop_iterations;
        self.loops.push(LoopCtx::default());
        let mut exits = Vec::new();
        let mut i = 0;
        while !Self::dead(st) {
            let Some((c, step)) = next(self, st) else {
                break;
            };
            exits.push(self.restricted(st, &self.not(&c)));
            self.restrict(st, &c);
            if i == max {
                if !Self::dead(st) {
                    let line = self.line(span);
                    self.events.push(Event::Cut {
                        guard: self.guard(st),
                        reason: UnknownReasonData::LoopBound {
                            line,
                            iterations: max,
                        },
                        sat: None,
                    });
                }
                break;
            }
            i += 1;
            iterate(self, st, step);
        }
        let ctx = self.loops.pop().expect("loop");
        exits.extend(ctx.breaks);
        *st = self.merge_all(self.killed(st), exits);
    }

    /// One run of a loop's body; the paths that `continue` rejoin at its end.
    fn iteration(&mut self, st: &mut State<'c>, body: &Block) {
        self.block(st, body);
        let conts = std::mem::take(&mut self.loops.last_mut().expect("loop").continues);
        *st = self.merge_all(st.clone(), conts);
    }

    fn for_loop(
        &mut self,
        st: &mut State<'c>,
        var: &str,
        iter: &ForIter,
        body: &Block,
        span: Span,
    ) {
        match iter {
            ForIter::Range { start, end } => {
                let s = self.expr(st, start);
                let e = self.expr(st, end);
                let (SVal::Int(s), SVal::Int(e)) = (s, e) else {
                    self.havoc_loop(
                        st,
                        var,
                        body,
                        span,
                        "a for loop over a range of non-integers",
                    );
                    return;
                };
                // `for ($i : a..b)`: $i from a while $i < b, as a bounded loop;
                // the counter steps from the value the condition tested,
                // whatever the body assigns to $i.
                let ty = IntTy::I64;
                let start_v = SVal::Int(self.cast(&s, ty));
                st.vars.insert(var.to_string(), start_v);
                let end_v = self.cast(&e, ty);
                self.unrolled_loop(
                    st,
                    span,
                    |ex, st| match st.vars.get(var) {
                        Some(SVal::Int(v)) => {
                            let cur = ex.cast(v, ty);
                            Some((cur.bv.bvslt(&end_v.bv), cur))
                        }
                        _ => None,
                    },
                    |ex, st, cur| {
                        ex.iteration(st, body);
                        let next = cur.bv.bvadd(&ex.bv(1, 64));
                        st.vars.insert(var.to_string(), SVal::plain(next, ty));
                    },
                );
            }
            ForIter::Expr(e) => {
                let what = format!(
                    "the iterations of `for (${var} : {})`",
                    snippet(self.env.source, e.span)
                );
                self.havoc_loop(st, var, body, span, &what);
            }
        }
    }

    /// A loop whose iterations are not modelled: it runs zero times or once
    /// more with every variable it assigns unknown before and after.
    fn havoc_loop(&mut self, st: &mut State<'c>, var: &str, body: &Block, span: Span, what: &str) {
        let line = self.line(span);
        self.note(
            span,
            format!("{what} is not modelled: variables the loop assigns become unknown"),
        );
        let mut assigned = Vec::new();
        assigned_vars(body, &mut assigned);
        let ran = self.approx_int(&format!("loop at line {line} runs"), what, span, IntTy::U8);
        let ran = self.truthy(&ran, span);
        let mut body_st = self.restricted(st, &ran);
        self.havoc(&mut body_st, &assigned, what, line);
        let loop_var = self.approx_int(&format!("${var}"), what, span, IntTy::U64);
        body_st.vars.insert(var.to_string(), loop_var);
        self.loops.push(LoopCtx::default());
        self.block(&mut body_st, body);
        let ctx = self.loops.pop().expect("loop");
        let mut after = self.merge_all(body_st, ctx.continues);
        after = self.merge_all(after, ctx.breaks);
        self.havoc(&mut after, &assigned, what, line);
        let skipped = self.restricted(st, &self.not(&ran));
        *st = self.merge(after, skipped);
    }

    fn havoc(&mut self, st: &mut State<'c>, vars: &[String], what: &str, line: u32) {
        for name in vars {
            let ty = self
                .decls
                .vars
                .get(name)
                .cloned()
                .unwrap_or(ValTy::Int(IntTy::U64));
            let v = self.fresh_of(
                &format!("${name}"),
                name,
                &ty,
                Some((what.to_string(), line)),
            );
            st.vars.insert(name.clone(), v);
        }
    }

    fn store_var(&mut self, st: &mut State<'c>, name: &str, v: SVal<'c>) {
        let v = match (self.decls.vars.get(name), v) {
            (Some(ValTy::Int(to)), SVal::Int(i)) if i.ty != *to => SVal::Int(self.cast(&i, *to)),
            (Some(ValTy::Ptr(p)), SVal::Int(mut i)) => {
                i = self.cast(&i, IntTy::U64);
                i.ptr = Some(p.clone());
                SVal::Int(i)
            }
            (_, v) => v,
        };
        st.vars.insert(name.to_string(), v);
    }

    fn assign(
        &mut self,
        st: &mut State<'c>,
        target: &Expr,
        op: AssignOp,
        value: &Expr,
        span: Span,
    ) {
        match &target.kind {
            ExprKind::Var(name) => {
                let mut v = self.expr(st, value);
                if let Some(bop) = op.binary_op() {
                    let cur = self.var(st, name);
                    v = self.binary(bop, &cur, &v, span);
                }
                self.store_var(st, name, v);
            }
            ExprKind::Map { name, keys } => {
                let keys = self.keys(st, keys);
                let agg = matches!(&value.kind, ExprKind::Call { name: f, .. } if AGGREGATIONS.contains(&f.name.as_str()));
                let value = if agg {
                    // Arguments may still be read (and checked).
                    if let ExprKind::Call { args, .. } = &value.kind {
                        for a in args {
                            self.expr(st, a);
                        }
                    }
                    None
                } else {
                    let mut v = self.expr(st, value);
                    if let Some(bop) = op.binary_op() {
                        let cur = self.map_read(name, &keys, target.span);
                        v = self.binary(bop, &cur, &v, span);
                    }
                    Some(self.map_value(v))
                };
                self.write(st, name, keys, value);
            }
            _ => self.note(
                span,
                "assignment to something other than a variable or map: ignored",
            ),
        }
    }

    /// Integers go into maps as 64 bits, keeping their signedness.
    fn map_value(&self, v: SVal<'c>) -> SVal<'c> {
        match v {
            SVal::Int(i) => SVal::plain(self.ext64(&i), IntTy::new(64, i.ty.signed)),
            other => other,
        }
    }

    /// Map keys (or a call's arguments) as terms.
    fn keys(&mut self, st: &mut State<'c>, keys: &[Expr]) -> Vec<Dynamic<'c>> {
        let mut out = Vec::new();
        for k in keys {
            let v = self.expr(st, k);
            out.push(self.key_term(&v));
        }
        out
    }

    fn map_ty(&self, name: &str) -> ValTy {
        match self.env.maps.get(name) {
            Some(MapTy::Value(t)) => t.clone(),
            _ => ValTy::Int(IntTy::U64),
        }
    }

    /// Records a write to `@map[keys]` on the paths of `st` (`value: None`:
    /// an aggregation).
    fn write(
        &mut self,
        st: &State<'c>,
        map: &str,
        keys: Vec<Dynamic<'c>>,
        value: Option<SVal<'c>>,
    ) {
        self.events.push(Event::Write {
            guard: self.guard(st),
            map: map.to_string(),
            keys,
            value,
        });
    }

    /// `@name[keys]` now: the latest write on this path with equal keys, else
    /// the map's content before the firing (an uninterpreted function).
    fn map_read(&mut self, name: &str, keys: &[Dynamic<'c>], span: Span) -> SVal<'c> {
        let ty = self.map_ty(name);
        let display = snippet(self.env.source, span);
        let mut value = self.apply_uf(&format!("@{name}"), &display, keys.to_vec(), &ty);
        let n = self.events.len();
        for i in 0..n {
            let (guard, written) = match &self.events[i] {
                Event::Write {
                    guard,
                    map,
                    keys: wk,
                    value: wv,
                } if map == name => {
                    let Some(same) = self.args_eq(wk, keys) else {
                        continue;
                    };
                    (self.and(guard, &same), wv.clone())
                }
                Event::Clear { guard, map } if map == name => {
                    (guard.clone(), Some(self.zero_of(Some(&ty))))
                }
                _ => continue,
            };
            let written = match written {
                Some(v) => v,
                // An aggregation's current value is not modelled: unknown.
                None => {
                    let n = self.inputs.len();
                    self.fresh_of(
                        &format!("{display} (aggregate)"),
                        &format!("agg{n}"),
                        &ValTy::Int(IntTy::U64),
                        None,
                    )
                }
            };
            value = self.ite_val(&guard, &written, &value);
        }
        value
    }

    // ---- assertions -----------------------------------------------------

    fn solve(&mut self, q: &Bool<'c>) -> Solved<'c> {
        self.queries += 1;
        if let Some(model) = self.sample(q) {
            return Solved::Sat(model);
        }
        // A fresh solver per query running Z3's QF_BV strategy (simplify,
        // solve-eqs, bit-blast, SAT): it decides the typical query (inputs
        // pinned by `assume`s, loops unrolled) at once where the incremental
        // core can take seconds, and it is cheap to create (the default
        // solver costs milliseconds to set up). Strings fall back to `smt`.
        let (q, axioms) = self.propagate_pins(q);
        let q = &q;
        let mut solver = self.query_solver("qfbv", &axioms);
        solver.assert(q);
        let mut result = solver.check();
        if result == SatResult::Unknown
            && !solver
                .get_reason_unknown()
                .is_some_and(|r| r.contains("timeout") || r.contains("canceled"))
        {
            solver = self.query_solver("smt", &axioms);
            solver.assert(q);
            result = solver.check();
        }
        let r = match result {
            SatResult::Sat => match solver.get_model() {
                Some(m) => Solved::Sat(m),
                None => Solved::Unknown(UnknownReasonData::Solver {
                    message: "no model".into(),
                }),
            },
            SatResult::Unsat => Solved::Unsat,
            SatResult::Unknown => {
                let why = solver.get_reason_unknown().unwrap_or_default();
                if why.contains("timeout") || why.contains("canceled") {
                    Solved::Unknown(UnknownReasonData::Timeout {
                        limit_ms: self.opts.timeout_ms,
                    })
                } else {
                    Solved::Unknown(UnknownReasonData::Solver { message: why })
                }
            }
        };
        r
    }

    /// A new solver running `tactic`, with the time limit and `axioms`.
    fn query_solver(&self, tactic: &str, axioms: &[Bool<'c>]) -> Solver<'c> {
        let solver = z3::Tactic::new(self.ctx, tactic).solver();
        let mut params = Params::new(self.ctx);
        params.set_u32("timeout", self.opts.timeout_ms.max(1));
        solver.set_params(&params);
        for a in axioms {
            solver.assert(a);
        }
        solver
    }

    /// `q` and the axioms with the constants `q` pins (`x == 5` conjuncts,
    /// typically from `assume`s) replaced by their values, and quotients and
    /// remainders of now-constant dividends by theirs. Their definitions are
    /// equations over products, which the solver cannot evaluate the way it
    /// folds a division of constants; the pins stay as equations for the model.
    fn propagate_pins(&self, q: &Bool<'c>) -> (Bool<'c>, Vec<Bool<'c>>) {
        let mut pins = Vec::new();
        pinned(&Dynamic::from_ast(q), &mut pins);
        if pins.is_empty() {
            return (q.clone(), self.axioms.clone());
        }
        for (quotient, def) in &self.defs {
            let pairs: Vec<(&Dynamic<'c>, &Dynamic<'c>)> =
                pins.iter().map(|(a, b)| (a, b)).collect();
            let value = def.substitute(&pairs).simplify();
            if value.as_u64().is_some() {
                pins.push((Dynamic::from_ast(quotient), Dynamic::from_ast(&value)));
            }
        }
        let pairs: Vec<(&Dynamic<'c>, &Dynamic<'c>)> = pins.iter().map(|(a, b)| (a, b)).collect();
        let mut conj = vec![q.substitute(&pairs)];
        conj.extend(pins.iter().map(|(c, v)| c._eq(v)));
        let axioms = self.axioms.iter().map(|a| a.substitute(&pairs)).collect();
        (self.and_all(&conj), axioms)
    }

    fn check_assert(&mut self, st: &State<'c>, span: Span, c: &Bool<'c>) {
        let Some(&idx) = self.assert_index.get(&span.start) else {
            return;
        };
        if self.acc[idx].refuted() {
            return;
        }
        let started = Instant::now();
        let guard = self.guard(st);
        let mut conj = st.conj.clone();
        conj.push(self.not(c));
        let q = if Self::dead(st) || c.as_bool() == Some(true) {
            self.ff()
        } else {
            self.and_all(&conj)
        };
        let (verdict, vacuous) = if q.as_bool() == Some(false) {
            (VerdictData::Proved, self.unreachable(&guard))
        } else {
            match self.solve(&q) {
                Solved::Sat(model) => (self.refutation(&model, &q), false),
                Solved::Unknown(reason) => (VerdictData::Unknown { reason }, false),
                Solved::Unsat => match self.satisfiable_cut() {
                    Some(reason) => (VerdictData::Unknown { reason }, false),
                    None => (VerdictData::Proved, self.unreachable(&guard)),
                },
            }
        };
        let acc = &mut self.acc[idx];
        acc.add(verdict, vacuous);
        acc.elapsed += started.elapsed();
    }

    /// Looks for a model of `q` by trying input values (zeros, ones, extremes,
    /// the formula's own constants and their neighbours, random values) and
    /// letting Z3's simplifier evaluate `q` under them. Z3 4.8's bit-blasting
    /// of 64-bit division and multiplication can take seconds to find a model
    /// that such a value shows at once (`x / 1000 != x / 1000000`). A hit is
    /// confirmed by the solver with the values fixed, which also yields the
    /// model. Proofs (unsat) are left to the solver.
    fn sample(&mut self, q: &Bool<'c>) -> Option<Model<'c>> {
        let mut all = q.clone();
        for a in &self.axioms {
            all = self.and(&all, a);
        }
        let (mut consts, pool) = constants_of(&all);
        // Linear formulas are easy for the solver: only multiplication and
        // division make bit-blasting slow.
        if !pool.nonlinear && self.defs.is_empty() {
            return None;
        }
        // Quotients and remainders are computed from their definitions.
        consts.retain(|c| !c.to_string().starts_with(AUX_PREFIX));
        if consts.is_empty() || consts.len() > 64 {
            return None;
        }
        let mut rng = SplitMix(0x9e37_79b9_7f4a_7c15 ^ consts.len() as u64);
        for round in 0..SAMPLE_ROUNDS {
            let mut from: Vec<Dynamic<'c>> = consts.clone();
            let mut to: Vec<Dynamic<'c>> = consts
                .iter()
                .map(|c| match pool.pinned.iter().find(|(p, _)| p == c) {
                    Some((_, v)) => v.clone(),
                    None => self.sample_value(c, round, &pool, &mut rng),
                })
                .collect();
            for (q, def) in &self.defs {
                let pairs: Vec<(&Dynamic<'c>, &Dynamic<'c>)> = from.iter().zip(to.iter()).collect();
                let value = def.substitute(&pairs).simplify();
                from.push(Dynamic::from_ast(q));
                to.push(Dynamic::from_ast(&value));
            }
            let pairs: Vec<(&Dynamic<'c>, &Dynamic<'c>)> = from.iter().zip(to.iter()).collect();
            if all.substitute(&pairs).simplify().as_bool() != Some(true) {
                continue;
            }
            let solver = self.query_solver("smt", &self.axioms);
            solver.assert(q);
            for (c, v) in &pairs {
                solver.assert(&c._eq(v));
            }
            let model = match solver.check() {
                SatResult::Sat => solver.get_model(),
                _ => None,
            };
            if model.is_some() {
                return model;
            }
        }
        None
    }

    fn sample_value(
        &self,
        c: &Dynamic<'c>,
        round: usize,
        pool: &Pool<'c>,
        rng: &mut SplitMix,
    ) -> Dynamic<'c> {
        match c.sort_kind() {
            SortKind::Bool => Dynamic::from_ast(&Bool::from_bool(
                self.ctx,
                round % 2 == 0 || rng.next() % 2 == 0,
            )),
            SortKind::BV => {
                let bits = c.as_bv().map_or(64, |b| b.get_size());
                let mask = if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                let high = 1u64 << (bits.min(64) - 1);
                let v = match round {
                    0 => 0,
                    1 => 1,
                    2 => mask,
                    3 => high,
                    _ => match rng.next() % 6 {
                        0 | 1 if !pool.ints.is_empty() => {
                            let n = pool.ints[(rng.next() % pool.ints.len() as u64) as usize];
                            match rng.next() % 4 {
                                0 => n.wrapping_add(1),
                                1 => n.wrapping_sub(1),
                                2 => n.wrapping_neg(),
                                _ => n,
                            }
                        }
                        2 => rng.next() % 16,
                        3 => [mask, mask - 1, high, high - 1][(rng.next() % 4) as usize],
                        _ => rng.next(),
                    },
                };
                Dynamic::from_ast(&self.bv(v & mask, bits))
            }
            _ => {
                let s = match round {
                    0 => "",
                    _ if pool.strs.is_empty() => "a",
                    _ => pool.strs[(rng.next() % pool.strs.len() as u64) as usize].as_str(),
                };
                Dynamic::from_ast(
                    &ZStr::from_str(self.ctx, s).unwrap_or_else(|_| self.str_lit(b"")),
                )
            }
        }
    }

    /// Whether no input reaches a point with path condition `guard`.
    fn unreachable(&mut self, guard: &Bool<'c>) -> bool {
        match guard.as_bool() {
            Some(b) => !b,
            None => matches!(self.solve(guard), Solved::Unsat),
        }
    }

    /// A loop cut-off some input reaches: those paths were not explored.
    fn satisfiable_cut(&mut self) -> Option<UnknownReasonData> {
        for i in 0..self.events.len() {
            let (guard, reason, sat) = match &self.events[i] {
                Event::Cut { guard, reason, sat } => (guard.clone(), reason.clone(), *sat),
                _ => continue,
            };
            let sat = match sat {
                Some(s) => s,
                None => {
                    let s = !matches!(self.solve(&guard), Solved::Unsat);
                    if let Event::Cut { sat, .. } = &mut self.events[i] {
                        *sat = Some(s);
                    }
                    s
                }
            };
            if sat {
                return Some(reason);
            }
        }
        None
    }

    fn refutation(&mut self, model: &Model<'c>, q: &Bool<'c>) -> VerdictData {
        let mut roots = vec![Dynamic::from_ast(q)];
        let mut printed = Vec::new();
        for ev in &self.events {
            if let Event::Print { guard, line } = ev {
                if model.eval(guard, true).and_then(|b| b.as_bool()) != Some(true) {
                    continue;
                }
                let values: Vec<&SVal<'c>> = match line {
                    PrintLine::Format(_, args) => args.iter().collect(),
                    PrintLine::Value(v) => vec![v],
                    PrintLine::Text(_) => Vec::new(),
                };
                for v in &values {
                    match v {
                        SVal::Int(i) => roots.push(Dynamic::from_ast(&i.bv)),
                        SVal::Str(s) => roots.push(Dynamic::from_ast(s)),
                        _ => {}
                    }
                }
                printed.push(self.render(model, line));
            }
        }
        let used = self.used_inputs(model, roots);
        if let Some(&i) = used.iter().find(|&&i| self.inputs[i].approx.is_some()) {
            let (construct, line) = self.inputs[i].approx.clone().unwrap_or_default();
            return VerdictData::Unknown {
                reason: UnknownReasonData::Unsupported { construct, line },
            };
        }
        let inputs = used
            .into_iter()
            .map(|i| self.assignment(model, &self.inputs[i]))
            .collect();
        VerdictData::Refuted {
            counterexample: CounterexampleData {
                probe: self.firing.label.clone(),
                inputs,
                printed,
            },
        }
    }

    /// Inputs a counterexample needs: constants the value of `roots` in the
    /// model depends on, following only what justifies it: the branch an
    /// `ite` takes, one true disjunct of a true `or`, one false conjunct of a
    /// false `and`.
    fn used_inputs(&self, model: &Model<'c>, roots: Vec<Dynamic<'c>>) -> Vec<usize> {
        let mut stack = roots;
        let mut seen: HashSet<Dynamic<'c>> = HashSet::new();
        let mut found = Vec::new();
        let value = |t: &Dynamic<'c>| {
            t.as_bool()
                .and_then(|b| model.eval(&b, true))
                .and_then(|b| b.as_bool())
        };
        while let Some(t) = stack.pop() {
            if !t.is_app() || !seen.insert(t.clone()) {
                continue;
            }
            let Ok(decl) = t.safe_decl() else { continue };
            let n = t.num_children();
            if n == 0 {
                if decl.kind() == DeclKind::UNINTERPRETED {
                    if let Some(&i) = self.by_name.get(&decl.name()) {
                        found.push(i);
                    }
                    // A quotient or remainder depends on its dividend.
                    if let Some((_, def)) =
                        self.defs.iter().find(|(q, _)| Dynamic::from_ast(q) == t)
                    {
                        stack.push(Dynamic::from_ast(def));
                    }
                }
                continue;
            }
            let decisive = match decl.kind() {
                DeclKind::OR => Some(true),
                DeclKind::AND => Some(false),
                _ => None,
            };
            if let Some(wanted) = decisive {
                if value(&t) == Some(wanted) {
                    let children = t.children();
                    if let Some(c) = children.iter().find(|c| value(c) == Some(wanted)) {
                        stack.push(c.clone());
                        continue;
                    }
                }
                stack.extend(t.children());
                continue;
            }
            if decl.kind() == DeclKind::ITE {
                let children = t.children();
                let taken = children[0]
                    .as_bool()
                    .and_then(|c| model.eval(&c, true))
                    .and_then(|c| c.as_bool());
                stack.push(children[0].clone());
                match taken {
                    Some(true) => stack.push(children[1].clone()),
                    Some(false) => stack.push(children[2].clone()),
                    None => {
                        stack.push(children[1].clone());
                        stack.push(children[2].clone());
                    }
                }
                continue;
            }
            stack.extend(t.children());
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    fn assignment(&self, model: &Model<'c>, input: &InputSym<'c>) -> InputData {
        match input.kind {
            InKind::Int(ty) => {
                let v = input
                    .term
                    .as_bv()
                    .and_then(|b| model.eval(&b, true))
                    .and_then(|b| b.as_u64())
                    .unwrap_or(0);
                let n = ty.numeric(v);
                let shown = if n.unsigned_abs() >= 256 || n < 0 {
                    format!("{n} ({v:#x})")
                } else {
                    n.to_string()
                };
                InputData {
                    name: input.name.clone(),
                    value: InputValueData::Int(v),
                    ty: ty.name(),
                    shown,
                }
            }
            InKind::Str => {
                let s = input
                    .term
                    .as_string()
                    .and_then(|s| model.eval(&s, true))
                    .and_then(|s| s.as_string())
                    .map(|s| unescape_z3(&s))
                    .unwrap_or_default();
                InputData {
                    name: input.name.clone(),
                    shown: format!("{s:?}"),
                    value: InputValueData::Str(s),
                    ty: "string".into(),
                }
            }
        }
    }

    fn printable(&self, model: &Model<'c>, v: &SVal<'c>) -> Printable {
        match v {
            SVal::Int(i) => {
                let raw = model
                    .eval(&i.bv, true)
                    .and_then(|b| b.as_u64())
                    .unwrap_or(0);
                Printable::Int(i.ty.ext64(raw))
            }
            SVal::Str(s) => Printable::Str(
                model
                    .eval(s, true)
                    .and_then(|s| s.as_string())
                    .map(|s| unescape_z3(&s))
                    .unwrap_or_default()
                    .into_bytes(),
            ),
            SVal::Record { record, .. } => Printable::Opaque(format!("<{}>", record.spelled())),
            SVal::Array { .. } => Printable::Opaque("<array>".into()),
            SVal::Args => Printable::Opaque("<args>".into()),
            SVal::Opaque(d) => Printable::Opaque(d.clone()),
        }
    }

    fn render(&self, model: &Model<'c>, line: &PrintLine<'c>) -> String {
        match line {
            PrintLine::Format(fmt, args) => {
                let values: Vec<Printable> =
                    args.iter().map(|a| self.printable(model, a)).collect();
                fmt.render(&values)
            }
            PrintLine::Value(v) => match (v, self.printable(model, v)) {
                (SVal::Int(i), Printable::Int(x)) => format!("{}\n", i.ty.numeric(x)),
                (_, Printable::Str(s)) => format!("{}\n", String::from_utf8_lossy(&s)),
                (_, Printable::Opaque(d)) => format!("{d}\n"),
                (_, Printable::Int(x)) => format!("{x}\n"),
            },
            PrintLine::Text(t) => t.clone(),
        }
    }

    // ---- expressions ----------------------------------------------------

    fn expr(&mut self, st: &mut State<'c>, e: &Expr) -> SVal<'c> {
        let sem = self.env.sem;
        match &e.kind {
            ExprKind::Int(lit) => self.int(lit.value, sem.literal(lit.value)),
            ExprKind::Bool(b) => self.int(u64::from(*b), IntTy::U8),
            ExprKind::Str(s) => SVal::Str(self.str_lit(&s.value)),
            ExprKind::Var(name) => self.var(st, name),
            ExprKind::Positional(n) => {
                let name = format!("${n}");
                self.memo_input(&name.clone(), &name, &ValTy::Int(IntTy::I64))
            }
            ExprKind::PositionalCount => self.memo_input("$#", "$#", &ValTy::Int(IntTy::U64)),
            ExprKind::Map { name, keys } => {
                let keys = self.keys(st, keys);
                self.map_read(name, &keys, e.span)
            }
            ExprKind::Builtin(name) => self.builtin(name, e.span),
            ExprKind::Ident(name) => match self.env.constant(name) {
                Some(v) => self.int(v, IntTy::I64),
                None => self.approx_int(
                    name,
                    "an identifier the kernel facts do not define",
                    e.span,
                    IntTy::I64,
                ),
            },
            ExprKind::Call { name, args } => self.call(st, &name.name, args, e.span),
            ExprKind::Field { base, field, arrow } => {
                let b = self.expr(st, base);
                self.field(&b, &field.name, *arrow, e.span)
            }
            ExprKind::Index { base, index } => {
                let b = self.expr(st, base);
                let i = self.expr(st, index);
                self.index(&b, &i, e.span)
            }
            ExprKind::Unary { op, operand } => self.unary(st, *op, operand, e.span),
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.expr(st, lhs);
                match op {
                    BinaryOp::And | BinaryOp::Or => {
                        let lc = self.truthy(&l, lhs.span);
                        // The right side runs only when the left does not decide.
                        let run_right = if *op == BinaryOp::And {
                            lc.clone()
                        } else {
                            self.not(&lc)
                        };
                        let r = self.branch_expr(st, &run_right, rhs);
                        let rc = self.truthy(&r, rhs.span);
                        let c = if *op == BinaryOp::And {
                            self.and(&lc, &rc)
                        } else {
                            self.or(&lc, &rc)
                        };
                        let lt = self.int_ty(&l);
                        let rt = self.int_ty(&r);
                        let ty = sem.binop(*op, lt, rt).result;
                        self.bool_value(c, ty)
                    }
                    _ => {
                        let r = self.expr(st, rhs);
                        self.binary(*op, &l, &r, e.span)
                    }
                }
            }
            ExprKind::Ternary {
                cond,
                then_expr,
                else_expr,
            } => {
                let cv = self.expr(st, cond);
                let c = self.truthy(&cv, cond.span);
                let l = self.branch_expr(st, &c, then_expr);
                let nc = self.not(&c);
                let r = self.branch_expr(st, &nc, else_expr);
                match (&l, &r) {
                    (SVal::Int(li), SVal::Int(ri)) => {
                        let to = sem.ternary(li.ty, ri.ty);
                        let (lc, rc) = (self.cast(li, to), self.cast(ri, to));
                        SVal::plain(c.ite(&lc.bv, &rc.bv), to)
                    }
                    (SVal::Str(a), SVal::Str(b)) => SVal::Str(c.ite(a, b)),
                    _ => self.unmodelled("a ternary of mixed or non-integer types", e.span),
                }
            }
            ExprKind::Cast { ty, expr } => {
                let v = self.expr(st, expr);
                match (cast_target(ty), v) {
                    (Some(ValTy::Int(to)), SVal::Int(i)) => SVal::Int(self.cast(&i, to)),
                    (Some(ValTy::Ptr(p)), SVal::Int(i)) => {
                        let mut c = self.cast(&i, IntTy::U64);
                        c.ptr = Some(p);
                        SVal::Int(c)
                    }
                    (Some(ValTy::Ptr(p)), SVal::Record { key, .. }) => {
                        // A pointer to a member: its address is another input.
                        let name = snippet(self.env.source, e.span);
                        let v = self.memo_input(&format!("&{key}"), &name, &ValTy::Ptr(p));
                        v
                    }
                    _ => self.unmodelled("this cast", e.span),
                }
            }
            ExprKind::Sizeof(of) => {
                let bytes = match of {
                    TypeOrExpr::Type(t) => cast_target(t)
                        .and_then(|t| t.as_int())
                        .map(|t| u64::from(t.bits / 8)),
                    TypeOrExpr::Expr(x) => self.sizeof_expr(x),
                };
                match bytes {
                    Some(b) => self.int(b, IntTy::U64),
                    None => {
                        let name = snippet(self.env.source, e.span);
                        self.note(
                            e.span,
                            format!("`{name}`: size not known, treated as an unknown value"),
                        );
                        self.memo_input(&format!("sizeof:{name}"), &name, &ValTy::Int(IntTy::U64))
                    }
                }
            }
            ExprKind::Tuple(items) => {
                for i in items {
                    self.expr(st, i);
                }
                SVal::Opaque("<tuple>".into())
            }
            ExprKind::TupleIndex { .. } | ExprKind::Offsetof { .. } | ExprKind::Error => {
                self.unmodelled("this expression", e.span)
            }
        }
    }

    /// `e` evaluated on the paths where `c` holds (a ternary branch, the right
    /// side of `&&`): side effects land in a separate state merged back.
    fn branch_expr(&mut self, st: &mut State<'c>, c: &Bool<'c>, e: &Expr) -> SVal<'c> {
        if !has_effects(e) {
            return self.expr(st, e);
        }
        let mut taken = self.restricted(st, c);
        let v = self.expr(&mut taken, e);
        let other = self.restricted(st, &self.not(c));
        *st = self.merge(taken, other);
        v
    }

    fn int_ty(&self, v: &SVal<'c>) -> IntTy {
        match v {
            SVal::Int(i) => i.ty,
            _ => IntTy::U64,
        }
    }

    fn sizeof_expr(&self, x: &Expr) -> Option<u64> {
        if let ExprKind::Field { base, field, .. } = &x.kind {
            if matches!(&base.kind, ExprKind::Builtin(b) if b == "args") {
                return self.firing.field(&field.name).map(|f| f.size);
            }
        }
        self.env
            .static_ty(Some(self.firing), self.decls, x)
            .and_then(|t| t.as_int())
            .map(|t| u64::from(t.bits / 8))
    }

    fn builtin(&mut self, name: &str, span: Span) -> SVal<'c> {
        if name == "retval" && !retval_is_u64(self.firing.kind) {
            self.note(
                span,
                "`retval` of this probe type: type not known, treated as uint64",
            );
        }
        match builtin_model(name, self.env.sem) {
            Some(BuiltinModel::Int { ty, value_bits }) => {
                let key = format!("builtin:{name}");
                if let Some(v) = self.memo.get(&key) {
                    return v.clone();
                }
                let raw = self.fresh_bv(name, IntTy::new(value_bits, false), None);
                let v = SVal::plain(self.resize(&raw, value_bits, ty.bits, false), ty);
                self.memo.insert(key, v.clone());
                v
            }
            Some(BuiltinModel::Str) => {
                let key = format!("builtin:{name}");
                let fresh = !self.memo.contains_key(&key);
                let v = self.memo_input(&key, name, &ValTy::Str);
                if fresh && name == "comm" {
                    // TASK_COMM_LEN is 16 with the NUL.
                    if let SVal::Str(s) = &v {
                        self.axiom(s.length().le(&Int::from_u64(self.ctx, 15)));
                    }
                }
                v
            }
            Some(BuiltinModel::ProbeName) => SVal::Str(self.str_lit(self.firing.label.as_bytes())),
            Some(BuiltinModel::Ptr(p)) => {
                self.memo_input(&format!("builtin:{name}"), name, &ValTy::Ptr(p))
            }
            Some(BuiltinModel::Args) => SVal::Args,
            Some(BuiltinModel::Opaque(what)) => SVal::Opaque(format!("<{what}>")),
            None => self.approx_int(name, "an unknown builtin", span, IntTy::U64),
        }
    }

    fn field(&mut self, base: &SVal<'c>, field: &str, arrow: bool, span: Span) -> SVal<'c> {
        let sep = if arrow { "->" } else { "." };
        match base {
            SVal::Args => {
                let name = format!("args->{field}");
                let ty = match self.firing.field(field) {
                    Some(f) => field_ty(&f, self.env.facts),
                    None => {
                        let why = if self.firing.fields.is_some() {
                            "no such field in the kernel facts"
                        } else {
                            "the probe's fields are not known"
                        };
                        self.note(span, format!("`{name}`: {why}; treated as uint64"));
                        ValTy::Int(IntTy::U64)
                    }
                };
                self.memo_input(&format!("args:{field}"), &name, &ty)
            }
            SVal::Int(SInt {
                ptr: Some(Pointee::Record(r)),
                bv,
                ..
            }) => {
                let key = format!("mem:{bv}{sep}{field}");
                self.member(r, field, &key, span)
            }
            SVal::Record { record, key } => {
                let key = format!("{key}.{field}");
                self.member(record, field, &key, span)
            }
            // A member of a record the facts do not describe: another uint64
            // input named by its path (members of it are inputs too).
            SVal::Int(SInt {
                ptr: Some(Pointee::Unknown),
                bv,
                ..
            }) => {
                let name = snippet(self.env.source, span);
                self.note(span, format!("`{name}`: type not known; treated as uint64"));
                self.memo_input(
                    &format!("mem:{bv}{sep}{field}"),
                    &name,
                    &ValTy::Ptr(Pointee::Unknown),
                )
            }
            _ => self.unmodelled("a field of a value of unknown type", span),
        }
    }

    fn member(&mut self, record: &RecordRef, field: &str, key: &str, span: Span) -> SVal<'c> {
        let name = snippet(self.env.source, span);
        let ty = match self.env.member(record, field) {
            Some(f) => field_ty(&f, self.env.facts),
            None => {
                self.note(
                    span,
                    format!(
                        "`{name}`: {} member `{field}` not in the kernel facts; treated as uint64",
                        record.spelled()
                    ),
                );
                ValTy::Ptr(Pointee::Unknown)
            }
        };
        self.memo_input(key, &name, &ty)
    }

    fn index(&mut self, base: &SVal<'c>, index: &SVal<'c>, span: Span) -> SVal<'c> {
        let name = snippet(self.env.source, span);
        let idx = match index {
            SVal::Int(i) => self.ext64(i).to_string(),
            _ => return self.unmodelled("an index that is not an integer", span),
        };
        match base {
            SVal::Array { elem, key } => {
                self.memo_input(&format!("{key}[{idx}]"), &name, &ValTy::Int(*elem))
            }
            SVal::Int(SInt {
                ptr: Some(Pointee::Int(t)),
                bv,
                ..
            }) => self.memo_input(&format!("mem:{bv}[{idx}]"), &name, &ValTy::Int(*t)),
            _ => self.unmodelled("indexing a value of unknown type", span),
        }
    }

    fn unary(&mut self, st: &mut State<'c>, op: UnaryOp, operand: &Expr, span: Span) -> SVal<'c> {
        if matches!(
            op,
            UnaryOp::PreInc | UnaryOp::PreDec | UnaryOp::PostInc | UnaryOp::PostDec
        ) {
            let inc = matches!(op, UnaryOp::PreInc | UnaryOp::PostInc);
            let post = matches!(op, UnaryOp::PostInc | UnaryOp::PostDec);
            let bop = if inc { BinaryOp::Add } else { BinaryOp::Sub };
            match &operand.kind {
                ExprKind::Var(name) => {
                    let old = self.var(st, name);
                    let SVal::Int(o) = &old else { return old };
                    let one = self.bv(1, o.ty.bits);
                    let new = SVal::Int(SInt {
                        bv: if inc {
                            o.bv.bvadd(&one)
                        } else {
                            o.bv.bvsub(&one)
                        },
                        ty: o.ty,
                        ptr: o.ptr.clone(),
                        cond: None,
                    });
                    self.store_var(st, name, new);
                    return if post {
                        old
                    } else {
                        st.vars.get(name).cloned().unwrap_or(old)
                    };
                }
                ExprKind::Map { name, keys } => {
                    let keys = self.keys(st, keys);
                    let old = self.map_read(name, &keys, operand.span);
                    let one = self.int(1, IntTy::I64);
                    let sum = self.binary(bop, &old, &one, span);
                    let new = self.map_value(sum);
                    self.write(st, name, keys, Some(new.clone()));
                    return if post { old } else { new };
                }
                _ => {
                    return self.unmodelled("++/-- on this expression", span);
                }
            }
        }
        let v = self.expr(st, operand);
        match op {
            UnaryOp::Deref => {
                let name = snippet(self.env.source, span);
                match &v {
                    SVal::Int(SInt {
                        ptr: Some(Pointee::Record(r)),
                        bv,
                        ..
                    }) => SVal::Record {
                        record: r.clone(),
                        key: format!("mem:{bv}*"),
                    },
                    SVal::Int(SInt {
                        ptr: Some(Pointee::Int(t)),
                        bv,
                        ..
                    }) => self.memo_input(&format!("mem:{bv}*"), &name, &ValTy::Int(*t)),
                    // bpftrace 0.17 reads 8 bytes through an integer.
                    SVal::Int(SInt { bv, .. }) => {
                        self.memo_input(&format!("mem:{bv}*"), &name, &ValTy::Int(IntTy::U64))
                    }
                    _ => self.unmodelled("this dereference", span),
                }
            }
            UnaryOp::AddrOf => self.unmodelled("taking an address", span),
            _ => {
                let SVal::Int(i) = v else {
                    return self.unmodelled("an operator on a non-integer", span);
                };
                match op {
                    UnaryOp::Neg => SVal::plain(i.bv.bvneg(), i.ty),
                    UnaryOp::BitNot => SVal::plain(i.bv.bvnot(), i.ty),
                    UnaryOp::Not => {
                        let c = self.truthy(&SVal::Int(i.clone()), span);
                        self.bool_value(self.not(&c), i.ty.unsigned())
                    }
                    _ => SVal::Int(i),
                }
            }
        }
    }

    /// A binary operator on evaluated operands.
    fn binary(&mut self, op: BinaryOp, l: &SVal<'c>, r: &SVal<'c>, span: Span) -> SVal<'c> {
        let (l, r) = match (l, r) {
            (SVal::Int(l), SVal::Int(r)) => (l, r),
            (SVal::Str(a), SVal::Str(b)) if matches!(op, BinaryOp::Eq | BinaryOp::Ne) => {
                let eq = a._eq(b);
                let c = if op == BinaryOp::Eq { eq } else { eq.not() };
                return self.bool_value(c, IntTy::U64);
            }
            _ => {
                return self.unmodelled("an operator on values that are not integers", span);
            }
        };
        let bt = self.env.sem.binop(op, l.ty, r.ty);
        let w = bt.width;
        let a = self.resize(&l.bv, l.ty.bits, w, l.ty.signed);
        let b = self.resize(&r.bv, r.ty.bits, w, r.ty.signed);
        let zero = self.bv(0, w);
        let value = |bv: BV<'c>| SVal::plain(bv, bt.result);
        match op {
            BinaryOp::Add => value(a.bvadd(&b)),
            BinaryOp::Sub => value(a.bvsub(&b)),
            BinaryOp::Mul => value(a.bvmul(&b)),
            // BPF: x / 0 = 0 and x % 0 = x (unsigned, whatever the types).
            BinaryOp::Div | BinaryOp::Mod => {
                let (quotient, remainder) = match b.simplify().as_u64() {
                    Some(c) if c != 0 => self.divmod_by_constant(&a, c, w),
                    _ => (
                        b._eq(&zero).ite(&zero, &a.bvudiv(&b)),
                        b._eq(&zero).ite(&a, &a.bvurem(&b)),
                    ),
                };
                value(if op == BinaryOp::Div {
                    quotient
                } else {
                    remainder
                })
            }
            BinaryOp::BitAnd => value(a.bvand(&b)),
            BinaryOp::BitOr => value(a.bvor(&b)),
            BinaryOp::BitXor => value(a.bvxor(&b)),
            // Shift amounts are taken modulo the width, as BPF's shifts do.
            BinaryOp::Shl => value(a.bvshl(&b.bvand(&self.bv(u64::from(w - 1), w)))),
            BinaryOp::Shr => value(a.bvlshr(&b.bvand(&self.bv(u64::from(w - 1), w)))),
            BinaryOp::Eq => self.bool_value(a._eq(&b), bt.result),
            BinaryOp::Ne => self.bool_value(a._eq(&b).not(), bt.result),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let s = bt.signed_compare;
                let c = match op {
                    BinaryOp::Lt if s => a.bvslt(&b),
                    BinaryOp::Lt => a.bvult(&b),
                    BinaryOp::Le if s => a.bvsle(&b),
                    BinaryOp::Le => a.bvule(&b),
                    BinaryOp::Gt if s => a.bvsgt(&b),
                    BinaryOp::Gt => a.bvugt(&b),
                    BinaryOp::Ge if s => a.bvsge(&b),
                    _ => a.bvuge(&b),
                };
                self.bool_value(c, bt.result)
            }
            BinaryOp::And | BinaryOp::Or => {
                let lc = self.truthy(&SVal::Int(l.clone()), span);
                let rc = self.truthy(&SVal::Int(r.clone()), span);
                let c = if op == BinaryOp::And {
                    self.and(&lc, &rc)
                } else {
                    self.or(&lc, &rc)
                };
                self.bool_value(c, bt.result)
            }
        }
    }

    /// `a / c` and `a % c` for a constant `c > 0`, `w` bits. Powers of two
    /// are a shift and a mask; otherwise new constants `q`, `r` defined by
    /// `a = q·c + r ∧ r < c` (in 2w bits, so nothing wraps): Z3 4.8 decides
    /// this far faster than its divider circuits, `r < c` is there for the
    /// asking, and an equation on `q` solves for `a` at once. The sampler
    /// computes both from their definitions.
    fn divmod_by_constant(&mut self, a: &BV<'c>, c: u64, w: u32) -> (BV<'c>, BV<'c>) {
        let cn = self.bv(c, w);
        if c.is_power_of_two() {
            let k = self.bv(u64::from(c.trailing_zeros()), w);
            return (a.bvlshr(&k), a.bvand(&self.bv(c - 1, w)));
        }
        let exact_q = a.bvudiv(&cn);
        // The same division twice is the same quotient (`x / 1000 == x / 1000`
        // stays trivial): the remainder was defined right after it.
        if let Some(i) = self.defs.iter().position(|(_, d)| *d == exact_q) {
            return (self.defs[i].0.clone(), self.defs[i + 1].0.clone());
        }
        let n = self.defs.len();
        let q = BV::new_const(self.ctx, format!("{AUX_PREFIX}{n}"), w);
        let r = BV::new_const(self.ctx, format!("{AUX_PREFIX}{}", n + 1), w);
        let wide = |x: &BV<'c>| x.zero_ext(w);
        let product = wide(&q).bvmul(&self.bv(c, 2 * w));
        let fact = Bool::and(
            self.ctx,
            &[&wide(a)._eq(&product.bvadd(&wide(&r))), &r.bvult(&cn)],
        );
        self.axiom(fact);
        self.defs.push((q.clone(), exact_q));
        self.defs.push((r.clone(), a.bvurem(&cn)));
        (q, r)
    }

    fn bswap(&self, i: &SInt<'c>) -> SVal<'c> {
        let bytes = i.ty.bits / 8;
        let mut out: Option<BV<'c>> = None;
        // Byte 0 (lowest) becomes the highest: concatenate from the low end.
        for k in 0..bytes {
            let byte = i.bv.extract(8 * k + 7, 8 * k);
            out = Some(match out {
                None => byte,
                Some(acc) => acc.concat(&byte),
            });
        }
        SVal::plain(out.unwrap_or_else(|| i.bv.clone()), i.ty)
    }

    fn call(&mut self, st: &mut State<'c>, name: &str, args: &[Expr], span: Span) -> SVal<'c> {
        let text = snippet(self.env.source, span);
        match name {
            "printf" => {
                let fmt = match args.first().map(|a| &a.kind) {
                    Some(ExprKind::Str(s)) => Format::parse(&s.text()),
                    _ => {
                        self.note(span, "printf without a literal format: not recorded");
                        return SVal::Opaque("<printf>".into());
                    }
                };
                let values: Vec<SVal<'c>> = args[1..].iter().map(|a| self.expr(st, a)).collect();
                self.events.push(Event::Print {
                    guard: self.guard(st),
                    line: PrintLine::Format(fmt, values),
                });
                SVal::Opaque("<printf>".into())
            }
            "print" => {
                let line = match args.first() {
                    Some(Expr {
                        kind: ExprKind::Map { name, .. },
                        ..
                    }) => PrintLine::Text(format!("<contents of @{name}>\n")),
                    Some(a) if args.len() == 1 => PrintLine::Value(self.expr(st, a)),
                    _ => PrintLine::Text(format!("<{text}>\n")),
                };
                self.events.push(Event::Print {
                    guard: self.guard(st),
                    line,
                });
                SVal::Opaque("<print>".into())
            }
            "exit" => SVal::Opaque("<exit>".into()),
            "bswap" if args.len() == 1 => match self.expr(st, &args[0]) {
                SVal::Int(i) => self.bswap(&i),
                _ => self.unmodelled("bswap of a non-integer", span),
            },
            "kptr" | "uptr" if args.len() == 1 => self.expr(st, &args[0]),
            "strncmp" if args.len() == 3 => {
                let a = self.expr(st, &args[0]);
                let b = self.expr(st, &args[1]);
                let n = match &args[2].kind {
                    ExprKind::Int(lit) => Some(lit.value),
                    _ => None,
                };
                match (a, b, n) {
                    (SVal::Str(a), SVal::Str(b), Some(n)) => {
                        // bpftrace's strncmp is 0 when the first n bytes match, else 1.
                        let zero = Int::from_u64(self.ctx, 0);
                        let len = Int::from_u64(self.ctx, n);
                        let same = a.substr(&zero, &len)._eq(&b.substr(&zero, &len));
                        self.bool_value(same.not(), IntTy::U64)
                    }
                    (a, b, _) => {
                        let args = vec![self.key_term(&a), self.key_term(&b)];
                        self.apply_uf("strncmp", &text, args, &ValTy::Int(IntTy::U64))
                    }
                }
            }
            "delete" => {
                let (map, keys) = match args {
                    [Expr {
                        kind: ExprKind::Map { name, keys },
                        ..
                    }] => (name.clone(), keys.clone()),
                    [Expr {
                        kind: ExprKind::Map { name, .. },
                        ..
                    }, rest @ ..] => (name.clone(), rest.to_vec()),
                    _ => return SVal::Opaque("<delete>".into()),
                };
                let keys = self.keys(st, &keys);
                let ty = self.map_ty(&map);
                let zero = self.zero_of(Some(&ty));
                self.write(st, &map, keys, Some(zero));
                SVal::Opaque("<delete>".into())
            }
            "clear" | "zero" => {
                if let Some(Expr {
                    kind: ExprKind::Map { name, .. },
                    ..
                }) = args.first()
                {
                    self.events.push(Event::Clear {
                        guard: self.guard(st),
                        map: name.clone(),
                    });
                }
                SVal::Opaque(format!("<{name}>"))
            }
            _ if AGGREGATIONS.contains(&name) || NO_OP_CALLS.contains(&name) => {
                for a in args {
                    self.expr(st, a);
                }
                SVal::Opaque(format!("<{name}>"))
            }
            _ if STRING_CALLS.contains(&name) || INT_CALLS.contains(&name) => {
                let terms = self.keys(st, args);
                let ty = if STRING_CALLS.contains(&name) {
                    ValTy::Str
                } else {
                    ValTy::Int(IntTy::U64)
                };
                let fresh = !self
                    .ufs
                    .get(name)
                    .is_some_and(|apps| apps.iter().any(|(a, _)| *a == terms));
                let v = self.apply_uf(name, &text, terms, &ty);
                if let (true, "ntop", SVal::Str(s)) = (fresh, name, &v) {
                    // The shortest address ntop() prints is "::".
                    self.axiom(s.length().ge(&Int::from_u64(self.ctx, 2)));
                }
                v
            }
            "kstack" | "ustack" | "buf" | "pton" => SVal::Opaque(format!("<{name}>")),
            _ if self.env.user_callables.iter().any(|c| c == name) => {
                for a in args {
                    self.expr(st, a);
                }
                self.unmodelled("a call to a function the program defines", span)
            }
            _ => {
                let terms = self.keys(st, args);
                self.note(
                    span,
                    format!("`{name}()` is not modelled: its result is an unknown value"),
                );
                self.apply_uf(name, &text, terms, &ValTy::Int(IntTy::U64))
            }
        }
    }
}

/// Rounds of value sampling before a query goes to the solver.
const SAMPLE_ROUNDS: usize = 24;

/// Names of auxiliary constants (quotients, remainders): never inputs,
/// never sampled.
const AUX_PREFIX: &str = "divmod!";

/// What the sampler learns from a formula: its numerals and string
/// literals, the constants it pins (`x == 5` as a conjunct), whether it
/// multiplies or divides.
#[derive(Default)]
struct Pool<'c> {
    ints: Vec<u64>,
    strs: Vec<String>,
    pinned: Vec<(Dynamic<'c>, Dynamic<'c>)>,
    nonlinear: bool,
}

/// `x == numeral` conjuncts at the top of `f` (through nested `and`s and
/// double negations, and through zero or sign extensions of `x`).
fn pinned<'c>(f: &Dynamic<'c>, out: &mut Vec<(Dynamic<'c>, Dynamic<'c>)>) {
    let Ok(decl) = f.safe_decl() else { return };
    match decl.kind() {
        DeclKind::AND => {
            for c in f.children() {
                pinned(&c, out);
            }
        }
        DeclKind::NOT => {
            let inner = f.children().remove(0);
            if inner.safe_decl().is_ok_and(|d| d.kind() == DeclKind::NOT) {
                pinned(&inner.children().remove(0), out);
            }
        }
        DeclKind::EQ => {
            let ch = f.children();
            for (side, other) in [(&ch[0], &ch[1]), (&ch[1], &ch[0])] {
                let value = other
                    .safe_decl()
                    .ok()
                    .filter(|d| d.kind() == DeclKind::BNUM)
                    .and_then(|_| other.as_bv())
                    .and_then(|b| b.as_u64());
                if let Some(pin) = value.and_then(|v| peel(side, v)) {
                    out.push(pin);
                    break;
                }
            }
        }
        _ => {}
    }
}

/// The constant under extensions of `t`, with the value it must have for
/// `t` to equal `v`, if it can.
fn peel<'c>(t: &Dynamic<'c>, v: u64) -> Option<(Dynamic<'c>, Dynamic<'c>)> {
    let decl = t.safe_decl().ok()?;
    let bits = |x: &Dynamic<'c>| x.as_bv().map(|b| b.get_size());
    match decl.kind() {
        DeclKind::UNINTERPRETED if t.num_children() == 0 => {
            let w = bits(t)?;
            let numeral = BV::from_u64(t.get_ctx(), v, w);
            Some((t.clone(), Dynamic::from_ast(&numeral)))
        }
        DeclKind::ZERO_EXT | DeclKind::SIGN_EXT => {
            let inner = t.children().remove(0);
            let w = bits(&inner)?;
            let narrow = IntTy::new(w, decl.kind() == DeclKind::SIGN_EXT);
            // Only values the extension can produce.
            (w < 64 && narrow.ext64(v) & IntTy::new(bits(t)?, false).mask() == v)
                .then(|| peel(&inner, v & narrow.mask()))
                .flatten()
        }
        _ => None,
    }
}

/// The uninterpreted constants (BV, Bool, String) of `f`, and what the
/// sampler can use.
fn constants_of<'c>(f: &Bool<'c>) -> (Vec<Dynamic<'c>>, Pool<'c>) {
    let mut stack = vec![Dynamic::from_ast(f)];
    let mut seen: HashSet<Dynamic<'c>> = HashSet::new();
    let mut consts = Vec::new();
    let mut pool = Pool::default();
    pinned(&stack[0], &mut pool.pinned);
    while let Some(t) = stack.pop() {
        if !t.is_app() || !seen.insert(t.clone()) {
            continue;
        }
        let Ok(decl) = t.safe_decl() else { continue };
        if matches!(
            decl.kind(),
            DeclKind::BMUL
                | DeclKind::BUDIV
                | DeclKind::BUREM
                | DeclKind::BUDIV_I
                | DeclKind::BUREM_I
        ) {
            pool.nonlinear = true;
        }
        if t.num_children() == 0 {
            match decl.kind() {
                DeclKind::UNINTERPRETED => match t.sort_kind() {
                    SortKind::Bool | SortKind::BV | SortKind::Seq => consts.push(t),
                    _ => {}
                },
                DeclKind::BNUM => {
                    if let Some(v) = t.as_bv().and_then(|b| b.as_u64()) {
                        if pool.ints.len() < 64 && !pool.ints.contains(&v) {
                            pool.ints.push(v);
                        }
                    }
                }
                _ => {
                    if let Some(s) = t.as_string().and_then(|s| s.as_string()) {
                        if pool.strs.len() < 16 && !pool.strs.contains(&s) {
                            pool.strs.push(s);
                        }
                    }
                }
            }
            continue;
        }
        stack.extend(t.children());
    }
    // A stable order, whatever the walk's.
    consts.sort_by_key(|c| c.to_string());
    (consts, pool)
}

/// A small deterministic generator (SplitMix64): sampling is reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Whether evaluating `e` changes state (`++`, calls with effects).
fn has_effects(e: &Expr) -> bool {
    struct Finder(bool);
    impl kgent_frontend::Visitor for Finder {
        fn visit_expr(&mut self, expr: &Expr) {
            match &expr.kind {
                ExprKind::Unary {
                    op: UnaryOp::PreInc | UnaryOp::PreDec | UnaryOp::PostInc | UnaryOp::PostDec,
                    ..
                } => self.0 = true,
                ExprKind::Call { name, .. } if !PURE_CALLS.contains(&name.name.as_str()) => {
                    self.0 = true
                }
                _ => {}
            }
            kgent_frontend::visit::walk_expr(self, expr);
        }
    }
    let mut f = Finder(false);
    kgent_frontend::Visitor::visit_expr(&mut f, e);
    f.0
}

/// Variables a block assigns (plainly, compoundly, `let`, `++`).
fn assigned_vars(block: &Block, out: &mut Vec<String>) {
    struct Finder<'o>(&'o mut Vec<String>);
    impl kgent_frontend::Visitor for Finder<'_> {
        fn visit_stmt(&mut self, stmt: &Stmt) {
            match &stmt.kind {
                StmtKind::Assign { target, .. } => {
                    if let ExprKind::Var(n) = &target.kind {
                        self.0.push(n.clone());
                    }
                }
                StmtKind::Let { var, .. } => self.0.push(var.name.clone()),
                _ => {}
            }
            kgent_frontend::visit::walk_stmt(self, stmt);
        }
        fn visit_expr(&mut self, expr: &Expr) {
            if let ExprKind::Unary { op, operand } = &expr.kind {
                if matches!(
                    op,
                    UnaryOp::PreInc | UnaryOp::PreDec | UnaryOp::PostInc | UnaryOp::PostDec
                ) {
                    if let ExprKind::Var(n) = &operand.kind {
                        self.0.push(n.clone());
                    }
                }
            }
            kgent_frontend::visit::walk_expr(self, expr);
        }
    }
    kgent_frontend::Visitor::visit_block(&mut Finder(out), block);
    out.sort();
    out.dedup();
}

/// Z3 prints string values with escapes (`\u{0}`, `\x00`): back to text.
fn unescape_z3(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('u') => {
                chars.next();
                let mut hex = String::new();
                if chars.peek() == Some(&'{') {
                    chars.next();
                    for h in chars.by_ref() {
                        if h == '}' {
                            break;
                        }
                        hex.push(h);
                    }
                } else {
                    for _ in 0..4 {
                        if let Some(h) = chars.next() {
                            hex.push(h);
                        }
                    }
                }
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&format!("\\u{hex}")),
                }
            }
            Some('x') => {
                chars.next();
                let hex: String = chars.by_ref().take(2).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&format!("\\x{hex}")),
                }
            }
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            _ => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z3_string_escapes() {
        assert_eq!(unescape_z3("ab\\u{0}c"), "ab\u{0}c");
        assert_eq!(unescape_z3("\\x41"), "A");
        assert_eq!(unescape_z3("a\\\\b"), "a\\b");
    }
}
