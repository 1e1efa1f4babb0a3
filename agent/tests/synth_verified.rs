//! The synthesis loop with the symbolic verifier: the scripted model writes a
//! program that passes the checks but not the request, the real
//! `kgent-verifier` refutes it, and the counterexample goes back to the model.
//!
//! Needs the live kernel's facts (tracefs, BTF) and `kgent-verifier` built in
//! the same target directory (`cargo build --workspace`); without either the
//! tests say so and are skipped.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kgent_agent::synth::verification::Status;
use kgent_agent::synth::{
    Comprehension, EventKind, SynthCache, SynthOptions, SynthOutcome, SynthRequest, SynthResult,
    Synthesizer,
};
use kgent_agent::verifier::{InputValueData, OriginData, Verifier};
use kgent_frontend::KernelFacts;
use kgent_llm::testing::{Script, ScriptedServer};
use kgent_llm::{LlmConfig, LlmProvider, OpenAiProvider};
use kgent_retrieval::{Example, Library, Retriever};

const REQUEST: &str = "show TCP state changes of IPv4 and IPv6 connections";

/// Passes every check, but only IPv4 events reach the printf.
const IPV4_ONLY: &str = "tracepoint:sock:inet_sock_set_state\n/args->family == 2/\n{\n    printf(\"%d -> %d\\n\", args->oldstate, args->newstate);\n}";
const BOTH: &str = "tracepoint:sock:inet_sock_set_state\n/args->family == 2 || args->family == 10/\n{\n    printf(\"%d -> %d\\n\", args->oldstate, args->newstate);\n}";

const STATES: &str = r#"
request = "Show TCP state changes with the old and new state"
description = "Every TCP state transition."
tags = ["network", "tcp"]
probe_types = ["tracepoint"]
min_bpftrace = "0.17"
output = "lines"
program = '''
tracepoint:sock:inet_sock_set_state
/args->protocol == 6/
{
    printf("%d -> %d\n", args->oldstate, args->newstate);
}
'''
"#;

/// `target/<profile>/kgent-verifier`, next to this test's `deps` directory.
fn verifier_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("kgent-verifier");
    path.exists().then_some(path)
}

/// The verifier and live facts, or why the test is skipped.
fn setup() -> Result<(Arc<Verifier>, Arc<dyn KernelFacts + Send + Sync>), String> {
    let facts = common::shared_facts()?;
    let path = verifier_binary().ok_or_else(|| {
        "kgent-verifier is not built next to this test; run `cargo build --workspace` first"
            .to_string()
    })?;
    Ok((Arc::new(Verifier::at(path)), facts.clone()))
}

macro_rules! setup_or_skip {
    ($test:expr) => {
        match setup() {
            Ok(s) => s,
            Err(why) => {
                eprintln!("{}: skipped: {why}", $test);
                return;
            }
        }
    };
}

fn fenced(program: &str) -> String {
    format!("```bpftrace\n{program}\n```")
}

fn retriever() -> Arc<Retriever> {
    let example =
        Example::from_toml("net-tcp-states", STATES, Path::new("<test>")).expect("example");
    Arc::new(Retriever::lexical(
        Library::from_examples(vec![example]).expect("library"),
    ))
}

fn synth(
    server: Option<&ScriptedServer>,
    verifier: Arc<Verifier>,
    facts: Arc<dyn KernelFacts + Send + Sync>,
    cache: Option<SynthCache>,
) -> Synthesizer {
    let provider = server.map(|s| {
        let config = LlmConfig::new(s.base_url(), "scripted-model");
        Arc::new(OpenAiProvider::new(config).expect("config")) as Arc<dyn LlmProvider>
    });
    Synthesizer::new(
        provider,
        retriever(),
        facts,
        SynthOptions {
            backoff: Duration::from_millis(10),
            kernel_fingerprint: "live".into(),
            verifier: Some(verifier),
            cache,
            ..SynthOptions::default()
        },
    )
}

/// Every message of chat request `n`, joined.
fn request_text(server: &ScriptedServer, n: usize) -> String {
    server.requests()[n]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn accepted_attempt(outcome: &SynthOutcome) -> u32 {
    match &outcome.result {
        SynthResult::Accepted { attempt, .. } => *attempt,
        other => panic!("not accepted: {other:#?}\nevents: {:#?}", outcome.events),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refuted_program_is_repaired_with_the_counterexample_in_the_feedback() {
    let (verifier, facts) = setup_or_skip!("refuted_then_repaired");
    // Candidate, comprehension (the program back unchanged), candidate,
    // comprehension with an assertion of the model's own.
    let annotated_both = BOTH.replace(
        "{\n",
        "{\n    assert(args->family == 2 || args->family == 10, \"only the two families asked for are printed\");\n",
    );
    let server = ScriptedServer::start(vec![
        Script::reply(fenced(IPV4_ONLY)),
        Script::reply(fenced(IPV4_ONLY)),
        Script::reply(fenced(BOTH)),
        Script::reply(fenced(&annotated_both)),
    ]);
    let s = synth(Some(&server), verifier, facts, None);
    let outcome = s.run(&SynthRequest::new(REQUEST), &mut |_| {}).await;

    assert_eq!(accepted_attempt(&outcome), 2);
    assert_eq!(server.requests().len(), 4);
    // The second request is the comprehension prompt for the first candidate.
    assert!(request_text(&server, 1).contains("You annotate bpftrace programs"));
    // The third carries the refutation: the rule, the failing assertion and
    // what it means, and the program as verified.
    let feedback = request_text(&server, 2);
    assert!(
        feedback.contains("the verifier refuted 1 assertion"),
        "{feedback}"
    );
    assert!(feedback.contains("rule address-family"), "{feedback}");
    assert!(feedback.contains("assert(10 == 2"), "{feedback}");
    assert!(
        feedback.contains(
            "it fails for every event that reaches it in tracepoint:sock:inet_sock_set_state"
        ),
        "{feedback}"
    );
    assert!(feedback.contains("AF_INET6 = 10"), "{feedback}");

    // The first attempt's verification is in the events, refuted, then a retry.
    let verified: Vec<(u32, Status)> = outcome
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Verified {
                attempt,
                verification,
            } => Some((*attempt, verification.status())),
            _ => None,
        })
        .collect();
    assert_eq!(verified, [(1, Status::Refuted), (2, Status::Proved)]);

    // The accepted program's verification: the model's assertion (origin
    // request) and the rule's, all proved; the spec's assumptions kept.
    let v = outcome.verification.as_ref().expect("verified");
    assert!(matches!(v.comprehension, Comprehension::Model { .. }));
    let origins: Vec<&str> = v.annotations.iter().map(|a| a.origin.label()).collect();
    assert!(origins.contains(&"spec"), "{origins:?}");
    assert!(origins.contains(&"rule"), "{origins:?}");
    assert!(origins.contains(&"request"), "{origins:?}");
    let model_assert = v
        .annotations
        .iter()
        .find(|a| a.origin == OriginData::Request)
        .expect("the model's assertion");
    assert!(model_assert.expr.contains("args->family == 10"));
    let counts = v.counts();
    assert_eq!((counts.refuted, counts.unknown), (0, 0), "{}", v.summary());
    assert!(counts.proved >= 3, "{}", v.summary());
    assert!(outcome.timings.verify > Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuted_on_every_attempt_asks_the_person() {
    let (verifier, facts) = setup_or_skip!("refuted_every_time");
    let server = ScriptedServer::start(vec![
        Script::reply(fenced(IPV4_ONLY)),
        Script::reply(fenced(IPV4_ONLY)),
        Script::reply(fenced(IPV4_ONLY)),
        Script::reply(fenced(IPV4_ONLY)),
    ]);
    let s = synth(Some(&server), verifier, facts, None);
    let req = SynthRequest {
        max_attempts: 2,
        ..SynthRequest::new(REQUEST)
    };
    let outcome = s.run(&req, &mut |_| {}).await;
    let SynthResult::GaveUp { attempts, ask, .. } = &outcome.result else {
        panic!("{:#?}", outcome.result);
    };
    assert_eq!(*attempts, 2);
    assert!(
        ask.contains("the verifier refuted `assert(10 == 2"),
        "{ask}"
    );
    assert!(outcome.verification.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_that_change_the_code_are_not_used() {
    let (verifier, facts) = setup_or_skip!("changed_code");
    let server = ScriptedServer::start(vec![
        Script::reply(fenced(BOTH)),
        // "Annotates" by editing the filter: rejected, rules only.
        Script::reply(fenced(&BOTH.replace("|| args->family == 10", ""))),
    ]);
    let s = synth(Some(&server), verifier, facts, None);
    let outcome = s.run(&SynthRequest::new(REQUEST), &mut |_| {}).await;
    assert_eq!(accepted_attempt(&outcome), 1);
    let v = outcome.verification.as_ref().expect("verified");
    assert!(
        matches!(&v.comprehension, Comprehension::Rejected { reason } if reason.contains("changed the program's code")),
        "{:?}",
        v.comprehension
    );
    assert!(
        v.notes.iter().any(|n| n.contains("not used")),
        "{:?}",
        v.notes
    );
    assert_eq!(v.status(), Status::Proved, "{}", v.summary());
    assert!(v
        .annotations
        .iter()
        .all(|a| a.origin != OriginData::Request));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_working_verifier_the_program_is_accepted_unverified() {
    let Ok(live) = common::shared_facts() else {
        eprintln!("unverified: skipped: no live kernel facts");
        return;
    };
    let server = ScriptedServer::start(vec![Script::reply(fenced(BOTH))]);
    let missing = Arc::new(Verifier::at("/nonexistent/kgent-verifier"));
    let s = synth(Some(&server), missing, live.clone(), None);
    let req = SynthRequest::new(REQUEST);
    let mut comprehension_asked = false;
    let outcome = s
        .run(&req, &mut |e| {
            comprehension_asked |= matches!(e.kind, EventKind::Verifying { by_model: true, .. })
        })
        .await;
    assert_eq!(accepted_attempt(&outcome), 1);
    let v = outcome
        .verification
        .as_ref()
        .expect("a verification record");
    assert_eq!(v.status(), Status::NotVerified);
    assert!(
        v.summary()
            .starts_with("not verified: cannot start the verifier"),
        "{}",
        v.summary()
    );
    // The comprehension call failed (the script had one reply), which is said.
    assert!(comprehension_asked);
    assert!(
        matches!(v.comprehension, Comprehension::Failed { .. }),
        "{:?}",
        v.comprehension
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_examples_are_verified_and_the_cache_keeps_the_verdicts() {
    let (verifier, facts) = setup_or_skip!("offline_verified");
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = SynthCache::new(dir.path());
    let s = synth(None, verifier, facts, Some(cache));
    let req = SynthRequest::new("show TCP state changes");
    let first = s.run(&req, &mut |_| {}).await;
    assert_eq!(accepted_attempt(&first), 0);
    let v = first.verification.clone().expect("verified");
    assert_eq!(v.comprehension, Comprehension::RulesOnly);
    assert!(v.annotations.iter().any(|a| a.origin.label() == "spec"));
    assert_ne!(v.status(), Status::Refuted);
    assert_ne!(v.status(), Status::NotVerified, "{}", v.summary());

    let again = s.run(&req, &mut |_| {}).await;
    assert!(again.from_cache);
    assert_eq!(again.verification, Some(v));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_an_example_refuted_for_the_request_is_not_offered() {
    let (verifier, facts) = setup_or_skip!("offline_refuted");
    let ipv4 = STATES.replace("/args->protocol == 6/", "/args->family == 2/");
    let example = Example::from_toml("net-tcp-states-v4", &ipv4, Path::new("<test>")).expect("ex");
    let retriever = Arc::new(Retriever::lexical(
        Library::from_examples(vec![example]).expect("library"),
    ));
    let s = Synthesizer::new(
        None,
        retriever,
        facts,
        SynthOptions {
            verifier: Some(verifier),
            ..SynthOptions::default()
        },
    );
    let outcome = s.run(&SynthRequest::new(REQUEST), &mut |_| {}).await;
    let SynthResult::GaveUp { ask, .. } = &outcome.result else {
        panic!("{:#?}", outcome.result);
    };
    assert!(ask.contains("does not do what was asked"), "{ask}");
    assert!(ask.contains("AF_INET6") || ask.contains("10 == 2"), "{ask}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_s_own_assertion_is_refuted_with_concrete_inputs() {
    let (verifier, facts) = setup_or_skip!("model_assertion_refuted");
    const LOOSE: &str = "tracepoint:syscalls:sys_exit_read\n/args->ret > 1000/\n{\n    printf(\"%d KB\\n\", args->ret / 1024);\n}";
    const TIGHT: &str = "tracepoint:syscalls:sys_exit_read\n/args->ret > 1048576/\n{\n    printf(\"%d KB\\n\", args->ret / 1024);\n}";
    let assertion = "    assert(args->ret > 1048576, \"only reads over 1 MB are printed\");\n}";
    let annotate = |p: &str| fenced(&p.replacen("\n}", &format!("\n{assertion}"), 1));
    let server = ScriptedServer::start(vec![
        Script::reply(fenced(LOOSE)),
        Script::reply(annotate(LOOSE)),
        Script::reply(fenced(TIGHT)),
        Script::reply(annotate(TIGHT)),
    ]);
    let s = synth(Some(&server), verifier, facts, None);
    let request = "show reads that return more than 1 MB, with the size in KB";
    let outcome = s.run(&SynthRequest::new(request), &mut |_| {}).await;
    assert_eq!(accepted_attempt(&outcome), 2);

    // The counterexample the verifier found for attempt 1 ...
    let refuted = outcome
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Verified {
                attempt: 1,
                verification,
            } => Some(verification.clone()),
            _ => None,
        })
        .expect("attempt 1 verified");
    let (assertion, cex) = refuted.refuted()[0];
    assert_eq!(
        refuted
            .annotation_at(assertion.line)
            .map(|a| a.origin.label()),
        Some("request")
    );
    let ret = cex
        .inputs
        .iter()
        .find(|i| i.name == "args->ret")
        .expect("args->ret in the counterexample");
    // ... is a read the filter lets through and the request does not want ...
    let InputValueData::Int(bits) = ret.value else {
        panic!("not an integer: {ret:?}");
    };
    let value = bits as i64;
    assert!(value > 1000 && value <= 1_048_576, "{ret:?}");
    // ... with the line the program printed for it ...
    assert_eq!(cex.printed, [format!("{} KB\n", value / 1024)]);
    // ... and all of it went back to the model.
    let feedback = request_text(&server, 2);
    assert!(
        feedback.contains(&format!("args->ret = {}", ret.shown)),
        "{feedback}"
    );
    assert!(
        feedback.contains(&format!("before the assertion:\n    {} KB\n", value / 1024)),
        "{feedback}"
    );
    assert!(feedback.contains("only reads over 1 MB"), "{feedback}");
    assert_eq!(
        outcome.verification.as_ref().map(|v| v.status()),
        Some(Status::Proved)
    );
}

#[test]
fn an_answer_made_without_a_verifier_is_not_replayed_once_there_is_one() {
    let Ok(facts) = common::shared_facts() else {
        eprintln!("cache_key_and_verifier: skipped: no live kernel facts");
        return;
    };
    let with = |verifier: Option<Arc<Verifier>>| {
        Synthesizer::new(
            None,
            retriever(),
            facts.clone(),
            SynthOptions {
                verifier,
                ..SynthOptions::default()
            },
        )
    };
    let absent = with(None);
    let present = with(Some(Arc::new(Verifier::at("/nonexistent/kgent-verifier"))));
    let req = SynthRequest::new(REQUEST);
    assert_ne!(absent.cache_key(&req), present.cache_key(&req));
    // Asked not to verify, both give the same answer.
    let unverified = SynthRequest {
        verify: false,
        ..req
    };
    assert_eq!(
        absent.cache_key(&unverified),
        present.cache_key(&unverified)
    );
}
