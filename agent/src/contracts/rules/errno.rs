//! `errno-aggregated`: a field whose contract says a negative value is
//! `-errno` (the `ret` of `sys_exit_*`, of `sock:sock_send_length`...) summed,
//! averaged or put in `stats()` as a count (bytes read, sent), or in a
//! `hist()`/`lhist()` when the request is about bytes or sizes. Failed calls
//! then subtract from the total (a failed read adds -11 bytes).
//!
//! The assert `field >= 0` goes right before the statement; it holds on
//! every path that reaches it only if the program filtered failures out
//! (`/args->ret > 0/`, `if (args->ret >= 0)`). Only the field itself, or the
//! field divided by a constant, counts as aggregated: `sum(-args->ret)` under
//! `/args->ret < 0/` (counting errors) is left alone.

use kgent_frontend::ast::*;

use super::{own_exprs, sites, words, Finding, Input};
use crate::contracts::annotate::{Place, ProbeView};
use crate::contracts::expr::{self, args_field, binary, int};

pub(crate) const NAME: &str = "errno-aggregated";

/// Aggregations where a negative value corrupts the result whatever the request.
const TOTALS: &[&str] = &["sum", "avg", "stats"];
/// Aggregations where it does when the request is about sizes.
const DISTRIBUTIONS: &[&str] = &["hist", "lhist"];

fn about_sizes(request: &str) -> bool {
    words(request).iter().any(|w| {
        matches!(
            w.as_str(),
            "byte" | "bytes" | "size" | "sizes" | "kb" | "kib" | "mb" | "mib" | "throughput"
        )
    })
}

pub(crate) fn run(input: &Input<'_>) -> Vec<Finding> {
    let sizes = about_sizes(input.request);
    input
        .probes
        .iter()
        .flat_map(|view| probe(view, sizes))
        .collect()
}

/// The errno field `e` reads, if `e` is that field (perhaps divided by a constant).
fn errno_field<'e>(view: &ProbeView<'_>, e: &'e Expr) -> Option<&'e Expr> {
    match &e.kind {
        ExprKind::Binary {
            op: BinaryOp::Div,
            lhs,
            rhs,
        } if matches!(rhs.kind, ExprKind::Int(_)) => errno_field(view, lhs),
        ExprKind::Builtin(b) if b == "retval" => {
            view.common_field("retval").filter(|f| f.errno).map(|_| e)
        }
        _ => {
            let name = args_field(e)?;
            view.common_field(name).filter(|f| f.errno).map(|_| e)
        }
    }
}

fn probe(view: &ProbeView<'_>, sizes: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for site in sites(&view.probe.body) {
        for e in own_exprs(site.stmt) {
            let mut calls = Vec::new();
            aggregations(e, &mut calls);
            for (func, arg) in calls {
                let counted = TOTALS.contains(&func) || (sizes && DISTRIBUTIONS.contains(&func));
                if !counted {
                    continue;
                }
                let Some(field) = errno_field(view, arg) else {
                    continue;
                };
                let text = expr::text(field);
                let assertion = binary(BinaryOp::Ge, field.clone(), int(0));
                if out.iter().any(|f: &Finding| {
                    f.place == Place::Before(site.stmt.span) && f.expr == assertion
                }) {
                    continue;
                }
                out.push(Finding {
                    place: Place::Before(site.stmt.span),
                    message: format!("{text} < 0 is -errno: filter failed calls before {func}()"),
                    why: format!(
                        "the contract says a negative `{text}` is -errno (a failed call), not a \
                         count; {func}() of it subtracts failures from the result unless they \
                         are filtered out first (e.g. `/{text} > 0/`)"
                    ),
                    expr: assertion,
                });
            }
        }
    }
    out
}

/// `(name, first argument)` of every aggregation call in `e`.
fn aggregations<'e>(e: &'e Expr, out: &mut Vec<(&'static str, &'e Expr)>) {
    if let ExprKind::Call { name, args } = &e.kind {
        let known = TOTALS
            .iter()
            .chain(DISTRIBUTIONS)
            .find(|f| **f == name.name);
        if let (Some(f), Some(first)) = (known, args.first()) {
            out.push((f, first));
        }
    }
    for c in expr::children(e) {
        aggregations(c, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{annotate_with, asserts_of};
    use super::*;
    use kgent_frontend::StaticFacts;

    #[test]
    fn summing_ret_without_a_filter_is_refutable() {
        let source =
            "tracepoint:syscalls:sys_exit_read\n{\n    @bytes[comm] = sum(args->ret);\n}\n";
        let a = annotate_with("bytes read per process", source, &StaticFacts::default());
        assert_eq!(asserts_of(&a, NAME), ["args->ret >= 0"]);
    }

    #[test]
    fn the_filter_is_for_the_executor_to_see_and_error_counts_are_left_alone() {
        // With a filter the assert is still written (the executor proves it).
        let source = "tracepoint:syscalls:sys_exit_read\n/args->ret > 0/\n{\n    @bytes[comm] = sum(args->ret);\n}\n";
        let a = annotate_with("bytes read per process", source, &StaticFacts::default());
        assert_eq!(asserts_of(&a, NAME), ["args->ret >= 0"]);
        let source = "tracepoint:syscalls:sys_exit_read\n/args->ret < 0/\n{\n    @errors[-args->ret] = count();\n    @neg = sum(-args->ret);\n}\n";
        let a = annotate_with("failed reads by errno", source, &StaticFacts::default());
        assert!(asserts_of(&a, NAME).is_empty());
    }

    #[test]
    fn histograms_count_only_for_size_requests() {
        let source = "tracepoint:syscalls:sys_exit_read\n{\n    @ret = hist(args->ret);\n}\n";
        let a = annotate_with(
            "distribution of read return values",
            source,
            &StaticFacts::default(),
        );
        assert!(asserts_of(&a, NAME).is_empty());
        let a = annotate_with(
            "distribution of read sizes",
            source,
            &StaticFacts::default(),
        );
        assert_eq!(asserts_of(&a, NAME), ["args->ret >= 0"]);
    }
}
