//! Contracts derived mechanically from the kernel's own type information
//! (tracefs `format` files, BTF function signatures), and the merge of
//! derived and hand-written contracts.
//!
//! What can be derived: the fields and their C types, widths, signedness,
//! pointer-ness and `__be*` byte order; and from a narrow integer's width the
//! range bpftrace can read from it (`args->sport <= 65535`), which a symbolic
//! executor that models every value as 64 bits needs to know. Nothing about
//! meaning (units, errno, value sets) can be derived; that is hand-written.

use std::collections::BTreeSet;

use kgent_frontend::ast::ProbeKind;
use kgent_frontend::{ByteOrder, FieldInfo, KernelFacts};

use super::expr::{self, Atom};
use super::{
    canonical_attach_text, Condition, ConditionOrigin, Contract, ContractOrigin, FieldOrder,
    FieldSpec,
};

/// The contract tracefs/BTF give for one concrete attach point (canonical
/// spelling, see [`super::canonical_attach`]).
///
/// - tracepoints and kfuncs: every field, and a range condition for each
///   integer narrower than 8 bytes (bpftrace reads the field at its width);
/// - kprobes: the parameters by position (`arg0` is the first), from BTF, and
///   no range: `argN` is the whole register, whose upper bits are undefined
///   for a 32-bit parameter;
/// - everything else: an empty contract.
///
/// Never fails: an attach point the facts know nothing about gets a contract
/// with no fields.
pub fn derive(attach_point: &str, facts: &dyn KernelFacts) -> Contract {
    let attach = canonical_attach_text(attach_point).unwrap_or_else(|| attach_point.to_string());
    let provider = attach.split(':').next().unwrap_or_default();
    let kind = ProbeKind::from_provider(provider);
    let mut contract = Contract {
        attach: attach.clone(),
        summary: String::new(),
        source: String::new(),
        unchecked: None,
        fields: Vec::new(),
        pre: Vec::new(),
        origin: ContractOrigin::Derived,
    };
    let rest = attach.split_once(':').map_or("", |(_, r)| r);
    match kind {
        Some(ProbeKind::Tracepoint) => {
            if let Some(fields) = facts.probe_fields(&attach) {
                contract.source = "tracefs format".to_string();
                typed_fields(&mut contract, &fields);
            }
        }
        Some(ProbeKind::Fentry | ProbeKind::Fexit) => {
            if let Some(fields) = facts.probe_fields(&format!("kfunc:{rest}")) {
                contract.source = "BTF".to_string();
                typed_fields(&mut contract, &fields);
            }
        }
        Some(ProbeKind::Kprobe) => {
            if let Some(fields) = facts.probe_fields(&format!("kprobe:{rest}")) {
                contract.source = "BTF".to_string();
                for (i, f) in fields.iter().enumerate() {
                    let mut spec = field_spec(f);
                    spec.name = format!("arg{i}");
                    spec.c_name = Some(f.name.clone());
                    contract.fields.push(spec);
                }
            }
        }
        _ => {}
    }
    contract
}

fn field_spec(f: &FieldInfo) -> FieldSpec {
    FieldSpec {
        name: f.name.clone(),
        c_name: None,
        c_type: f.c_type.clone(),
        size: f.size,
        signed: f.signed,
        pointer: f.pointer,
        byte_order: match f.byte_order {
            ByteOrder::Host => FieldOrder::Host,
            ByteOrder::Network => FieldOrder::Network,
        },
        nullable: None,
        unit: None,
        errno: false,
        values: Default::default(),
        meaning: String::new(),
        derived: true,
    }
}

/// `args->NAME` fields with their width conditions.
fn typed_fields(contract: &mut Contract, fields: &[FieldInfo]) {
    for f in fields {
        contract.fields.push(field_spec(f));
        if let Some(range) = width_condition(f) {
            contract.pre.push(Condition {
                expr: range,
                why: format!(
                    "`{}` is a {}-byte {} `{}`",
                    f.name,
                    f.size,
                    if f.signed { "signed" } else { "unsigned" },
                    f.c_type
                ),
                attach: contract.attach.clone(),
                origin: ConditionOrigin::Derived,
            });
        }
    }
}

/// The range of a scalar integer narrower than 64 bits, as a condition.
fn width_condition(f: &FieldInfo) -> Option<String> {
    let t = f.c_type.trim();
    let scalar = !f.pointer
        && f.record.is_none()
        && !t.contains('[')
        && !t.starts_with("__data_loc")
        && !t.starts_with("struct ")
        && !t.starts_with("union ");
    if !scalar || !matches!(f.size, 1 | 2 | 4) {
        return None;
    }
    let bits = f.size * 8;
    let name = &f.name;
    if matches!(t, "bool" | "_Bool") {
        return Some(format!("args->{name} <= 1"));
    }
    Some(if f.signed {
        let max = (1u64 << (bits - 1)) - 1;
        format!("args->{name} >= -{} && args->{name} <= {max}", max + 1)
    } else {
        format!("args->{name} <= {}", (1u64 << bits) - 1)
    })
}

/// `derived` overlaid with `hand` (family contracts first, the exact one last).
pub(crate) fn merge(derived: Contract, hand: &[&Contract]) -> Contract {
    let mut out = derived;
    if hand.is_empty() {
        return out;
    }
    out.origin = ContractOrigin::Merged;
    let mut sources: Vec<String> = Vec::new();
    if !out.source.is_empty() {
        sources.push(out.source.clone());
    }
    for c in hand {
        if !c.summary.is_empty() {
            out.summary = c.summary.clone();
        }
        if !c.source.is_empty() && !sources.contains(&c.source) {
            sources.push(c.source.clone());
        }
        if c.unchecked.is_some() {
            out.unchecked = c.unchecked.clone();
        }
        for f in &c.fields {
            match out.fields.iter_mut().find(|x| x.name == f.name) {
                Some(slot) => *slot = f.clone(),
                None => out.fields.push(f.clone()),
            }
        }
    }
    out.source = sources.join("; ");

    // A hand-written condition on a field supersedes its width condition.
    let mut spoken: BTreeSet<Atom> = BTreeSet::new();
    for c in hand {
        for p in &c.pre {
            if let Some(e) = expr::parse_expr(&p.expr) {
                expr::atoms(&e, &mut spoken);
            }
        }
    }
    out.pre.retain(|p| {
        let mut atoms = BTreeSet::new();
        if let Some(e) = expr::parse_expr(&p.expr) {
            expr::atoms(&e, &mut atoms);
        }
        atoms.is_disjoint(&spoken)
    });
    let mut seen: BTreeSet<String> = out.pre.iter().map(|p| expr::normalize(&p.expr)).collect();
    for c in hand {
        for p in &c.pre {
            if seen.insert(expr::normalize(&p.expr)) {
                out.pre.push(p.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgent_frontend::StaticFacts;

    fn field(name: &str, c_type: &str, size: u64, signed: bool) -> FieldInfo {
        FieldInfo {
            name: name.into(),
            c_type: c_type.into(),
            size,
            signed,
            pointer: c_type.contains('*'),
            byte_order: if c_type.starts_with("__be") {
                ByteOrder::Network
            } else {
                ByteOrder::Host
            },
            record: None,
        }
    }

    fn facts() -> StaticFacts {
        let mut f = StaticFacts::default();
        f.probe_fields.insert(
            "tracepoint:test:ev".into(),
            vec![
                field("sport", "__u16", 2, false),
                field("err", "int", 4, true),
                field("flag", "bool", 1, false),
                field("ptr", "const void *", 8, false),
                field("fd", "int", 8, false),
                field("addr", "__u8[4]", 4, false),
                field("port_be", "__be16", 2, false),
                field("name", "__data_loc char[]", 4, false),
            ],
        );
        f
    }

    #[test]
    fn widths_become_ranges_only_for_narrow_scalars() {
        let c = derive("t:test:ev", &facts());
        assert_eq!(c.attach, "tracepoint:test:ev");
        let exprs: Vec<&str> = c.pre.iter().map(|p| p.expr.as_str()).collect();
        assert_eq!(
            exprs,
            [
                "args->sport <= 65535",
                "args->err >= -2147483648 && args->err <= 2147483647",
                "args->flag <= 1",
                "args->port_be <= 65535",
            ]
        );
        assert_eq!(c.field("port_be").unwrap().byte_order, FieldOrder::Network);
        assert!(c.fields.iter().all(|f| f.derived));
        for p in &c.pre {
            assert!(expr::parse_expr(&p.expr).is_some(), "{}", p.expr);
        }
    }

    #[test]
    fn unknown_probes_derive_an_empty_contract() {
        let c = derive("tracepoint:nope:nope", &facts());
        assert!(c.fields.is_empty() && c.pre.is_empty());
        let c = derive("interval:s:1", &facts());
        assert_eq!(c.attach, "interval:s:1");
    }

    #[test]
    fn hand_written_fields_and_conditions_win() {
        let hand = crate::contracts::schema::parse_file(
            "h.toml",
            r#"
schema = 1
description = "h"
[[contract]]
attach = "tracepoint:test:ev"
summary = "test event"
source = "test.h"
[[contract.field]]
name = "sport"
c_type = "__u16"
size = 2
signed = false
byte_order = "host"
meaning = "local port, host order"
[[contract.pre]]
expr = "args->sport > 0"
why = "bound sockets only"
"#,
        )
        .unwrap();
        let merged = merge(derive("tracepoint:test:ev", &facts()), &[&hand[0]]);
        assert_eq!(merged.origin, ContractOrigin::Merged);
        assert_eq!(merged.summary, "test event");
        let sport = merged.field("sport").unwrap();
        assert!(!sport.derived);
        assert_eq!(sport.meaning, "local port, host order");
        let exprs: Vec<&str> = merged.pre.iter().map(|p| p.expr.as_str()).collect();
        assert!(!exprs.contains(&"args->sport <= 65535"), "{exprs:?}");
        assert!(exprs.contains(&"args->sport > 0"));
        assert!(exprs.contains(&"args->flag <= 1"));
        // Derived fields the hand-written contract does not mention stay.
        assert!(merged.field("err").unwrap().derived);
    }
}
