//! Data-driven verdict tests: `test_data/refuted/*.bt` are wrong programs
//! whose assertion must be refuted with the counterexample their directives
//! describe (replayed in the concrete evaluator), `test_data/proved/*.bt`
//! their fixed versions, whose assertions must be proved (and reachable).
//! See `test_data/README.md` for the directives.

use std::path::{Path, PathBuf};

use kgent_frontend::{parse, StaticFacts};
use kgent_verify::{
    eval_probe, verify, EvalError, EvalOptions, InputValueData, Inputs, RunEnd, VerdictData,
    VerifyOptions,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

fn facts() -> StaticFacts {
    let text = std::fs::read_to_string(data_dir().join("kernel.json")).expect("fixture");
    StaticFacts::from_json(&text).expect("fixture parses")
}

fn programs(kind: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(data_dir().join(kind))
        .expect("test_data directory")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bt"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("readable"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no programs in test_data/{kind}");
    out
}

fn directives<'s>(source: &'s str, key: &str) -> Vec<&'s str> {
    let prefix = format!("// {key}:");
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .map(str::trim)
        .collect()
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(parts[0]) else {
        return false;
    };
    for (i, part) in parts[1..].iter().enumerate() {
        let last = i == parts.len() - 2;
        if last {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn wrong_programs_are_refuted_with_their_counterexample() {
    let facts = facts();
    let mut failures = Vec::new();
    for (name, source) in programs("refuted") {
        let parsed = parse(&source);
        assert!(!parsed.has_errors(), "{name}: {:?}", parsed.diagnostics);
        let report = verify(&source, &parsed.program, &facts, &VerifyOptions::default());
        let Some(result) = report.refuted().next() else {
            failures.push(format!("{name}: nothing refuted: {:?}", report.assertions));
            continue;
        };
        let VerdictData::Refuted { counterexample } = &result.verdict else {
            unreachable!()
        };
        eprintln!("{name}: {result}");
        for want in directives(&source, "cex") {
            let (input, value) = want.split_once('=').expect("cex: NAME = VALUE");
            let (input, value) = (input.trim(), value.trim());
            match counterexample.inputs.iter().find(|i| i.name == input) {
                None => failures.push(format!("{name}: no input {input} in {counterexample}")),
                Some(got) => {
                    let shown = got.shown.split(' ').next().unwrap_or_default();
                    if !glob(value, shown) {
                        failures.push(format!("{name}: {input} = {shown}, expected {value}"));
                    }
                }
            }
        }
        let printed: Vec<&str> = counterexample
            .printed
            .iter()
            .map(|l| l.trim_end_matches('\n'))
            .collect();
        let want: Vec<&str> = directives(&source, "prints");
        if printed.len() != want.len() || !want.iter().zip(&printed).all(|(w, p)| glob(w, p)) {
            failures.push(format!("{name}: printed {printed:?}, expected {want:?}"));
        }
        if directives(&source, "replay").contains(&"no") {
            continue;
        }
        // The counterexample, run concretely, fails the same assertion and prints the same lines.
        let span = result.span();
        let inputs: Inputs = counterexample
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.value.clone()))
            .collect();
        let probe_index = parsed
            .program
            .probes()
            .position(|p| p.body.span.start <= span.start && span.end <= p.body.span.end)
            .expect("assertion inside a probe");
        let options = EvalOptions {
            missing_inputs_are_zero: true,
            ..EvalOptions::default()
        };
        match eval_probe(
            &source,
            &parsed.program,
            probe_index,
            &facts,
            &inputs,
            &options,
        ) {
            Ok(run) => {
                let failed = run.asserts.iter().any(|a| a.span == span && !a.holds);
                if !failed || run.end != RunEnd::Completed {
                    failures.push(format!(
                        "{name}: replay does not fail the assertion: {run:?}"
                    ));
                }
                let replayed: Vec<String> = run.printed.clone();
                if replayed != counterexample.printed {
                    failures.push(format!(
                        "{name}: replay prints {replayed:?}, counterexample says {:?}",
                        counterexample.printed
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: replay failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixed_programs_are_proved() {
    let facts = facts();
    let mut failures = Vec::new();
    for (name, source) in programs("proved") {
        let parsed = parse(&source);
        assert!(!parsed.has_errors(), "{name}: {:?}", parsed.diagnostics);
        let report = verify(&source, &parsed.program, &facts, &VerifyOptions::default());
        assert!(!report.assertions.is_empty(), "{name}: no assertions");
        for a in &report.assertions {
            eprintln!("{name}: {a}");
            if a.verdict != VerdictData::Proved || a.vacuous {
                failures.push(format!("{name}: {a}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_wrong_program_has_a_fixed_version() {
    let proved: Vec<String> = programs("proved").into_iter().map(|(n, _)| n).collect();
    for (name, _) in programs("refuted") {
        assert!(
            proved
                .iter()
                .any(|p| p == &name || p.starts_with(&format!("{name}_"))),
            "refuted/{name}.bt has no proved/{name}.bt"
        );
    }
}

#[test]
fn replay_reports_missing_inputs() {
    let source = "kprobe:f { printf(\"%d\\n\", arg0); }";
    let parsed = parse(source);
    let err = eval_probe(
        source,
        &parsed.program,
        0,
        &facts(),
        &Inputs::new(),
        &EvalOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err, EvalError::MissingInput("arg0".into()));
    let mut inputs = Inputs::new();
    inputs.insert("arg0".into(), InputValueData::Int(u64::MAX));
    let run = eval_probe(
        source,
        &parsed.program,
        0,
        &facts(),
        &inputs,
        &EvalOptions::default(),
    )
    .unwrap();
    assert_eq!(run.printed, ["-1\n"]);
}

#[test]
fn globs() {
    assert!(glob("a*c", "abc"));
    assert!(glob("port *", "port 1"));
    assert!(!glob("port *", "prt 1"));
    assert!(glob("*", "anything"));
    assert!(glob("x", "x"));
}
