//! The synthesis loop's own cost per attempt, LLM time excluded: prompt
//! building, program extraction, parse and check (plus retrieval, once per
//! run). Uses the real example library (BM25), the checker's kernel fixture,
//! and an in-process provider that answers at once, so all the time measured
//! is the loop's. Prints figures; asserts nothing. Target: < 50 ms per attempt.
//!
//! cargo run --release -p kgent-agent --example synth_overhead [-- RUNS] [--show-prompt]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kgent_agent::synth::{build_messages, SynthOptions, SynthRequest, Synthesizer};
use kgent_frontend::{check, parse, CheckOptions, KernelFacts, StaticFacts};
use kgent_llm::{
    extract_program, ChatCompletion, ChatMessage, ChatOptions, LlmError, LlmProvider, Usage,
};
use kgent_retrieval::{Library, Retriever};

const WRONG: &str = "Here you go:\n\n```bpftrace\ntracepoint:syscalls:sys_enter_opennat\n/comm == \"bash\"/\n{\n    printf(\"%-7d %s\\n\", pid, str(args->filename));\n}\n```\n";
const GOOD: &str = "Fixed:\n\n```bpftrace\ntracepoint:syscalls:sys_enter_openat\n/comm == \"bash\"/\n{\n    printf(\"%-7d %s\\n\", pid, str(args->filename));\n}\n```\n";

/// Answers WRONG, then GOOD, alternately, at once.
struct Instant2 {
    calls: AtomicUsize,
}

#[async_trait]
impl LlmProvider for Instant2 {
    async fn chat(
        &self,
        _messages: &[ChatMessage],
        _opts: &ChatOptions,
        on_token: &mut (dyn for<'t> FnMut(&'t str) + Send),
    ) -> Result<ChatCompletion, LlmError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let text = [WRONG, GOOD][n % 2];
        for piece in text.split_inclusive(char::is_whitespace) {
            on_token(piece);
        }
        Ok(ChatCompletion {
            text: text.to_string(),
            model: "instant".into(),
            usage: Usage::default(),
            finish_reason: None,
            elapsed: Duration::ZERO,
        })
    }

    fn describe(&self) -> String {
        "instant in-process provider".into()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: u32 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(50)
        .max(1);
    let show_prompt = args.iter().any(|a| a == "--show-prompt");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let library = Library::load(root.join("../specs/examples")).expect("example library");
    let n_examples = library.len();
    let retriever = Arc::new(Retriever::lexical(library));
    let load = started.elapsed();
    let text = std::fs::read_to_string(root.join("frontend/test_data/checker/kernel.json"))
        .expect("fixture");
    let facts: Arc<dyn KernelFacts + Send + Sync> =
        Arc::new(StaticFacts::from_json(&text).expect("fixture parses"));
    println!(
        "library: {n_examples} examples, loaded + BM25 index in {:.1} ms (once per process)",
        ms(load)
    );

    let request = "show which files bash opens";
    let req = SynthRequest::new(request);
    if show_prompt {
        let hits = retriever.search(request, 3);
        let examples: Vec<_> = hits.iter().filter_map(|h| retriever.example(h)).collect();
        for m in build_messages(&req, &examples, facts.as_ref()) {
            println!("----- {} -----\n{}", m.role.as_str(), m.content);
        }
        println!("-----");
    }

    // The pieces, one at a time.
    let mut retrieval = Duration::ZERO;
    let mut prompt = Duration::ZERO;
    let mut extract = Duration::ZERO;
    let mut checking = Duration::ZERO;
    let mut prompt_chars = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let hits = retriever.search(request, 3);
        retrieval += t.elapsed();
        let examples: Vec<_> = hits.iter().filter_map(|h| retriever.example(h)).collect();
        let t = Instant::now();
        let messages = build_messages(&req, &examples, facts.as_ref());
        prompt += t.elapsed();
        prompt_chars = messages.iter().map(|m| m.content.len()).sum();
        let t = Instant::now();
        let program = extract_program(WRONG).expect("a program");
        extract += t.elapsed();
        let t = Instant::now();
        let parsed = parse(&program);
        let diagnostics = check(
            &parsed.program,
            &program,
            facts.as_ref(),
            &CheckOptions::default(),
        );
        checking += t.elapsed();
        assert!(!diagnostics.is_empty());
    }
    let per = |d: Duration| ms(d) / f64::from(runs);
    println!("per run of {runs}:");
    println!("  retrieval (once per request)   {:8.3} ms", per(retrieval));
    println!(
        "  prompt building                {:8.3} ms  ({prompt_chars} characters)",
        per(prompt)
    );
    println!("  program extraction             {:8.3} ms", per(extract));
    println!("  parse + check                  {:8.3} ms", per(checking));

    // The whole loop: two attempts (a wrong attach point, then the fix).
    let synth = Synthesizer::new(
        Some(Arc::new(Instant2 {
            calls: AtomicUsize::new(0),
        })),
        retriever,
        facts,
        SynthOptions::default(),
    );
    let mut overhead = Duration::ZERO;
    let mut attempts = 0;
    let mut worst = Duration::ZERO;
    for _ in 0..runs {
        let outcome = synth.run(&req, &mut |_| {}).await;
        assert!(outcome.program().is_some(), "{:?}", outcome.result);
        overhead += outcome.timings.overhead;
        attempts += outcome.attempts;
        worst = worst.max(outcome.timings.overhead / outcome.attempts.max(1));
    }
    println!(
        "whole loop, {runs} runs of {} attempts: overhead {:.3} ms per attempt on average, \
         {:.3} ms worst (LLM time excluded; target < 50 ms)",
        attempts / runs,
        ms(overhead) / f64::from(attempts),
        ms(worst)
    );
}
