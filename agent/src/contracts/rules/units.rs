//! `duration-unit`: the request names one duration unit (milliseconds,
//! microseconds or nanoseconds) and the program converts its durations to
//! another one (divides a nanosecond delta by 1000 when milliseconds were
//! asked for).
//!
//! Durations are tracked from their source: `nsecs - X` and `elapsed - X`
//! are nanoseconds, a field whose contract gives a time unit has that unit,
//! `v / N` and `v * N` scale it, and a variable assigned once from a duration
//! carries its unit. A duration is *used* where it leaves that arithmetic
//! (printed, aggregated, compared, stored in a map). When every used
//! duration of a probe was divided by something and none is in the
//! requested unit, each used value `v` gets `assert(v == v / F)` (or
//! `v * F`) right before the statement that uses it, `F` the factor from
//! its unit to the requested one: "the value equals itself in the
//! requested unit", false for any duration of at least `F`.
//!
//! Silent when the request names no unit or several, when a used duration
//! is still raw nanoseconds, when a duration goes into a map the program
//! scales again elsewhere (`print(@us, 0, 1000)`, `@us / 1000`: the unit is
//! decided there), or when any used duration is already in the requested
//! unit (the program offers it).

use std::collections::{BTreeMap, BTreeSet};

use kgent_frontend::ast::*;

use super::{own_exprs, sites, var_write, words, Finding, Input};
use crate::contracts::annotate::{Place, ProbeView};
use crate::contracts::expr::{self, args_field, binary, int, side_effect_free};

pub(crate) const NAME: &str = "duration-unit";

/// (nanoseconds per unit, name)
type Unit = (u64, &'static str);

const MS: Unit = (1_000_000, "milliseconds");
const US: Unit = (1_000, "microseconds");
const NS: Unit = (1, "nanoseconds");

/// The one duration unit the request names, if exactly one.
pub(crate) fn requested(request: &str) -> Option<Unit> {
    let w = words(request);
    let mut found = BTreeSet::new();
    for (i, word) in w.iter().enumerate() {
        // "us" is also a pronoun: only right after a number ("10 us", "10us").
        let after_number = i > 0 && w[i - 1].bytes().all(|b| b.is_ascii_digit());
        let number_glued = |suffix: &str| {
            word.strip_suffix(suffix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        let unit = match word.as_str() {
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => Some(MS),
            "µs" | "usec" | "usecs" | "microsecond" | "microseconds" => Some(US),
            "us" if after_number => Some(US),
            "ns" | "nsec" | "nsecs" | "nanosecond" | "nanoseconds" => Some(NS),
            _ if number_glued("ms") => Some(MS),
            _ if number_glued("us") || number_glued("µs") => Some(US),
            _ if number_glued("ns") => Some(NS),
            _ => None,
        };
        if let Some(u) = unit {
            found.insert(u);
        }
    }
    match found.len() {
        1 => found.into_iter().next(),
        _ => None,
    }
}

pub(crate) fn run(input: &Input<'_>) -> Vec<Finding> {
    let Some(unit) = requested(input.request) else {
        return Vec::new();
    };
    let rescaled = rescaled_maps(input.program);
    input
        .probes
        .iter()
        .flat_map(|view| probe(view, unit, &rescaled))
        .collect()
}

/// Maps whose values the program scales again somewhere: printed with a
/// divisor (`print(@m, 0, 1000)`) or divided or multiplied (`@m / 1000`).
/// A duration stored in one has no final unit in its probe.
fn rescaled_maps(program: &Program) -> BTreeSet<String> {
    use kgent_frontend::visit::{self, Visitor};
    struct Find(BTreeSet<String>);
    impl Visitor for Find {
        fn visit_expr(&mut self, e: &Expr) {
            match &e.kind {
                ExprKind::Call { name, args } if name.name == "print" && args.len() == 3 => {
                    if let ExprKind::Map { name, .. } = &args[0].kind {
                        self.0.insert(name.clone());
                    }
                }
                ExprKind::Binary {
                    op: BinaryOp::Div | BinaryOp::Mul,
                    lhs,
                    rhs,
                } => {
                    for side in [lhs, rhs] {
                        if let ExprKind::Map { name, .. } = &side.kind {
                            self.0.insert(name.clone());
                        }
                    }
                }
                _ => {}
            }
            visit::walk_expr(self, e);
        }
    }
    let mut f = Find(BTreeSet::new());
    f.visit_program(program);
    f.0
}

/// The unit of a duration, and whether anything scaled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scale {
    ns_per_unit: u64,
    divided: bool,
}

struct Durations<'v, 'a> {
    view: &'v ProbeView<'a>,
    vars: BTreeMap<String, Scale>,
}

impl Durations<'_, '_> {
    fn scale(&self, e: &Expr) -> Option<Scale> {
        match &e.kind {
            ExprKind::Binary {
                op: BinaryOp::Sub,
                lhs,
                ..
            } if matches!(&lhs.kind, ExprKind::Builtin(b) if b == "nsecs" || b == "elapsed") => {
                Some(Scale {
                    ns_per_unit: 1,
                    divided: false,
                })
            }
            ExprKind::Binary {
                op: op @ (BinaryOp::Div | BinaryOp::Mul),
                lhs,
                rhs,
            } => {
                let ExprKind::Int(k) = &rhs.kind else {
                    return None;
                };
                let s = self.scale(lhs)?;
                let n = match op {
                    BinaryOp::Div => s.ns_per_unit.checked_mul(k.value)?,
                    _ if k.value != 0 && s.ns_per_unit % k.value == 0 => s.ns_per_unit / k.value,
                    _ => return None,
                };
                (k.value > 1).then_some(Scale {
                    ns_per_unit: n,
                    divided: s.divided || *op == BinaryOp::Div,
                })
            }
            ExprKind::Var(v) => self.vars.get(v).copied(),
            _ => {
                let name = args_field(e)?;
                let unit = self.view.common_field(name)?.unit?;
                Some(Scale {
                    ns_per_unit: unit.scale_ns()?,
                    divided: false,
                })
            }
        }
    }
}

/// Variables assigned exactly once, with their values.
fn single_assignments(probe: &Probe) -> BTreeMap<String, &Expr> {
    let mut count: BTreeMap<String, (usize, Option<&Expr>)> = BTreeMap::new();
    for site in sites(&probe.body) {
        let Some((name, value)) = var_write(site.stmt) else {
            continue;
        };
        let entry = count.entry(name.clone()).or_insert((0, None));
        entry.0 += 1;
        entry.1 = value;
    }
    count
        .into_iter()
        .filter_map(|(v, (n, e))| Some((v, e.filter(|_| n == 1)?)))
        .collect()
}

/// A used duration: the expression, its unit, and where to assert.
struct Use<'a> {
    expr: &'a Expr,
    scale: Scale,
    place: Place,
}

fn probe(view: &ProbeView<'_>, unit: Unit, rescaled: &BTreeSet<String>) -> Vec<Finding> {
    let probe = view.probe;
    let assigned = single_assignments(probe);
    let mut d = Durations {
        view,
        vars: BTreeMap::new(),
    };
    // Variables from variables: a few rounds reach any realistic chain.
    for _ in 0..4 {
        for (v, value) in &assigned {
            if let Some(s) = d.scale(value) {
                d.vars.insert(v.clone(), s);
            }
        }
    }

    let mut uses = Vec::new();
    if let Some(pred) = &probe.predicate {
        used(&d, pred, false, Place::block_start(&probe.body), &mut uses);
    }
    for site in sites(&probe.body) {
        let place = Place::Before(site.stmt.span);
        if let StmtKind::Assign {
            target:
                Expr {
                    kind: ExprKind::Map { name, .. },
                    ..
                },
            value,
            ..
        } = &site.stmt.kind
        {
            // Stored in a map that is scaled again elsewhere: its unit is
            // decided there, so this probe says nothing final.
            if rescaled.contains(name) && d_mentions_duration(&d, value) {
                return Vec::new();
            }
        }
        match &site.stmt.kind {
            // The value of `$v = duration` is used where `$v` is.
            StmtKind::Assign {
                target:
                    Expr {
                        kind: ExprKind::Var(v),
                        ..
                    },
                value,
                ..
            } if d.vars.contains_key(v) => used(&d, value, true, place, &mut uses),
            StmtKind::Let {
                var,
                init: Some(value),
                ..
            } if d.vars.contains_key(&var.name) => used(&d, value, true, place, &mut uses),
            _ => {
                for e in own_exprs(site.stmt) {
                    used(&d, e, false, place, &mut uses);
                }
            }
        }
    }

    if uses.is_empty()
        || uses.iter().any(|u| !u.scale.divided)
        || uses.iter().any(|u| u.scale.ns_per_unit == unit.0)
    {
        return Vec::new();
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for u in uses {
        if !side_effect_free(u.expr) {
            continue;
        }
        let text = expr::text(u.expr);
        if !seen.insert(text.clone()) {
            continue;
        }
        let have = u.scale.ns_per_unit;
        let (converted, how) = if unit.0 > have {
            let f = unit.0 / have;
            (
                binary(BinaryOp::Div, u.expr.clone(), int(f)),
                format!("/ {f}"),
            )
        } else {
            let f = have / unit.0;
            (
                binary(BinaryOp::Mul, u.expr.clone(), int(f)),
                format!("* {f}"),
            )
        };
        out.push(Finding {
            place: u.place,
            message: format!(
                "the request asks for {}: {text} is in {}",
                unit.1,
                name(have)
            ),
            why: format!(
                "the request asks for {}, but `{text}` is a duration in {} (from a nanosecond \
                 clock); in the requested unit it is `{text} {how}`",
                unit.1,
                name(have)
            ),
            expr: binary(BinaryOp::Eq, u.expr.clone(), converted),
        });
    }
    out
}

fn d_mentions_duration(d: &Durations<'_, '_>, e: &Expr) -> bool {
    d.scale(e).is_some()
        || expr::children(e)
            .into_iter()
            .any(|c| d_mentions_duration(d, c))
}

fn name(ns_per_unit: u64) -> String {
    match ns_per_unit {
        1 => "nanoseconds".to_string(),
        1_000 => "microseconds".to_string(),
        1_000_000 => "milliseconds".to_string(),
        1_000_000_000 => "seconds".to_string(),
        n => format!("units of {n} ns"),
    }
}

/// Collects the durations `e` uses: maximal duration sub-expressions, not
/// scaled further. `assigned`: `e` is the value of a duration variable,
/// whose uses count instead.
fn used<'a>(
    d: &Durations<'_, '_>,
    e: &'a Expr,
    assigned: bool,
    place: Place,
    out: &mut Vec<Use<'a>>,
) {
    if let Some(scale) = d.scale(e) {
        if !assigned {
            out.push(Use {
                expr: e,
                scale,
                place,
            });
        }
        return;
    }
    for c in expr::children(e) {
        used(d, c, false, place, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{annotate_with, asserts_of};
    use super::*;
    use kgent_frontend::StaticFacts;

    #[test]
    fn the_request_names_one_unit() {
        assert_eq!(requested("read latency in milliseconds"), Some(MS));
        assert_eq!(requested("reads slower than 10ms"), Some(MS));
        assert_eq!(requested("reads slower than 10 us"), Some(US));
        assert_eq!(requested("show us the slow reads"), None);
        assert_eq!(requested("latency in ms, and the total in ns"), None);
        assert_eq!(requested("print every 5 seconds"), None);
    }

    const US_HIST: &str = "tracepoint:syscalls:sys_enter_read\n{\n    @start[tid] = nsecs;\n}\n\ntracepoint:syscalls:sys_exit_read\n/@start[tid]/\n{\n    @usecs = hist((nsecs - @start[tid]) / 1000);\n    delete(@start[tid]);\n}\n";

    #[test]
    fn microseconds_for_a_milliseconds_request_are_refutable() {
        let a = annotate_with(
            "histogram of read latency in milliseconds",
            US_HIST,
            &StaticFacts::default(),
        );
        assert_eq!(
            asserts_of(&a, NAME),
            ["(nsecs - @start[tid]) / 1000 == (nsecs - @start[tid]) / 1000 / 1000"]
        );
        // Right before the statement that uses it.
        let line = a
            .annotations
            .iter()
            .find(|x| x.expr.contains("/ 1000 =="))
            .unwrap()
            .line;
        assert!(a
            .source
            .lines()
            .nth(line as usize)
            .unwrap()
            .contains("@usecs = hist("));
    }

    #[test]
    fn the_right_unit_or_raw_nanoseconds_are_left_alone() {
        let a = annotate_with(
            "read latency in microseconds",
            US_HIST,
            &StaticFacts::default(),
        );
        assert!(asserts_of(&a, NAME).is_empty());
        let raw = US_HIST.replace("(nsecs - @start[tid]) / 1000", "nsecs - @start[tid]");
        let a = annotate_with(
            "read latency in milliseconds",
            &raw,
            &StaticFacts::default(),
        );
        assert!(asserts_of(&a, NAME).is_empty());
    }

    #[test]
    fn maps_scaled_when_printed_decide_their_unit_there() {
        let source = "tracepoint:sched:sched_switch\n{\n    $last = @last[cpu];\n    if ($last) {\n        @oncpu[args->prev_comm] = sum((nsecs - $last) / 1000);\n    }\n    @last[cpu] = nsecs;\n}\n\nEND\n{\n    print(@oncpu, 0, 1000);\n}\n";
        let a = annotate_with(
            "CPU time per program, in milliseconds",
            source,
            &StaticFacts::default(),
        );
        assert!(asserts_of(&a, NAME).is_empty());
        // Printed as summed, the microseconds are wrong.
        let plain = source.replace("print(@oncpu, 0, 1000)", "print(@oncpu)");
        let a = annotate_with(
            "CPU time per program, in milliseconds",
            &plain,
            &StaticFacts::default(),
        );
        assert_eq!(
            asserts_of(&a, NAME),
            ["(nsecs - $last) / 1000 == (nsecs - $last) / 1000 / 1000"]
        );
    }

    #[test]
    fn variables_carry_units() {
        let source = "tracepoint:syscalls:sys_exit_read\n/@start[tid]/\n{\n    $lat_us = (nsecs - @start[tid]) / 1000;\n    if ($lat_us / 1000 >= 10) {\n        printf(\"%d ms\\n\", $lat_us / 1000);\n    }\n}\n";
        // `$lat_us / 1000` is milliseconds: the program offers the unit.
        let a = annotate_with("reads slower than 10 ms", source, &StaticFacts::default());
        assert!(asserts_of(&a, NAME).is_empty());
        // Asked for nanoseconds, every use is refutable.
        let a = annotate_with(
            "reads slower than 10000000 ns",
            source,
            &StaticFacts::default(),
        );
        assert_eq!(
            asserts_of(&a, NAME),
            ["$lat_us / 1000 == $lat_us / 1000 * 1000000"]
        );
    }
}
