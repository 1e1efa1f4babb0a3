//! `network-byte-order`: a value in network byte order (a `__be16` port, a
//! `__be32` address, read through BTF, e.g. `sock_common.skc_dport` or
//! `sockaddr_in.sin_port`) that the program prints with `%d`/`%u` or compares
//! with a number without converting it.
//!
//! Which values are in network order is the front end's type inference (its
//! `network-byte-order` check, from BTF typedefs); this rule turns each such
//! finding into something a symbolic executor decides:
//!
//! - printed: `assert(x == bswap(x))` right before the `printf`: "what is
//!   printed is the host-order value". It fails for every value that is not
//!   a byte palindrome (port 80 is stored as 0x5000 and prints as 20480);
//! - compared, as a conjunct of a probe's predicate or of an `if`: at the
//!   start of the block the comparison guards, `assert(bswap(x) OP n)`: "the
//!   value compares as the author meant". With `x == 80` holding there,
//!   `bswap(x)` is 20480, so it fails.
//!
//! Host-order fields (the `__u16` ports of `sock:inet_sock_set_state`, which
//! the tracepoint converts with `ntohs`) are never flagged; neither is a value
//! already converted (`bswap(x)`, shifts and ors) or printed with `ntop()`.

use std::collections::BTreeSet;

use kgent_frontend::ast::*;
use kgent_frontend::diagnostic::codes;
use kgent_frontend::{check, CheckOptions, Span};

use super::{sites, Finding, Input};
use crate::contracts::annotate::Place;
use crate::contracts::expr::{self, binary, call, conjuncts};

pub(crate) const NAME: &str = "network-byte-order";

pub(crate) fn run(input: &Input<'_>) -> Vec<Finding> {
    let flagged: BTreeSet<Span> = check(
        input.program,
        input.source,
        input.facts,
        &CheckOptions::default(),
    )
    .into_iter()
    .filter(|d| d.code == codes::NETWORK_BYTE_ORDER)
    .map(|d| d.span)
    .collect();
    let mut out = Vec::new();
    if flagged.is_empty() {
        return out;
    }
    for view in input.probes {
        let probe = view.probe;
        if let Some(pred) = &probe.predicate {
            for c in conjuncts(pred) {
                if let Some(f) = compared(c, &flagged, Place::block_start(&probe.body)) {
                    out.push(f);
                }
            }
        }
        for site in sites(&probe.body) {
            match &site.stmt.kind {
                StmtKind::Expr(Expr {
                    kind: ExprKind::Call { name, args },
                    ..
                }) if name.name == "printf" => {
                    for arg in args.iter().skip(1) {
                        if flagged.contains(&arg.span) {
                            out.push(printed(arg, site.stmt.span));
                        }
                    }
                }
                StmtKind::If(ifs) => {
                    let mut next = Some(ifs);
                    while let Some(i) = next {
                        for c in conjuncts(&i.cond) {
                            if let Some(f) =
                                compared(c, &flagged, Place::block_start(&i.then_block))
                            {
                                out.push(f);
                            }
                        }
                        next = match &i.else_branch {
                            Some(ElseBranch::If(nested)) => Some(nested),
                            _ => None,
                        };
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn printed(arg: &Expr, stmt: Span) -> Finding {
    let text = expr::text(arg);
    Finding {
        place: Place::Before(stmt),
        expr: binary(BinaryOp::Eq, arg.clone(), call("bswap", vec![arg.clone()])),
        message: format!("{text} is in network byte order: print bswap({text})"),
        why: format!(
            "`{text}` holds a network-order (big-endian) value and printf prints it unconverted: \
             the number shown is byte-swapped (port 80 shows as 20480); the printed value must \
             equal the host-order value bswap({text})"
        ),
    }
}

fn compared(c: &Expr, flagged: &BTreeSet<Span>, place: Place) -> Option<Finding> {
    if !flagged.contains(&c.span) {
        return None;
    }
    let ExprKind::Binary { op, lhs, rhs } = &c.kind else {
        return None;
    };
    let literal = |e: &Expr| matches!(e.kind, ExprKind::Int(_));
    let swap = |e: &Expr| call("bswap", vec![e.clone()]);
    let (fixed, value) = match (literal(lhs), literal(rhs)) {
        (false, true) => (binary(*op, swap(lhs), (**rhs).clone()), lhs),
        (true, false) => (binary(*op, (**lhs).clone(), swap(rhs)), rhs),
        _ => return None,
    };
    let text = expr::text(value);
    Some(Finding {
        place,
        message: format!("{text} is in network byte order: compare bswap({text})"),
        why: format!(
            "`{}` compares the network-order value `{text}` with a host-order number: it holds \
             for the byte-swapped number instead; where it held, the host-order value must \
             satisfy `{}`",
            expr::text(c),
            expr::text(&fixed)
        ),
        expr: fixed,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{annotate_with, asserts_of};
    use super::*;
    use kgent_frontend::{ByteOrder, FieldInfo, RecordKind, RecordRef, StaticFacts};

    fn facts() -> StaticFacts {
        let mut f = StaticFacts {
            types_available: true,
            ..StaticFacts::default()
        };
        f.probe_support
            .insert("tracepoint".into(), kgent_frontend::ProbeSupport::Works);
        f.probes
            .insert("tracepoint:syscalls:sys_enter_connect".into());
        f.probe_fields.insert(
            "tracepoint:syscalls:sys_enter_connect".into(),
            vec![FieldInfo {
                name: "uservaddr".into(),
                c_type: "struct sockaddr *".into(),
                size: 8,
                signed: false,
                pointer: true,
                byte_order: ByteOrder::Host,
                record: Some(RecordRef::new(RecordKind::Struct, "sockaddr")),
            }],
        );
        let member = |name: &str, c_type: &str, size: u64, order: ByteOrder| FieldInfo {
            name: name.into(),
            c_type: c_type.into(),
            size,
            signed: false,
            pointer: false,
            byte_order: order,
            record: None,
        };
        f.records.insert(
            "struct sockaddr_in".into(),
            vec![
                member("sin_family", "sa_family_t", 2, ByteOrder::Host),
                member("sin_port", "__be16", 2, ByteOrder::Network),
            ],
        );
        f
    }

    #[test]
    fn a_network_port_printed_with_d_gets_a_refutable_assert() {
        let source = "tracepoint:syscalls:sys_enter_connect\n{\n    $sa = (struct sockaddr_in *)args->uservaddr;\n    printf(\"%d\\n\", $sa->sin_port);\n}\n";
        let a = annotate_with("show connect ports", source, &facts());
        assert_eq!(
            asserts_of(&a, NAME),
            ["$sa->sin_port == bswap($sa->sin_port)"]
        );
        let line = a
            .annotations
            .iter()
            .find(|x| x.expr.contains("bswap"))
            .unwrap()
            .line;
        assert_eq!(
            a.source
                .lines()
                .nth(line as usize - 1)
                .unwrap()
                .trim_start()
                .get(..7),
            Some("assert(")
        );
        assert_eq!(
            a.source
                .lines()
                .nth(line as usize)
                .unwrap()
                .trim_start()
                .get(..6),
            Some("printf")
        );
    }

    #[test]
    fn converted_ports_and_host_order_fields_are_left_alone() {
        let source = "tracepoint:syscalls:sys_enter_connect\n{\n    $sa = (struct sockaddr_in *)args->uservaddr;\n    printf(\"%d %d\\n\", bswap($sa->sin_port), $sa->sin_family);\n}\n";
        let a = annotate_with("show connect ports", source, &facts());
        assert!(asserts_of(&a, NAME).is_empty());
    }

    #[test]
    fn a_network_port_compared_with_a_number_is_asserted_where_the_comparison_held() {
        let source = "tracepoint:syscalls:sys_enter_connect\n{\n    $sa = (struct sockaddr_in *)args->uservaddr;\n    if ($sa->sin_family == 2 && $sa->sin_port == 80) {\n        printf(\"http\\n\");\n    }\n}\n";
        let a = annotate_with("connections to port 80", source, &facts());
        assert_eq!(asserts_of(&a, NAME), ["bswap($sa->sin_port) == 80"]);
        assert!(a.source.contains(
            "{\n        assert(bswap($sa->sin_port) == 80, \"$sa->sin_port is in network byte order: compare bswap($sa->sin_port)\");\n        printf"
        ), "{}", a.source);
    }
}
