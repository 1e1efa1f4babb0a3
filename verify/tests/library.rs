//! Issue 5: every example of the shipped library, annotated for its own
//! request by the real `kgent-verifier` (the contracts' assumes, the rules'
//! asserts) and verified against the running kernel's catalog, has no
//! refuted assertion. A refutation means an example is wrong for its
//! request, a rule raises a false alarm, or the executor models bpftrace
//! wrongly; any of them is a bug.
//!
//! Needs the kernel's catalog (tracefs, BTF; root). Skipped only on a
//! machine without tracefs at all.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use kgent_agent::setup::shipped_library;
use kgent_agent::verifier::{
    AnnotationKindData, OriginData, VerdictData, Verifier, VerifierRequest, VerifierResponse,
};
use kgent_catalog::TracefsState;

/// The rules put about 11 asserts on the library today; fewer than this
/// means they stopped firing, and "nothing refuted" would say little.
const MIN_RULE_ASSERTS: usize = 8;

#[derive(Default)]
struct Tally {
    programs: usize,
    spec_assumes: usize,
    rule_asserts: BTreeMap<String, usize>,
    own_annotations: usize,
    proved: usize,
    vacuous: usize,
    refuted: usize,
    unknown: Vec<String>,
}

impl Tally {
    fn rule_asserts(&self) -> usize {
        self.rule_asserts.values().sum()
    }
}

/// Why `response` fails the bar, for people; `None` when it passes.
/// Counts what it finds into `tally` either way.
fn judge(id: &str, response: &VerifierResponse, tally: &mut Tally) -> Option<String> {
    if let Some(e) = &response.error {
        return Some(format!(
            "{id}: {e}\n--- annotated source ---\n{}",
            response.annotated_source
        ));
    }
    let Some(report) = &response.report else {
        return Some(format!("{id}: no report and no error"));
    };
    // Verdicts without the kernel's field types (or the contracts) would
    // not be the ones this test is about.
    if let Some(note) = response
        .notes
        .iter()
        .find(|n| n.contains("without kernel facts") || n.contains("without contracts"))
    {
        return Some(format!("{id}: {note}"));
    }
    let mut asserts = 0;
    for a in &response.annotations {
        match (&a.kind, &a.origin) {
            (AnnotationKindData::Assume, OriginData::Spec { .. }) => tally.spec_assumes += 1,
            (AnnotationKindData::Assert, OriginData::Rule { name }) => {
                *tally.rule_asserts.entry(name.clone()).or_default() += 1;
            }
            (_, OriginData::Request) => tally.own_annotations += 1,
            _ => {}
        }
        if a.kind == AnnotationKindData::Assert {
            asserts += 1;
        }
    }
    let mut problems = String::new();
    if report.assertions.len() != asserts {
        let _ = writeln!(
            problems,
            "{id}: {asserts} asserts annotated but {} verdicts",
            report.assertions.len()
        );
    }
    for a in &report.assertions {
        let origin = response
            .annotation_at(a.line)
            .map_or_else(|| "?".to_string(), |x| x.origin.to_string());
        match &a.verdict {
            VerdictData::Proved => {
                tally.proved += 1;
                tally.vacuous += usize::from(a.vacuous);
            }
            VerdictData::Unknown { reason } => tally
                .unknown
                .push(format!("{id}:{}: {} ({origin}): {reason}", a.line, a.text)),
            VerdictData::Refuted { counterexample } => {
                tally.refuted += 1;
                let why = response
                    .annotation_at(a.line)
                    .map(|x| x.why.as_str())
                    .unwrap_or_default();
                let _ = writeln!(
                    problems,
                    "{id}:{}: REFUTED {} ({origin})\n  why: {why}\n  counterexample: {counterexample}\n  printed first: {:?}",
                    a.line, a.text, counterexample.printed
                );
            }
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{problems}--- annotated source of {id} ---\n{}",
            response.annotated_source
        )
    })
}

#[tokio::test]
async fn every_library_example_verifies_with_no_refuted_assertion() {
    if let TracefsState::Unavailable(reason) = kgent_catalog::tracefs_state() {
        eprintln!(
            "skipped: this machine has no tracefs ({reason}), so there is no kernel catalog \
             to verify the library against"
        );
        return;
    }
    let library = shipped_library().expect("the shipped library loads");
    assert!(!library.is_empty(), "the shipped library is empty");
    // Generous: a debug build, and the first request waits for the process
    // to load the catalog and probe bpftrace's capabilities.
    let verifier = Verifier::at(env!("CARGO_BIN_EXE_kgent-verifier"))
        .with_deadline(Duration::from_secs(60))
        .with_startup_grace(Duration::from_secs(120));

    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for example in library.examples() {
        tally.programs += 1;
        let request =
            VerifierRequest::annotated(example.program.clone(), Some(example.request.clone()));
        match verifier.verify(request).await {
            Ok(response) => failures.extend(judge(&example.id, &response, &mut tally)),
            Err(e) => failures.push(format!("{}: no response: {e}", example.id)),
        }
    }
    verifier.shutdown().await;

    eprintln!(
        "{} programs; annotations: {} spec assumes, {} rule asserts {:?}, {} written in the examples",
        tally.programs,
        tally.spec_assumes,
        tally.rule_asserts(),
        tally.rule_asserts,
        tally.own_annotations
    );
    eprintln!(
        "assertions: {} proved ({} vacuous), {} refuted, {} unknown",
        tally.proved,
        tally.vacuous,
        tally.refuted,
        tally.unknown.len()
    );
    for u in &tally.unknown {
        eprintln!("  unknown: {u}");
    }

    assert!(
        failures.is_empty(),
        "{} of {} examples fail:\n\n{}",
        failures.len(),
        tally.programs,
        failures.join("\n\n")
    );
    assert_eq!(tally.refuted, 0);
    assert!(
        tally.rule_asserts() >= MIN_RULE_ASSERTS,
        "only {} rule asserts over the library (expected at least {MIN_RULE_ASSERTS}): \
         the rules no longer fire, so the test proves little",
        tally.rule_asserts()
    );
    assert!(tally.spec_assumes > 0, "no contract assumed anything");
}
