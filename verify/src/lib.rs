//! Symbolic verification of bpftrace programs: a symbolic executor over the
//! `kgent-frontend` syntax tree, on Z3 bit-vectors, that gives every
//! `assert(cond)` annotation a verdict — proved, refuted with a
//! counterexample (the inputs, and the lines the probe prints for them), or
//! unknown with the reason.
//!
//! ```
//! use kgent_frontend::{parse, StaticFacts};
//! use kgent_verify::{verify, VerdictData, VerifyOptions};
//!
//! let source = "kretprobe:vfs_read { if (retval < 0) { printf(\"error %d\\n\", retval); assert(0, \"unreachable\") } }";
//! let parsed = parse(source);
//! let report = verify(source, &parsed.program, &StaticFacts::default(), &VerifyOptions::default());
//! // retval is uint64 in bpftrace: `retval < 0` never holds.
//! assert!(matches!(report.assertions[0].verdict, VerdictData::Proved));
//! assert!(report.assertions[0].vacuous);
//! ```
//!
//! **Semantics** (bpftrace 0.17's code generator, with 0.22's integer rules
//! when [`VerifyOptions::version`] says so; see `ty`):
//! - Integers are bit-vectors of their type's width (8 to 64) and carry its
//!   signedness. Binary operators extend each operand by its own signedness
//!   to 64 bits (0.22+: to the wider operand) and wrap around; the result is
//!   signed only when both operands are (shifts: the left one).
//! - `<`, `<=`, `>`, `>=` compare signed only when both sides are signed:
//!   `retval < 0` (retval is `uint64`) is never true.
//! - `/` and `%` are always unsigned (BPF has no signed division); `x / 0`
//!   is 0 and `x % 0` is `x`, as the BPF instructions do. `>>` is always
//!   logical; shift amounts are taken modulo the width.
//! - Casts truncate, or extend by the *target* type's signedness (LLVM
//!   `CreateIntCast` as bpftrace emits it): `(int64)(uint8)200 == -56`.
//! - `&&`, `||` and `?:` short-circuit; comparisons and logic give 0 or 1.
//! - Scratch variables take the type of their first assignment in source
//!   order and read as 0 (or `""`) before any assignment, as bpftrace
//!   zero-initialises them.
//! - Inputs, one value per probe firing and access path: builtins (`pid`,
//!   `tid`, `uid`, `gid`, `cpu`, `numaid`, `cpid`, `rand`: 32-bit values;
//!   `nsecs`, `elapsed`, `jiffies`, `cgroup`, `argN`, `sargN`, `retval` of
//!   return probes: `uint64`; `comm`: a string of at most 15 bytes; `probe`:
//!   the attach point's name), tracepoint fields `args->f`/`args.f` typed
//!   from [`KernelFacts`] (a field the facts do not know is a `uint64` and a
//!   note), struct members read through pointers (`$sk->__sk_common.skc_dport`,
//!   typed from the facts' records; members of records the facts do not
//!   know are `uint64` inputs and a note), positional parameters (`int64`).
//!   Reads of `nsecs` or `rand` within one firing are taken as simultaneous
//!   (one value).
//! - `bswap` is exact; `ntohs`-style expressions are plain arithmetic.
//!   `str()`, `ntop()`, `ksym()` and other calls are uninterpreted functions
//!   (equal arguments, equal results); unknown calls too, with a note.
//! - Maps: writes are recorded; a read returns the latest write with equal
//!   keys on the path, else the map's content before the firing (an
//!   uninterpreted function, since other firings may have written anything).
//!   `delete` makes a key read 0, `clear`/`zero` the whole map; aggregation
//!   values (`count()`, `sum()`) are unknown.
//! - `if`/`else` and ternaries merge paths; the probe predicate is the
//!   initial path condition; `return` and `exit()` end the path.
//!   `unroll(N)` runs N times; `while` and `for ($i : a..b)` run at most
//!   [`VerifyOptions::max_loop_iterations`] times, and an assertion that
//!   holds on every explored path but could be reached by a longer run is
//!   `Unknown` (loop bound). `for` over a map is approximated (variables it
//!   assigns become unknown): refutations that depend on that are `Unknown`.
//! - `assume(c)` adds `c` to the path condition from that point on; an
//!   assertion is checked on every path that reaches it (refuted when the
//!   path condition and `!c` are satisfiable).
//! - What is printed: `printf` and `print` lines are recorded per path with
//!   their arguments. An assertion placed after a `printf` sees the state the
//!   `printf` printed (the same expressions have the same values), and a
//!   refutation lists the lines the probe prints on that path before the
//!   assertion, rendered with the format string as bpftrace 0.17 prints them
//!   (`%d`/`%u`/`%x` show the low 32 bits, `%ld`/`%lu`/`%llu`/`%lx` 64).
//!
//! An assertion speaks only for the paths that reach it: one inside a probe
//! whose predicate drops an event never sees that event. To check that a
//! filter keeps what a request asks for, place the assertion where the
//! dropped events also arrive (filter with an `if` in the body, assert after
//! it), as `test_data/refuted/ipv4_only.bt` does.
//!
//! **Solving.** Every query gets a fresh solver running Z3's QF_BV strategy
//! (simplification, equation solving, bit-blasting, SAT; `smt` when strings
//! are involved) with the time limit; constants a query pins (`x == 5`,
//! typically from `assume`) are substituted first. Division by a constant
//! is a quotient `q` with `q·c ≤ x < q·c + c`, and formulas that multiply or
//! divide are first tried on sampled inputs (zeros, extremes, their own
//! constants, seeded random values), because Z3 4.8 takes seconds to find
//! some models of 64-bit division that a sample finds at once.
//!
//! **Threads.** Z3 objects are not `Send`: [`verify`] creates its Z3 context,
//! solves and drops it within the call. Callers on an async runtime run it on
//! a blocking thread (`tokio::task::spawn_blocking`). Each solver query has a
//! time limit ([`VerifyOptions::timeout_ms`]).
//!
//! Code map: `ty` (integer types and rules), `env` (program-wide facts:
//! defines, firings, declared types), `exec` (the symbolic executor and
//! solving), `eval` (the concrete evaluator used by the differential test),
//! `format` (printf rendering). The results are the verifier protocol's
//! types (`kgent_agent::verifier`, re-exported here): `kgent-verifier`
//! answers with what [`verify`] returns, unconverted.

mod env;
pub mod eval;
mod exec;
pub mod format;
pub mod ty;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use kgent_frontend::ast::{Block, ElseBranch, IfStmt, ItemKind, Program, StmtKind};
use kgent_frontend::{KernelFacts, LineIndex, Span};

pub use eval::{eval_probe, EvalError, EvalOptions, Inputs, Run, RunEnd};
pub use kgent_agent::verifier::{
    AssertionData, CounterexampleData, InputData, InputValueData, Report, UnknownReasonData,
    VerdictData,
};

use env::{firings, snippet, Env};
use exec::{AssertAcc, Exec, Notes};
use ty::Semantics;

/// How [`verify`] works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Time limit of one solver query.
    pub timeout_ms: u32,
    /// Iterations a `while` (or range `for`) loop is unrolled to.
    pub max_loop_iterations: u32,
    /// The bpftrace whose integer rules apply (see [`ty::Semantics`]).
    pub version: (u32, u32),
    /// Attach points with different `args` are executed separately, up to
    /// this many per probe (wildcard tracepoints expand).
    pub max_firings_per_probe: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            timeout_ms: 200,
            max_loop_iterations: 32,
            version: (0, 17),
            max_firings_per_probe: 8,
        }
    }
}

/// Verifies every `assert` of `program` (parsed from `source`) against the
/// kernel described by `facts`. Never fails: what cannot be decided is an
/// `Unknown` verdict, what is not modelled a note. Runs Z3 on the calling
/// thread (see the crate documentation).
pub fn verify(
    source: &str,
    program: &Program,
    facts: &dyn KernelFacts,
    options: &VerifyOptions,
) -> Report {
    let started = Instant::now();
    let lines = LineIndex::new(source);
    let env = Env::new(source, program, facts, Semantics::new(options.version));

    // Every assertion, in source order: in probes (checked) and elsewhere.
    let mut spans = Vec::new();
    let mut in_functions = Vec::new();
    for item in &program.items {
        match &item.kind {
            ItemKind::Probe(p) => collect_asserts(source, &p.body, &mut spans),
            ItemKind::Function(f) => collect_asserts(source, &f.body, &mut in_functions),
            ItemKind::Macro(m) => collect_asserts(source, &m.body, &mut in_functions),
            _ => {}
        }
    }
    let assert_index: HashMap<u32, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, (s, _, _))| (s.start, i))
        .collect();
    let mut acc = vec![AssertAcc::default(); spans.len()];
    let mut notes = Notes::default();
    let mut queries = 0;

    // Z3's rewriter flattens nested products and sums into one n-ary term;
    // over the shared terms of an unrolled loop (`$x *= $x`) that is
    // exponential. Process-wide, once; nothing else here uses Z3.
    static NO_FLATTENING: std::sync::Once = std::sync::Once::new();
    NO_FLATTENING.call_once(|| z3::set_global_param("rewriter.flat", "false"));
    let mut cfg = z3::Config::new();
    cfg.set_model_generation(true);
    let ctx = z3::Context::new(&cfg);
    for probe in program.probes() {
        for firing in firings(probe, facts, options.max_firings_per_probe.max(1)) {
            let decls = env.var_decls(probe, &firing);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut ex = Exec::new(
                    &ctx,
                    &env,
                    options,
                    &lines,
                    &firing,
                    &decls,
                    &assert_index,
                    &mut acc,
                    &mut notes,
                );
                ex.run_probe(probe);
                ex.queries
            }));
            match outcome {
                Ok(q) => queries += q,
                Err(_) => {
                    // A Z3 failure is a bug here, not the user's: say so per assertion.
                    let line = lines.line_col(probe.body.span.start).line;
                    notes.add(format!(
                        "line {line}: internal error while verifying this probe"
                    ));
                    for (i, (span, _, _)) in spans.iter().enumerate() {
                        if probe.body.span.start <= span.start && span.end <= probe.body.span.end {
                            acc[i] = AssertAcc::default();
                            acc[i].verdict = Some(VerdictData::Unknown {
                                reason: UnknownReasonData::Solver {
                                    message: "internal error".into(),
                                },
                            });
                            acc[i].vacuous = false;
                        }
                    }
                }
            }
        }
    }

    let mut assertions: Vec<AssertionData> = spans
        .iter()
        .zip(acc)
        .map(|((span, text, message), a)| {
            let lc = lines.line_col(span.start);
            AssertionData {
                span: [span.start, span.end],
                line: lc.line,
                column: lc.column,
                text: text.clone(),
                message: message.clone(),
                // Never visited: no path reaches it (dead code after `return`).
                vacuous: a.vacuous,
                verdict: a.verdict.unwrap_or(VerdictData::Proved),
                elapsed_ms: millis(a.elapsed),
            }
        })
        .collect();
    for (span, text, message) in in_functions {
        let lc = lines.line_col(span.start);
        assertions.push(AssertionData {
            span: [span.start, span.end],
            line: lc.line,
            column: lc.column,
            text,
            message,
            verdict: VerdictData::Unknown {
                reason: UnknownReasonData::Unsupported {
                    construct: "an assertion inside a function or macro".into(),
                    line: lc.line,
                },
            },
            vacuous: false,
            elapsed_ms: 0.0,
        });
    }
    assertions.sort_by_key(|a| a.span[0]);
    Report {
        assertions,
        notes: notes.list,
        queries,
        elapsed_ms: millis(started.elapsed()),
    }
}

/// A duration as the report's `elapsed_ms` fields hold it.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

type AssertSite = (Span, String, Option<String>);

/// The `assert` statements of `block` with their text and message, in source order.
fn collect_asserts(source: &str, block: &Block, out: &mut Vec<AssertSite>) {
    for stmt in &block.stmts {
        match &stmt.kind {
            StmtKind::Assert { message, .. } => out.push((
                stmt.span,
                snippet(source, stmt.span),
                message.as_ref().map(|m| m.text().into_owned()),
            )),
            StmtKind::If(i) => collect_if(source, i, out),
            StmtKind::Unroll { body, .. }
            | StmtKind::While { body, .. }
            | StmtKind::For { body, .. }
            | StmtKind::Block(body) => collect_asserts(source, body, out),
            _ => {}
        }
    }
}

fn collect_if(source: &str, i: &IfStmt, out: &mut Vec<AssertSite>) {
    collect_asserts(source, &i.then_block, out);
    match &i.else_branch {
        Some(ElseBranch::Block(b)) => collect_asserts(source, b, out),
        Some(ElseBranch::If(e)) => collect_if(source, e, out),
        None => {}
    }
}
