//! `address-family`: the request names IPv4 and/or IPv6 ("IPv4 and IPv6",
//! "both address families", "IPv6 connections") and a probe decides on an
//! address family in its predicate or in `if`s around its output.
//!
//! The assert says "an event of each family the request names passes the
//! filters on the way to some output": with `F` the family-reading
//! conjuncts of the predicate and `G1..Gn` the family-reading conditions
//! (negated in `else`) on the way to each output statement (a print or a map
//! write), it is `F[v] && (G1[v] || ... || Gn[v])`, where `[v]` replaces the
//! family value by 2 (AF_INET) or 10 (AF_INET6). It goes at the start of the
//! body; the substituted conditions read only the probe's context, so they
//! mean the same there. `args->family == 2` alone gives `10 == 2`: refuted.
//! A program that handles IPv6 in an `else` branch gives `10 == 2 || !(10 ==
//! 2)`: proved.
//!
//! Family values are the fields `family`, `skc_family`, `sa_family`,
//! `sin_family`, `sin6_family`, `ss_family` (of `args` or of a struct), and
//! variables assigned only from one of them. The rule stays silent when a
//! family-reading condition also reads a variable or a map (it cannot be
//! moved to the start of the body), when an output is reached without any
//! family condition, and when the request negates the family ("not IPv6").

use std::collections::{BTreeMap, BTreeSet};

use kgent_frontend::ast::*;

use super::{is_output, sites, var_write, words, Finding, Guard, Input};
use crate::contracts::annotate::Place;
use crate::contracts::expr::{
    self, all_of, any, any_of, conjuncts, int, not, reads_state, side_effect_free, substitute,
};

pub(crate) const NAME: &str = "address-family";

/// Field names that hold an address family.
const FAMILY_FIELDS: &[&str] = &[
    "family",
    "skc_family",
    "sa_family",
    "sin_family",
    "sin6_family",
    "ss_family",
];

/// Words that cancel a family named right after them ("not IPv6").
const NEGATIONS: &[&str] = &[
    "no",
    "not",
    "without",
    "except",
    "excluding",
    "exclude",
    "ignore",
    "ignoring",
    "skip",
    "skipping",
];

/// The families the request asks for: `(value, name)`.
pub(crate) fn requested(request: &str) -> Vec<(u64, &'static str)> {
    let w = words(request);
    let negated = |i: usize| {
        w[i.saturating_sub(3)..i]
            .iter()
            .any(|x| NEGATIONS.contains(&x.as_str()))
    };
    let mut v4 = false;
    let mut v6 = false;
    for (i, word) in w.iter().enumerate() {
        let six = matches!(word.as_str(), "ipv6" | "ip6" | "inet6" | "af_inet6" | "v6");
        let four = matches!(word.as_str(), "ipv4" | "ip4" | "af_inet" | "v4");
        if (six || four) && negated(i) {
            continue;
        }
        v6 |= six;
        v4 |= four;
        // "both address families", "both families", "both IP versions"
        if word == "both"
            && w.get(i + 1..(i + 3).min(w.len()))
                .is_some_and(|next| next.iter().any(|x| x.starts_with("famil") || x == "ip"))
        {
            v4 = true;
            v6 = true;
        }
    }
    let mut out = Vec::new();
    if v4 {
        out.push((2, "IPv4 (AF_INET = 2)"));
    }
    if v6 {
        out.push((10, "IPv6 (AF_INET6 = 10)"));
    }
    out
}

pub(crate) fn run(input: &Input<'_>) -> Vec<Finding> {
    let wanted = requested(input.request);
    let mut out = Vec::new();
    if wanted.is_empty() {
        return out;
    }
    for view in input.probes {
        out.extend(probe(view.probe, &wanted));
    }
    out
}

/// Variables every assignment of which is a family field.
fn family_vars(probe: &Probe) -> BTreeSet<String> {
    let mut verdict: BTreeMap<String, bool> = BTreeMap::new();
    for site in sites(&probe.body) {
        // A declaration without a value (`let $f;`) decides nothing.
        if matches!(site.stmt.kind, StmtKind::Let { init: None, .. }) {
            continue;
        }
        let Some((name, value)) = var_write(site.stmt) else {
            continue;
        };
        let ok = value.is_some_and(is_family_field);
        let entry = verdict.entry(name.clone()).or_insert(true);
        *entry &= ok;
    }
    verdict
        .into_iter()
        .filter_map(|(v, ok)| ok.then_some(v))
        .collect()
}

fn is_family_field(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Field { field, .. } if FAMILY_FIELDS.contains(&field.name.as_str()))
}

fn probe(probe: &Probe, wanted: &[(u64, &'static str)]) -> Vec<Finding> {
    let vars = family_vars(probe);
    let is_family =
        |e: &Expr| is_family_field(e) || matches!(&e.kind, ExprKind::Var(v) if vars.contains(v));
    let mentions = |e: &Expr| any(e, &|x| is_family(x));
    // With the family values replaced by a placeholder, the condition must
    // read nothing a statement could change.
    let movable = |e: &Expr| {
        let blanked = substitute(e, &|x| is_family(x).then(|| int(0)));
        side_effect_free(e) && !reads_state(&blanked)
    };

    let mut filter: Vec<&Expr> = Vec::new();
    if let Some(pred) = &probe.predicate {
        for c in conjuncts(pred).into_iter().filter(|c| mentions(c)) {
            if !movable(c) {
                return Vec::new();
            }
            filter.push(c);
        }
    }
    // Per output: the family conditions on the way (None: the path has none).
    let mut paths: Vec<Vec<(bool, &Expr)>> = Vec::new();
    for site in sites(&probe.body).into_iter().filter(|s| is_output(s.stmt)) {
        let mut path = Vec::new();
        for g in &site.guards {
            let (holds, cond) = match *g {
                Guard::Holds(c) => (true, c),
                Guard::Fails(c) => (false, c),
                Guard::Loop => continue,
            };
            if mentions(cond) {
                if !movable(cond) {
                    return Vec::new();
                }
                path.push((holds, cond));
            }
        }
        paths.push(path);
    }
    if paths.is_empty() || (filter.is_empty() && paths.iter().any(Vec::is_empty)) {
        return Vec::new();
    }

    let mut out = Vec::new();
    for &(value, name) in wanted {
        let put = |e: &Expr| substitute(e, &|x| is_family(x).then(|| int(value)));
        let mut parts: Vec<Expr> = filter.iter().map(|c| put(c)).collect();
        if !paths.iter().any(Vec::is_empty) {
            let mut seen = BTreeSet::new();
            let alternatives: Vec<Expr> = paths
                .iter()
                .filter_map(|path| {
                    let conds = path
                        .iter()
                        .map(|(holds, c)| if *holds { put(c) } else { not(put(c)) })
                        .collect();
                    all_of(conds)
                })
                .filter(|e| seen.insert(expr::text(e)))
                .collect();
            parts.extend(any_of(alternatives));
        }
        let Some(assertion) = all_of(parts) else {
            continue;
        };
        out.push(Finding {
            place: Place::block_start(&probe.body),
            message: format!(
                "the request asks for {name} events: the filters must let them through"
            ),
            why: format!(
                "the request names {name}; with the address family set to {value}, the probe's \
                 family filters read `{}`, which must hold for such an event to be reported",
                expr::text(&assertion)
            ),
            expr: assertion,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{annotate_with, asserts_of};
    use super::*;
    use kgent_frontend::StaticFacts;

    #[test]
    fn the_request_names_families() {
        let v = |r: &str| requested(r).iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(v("TCP connects, IPv4 and IPv6"), [2, 10]);
        assert_eq!(v("connections over both address families"), [2, 10]);
        assert_eq!(v("only IPv6 sockets"), [10]);
        assert_eq!(v("IPv4 connects, not IPv6"), [2]);
        assert_eq!(v("show both reads and writes"), Vec::<u64>::new());
        assert_eq!(v("TCP connects"), Vec::<u64>::new());
    }

    const V4_ONLY: &str = "tracepoint:sock:inet_sock_set_state\n/args->family == 2 && args->newstate == 1/\n{\n    printf(\"%s:%d\\n\", ntop(args->daddr), args->dport);\n}\n";

    #[test]
    fn an_ipv4_only_filter_is_refuted_for_an_ipv6_request() {
        let a = annotate_with(
            "new TCP connections, IPv4 and IPv6",
            V4_ONLY,
            &StaticFacts::default(),
        );
        assert_eq!(asserts_of(&a, NAME), ["2 == 2", "10 == 2"]);
        // The contract's family assumption is there too, before the asserts.
        let first = &a.annotations[0];
        assert_eq!(first.expr, "args->family == 2 || args->family == 10");
    }

    #[test]
    fn branches_per_family_satisfy_it() {
        let source = "tracepoint:tcp:tcp_retransmit_skb\n{\n    if (args->family == 2) {\n        printf(\"%s\\n\", ntop(args->daddr));\n    } else {\n        printf(\"%s\\n\", ntop(args->daddr_v6));\n    }\n}\n";
        let a = annotate_with(
            "TCP retransmits for IPv4 and IPv6",
            source,
            &StaticFacts::default(),
        );
        assert_eq!(
            asserts_of(&a, NAME),
            ["2 == 2 || !(2 == 2)", "10 == 2 || !(10 == 2)"]
        );
    }

    #[test]
    fn silent_without_a_family_in_the_request_or_a_family_filter() {
        let a = annotate_with("new TCP connections", V4_ONLY, &StaticFacts::default());
        assert!(asserts_of(&a, NAME).is_empty());
        let source =
            "tracepoint:sock:inet_sock_set_state\n{\n    printf(\"%d\\n\", args->family);\n}\n";
        let a = annotate_with("IPv6 connections", source, &StaticFacts::default());
        assert!(asserts_of(&a, NAME).is_empty());
    }

    #[test]
    fn family_variables_count_and_state_makes_it_give_up() {
        let source = "tracepoint:sock:inet_sock_set_state\n{\n    $f = args->family;\n    if ($f == 2) {\n        @v4 = count();\n    }\n}\n";
        let a = annotate_with("count IPv6 state changes", source, &StaticFacts::default());
        assert_eq!(asserts_of(&a, NAME), ["10 == 2"]);

        let source = "tracepoint:sock:inet_sock_set_state\n{\n    if (args->family == 2 && @on) {\n        @v4 = count();\n    }\n}\n";
        let a = annotate_with("count IPv6 state changes", source, &StaticFacts::default());
        assert!(asserts_of(&a, NAME).is_empty());
    }
}
