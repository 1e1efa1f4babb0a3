//! The attach-point contracts (`specs/contracts/`) against this machine's
//! kernel and against the example library:
//!
//! - every field a contract declares exists with the declared C type, width,
//!   signedness, pointer-ness and byte order (tracefs for tracepoints, BTF
//!   for kernel functions);
//! - every precondition, and every condition `derive` makes, parses and
//!   type-checks (`kgent_frontend::check`) as `assume(...)` in a probe of
//!   its attach point;
//! - every attach point the example library uses has a hand-written contract;
//! - annotating every example with its own request gives a program that
//!   parses, checks no worse, strips back to the original, and that a
//!   second pass leaves alone.
//!
//! Kernel checks skip, naming the reason, without tracefs or BTF; contracts
//! marked `unchecked` (kprobes, kfuncs, hardware events on this kernel) and
//! user-space argument types (no BTF) are skipped by name.

#[macro_use]
mod common;

mod contracts {
    use super::common;
    use std::collections::{BTreeMap, BTreeSet};

    use kgent_agent::contracts::{
        annotate, canonical_attach, derive, AnnotationKind, ContractSet, FieldOrder, FieldSpec,
        Origin,
    };
    use kgent_frontend::ast::ProbeKind;
    use kgent_frontend::{
        check, parse, print_program, render_human, strip_annotations, ByteOrder, CheckOptions,
        FieldInfo, KernelFacts, MatchProblem, Severity, StaticFacts,
    };

    fn shipped() -> ContractSet {
        ContractSet::shipped().unwrap_or_else(|e| panic!("{e}"))
    }

    fn provider(attach: &str) -> Option<ProbeKind> {
        ProbeKind::from_provider(attach.split(':').next().unwrap_or_default())
    }

    /// `const char *` -> `char*`: spacing and qualifiers differ between tracefs,
    /// BTF and the kernel source without changing the type.
    fn norm_type(t: &str) -> String {
        t.split_whitespace()
            .filter(|w| !matches!(*w, "const" | "volatile"))
            .collect::<String>()
    }

    /// What differs between a declared field and the kernel's.
    fn mismatch(declared: &FieldSpec, kernel: &FieldInfo) -> Option<String> {
        let mut diffs = Vec::new();
        if norm_type(&declared.c_type) != norm_type(&kernel.c_type) {
            diffs.push(format!(
                "type `{}` (kernel `{}`)",
                declared.c_type, kernel.c_type
            ));
        }
        if declared.size != kernel.size {
            diffs.push(format!("size {} (kernel {})", declared.size, kernel.size));
        }
        if declared.signed != kernel.signed {
            diffs.push(format!(
                "signed {} (kernel {})",
                declared.signed, kernel.signed
            ));
        }
        if declared.pointer != kernel.pointer {
            diffs.push(format!(
                "pointer {} (kernel {})",
                declared.pointer, kernel.pointer
            ));
        }
        let order_ok = match declared.byte_order {
            FieldOrder::Host => kernel.byte_order == ByteOrder::Host,
            FieldOrder::Network => kernel.byte_order == ByteOrder::Network,
            // Wire bytes: an array of one-byte elements.
            FieldOrder::Bytes => {
                kernel.c_type.ends_with(']')
                    && kernel.c_type.contains('[')
                    && (kernel.c_type.starts_with("__u8")
                        || kernel.c_type.starts_with("u8")
                        || kernel.c_type.starts_with("unsigned char")
                        || kernel.c_type.starts_with("char"))
            }
        };
        if !order_ok {
            diffs.push(format!(
                "byte order {:?} (kernel {:?}, `{}`)",
                declared.byte_order, kernel.byte_order, kernel.c_type
            ));
        }
        (!diffs.is_empty()).then(|| diffs.join(", "))
    }

    /// Checks `declared` against the kernel fields of `probe`; problems go to `out`.
    fn compare_fields(
        attach: &str,
        declared: &[FieldSpec],
        kernel: &[FieldInfo],
        positional: bool,
        out: &mut Vec<String>,
    ) {
        for f in declared {
            if f.name == "retval" {
                continue; // return types are not among a probe's fields
            }
            let found = if positional {
                f.name
                    .strip_prefix("arg")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|i| kernel.get(i))
            } else {
                kernel.iter().find(|k| k.name == f.name)
            };
            match found {
                None => out.push(format!("{attach}: no field `{}` in the kernel", f.name)),
                Some(k) => {
                    if let (true, Some(c_name)) = (positional, &f.c_name) {
                        if &k.name != c_name {
                            out.push(format!(
                                "{attach}: {} is `{}` in BTF, declared `{c_name}`",
                                f.name, k.name
                            ));
                        }
                    }
                    if let Some(d) = mismatch(f, k) {
                        out.push(format!("{attach}: field `{}`: {d}", f.name));
                    }
                }
            }
        }
    }

    #[test]
    fn every_declared_field_matches_the_kernel() {
        let facts = live_facts!("every_declared_field_matches_the_kernel");
        let set = shipped();
        let mut problems = Vec::new();
        let mut skipped = Vec::new();
        let mut checked = 0;
        for c in set.contracts() {
            let kind = provider(&c.attach);
            let name = c.attach.split_once(':').map_or("", |(_, r)| r);
            match kind {
                Some(ProbeKind::Tracepoint) if c.is_pattern() => {
                    let found = facts.matching_probes(&c.attach, 10_000);
                    if found.total == 0 {
                        problems.push(format!("{}: matches no tracepoint", c.attach));
                    }
                    for member in &found.names {
                        match facts.probe_fields(member) {
                            Some(k) => compare_fields(member, &c.fields, &k, false, &mut problems),
                            None => problems.push(format!("{member}: no format")),
                        }
                    }
                    checked += 1;
                }
                // kprobes and kfuncs may not attach here, but BTF knows the
                // functions' types.
                Some(
                    kind @ (ProbeKind::Tracepoint
                    | ProbeKind::Kprobe
                    | ProbeKind::Kretprobe
                    | ProbeKind::Fentry
                    | ProbeKind::Fexit),
                ) => {
                    let (key, by_args, missing) = match kind {
                        ProbeKind::Tracepoint => {
                            (c.attach.clone(), false, "no such tracepoint here")
                        }
                        ProbeKind::Kprobe | ProbeKind::Kretprobe => {
                            (format!("kprobe:{name}"), true, "BTF has no such function")
                        }
                        _ => (format!("kfunc:{name}"), false, "BTF has no such function"),
                    };
                    match facts.probe_fields(&key) {
                        Some(k) => {
                            compare_fields(&c.attach, &c.fields, &k, by_args, &mut problems);
                            checked += 1;
                        }
                        None => problems.push(format!("{}: {missing}", c.attach)),
                    }
                }
                Some(ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Usdt) => {
                    let found = facts.matching_probes(&c.attach, 1);
                    match found.problem {
                        Some(MatchProblem::TargetMissing(t)) => {
                            skipped.push(format!("{}: {t} is not installed", c.attach))
                        }
                        Some(MatchProblem::Unknowable(why)) => {
                            skipped.push(format!("{}: {why}", c.attach))
                        }
                        None if found.total == 0 => {
                            problems.push(format!("{}: no such probe in the binary", c.attach))
                        }
                        None => skipped.push(format!(
                            "{}: exists; argument types not checkable (no type information for user space)",
                            c.attach
                        )),
                    }
                }
                _ => {
                    if !c.fields.is_empty() {
                        problems.push(format!("{}: fields on a probe without context", c.attach));
                    }
                }
            }
            if let Some(why) = &c.unchecked {
                skipped.push(format!("{}: not attachable here: {why}", c.attach));
            }
        }
        eprintln!(
            "{checked} contracts compared with the kernel's types; skipped:\n  {}",
            skipped.join("\n  ")
        );
        assert!(checked >= 150, "only {checked} contracts compared");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// `assume(expr)` in a probe of `attach`: the diagnostics the checker has
    /// about the expression (errors anywhere count too).
    fn check_condition(facts: &dyn KernelFacts, attach: &str, expr: &str) -> Option<String> {
        let source = format!("{attach}\n{{\n    assume({expr});\n}}\n");
        let parsed = parse(&source);
        if parsed.has_errors() {
            return Some(render_human(
                &source,
                "contract",
                &parsed.diagnostics,
                false,
            ));
        }
        let start = source.find("assume(").unwrap_or(0) as u32;
        let end = start + expr.len() as u32 + 8;
        let bad: Vec<_> = check(&parsed.program, &source, facts, &CheckOptions::default())
            .into_iter()
            .filter(|d| {
                d.severity == Severity::Error || (d.span.start >= start && d.span.end <= end)
            })
            .collect();
        (!bad.is_empty()).then(|| render_human(&source, "contract", &bad, false))
    }

    #[test]
    fn the_checks_catch_wrong_fields_and_conditions() {
        let facts = live_facts!("the_checks_catch_wrong_fields_and_conditions");
        let tp = "tracepoint:sock:inet_sock_set_state";
        assert_eq!(check_condition(facts, tp, "args->family == 2"), None);
        assert!(check_condition(facts, tp, "args->no_such_field == 2").is_some());
        // bpftrace 0.17 reads tracepoint fields with `->` only.
        assert!(check_condition(facts, tp, "args.family == 2").is_some());

        let kernel = facts.probe_fields(tp).expect("inet_sock_set_state exists");
        let set = shipped();
        let mut sport = set.exact(tp).unwrap().field("sport").unwrap().clone();
        let mut problems = Vec::new();
        compare_fields(
            tp,
            std::slice::from_ref(&sport),
            &kernel,
            false,
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        // Declared in network order, the kernel's host-order __u16 disagrees.
        sport.byte_order = FieldOrder::Network;
        compare_fields(
            tp,
            std::slice::from_ref(&sport),
            &kernel,
            false,
            &mut problems,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("byte order"), "{problems:?}");
    }

    #[test]
    fn every_precondition_type_checks_in_a_probe_of_its_attach_point() {
        let facts = live_facts!("every_precondition_type_checks_in_a_probe_of_its_attach_point");
        let set = shipped();
        let mut problems = Vec::new();
        let mut skipped = Vec::new();
        let mut checked = 0;
        for c in set.contracts() {
            if c.pre.is_empty() {
                continue;
            }
            if let Some(why) = &c.unchecked {
                skipped.push(format!("{}: {why}", c.attach));
                continue;
            }
            // A family contract is checked in a few of its members.
            let members: Vec<String> = if c.is_pattern() {
                facts.matching_probes(&c.attach, 3).names
            } else {
                vec![c.attach.clone()]
            };
            if members.is_empty() {
                problems.push(format!("{}: no member to check in", c.attach));
            }
            for member in members {
                if matches!(
                    provider(&member),
                    Some(ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Usdt)
                ) && facts.matching_probes(&member, 1).total == 0
                {
                    skipped.push(format!("{member}: not on this machine"));
                    continue;
                }
                for p in &c.pre {
                    checked += 1;
                    if let Some(report) = check_condition(facts, &member, &p.expr) {
                        problems.push(format!("{member}: `{}`:\n{report}", p.expr));
                    }
                }
            }
        }
        eprintln!(
            "{checked} preconditions checked; skipped:\n  {}",
            skipped.join("\n  ")
        );
        assert!(checked >= 100, "only {checked} preconditions checked");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Canonical attach points of every example program, with the example ids.
    fn library_attach_points() -> BTreeMap<String, Vec<String>> {
        let lib = kgent_agent::setup::compiled_library().expect("the library loads");
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ex in lib.examples() {
            let parsed = parse(&ex.program);
            for probe in parsed.program.probes() {
                for ap in &probe.attach_points {
                    out.entry(canonical_attach(ap))
                        .or_default()
                        .push(ex.id.clone());
                }
            }
        }
        out
    }

    #[test]
    fn derived_conditions_type_check_for_every_tracepoint_of_the_library() {
        let facts =
            live_facts!("derived_conditions_type_check_for_every_tracepoint_of_the_library");
        let mut problems = Vec::new();
        let mut checked = 0;
        for attach in library_attach_points().keys() {
            if provider(attach) != Some(ProbeKind::Tracepoint) {
                continue;
            }
            let c = derive(attach, facts);
            assert!(!c.fields.is_empty(), "{attach}: no fields derived");
            for p in &c.pre {
                checked += 1;
                if let Some(report) = check_condition(facts, attach, &p.expr) {
                    problems.push(format!("{attach}: `{}`:\n{report}", p.expr));
                }
            }
        }
        eprintln!("{checked} derived conditions checked");
        assert!(checked > 50, "only {checked}");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Probe types whose programs read a context (fields, arguments): those
    /// need a contract of their own; the others are covered by a family one.
    fn has_context(kind: Option<ProbeKind>) -> bool {
        matches!(
            kind,
            Some(
                ProbeKind::Tracepoint
                    | ProbeKind::Kprobe
                    | ProbeKind::Kretprobe
                    | ProbeKind::Fentry
                    | ProbeKind::Fexit
                    | ProbeKind::Uprobe
                    | ProbeKind::Uretprobe
                    | ProbeKind::Usdt
            )
        )
    }

    #[test]
    fn every_attach_point_of_the_example_library_has_a_hand_written_contract() {
        let set = shipped();
        let used = library_attach_points();
        let mut missing = Vec::new();
        let mut exact = 0;
        for (attach, examples) in &used {
            let ok = if has_context(provider(attach)) {
                set.exact(attach).is_some()
            } else {
                !set.applying(attach).is_empty()
            };
            if !ok {
                missing.push(format!("{attach} (used by {})", examples.join(", ")));
            }
            exact += usize::from(set.exact(attach).is_some());
        }
        eprintln!(
            "{} attach points in the library, {exact} with an exact contract; {} hand-written contracts in all",
            used.len(),
            set.len()
        );
        assert!(used.len() > 150, "{} attach points", used.len());
        assert!(
            missing.is_empty(),
            "no contract for:\n{}",
            missing.join("\n")
        );
    }

    /// Every annotation statement of `source` as (line, kind, condition text).
    fn annotation_lines(source: &str) -> BTreeSet<(u32, AnnotationKind)> {
        source
            .lines()
            .enumerate()
            .flat_map(|(i, line)| {
                let mut v = Vec::new();
                let mut rest = line;
                while let Some(at) = rest.find("assume(").or_else(|| rest.find("assert(")) {
                    let kind = if rest[at..].starts_with("assume(") {
                        AnnotationKind::Assume
                    } else {
                        AnnotationKind::Assert
                    };
                    v.push((i as u32 + 1, kind));
                    rest = &rest[at + 7..];
                }
                v
            })
            .collect()
    }

    #[test]
    fn annotating_every_example_parses_and_strips_back_to_the_original() {
        let live = common::facts();
        let static_facts = StaticFacts::default();
        let facts: &dyn KernelFacts = match &live {
            Ok(f) => *f,
            Err(why) => {
                eprintln!("annotating with no kernel facts (only hand-written contracts): {why}");
                &static_facts
            }
        };
        let set = shipped();
        let lib = kgent_agent::setup::compiled_library().expect("the library loads");
        let mut problems = Vec::new();
        let mut by_origin: BTreeMap<String, usize> = BTreeMap::new();
        let mut rule_hits: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut annotated_examples = 0;
        for ex in lib.examples() {
            let parsed = parse(&ex.program);
            assert!(!parsed.has_errors(), "{}: does not parse", ex.id);
            let a = annotate(&ex.request, &ex.program, &parsed.program, facts, &set);
            let reparsed = parse(&a.source);
            if reparsed.has_errors() {
                problems.push(format!(
                    "{}: annotated program does not parse:\n{}\n{}",
                    ex.id,
                    a.source,
                    render_human(&a.source, &ex.id, &reparsed.diagnostics, false)
                ));
                continue;
            }
            // Annotating again adds nothing: what is said is not said twice.
            let twice = annotate(&ex.request, &a.source, &reparsed.program, facts, &set);
            if twice.source != a.source {
                problems.push(format!(
                    "{}: a second pass changed it:\n{}",
                    ex.id, twice.source
                ));
            }
            let stripped = strip_annotations(&a.source, &reparsed.program);
            let again = parse(&stripped);
            if print_program(&again.program) != print_program(&parsed.program) {
                problems.push(format!(
                    "{}: stripping changed the program:\n{stripped}",
                    ex.id
                ));
            }
            // Every annotation listed is on the line it says, and every
            // annotation statement in the text is listed.
            let listed: BTreeSet<(u32, AnnotationKind)> =
                a.annotations.iter().map(|x| (x.line, x.kind)).collect();
            if listed != annotation_lines(&a.source) {
                problems.push(format!(
                    "{}: annotation lines {listed:?} do not match the text:\n{}",
                    ex.id, a.source
                ));
            }
            // Annotations add no error the program did not have.
            if let Ok(live) = &live {
                let before: BTreeSet<&str> = check(
                    &parsed.program,
                    &ex.program,
                    *live,
                    &CheckOptions::default(),
                )
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| d.code)
                .collect();
                let after = check(
                    &reparsed.program,
                    &a.source,
                    *live,
                    &CheckOptions::default(),
                );
                let new: Vec<_> = after
                    .into_iter()
                    .filter(|d| d.severity == Severity::Error && !before.contains(d.code))
                    .collect();
                if !new.is_empty() {
                    problems.push(format!(
                        "{}: annotations add errors:\n{}",
                        ex.id,
                        render_human(&a.source, &ex.id, &new, false)
                    ));
                }
            }
            annotated_examples += usize::from(!a.annotations.is_empty());
            for x in &a.annotations {
                let key = match &x.origin {
                    Origin::Spec { .. } => "spec".to_string(),
                    Origin::Rule { name } => {
                        rule_hits
                            .entry(name.clone())
                            .or_default()
                            .push(format!("{}: {}", ex.id, x.expr));
                        format!("rule {name}")
                    }
                    Origin::Request => "request".to_string(),
                };
                *by_origin.entry(key).or_default() += 1;
            }
        }
        eprintln!(
            "{} examples, {annotated_examples} annotated; annotations by origin: {by_origin:?}",
            lib.len()
        );
        for (rule, hits) in &rule_hits {
            eprintln!("rule {rule}:\n  {}", hits.join("\n  "));
        }
        assert!(
            annotated_examples > lib.len() / 2,
            "{annotated_examples} annotated"
        );
        assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    }

    #[test]
    fn every_contract_names_its_context_consistently() {
        // Family contracts and exact ones agree on the fields they share, so
        // the merged view never mixes two meanings of one field's type.
        let set = shipped();
        let mut problems = Vec::new();
        for c in set.contracts().iter().filter(|c| !c.is_pattern()) {
            for fam in set
                .applying(&c.attach)
                .into_iter()
                .filter(|f| f.is_pattern())
            {
                for f in &c.fields {
                    if let Some(g) = fam.field(&f.name) {
                        let same = (norm_type(&f.c_type), f.size, f.signed, f.byte_order)
                            == (norm_type(&g.c_type), g.size, g.signed, g.byte_order);
                        if !same {
                            problems.push(format!(
                                "{}: field `{}` differs from {}",
                                c.attach, f.name, fam.attach
                            ));
                        }
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
