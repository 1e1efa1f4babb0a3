//! The comprehension rules: each compares the program with the request (or
//! with its attach points' contracts) and, where they disagree, writes an
//! `assert(...)` a symbolic executor over the annotated program refutes.
//! Each assert is a plain bpftrace condition placed where the values it reads
//! hold what the rule means; a correct program proves it, or never gets it.
//!
//! The rules are few and precise: each fires only on a pattern it fully
//! understands and stays silent otherwise (a missed bug, never a false
//! alarm, is the failure mode we accept). One file per rule.

mod byte_order;
mod errno;
mod family;
mod units;

use kgent_frontend::ast::*;
use kgent_frontend::KernelFacts;

use super::annotate::{AnnotationKind, Origin, Place, Planned, ProbeView};

/// A rule, for documentation and `%help`-style listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    /// When it fires and what it asserts.
    pub summary: &'static str,
}

/// Every rule, in the order they run.
pub const RULES: &[Rule] = &[
    Rule {
        name: byte_order::NAME,
        summary: "a network-order value (`__be16` port, `__be32` address) printed with %d/%u \
                  or compared with a number, unconverted: asserts the printed value equals its \
                  host-order value, `x == bswap(x)` (or, for a comparison, that `bswap(x)` \
                  compares as written), which fails for any value that is not a byte palindrome",
    },
    Rule {
        name: family::NAME,
        summary: "the request names IPv4 and/or IPv6 and the probe's filters read an address \
                  family: asserts, at the start of the body, that the filters let an event of \
                  each named family through (the filters with the family replaced by 2 or 10)",
    },
    Rule {
        name: units::NAME,
        summary: "the request names one duration unit (ms, us, ns) and every duration the \
                  program produces from a nanosecond delta is converted to another unit: \
                  asserts `v == v / F` (or `v * F`) for each such value, F the factor the \
                  request's unit needs",
    },
    Rule {
        name: errno::NAME,
        summary: "a field whose contract says negative values are -errno (the `ret` of \
                  sys_exit_*, sock_*_length) is summed or averaged (or, when the request is \
                  about bytes or sizes, put in a histogram): asserts `field >= 0` right before, \
                  which holds only if the program filtered failed calls out",
    },
];

/// What the rules see.
pub(crate) struct Input<'a> {
    pub request: &'a str,
    pub source: &'a str,
    pub program: &'a Program,
    pub facts: &'a dyn KernelFacts,
    pub probes: &'a [ProbeView<'a>],
}

/// One rule's conclusion.
pub(crate) struct Finding {
    pub place: Place,
    pub expr: Expr,
    /// Short, for the assert's message.
    pub message: String,
    /// Long, for people.
    pub why: String,
}

/// Runs every rule; their asserts follow the contract assumptions.
pub(crate) fn run(input: &Input<'_>, out: &mut Vec<Planned>) {
    let mut push = |name: &str, findings: Vec<Finding>| {
        for f in findings {
            let text = super::expr::text(&f.expr);
            let duplicate = out.iter().any(|p| p.place == f.place && p.expr == text);
            if duplicate {
                continue;
            }
            out.push(Planned {
                place: f.place,
                kind: AnnotationKind::Assert,
                expr: text,
                origin: Origin::Rule {
                    name: name.to_string(),
                },
                why: f.why,
                message: f.message,
            });
        }
    };
    push(byte_order::NAME, byte_order::run(input));
    push(family::NAME, family::run(input));
    push(units::NAME, units::run(input));
    push(errno::NAME, errno::run(input));
}

/// A condition on the way to a statement.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Guard<'a> {
    /// Inside `if (cond)`.
    Holds(&'a Expr),
    /// In the `else` of `if (cond)`.
    Fails(&'a Expr),
    /// Inside a loop body (may run any number of times, or not at all).
    Loop,
}

/// A statement of a probe's body with the `if`/loop conditions around it
/// (the probe's predicate is not among them).
pub(crate) struct Site<'a> {
    pub stmt: &'a Stmt,
    pub guards: Vec<Guard<'a>>,
}

/// Every statement of `block`, nested ones included, in source order;
/// annotations are skipped.
pub(crate) fn sites(block: &Block) -> Vec<Site<'_>> {
    let mut out = Vec::new();
    collect(block, &mut Vec::new(), &mut out);
    out
}

fn collect<'a>(block: &'a Block, guards: &mut Vec<Guard<'a>>, out: &mut Vec<Site<'a>>) {
    for stmt in &block.stmts {
        if matches!(stmt.kind, StmtKind::Assume(_) | StmtKind::Assert { .. }) {
            continue;
        }
        out.push(Site {
            stmt,
            guards: guards.clone(),
        });
        match &stmt.kind {
            StmtKind::If(ifs) => collect_if(ifs, guards, out),
            StmtKind::Unroll { body, .. }
            | StmtKind::While { body, .. }
            | StmtKind::For { body, .. } => {
                guards.push(Guard::Loop);
                collect(body, guards, out);
                guards.pop();
            }
            StmtKind::Block(b) => collect(b, guards, out),
            _ => {}
        }
    }
}

fn collect_if<'a>(ifs: &'a IfStmt, guards: &mut Vec<Guard<'a>>, out: &mut Vec<Site<'a>>) {
    guards.push(Guard::Holds(&ifs.cond));
    collect(&ifs.then_block, guards, out);
    guards.pop();
    guards.push(Guard::Fails(&ifs.cond));
    match &ifs.else_branch {
        Some(ElseBranch::Block(b)) => collect(b, guards, out),
        Some(ElseBranch::If(nested)) => collect_if(nested, guards, out),
        None => {}
    }
    guards.pop();
}

/// The expressions a statement evaluates itself (not those of nested
/// blocks): for an `if`, its condition and those of its `else if`s.
pub(crate) fn own_exprs(stmt: &Stmt) -> Vec<&Expr> {
    match &stmt.kind {
        StmtKind::Expr(e) => vec![e],
        StmtKind::Assign { target, value, .. } => vec![target, value],
        StmtKind::Let { init, .. } => init.iter().collect(),
        StmtKind::If(ifs) => {
            let mut v = vec![&ifs.cond];
            let mut next = &ifs.else_branch;
            while let Some(ElseBranch::If(nested)) = next {
                v.push(&nested.cond);
                next = &nested.else_branch;
            }
            v
        }
        StmtKind::Unroll { count: e, .. } | StmtKind::While { cond: e, .. } => vec![e],
        StmtKind::For { iter, .. } => match iter {
            ForIter::Expr(e) => vec![e],
            ForIter::Range { start, end } => vec![start, end],
        },
        StmtKind::Return(e) => e.iter().collect(),
        _ => Vec::new(),
    }
}

/// Functions whose call shows the result to the person.
const OUTPUT_CALLS: &[&str] = &["printf", "print", "cat", "join"];

/// Whether the statement records or shows an event: prints, or writes a map
/// (maps are printed at exit or read by another probe).
pub(crate) fn is_output(stmt: &Stmt) -> bool {
    match &stmt.kind {
        StmtKind::Expr(e) => match &e.kind {
            ExprKind::Call { name, .. } => OUTPUT_CALLS.contains(&name.name.as_str()),
            ExprKind::Unary { operand, op } => {
                matches!(operand.kind, ExprKind::Map { .. })
                    && matches!(
                        op,
                        UnaryOp::PreInc | UnaryOp::PostInc | UnaryOp::PreDec | UnaryOp::PostDec
                    )
            }
            _ => false,
        },
        StmtKind::Assign { target, .. } => matches!(target.kind, ExprKind::Map { .. }),
        _ => false,
    }
}

/// The `$variable` a statement writes, and the value it stores: `$v = e` and
/// `let $v = e` store `e`; `$v += e` and `let $v;` store no value known here.
pub(crate) fn var_write(stmt: &Stmt) -> Option<(&String, Option<&Expr>)> {
    match &stmt.kind {
        StmtKind::Assign {
            target: Expr {
                kind: ExprKind::Var(v),
                ..
            },
            op,
            value,
        } => Some((v, (*op == AssignOp::Assign).then_some(value))),
        StmtKind::Let { var, init, .. } => Some((&var.name, init.as_ref())),
        _ => None,
    }
}

/// The lower-case words of `text` (letters, digits, `_` and `µ`).
pub(crate) fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == 'µ'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Running the rules on a program, for the rules' tests.

    use kgent_frontend::{parse, StaticFacts};

    use crate::contracts::{annotate, Annotated, ContractSet};

    /// Annotates `source` for `request` with the shipped contracts and `facts`.
    pub(crate) fn annotate_with(request: &str, source: &str, facts: &StaticFacts) -> Annotated {
        let parsed = parse(source);
        assert!(!parsed.has_errors(), "{source}");
        let set = ContractSet::shipped().unwrap();
        annotate(request, source, &parsed.program, facts, &set)
    }

    /// The asserts of rule `name`, as text.
    pub(crate) fn asserts_of(a: &Annotated, name: &str) -> Vec<String> {
        a.annotations
            .iter()
            .filter(
                |x| matches!(&x.origin, crate::contracts::Origin::Rule { name: n } if n == name),
            )
            .map(|x| x.expr.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgent_frontend::parse;

    #[test]
    fn sites_carry_their_guards() {
        let p = parse(
            "BEGIN { if (pid == 1) { printf(\"a\"); } else if (pid == 2) { @x = 1; } else { exit(); } while (1) { @y++; } }",
        )
        .program;
        let probe = p.probes().next().unwrap();
        let s = sites(&probe.body);
        let shape: Vec<(bool, usize)> = s
            .iter()
            .map(|s| (is_output(s.stmt), s.guards.len()))
            .collect();
        // if, printf, @x = 1, exit(), while, @y++
        assert_eq!(
            shape,
            [
                (false, 0),
                (true, 1),
                (true, 2),
                (false, 2),
                (false, 0),
                (true, 1)
            ]
        );
        assert_eq!(own_exprs(s[0].stmt).len(), 2);
    }

    #[test]
    fn rule_names_are_unique_kebab_case() {
        let names: std::collections::BTreeSet<&str> = RULES.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), RULES.len());
        for n in names {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{n}"
            );
        }
    }

    #[test]
    fn words_split_on_punctuation() {
        assert_eq!(words("IPv4/IPv6, in µs"), ["ipv4", "ipv6", "in", "µs"]);
    }
}
