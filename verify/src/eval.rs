//! A concrete evaluator with the symbolic executor's semantics: runs one
//! probe firing on given input values and reports what it prints and which
//! assertions hold. It exists to test the symbolic encoding differentially
//! (the same program, the same inputs: Z3's model must print the same line)
//! and to replay counterexamples.
//!
//! It covers integers, casts, all operators, ternaries, `if`/`else`,
//! `unroll`, bounded `while`, scratch variables, builtins, `args` fields and
//! memory reads through pointers (looked up by the same names the symbolic
//! executor reports), `bswap`, string equality, `printf`/`print`,
//! `assume`/`assert`. Maps and most calls are [`EvalError::Unsupported`].

use std::collections::{BTreeMap, HashMap};

use kgent_agent::verifier::InputValueData;
use kgent_frontend::ast::*;
use kgent_frontend::facts::KernelFacts;

use crate::env::{cast_target, firings, snippet, Decls, Env, Firing};
use crate::format::{Format, Printable};
use crate::ty::{
    builtin_model, field_ty, retval_is_u64, BuiltinModel, IntTy, Pointee, Semantics, ValTy,
};

/// Values of inputs by the names reports use: `pid`, `arg0`, `args->family`,
/// `$1`, `$sk->__sk_common.skc_dport` (memory reads: the access as written).
pub type Inputs = BTreeMap<String, InputValueData>;

/// Options of the concrete evaluator.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub version: (u32, u32),
    /// `while` loops stop here (the run ends with [`RunEnd::LoopBound`]).
    pub max_loop_iterations: u32,
    /// Inputs without a value read as 0 (a counterexample lists only the
    /// inputs that matter) instead of failing with [`EvalError::MissingInput`].
    pub missing_inputs_are_zero: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            version: (0, 17),
            max_loop_iterations: 32,
            missing_inputs_are_zero: false,
        }
    }
}

/// One `assert` executed on the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertOutcome {
    pub span: Span,
    pub holds: bool,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    Completed,
    /// The predicate was false: the body did not run.
    Filtered,
    /// An `assume` was false: the run is outside what is verified.
    AssumptionFailed(Span),
    /// A `while` loop reached the iteration bound.
    LoopBound(Span),
}

/// What one firing did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub printed: Vec<String>,
    pub asserts: Vec<AssertOutcome>,
    pub end: RunEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("the program has no probe number {0}")]
    NoSuchProbe(usize),
    #[error("input `{0}` has no value")]
    MissingInput(String),
    #[error("`{construct}` is not supported by the concrete evaluator")]
    Unsupported { construct: String, span: Span },
}

/// Runs probe number `probe_index` (in source order) once on `inputs`, in the
/// probe's first firing (its first attach point).
pub fn eval_probe(
    source: &str,
    program: &Program,
    probe_index: usize,
    facts: &dyn KernelFacts,
    inputs: &Inputs,
    options: &EvalOptions,
) -> Result<Run, EvalError> {
    let probe = program
        .probes()
        .nth(probe_index)
        .ok_or(EvalError::NoSuchProbe(probe_index))?;
    let env = Env::new(source, program, facts, Semantics::new(options.version));
    let firing = firings(probe, facts, 1).remove(0);
    let decls = env.var_decls(probe, &firing);
    let mut ev = Eval {
        env: &env,
        firing: &firing,
        decls: &decls,
        inputs,
        options,
        vars: HashMap::new(),
        printed: Vec::new(),
        asserts: Vec::new(),
    };
    let end = match ev.run(probe) {
        Ok(()) => RunEnd::Completed,
        Err(Halt::End(end)) => end,
        Err(Halt::Error(e)) => return Err(e),
    };
    Ok(Run {
        printed: ev.printed,
        asserts: ev.asserts,
        end,
    })
}

#[derive(Clone, Debug)]
enum CV {
    /// `v` holds the low `ty.bits` bits.
    Int {
        v: u64,
        ty: IntTy,
        ptr: Option<Pointee>,
    },
    Str(Vec<u8>),
    Args,
    /// A struct by value: only its members can be read.
    Record(kgent_frontend::facts::RecordRef),
    Opaque(String),
}

impl CV {
    fn int(v: u64, ty: IntTy) -> CV {
        CV::Int {
            v: v & ty.mask(),
            ty,
            ptr: None,
        }
    }
}

enum Halt {
    End(RunEnd),
    Error(EvalError),
}

impl From<EvalError> for Halt {
    fn from(e: EvalError) -> Halt {
        Halt::Error(e)
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
    Return,
}

struct Eval<'e, 'a> {
    env: &'e Env<'a>,
    firing: &'e Firing,
    decls: &'e Decls,
    inputs: &'e Inputs,
    options: &'e EvalOptions,
    vars: HashMap<String, CV>,
    printed: Vec<String>,
    asserts: Vec<AssertOutcome>,
}

fn unsupported(what: &str, span: Span) -> Halt {
    Halt::Error(EvalError::Unsupported {
        construct: what.to_string(),
        span,
    })
}

/// `v` (of type `from`) converted to `to` as bpftrace's casts do: truncate,
/// or extend by the *target's* signedness (LLVM `CreateIntCast(v, to, to.signed)`).
pub(crate) fn cast_bits(v: u64, from: IntTy, to: IntTy) -> u64 {
    if to.bits <= from.bits {
        v & to.mask()
    } else {
        IntTy::new(from.bits, to.signed).ext64(v) & to.mask()
    }
}

/// `v` of type `ty` extended to `width` bits by its own signedness.
fn widen(v: u64, ty: IntTy, width: u32) -> u64 {
    ty.ext64(v) & IntTy::new(width, false).mask()
}

/// A binary integer operator, concretely.
pub(crate) fn binop_bits(
    sem: Semantics,
    op: BinaryOp,
    l: (u64, IntTy),
    r: (u64, IntTy),
) -> (u64, IntTy) {
    let bt = sem.binop(op, l.1, r.1);
    let w = bt.width;
    let m = IntTy::new(w, false).mask();
    let a = widen(l.0, l.1, w);
    let b = widen(r.0, r.1, w);
    let shift = b & u64::from(w - 1);
    let lt = |x: u64, y: u64| {
        if bt.signed_compare {
            IntTy::new(w, true).numeric(x) < IntTy::new(w, true).numeric(y)
        } else {
            x < y
        }
    };
    let v = match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        // BPF: division by zero gives 0, modulo by zero leaves the dividend.
        BinaryOp::Div => a.checked_div(b).unwrap_or(0),
        BinaryOp::Mod => a.checked_rem(b).unwrap_or(a),
        BinaryOp::BitAnd => a & b,
        BinaryOp::BitOr => a | b,
        BinaryOp::BitXor => a ^ b,
        BinaryOp::Shl => a << shift,
        BinaryOp::Shr => a >> shift,
        BinaryOp::Eq => u64::from(a == b),
        BinaryOp::Ne => u64::from(a != b),
        BinaryOp::Lt => u64::from(lt(a, b)),
        BinaryOp::Gt => u64::from(lt(b, a)),
        BinaryOp::Le => u64::from(!lt(b, a)),
        BinaryOp::Ge => u64::from(!lt(a, b)),
        BinaryOp::And => u64::from(a != 0 && b != 0),
        BinaryOp::Or => u64::from(a != 0 || b != 0),
    };
    (v & m, bt.result)
}

/// Byte swap of the low `bits` bits.
pub(crate) fn bswap_bits(v: u64, bits: u32) -> u64 {
    match bits {
        16 => u64::from((v as u16).swap_bytes()),
        32 => u64::from((v as u32).swap_bytes()),
        64 => v.swap_bytes(),
        _ => v,
    }
}

impl Eval<'_, '_> {
    fn run(&mut self, probe: &Probe) -> Result<(), Halt> {
        if let Some(pred) = &probe.predicate {
            let v = self.expr(pred)?;
            if !self.truthy(&v, pred.span)? {
                return Err(Halt::End(RunEnd::Filtered));
            }
        }
        self.block(&probe.body)?;
        Ok(())
    }

    fn block(&mut self, block: &Block) -> Result<Flow, Halt> {
        for stmt in &block.stmts {
            match self.stmt(stmt)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn truthy(&self, v: &CV, span: Span) -> Result<bool, Halt> {
        match v {
            CV::Int { v, .. } => Ok(*v != 0),
            _ => Err(unsupported("a non-integer condition", span)),
        }
    }

    fn input(&self, name: &str, ty: &ValTy) -> Result<InputValueData, Halt> {
        match self.inputs.get(name) {
            Some(v) => Ok(v.clone()),
            None if self.options.missing_inputs_are_zero => Ok(match ty {
                ValTy::Str => InputValueData::Str(String::new()),
                _ => InputValueData::Int(0),
            }),
            None => Err(Halt::Error(EvalError::MissingInput(name.to_string()))),
        }
    }

    fn typed_input(&self, name: &str, ty: &ValTy, value_bits: u32, span: Span) -> Result<CV, Halt> {
        Ok(match (ty, &self.input(name, ty)?) {
            (ValTy::Int(t), InputValueData::Int(v)) => {
                CV::int(v & IntTy::new(value_bits.min(t.bits), false).mask(), *t)
            }
            (ValTy::Ptr(p), InputValueData::Int(v)) => CV::Int {
                v: *v,
                ty: IntTy::U64,
                ptr: Some(p.clone()),
            },
            (ValTy::Str, InputValueData::Str(s)) => CV::Str(s.as_bytes().to_vec()),
            _ => return Err(unsupported(&format!("input `{name}` of this type"), span)),
        })
    }

    fn stmt(&mut self, stmt: &Stmt) -> Result<Flow, Halt> {
        match &stmt.kind {
            StmtKind::Expr(e) => {
                self.expr(e)?;
            }
            StmtKind::Assign { target, op, value } => {
                let ExprKind::Var(name) = &target.kind else {
                    return Err(unsupported("map writes", stmt.span));
                };
                let mut v = self.expr(value)?;
                if let Some(bop) = op.binary_op() {
                    let cur = self.var(name);
                    v = self.binary(bop, cur, v, stmt.span)?;
                }
                self.assign(name, v);
            }
            StmtKind::Let { var, init, .. } => {
                let v = match init {
                    Some(e) => self.expr(e)?,
                    None => self.zero(&var.name),
                };
                self.assign(&var.name, v);
            }
            StmtKind::If(if_stmt) => return self.if_stmt(if_stmt),
            StmtKind::Unroll { count, body } => {
                let n = match &count.kind {
                    ExprKind::Int(lit) => lit.value,
                    _ => return Err(unsupported("unroll with a non-literal count", count.span)),
                };
                for _ in 0..n.min(100) {
                    match self.block(body)? {
                        Flow::Break => break,
                        Flow::Return => return Ok(Flow::Return),
                        Flow::Normal | Flow::Continue => {}
                    }
                }
            }
            StmtKind::While { cond, body } => {
                let mut i = 0;
                loop {
                    let c = self.expr(cond)?;
                    if !self.truthy(&c, cond.span)? {
                        break;
                    }
                    if i >= self.options.max_loop_iterations {
                        return Err(Halt::End(RunEnd::LoopBound(stmt.span)));
                    }
                    i += 1;
                    match self.block(body)? {
                        Flow::Break => break,
                        Flow::Return => return Ok(Flow::Return),
                        Flow::Normal | Flow::Continue => {}
                    }
                }
            }
            StmtKind::For { .. } => return Err(unsupported("for loops", stmt.span)),
            StmtKind::Return(_) => return Ok(Flow::Return),
            StmtKind::Break => return Ok(Flow::Break),
            StmtKind::Continue => return Ok(Flow::Continue),
            StmtKind::Block(b) => return self.block(b),
            StmtKind::Assume(cond) => {
                let v = self.expr(cond)?;
                if !self.truthy(&v, cond.span)? {
                    return Err(Halt::End(RunEnd::AssumptionFailed(stmt.span)));
                }
            }
            StmtKind::Assert { cond, .. } => {
                let v = self.expr(cond)?;
                let holds = self.truthy(&v, cond.span)?;
                self.asserts.push(AssertOutcome {
                    span: stmt.span,
                    holds,
                });
            }
            StmtKind::Error => {
                return Err(unsupported("a statement that did not parse", stmt.span))
            }
        }
        Ok(Flow::Normal)
    }

    fn if_stmt(&mut self, if_stmt: &IfStmt) -> Result<Flow, Halt> {
        let c = self.expr(&if_stmt.cond)?;
        if self.truthy(&c, if_stmt.cond.span)? {
            self.block(&if_stmt.then_block)
        } else {
            match &if_stmt.else_branch {
                Some(ElseBranch::Block(b)) => self.block(b),
                Some(ElseBranch::If(i)) => self.if_stmt(i),
                None => Ok(Flow::Normal),
            }
        }
    }

    /// The zero a never-assigned variable reads as (bpftrace zero-initialises).
    fn zero(&self, name: &str) -> CV {
        match self.decls.vars.get(name) {
            Some(ValTy::Str) => CV::Str(Vec::new()),
            Some(t) => CV::int(0, t.as_int().unwrap_or(IntTy::U64)),
            None => CV::int(0, IntTy::U64),
        }
    }

    fn var(&self, name: &str) -> CV {
        self.vars
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.zero(name))
    }

    /// Stores `v`, converted to the variable's declared type.
    fn assign(&mut self, name: &str, v: CV) {
        let v = match (self.decls.vars.get(name), v) {
            (Some(ValTy::Int(to)), CV::Int { v, ty, .. }) => CV::int(cast_bits(v, ty, *to), *to),
            (_, v) => v,
        };
        self.vars.insert(name.to_string(), v);
    }

    fn int_of(&self, v: &CV, span: Span) -> Result<(u64, IntTy), Halt> {
        match v {
            CV::Int { v, ty, .. } => Ok((*v, *ty)),
            _ => Err(unsupported("a non-integer operand", span)),
        }
    }

    fn binary(&self, op: BinaryOp, l: CV, r: CV, span: Span) -> Result<CV, Halt> {
        if let (CV::Str(a), CV::Str(b)) = (&l, &r) {
            return match op {
                BinaryOp::Eq => Ok(CV::int(u64::from(a == b), IntTy::U64)),
                BinaryOp::Ne => Ok(CV::int(u64::from(a != b), IntTy::U64)),
                _ => Err(unsupported("this string operator", span)),
            };
        }
        let l = self.int_of(&l, span)?;
        let r = self.int_of(&r, span)?;
        let (v, ty) = binop_bits(self.env.sem, op, l, r);
        Ok(CV::int(v, ty))
    }

    /// Evaluates `e` with the variables as they are and throws away its
    /// effects: the branch a ternary or `&&`/`||` does not take is still
    /// evaluated for its type, as the symbolic executor evaluates both.
    fn sandboxed(&mut self, e: &Expr) -> Result<CV, Halt> {
        let saved = self.vars.clone();
        let printed = self.printed.len();
        let asserts = self.asserts.len();
        let v = self.expr(e);
        self.vars = saved;
        self.printed.truncate(printed);
        self.asserts.truncate(asserts);
        v
    }

    fn expr(&mut self, e: &Expr) -> Result<CV, Halt> {
        let sem = self.env.sem;
        Ok(match &e.kind {
            ExprKind::Int(lit) => CV::int(lit.value, sem.literal(lit.value)),
            ExprKind::Bool(b) => CV::int(u64::from(*b), IntTy::U8),
            ExprKind::Str(s) => CV::Str(s.value.clone()),
            ExprKind::Var(name) => self.var(name),
            ExprKind::Positional(n) => {
                self.typed_input(&format!("${n}"), &ValTy::Int(IntTy::I64), 64, e.span)?
            }
            ExprKind::PositionalCount => {
                self.typed_input("$#", &ValTy::Int(IntTy::U64), 64, e.span)?
            }
            ExprKind::Builtin(name) => self.builtin(name, e.span)?,
            ExprKind::Ident(name) => match self.env.constant(name) {
                Some(v) => CV::int(v, IntTy::I64),
                None => return Err(unsupported(&format!("identifier {name}"), e.span)),
            },
            ExprKind::Field { base, field, .. } => {
                let b = self.expr(base)?;
                let ty = match &b {
                    CV::Args => {
                        let name = format!("args->{}", field.name);
                        let ty = self
                            .firing
                            .field(&field.name)
                            .map(|f| field_ty(&f, self.env.facts))
                            .unwrap_or(ValTy::Int(IntTy::U64));
                        return self.typed_input(&name, &ty, 64, e.span);
                    }
                    CV::Int {
                        ptr: Some(Pointee::Record(r)),
                        ..
                    }
                    | CV::Record(r) => self.env.member(r, &field.name),
                    _ => None,
                };
                let Some(f) = ty else {
                    return Err(unsupported("this field access", e.span));
                };
                match field_ty(&f, self.env.facts) {
                    ValTy::Record(r) => CV::Record(r),
                    ty => self.typed_input(&snippet(self.env.source, e.span), &ty, 64, e.span)?,
                }
            }
            ExprKind::Unary { op, operand } => self.unary(*op, operand, e.span)?,
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.expr(lhs)?;
                match op {
                    BinaryOp::And | BinaryOp::Or => {
                        let lt = self.truthy(&l, lhs.span)?;
                        let short = if *op == BinaryOp::And { !lt } else { lt };
                        let r = if short {
                            self.sandboxed(rhs)?
                        } else {
                            self.expr(rhs)?
                        };
                        let rt = if short {
                            false
                        } else {
                            self.truthy(&r, rhs.span)?
                        };
                        let (_, ty) = binop_bits(
                            sem,
                            *op,
                            self.int_of(&l, lhs.span)?,
                            self.int_of(&r, rhs.span)?,
                        );
                        let v = if *op == BinaryOp::And {
                            lt && rt
                        } else {
                            lt || rt
                        };
                        CV::int(u64::from(v), ty)
                    }
                    _ => {
                        let r = self.expr(rhs)?;
                        self.binary(*op, l, r, e.span)?
                    }
                }
            }
            ExprKind::Ternary {
                cond,
                then_expr,
                else_expr,
            } => {
                let c = self.expr(cond)?;
                let take_then = self.truthy(&c, cond.span)?;
                let (l, r) = if take_then {
                    let l = self.expr(then_expr)?;
                    (l, self.sandboxed(else_expr)?)
                } else {
                    let l = self.sandboxed(then_expr)?;
                    (l, self.expr(else_expr)?)
                };
                match (&l, &r) {
                    (CV::Int { ty: lt, .. }, CV::Int { ty: rt, .. }) => {
                        let to = sem.ternary(*lt, *rt);
                        let (v, from) = if take_then {
                            self.int_of(&l, e.span)?
                        } else {
                            self.int_of(&r, e.span)?
                        };
                        CV::int(cast_bits(v, from, to), to)
                    }
                    (CV::Str(_), CV::Str(_)) => {
                        if take_then {
                            l
                        } else {
                            r
                        }
                    }
                    _ => return Err(unsupported("a ternary of mixed types", e.span)),
                }
            }
            ExprKind::Cast { ty, expr } => {
                let v = self.expr(expr)?;
                match (cast_target(ty), v) {
                    (Some(ValTy::Int(to)), CV::Int { v, ty: from, .. }) => {
                        CV::int(cast_bits(v, from, to), to)
                    }
                    (Some(ValTy::Ptr(p)), CV::Int { v, ty: from, .. }) => CV::Int {
                        v: cast_bits(v, from, IntTy::U64),
                        ty: IntTy::U64,
                        ptr: Some(p),
                    },
                    _ => return Err(unsupported("this cast", e.span)),
                }
            }
            ExprKind::Call { name, args } => return self.call(&name.name, args, e.span),
            ExprKind::Map { .. } => return Err(unsupported("map reads", e.span)),
            _ => return Err(unsupported(&snippet(self.env.source, e.span), e.span)),
        })
    }

    fn builtin(&mut self, name: &str, span: Span) -> Result<CV, Halt> {
        if name == "retval" && !retval_is_u64(self.firing.kind) {
            return self.typed_input(name, &ValTy::Int(IntTy::U64), 64, span);
        }
        match builtin_model(name, self.env.sem) {
            Some(BuiltinModel::Int { ty, value_bits }) => {
                self.typed_input(name, &ValTy::Int(ty), value_bits, span)
            }
            Some(BuiltinModel::Str) => self.typed_input(name, &ValTy::Str, 64, span),
            Some(BuiltinModel::ProbeName) => Ok(CV::Str(self.firing.label.as_bytes().to_vec())),
            Some(BuiltinModel::Ptr(p)) => self.typed_input(name, &ValTy::Ptr(p), 64, span),
            Some(BuiltinModel::Args) => Ok(CV::Args),
            Some(BuiltinModel::Opaque(what)) => Ok(CV::Opaque(format!("<{what}>"))),
            None => Err(unsupported(name, span)),
        }
    }

    fn unary(&mut self, op: UnaryOp, operand: &Expr, span: Span) -> Result<CV, Halt> {
        if matches!(
            op,
            UnaryOp::PreInc | UnaryOp::PreDec | UnaryOp::PostInc | UnaryOp::PostDec
        ) {
            let ExprKind::Var(name) = &operand.kind else {
                return Err(unsupported("++/-- on a map", span));
            };
            let old = self.var(name);
            let (v, ty) = self.int_of(&old, span)?;
            let delta = if matches!(op, UnaryOp::PreInc | UnaryOp::PostInc) {
                1
            } else {
                u64::MAX
            };
            let new = CV::int(v.wrapping_add(delta), ty);
            self.assign(name, new.clone());
            return Ok(if matches!(op, UnaryOp::PostInc | UnaryOp::PostDec) {
                old
            } else {
                self.var(name)
            });
        }
        let v = self.expr(operand)?;
        if op == UnaryOp::Deref {
            return match v {
                CV::Int {
                    ptr: Some(Pointee::Int(t)),
                    ..
                } => self.typed_input(&snippet(self.env.source, span), &ValTy::Int(t), 64, span),
                _ => Err(unsupported("this dereference", span)),
            };
        }
        let (v, ty) = self.int_of(&v, span)?;
        Ok(match op {
            UnaryOp::Neg => CV::int(v.wrapping_neg(), ty),
            UnaryOp::BitNot => CV::int(!v, ty),
            UnaryOp::Not => CV::int(u64::from(v == 0), ty.unsigned()),
            UnaryOp::Plus => CV::int(v, ty),
            _ => return Err(unsupported("this operator", span)),
        })
    }

    fn printable(&self, v: &CV) -> Printable {
        match v {
            CV::Int { v, ty, .. } => Printable::Int(ty.ext64(*v)),
            CV::Str(s) => Printable::Str(s.clone()),
            CV::Args => Printable::Opaque("<args>".into()),
            CV::Record(r) => Printable::Opaque(format!("<{}>", r.spelled())),
            CV::Opaque(d) => Printable::Opaque(d.clone()),
        }
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Result<CV, Halt> {
        match name {
            "printf" => {
                let Some(ExprKind::Str(fmt)) = args.first().map(|a| &a.kind) else {
                    return Err(unsupported("printf without a literal format", span));
                };
                let mut values = Vec::new();
                for a in &args[1..] {
                    let v = self.expr(a)?;
                    values.push(self.printable(&v));
                }
                self.printed
                    .push(Format::parse(&fmt.text()).render(&values));
                Ok(CV::int(0, IntTy::U64))
            }
            "print" if args.len() == 1 && !matches!(args[0].kind, ExprKind::Map { .. }) => {
                let v = self.expr(&args[0])?;
                self.printed.push(print_line(&v_to_printable_typed(&v)));
                Ok(CV::int(0, IntTy::U64))
            }
            "bswap" if args.len() == 1 => {
                let (v, ty) = {
                    let v = self.expr(&args[0])?;
                    self.int_of(&v, span)?
                };
                Ok(CV::int(bswap_bits(v, ty.bits), ty))
            }
            "kptr" | "uptr" if args.len() == 1 => self.expr(&args[0]),
            "exit" => Err(Halt::End(RunEnd::Completed)),
            _ => Err(unsupported(&format!("{name}()"), span)),
        }
    }
}

/// A value as `print()` shows it.
pub(crate) enum Shown {
    Int(i128),
    Str(String),
}

fn v_to_printable_typed(v: &CV) -> Shown {
    match v {
        CV::Int { v, ty, .. } => Shown::Int(ty.numeric(*v)),
        CV::Str(s) => Shown::Str(String::from_utf8_lossy(s).into_owned()),
        CV::Args => Shown::Str("<args>".into()),
        CV::Record(r) => Shown::Str(format!("<{}>", r.spelled())),
        CV::Opaque(d) => Shown::Str(d.clone()),
    }
}

/// The line `print(value)` prints: integers in decimal by their signedness.
pub(crate) fn print_line(v: &Shown) -> String {
    match v {
        Shown::Int(n) => format!("{n}\n"),
        Shown::Str(s) => format!("{s}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_extend_by_the_target_type() {
        // bpftrace 0.17: (int64)(uint8)200 sign-extends from 8 bits.
        assert_eq!(cast_bits(200, IntTy::U8, IntTy::I64), (-56i64) as u64);
        assert_eq!(cast_bits(200, IntTy::I8, IntTy::U64), 200);
        assert_eq!(cast_bits(0x1234, IntTy::U64, IntTy::U8), 0x34);
    }

    #[test]
    fn division_and_shifts_are_bpf_s() {
        let sem = Semantics::new((0, 17));
        let i = |v: i64| (v as u64, IntTy::I64);
        assert_eq!(binop_bits(sem, BinaryOp::Div, i(7), i(0)).0, 0);
        assert_eq!(binop_bits(sem, BinaryOp::Mod, i(7), i(0)).0, 7);
        // Unsigned division even for signed operands.
        assert_eq!(
            binop_bits(sem, BinaryOp::Div, i(-2), i(2)).0,
            0x7fff_ffff_ffff_ffff
        );
        // Logical right shift even for signed operands, amount taken mod 64.
        assert_eq!(binop_bits(sem, BinaryOp::Shr, i(-1), i(60)).0, 0xf);
        assert_eq!(binop_bits(sem, BinaryOp::Shl, i(1), i(65)).0, 2);
        // Mixed signedness compares unsigned.
        assert_eq!(binop_bits(sem, BinaryOp::Lt, i(-1), (0, IntTy::U64)).0, 0);
        assert_eq!(binop_bits(sem, BinaryOp::Lt, i(-1), i(0)).0, 1);
    }
}
