//! `kgent synth`: the synthesis loop from a terminal. A plain-English request
//! in; the checked program on stdout (so `kgent synth "..." > x.bt` works),
//! progress and notes on stderr; or one JSON object with `--json`.
//!
//! Exit status: 0 a program was accepted, 1 none was (the loop gave up, the
//! library has no example, the LLM cannot be used, the machine cannot be
//! read), 2 usage or configuration error, 130 interrupted.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kgent_agent::setup::{self, LlmChoice};
use kgent_agent::synth::trace::{describe, one_line, pinned_cell, provenance_text};
use kgent_agent::synth::{
    DiagnosticRecord, EventKind, SynthCache, SynthEvent, SynthOptions, SynthOutcome, SynthRequest,
    SynthResult, Synthesizer,
};
use kgent_agent::verifier::Verifier;
use kgent_catalog::Privileges;
use serde_json::{json, Value};

/// Exit status for usage and configuration errors (clap uses it too).
const USAGE: u8 = 2;
/// Exit status after Ctrl-C, as shells report SIGINT.
const INTERRUPTED: u8 = 130;

/// `kgent synth` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct SynthArgs {
    /// What to trace, in plain English, or `-` to read it from standard input.
    pub request: String,
    /// One JSON object on stdout instead of the program.
    #[arg(long)]
    pub json: bool,
    /// Answer from the verified example library only, even with an LLM configured.
    #[arg(long)]
    pub offline: bool,
    /// Ask this model instead of the configured one.
    #[arg(long, value_name = "NAME", conflicts_with = "offline")]
    pub model: Option<String>,
    /// Model attempts before asking for a hint.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,
    /// What the model should know (repeatable), e.g. the tracepoint to use.
    #[arg(long = "hint", value_name = "TEXT")]
    pub hints: Vec<String>,
    /// Also load the program in the kernel (verifier and attach, detached at
    /// once) before accepting it; needs root.
    #[arg(long)]
    pub load: bool,
    /// Neither replay a stored answer nor store this one.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not annotate the program and prove its assertions (kgent-verifier).
    #[arg(long)]
    pub no_verify: bool,
}

/// Runs `kgent synth` to the end.
pub fn main(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let clock = Instant::now();
    let request = match read_request(&args.request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kgent synth: {e}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let req = SynthRequest {
        request,
        hints: args
            .hints
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect(),
        max_attempts: args.retries.max(1),
        offline: args.offline,
        load_check: args.load,
        verify: !args.no_verify,
    };
    // One thread, like the kernel: the load check's bpftrace gets
    // PR_SET_PDEATHSIG, which fires when the thread that spawned it exits.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(run(&args, req, clock));
    // Do not wait for blocking-pool work (capability probing) at exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(code)
}

/// The request text: the argument, or standard input for `-`; never empty.
fn read_request(arg: &str) -> Result<String, String> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read the request from standard input: {e}"))?;
        s
    } else {
        arg.to_string()
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err("the request is empty: say what to trace, e.g. \
             kgent synth \"show which processes open files under /etc\""
            .to_string());
    }
    Ok(text)
}

async fn run(args: &SynthArgs, req: SynthRequest, clock: Instant) -> ExitCode {
    // An error here (no signal handler) must not look like an interrupt.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        code = synth(args, &req, clock) => code,
        _ = ctrl_c => {
            // Dropping the loop dropped a load check's run (which kills its
            // process group); this catches anything else still registered.
            kgent_agent::runner::kill_all_runs();
            if args.json {
                print_json(&json!({
                    "request": req.request,
                    "ok": false,
                    "result": "interrupted",
                    "message": "interrupted: nothing was attached",
                }));
            }
            eprintln!("kgent synth: interrupted; nothing was attached");
            ExitCode::from(INTERRUPTED)
        }
    }
}

/// A failure before the loop could start: on stderr, and as JSON when asked.
fn setup_failure(args: &SynthArgs, req: &SynthRequest, result: &str, message: &str) {
    eprintln!("kgent synth: {message}");
    if args.json {
        print_json(&json!({
            "request": req.request,
            "ok": false,
            "result": result,
            "message": message,
        }));
    }
}

async fn synth(args: &SynthArgs, req: &SynthRequest, clock: Instant) -> ExitCode {
    let choice = if args.offline {
        LlmChoice::Offline
    } else {
        LlmChoice::Configured
    };
    let provider = match setup::provider_for(&choice, args.model.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            setup_failure(
                args,
                req,
                "config_error",
                &format!("{e}\nFix the LLM configuration, or re-run with --offline to answer from the verified example library."),
            );
            return ExitCode::from(USAGE);
        }
    };
    let mut progress = Progress::new(clock, !args.json);

    // The retriever may build its vector index the first time: off the
    // runtime thread, alongside the catalog.
    // The same library (shipped + approved) and embedder as the notebook.
    let retrieval = tokio::task::spawn_blocking(|| {
        setup::session_retrieval().map(|r| (r.retriever, r.summary, r.shipped_version))
    });
    let knowledge = crate::knowledge::Knowledge::new();
    let setup = async { tokio::join!(retrieval, knowledge.catalog(), knowledge.caps()) };
    tokio::pin!(setup);
    // Usually well under a second; the first run on a machine builds the
    // vector index, and a silent wait then looks like a hang.
    let (retrieval, catalog, caps) = tokio::select! {
        done = &mut setup => done,
        _ = tokio::time::sleep(Duration::from_secs(1)) => {
            progress.line("preparing: the example library's vector index is built on the first run (once per library version)");
            setup.await
        }
    };
    let (retriever, summary, library_version) =
        match retrieval.unwrap_or_else(|e| Err(format!("building the retriever failed: {e}"))) {
            Ok(r) => r,
            Err(e) => {
                setup_failure(args, req, "setup_error", &e);
                return ExitCode::FAILURE;
            }
        };
    let catalog = match catalog {
        Ok(c) => c,
        Err(e) => {
            setup_failure(
                args,
                req,
                "setup_error",
                &format!("cannot read the kernel's probe catalog ({e}); programs cannot be checked without it (`kgent doctor` says what is missing)"),
            );
            return ExitCode::FAILURE;
        }
    };

    let mut check = kgent_frontend::CheckOptions::default();
    // Which builtins and syntax exist depends on the bpftrace that will run it.
    if let Some(info) = &caps.bpftrace {
        check.version = info.major_minor;
    }
    let bpftrace = match &caps.bpftrace {
        Some(info) => info.path.clone(),
        None => tokio::task::spawn_blocking(kgent_catalog::find_bpftrace)
            .await
            .ok()
            .flatten()
            .map(|i| i.path)
            // The load check then reports `bpftrace-missing` as a diagnostic.
            .unwrap_or_else(|| "bpftrace".into()),
    };
    let options = SynthOptions {
        check,
        bpftrace,
        kernel_fingerprint: setup::kernel_fingerprint(&caps),
        cache: if args.no_cache {
            None
        } else {
            SynthCache::open_default()
        },
        cache_library_version: Some(library_version),
        verifier: if args.no_verify {
            None
        } else {
            match Verifier::locate() {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    progress.note(&format!("the program will not be verified: {e}"));
                    None
                }
            }
        },
        ..Default::default()
    };

    let model = match (&provider, args.offline) {
        (Some(p), false) => p.describe(),
        _ => "none (offline)".to_string(),
    };
    let search = match &summary.embedder {
        Some(id) => format!("keywords + vectors ({id})"),
        None => "keywords".to_string(),
    };
    progress.line(&format!(
        "ready: {} verified examples, search by {search}; model: {model}; kernel {}, bpftrace {}",
        summary.examples,
        caps.kernel_release,
        caps.bpftrace
            .as_ref()
            .map_or("not found", |b| b.version.as_str()),
    ));
    if let Some(why) = &summary.degraded {
        progress.note(why);
    }
    if provider.is_none() && !args.offline {
        progress.note(
            "no LLM is configured (KGENT_LLM_BASE_URL and KGENT_LLM_MODEL, or ~/.config/kgent/llm.toml): \
             answering from the verified example library",
        );
    }
    if args.load && !Privileges::current().can_trace() {
        progress.note("--load needs the privilege to trace (root): the load check will fail");
    }

    let facts = Arc::new(kgent_agent::facts::CatalogFacts::new(catalog, Some(caps)));
    let synthesizer = Synthesizer::new(provider, retriever, facts, options);
    let outcome = {
        let mut on_event = |e: SynthEvent| progress.event(&e);
        synthesizer.run(req, &mut on_event).await
    };
    progress.flush_tokens();
    report(args, req, &outcome, &mut progress)
}

/// Prints the result: the program on stdout (or the JSON object), notes and
/// questions on stderr; returns the exit status.
fn report(
    args: &SynthArgs,
    req: &SynthRequest,
    outcome: &SynthOutcome,
    progress: &mut Progress,
) -> ExitCode {
    if let Some(e) = &outcome.cache_error {
        progress.note(&format!(
            "the answer could not be cached ({e}); a re-run will ask again"
        ));
    }
    if args.json {
        print_json(&json_outcome(req, outcome));
    }
    match &outcome.result {
        SynthResult::Accepted {
            program,
            provenance,
            warnings,
            ..
        } => {
            if !args.json {
                for w in warnings {
                    eprintln!("{}", one_line(w));
                }
                if let Some(why) = &outcome.weak_match {
                    eprintln!(
                        "note: the nearest example is a weak match ({why}); the program is probably \
                         not what was asked for: re-run with --hint, or configure an LLM"
                    );
                }
                if !outcome.not_applied.is_empty() {
                    eprintln!(
                        "note: the example could not take: {}",
                        outcome.not_applied.join("; ")
                    );
                }
                if let Some(v) = &outcome.verification {
                    eprintln!("verification: {}", v.summary());
                    for n in &v.notes {
                        eprintln!("note: {n}");
                    }
                }
                // The header is the notebook's pinned cell without its `%%bpftrace`
                // line, so the file says where it came from.
                let pinned = pinned_cell(&req.request, provenance, program);
                print!("{}", pinned.split_once('\n').map_or("", |(_, body)| body));
            }
            ExitCode::SUCCESS
        }
        SynthResult::GaveUp { ask, .. } => {
            if !args.json {
                eprintln!("\n{}", ask.trim_end());
                eprintln!(
                    "\nRe-run with a hint, e.g. --hint \"use tracepoint:syscalls:sys_enter_openat\", \
                     or with --offline for the nearest verified example."
                );
            }
            ExitCode::FAILURE
        }
        SynthResult::LlmUnavailable { message, .. } => {
            if !args.json {
                eprintln!("kgent synth: the model cannot be used: {message}");
                eprintln!(
                    "Re-run with --offline to answer from the verified example library, \
                     or fix the LLM configuration (KGENT_LLM_BASE_URL, KGENT_LLM_MODEL, ~/.config/kgent/llm.toml)."
                );
            }
            ExitCode::FAILURE
        }
        SynthResult::NoExample { message } => {
            if !args.json {
                eprintln!("kgent synth: {message}");
                eprintln!(
                    "Re-run with --hint naming the event to trace, or configure an LLM \
                     (KGENT_LLM_BASE_URL and KGENT_LLM_MODEL)."
                );
            }
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// The `--json` object.
fn json_outcome(req: &SynthRequest, outcome: &SynthOutcome) -> Value {
    let ms = |d: Duration| d.as_millis() as u64;
    let t = &outcome.timings;
    let mut v = json!({
        "request": req.request,
        "hints": req.hints,
        "ok": outcome.program().is_some(),
        "result": Value::Null,
        "program": outcome.program(),
        "provenance": Value::Null,
        "provenance_text": Value::Null,
        "attempts": outcome.attempts,
        "from_cache": outcome.from_cache,
        "usage": outcome.usage,
        "cache_key": outcome.cache_key,
        "cache_error": outcome.cache_error,
        "weak_match": outcome.weak_match,
        "not_applied": outcome.not_applied,
        "warnings": [],
        "verification": outcome.verification,
        "events": coalesce_tokens(&outcome.events),
        "timings_ms": {
            "total": ms(t.total),
            "llm": ms(t.llm),
            "backoff": ms(t.backoff),
            "load_check": ms(t.load_check),
            "verify": ms(t.verify),
            "overhead": ms(t.overhead),
        },
        "message": Value::Null,
        "ask": Value::Null,
    });
    match &outcome.result {
        SynthResult::Accepted {
            provenance,
            attempt,
            warnings,
            ..
        } => {
            v["result"] = "accepted".into();
            v["provenance"] = serde_json::to_value(provenance).unwrap_or_default();
            v["provenance_text"] = provenance_text(provenance).into();
            v["accepted_attempt"] = (*attempt).into();
            v["warnings"] = records(warnings);
        }
        SynthResult::GaveUp {
            last_diagnostics,
            ask,
            ..
        } => {
            v["result"] = "gave_up".into();
            v["ask"] = ask.as_str().into();
            v["message"] = ask.lines().next().unwrap_or("").into();
            v["last_diagnostics"] = records(last_diagnostics);
        }
        SynthResult::LlmUnavailable { message, .. } => {
            v["result"] = "llm_unavailable".into();
            v["message"] = message.as_str().into();
        }
        SynthResult::NoExample { message } => {
            v["result"] = "no_example".into();
            v["message"] = message.as_str().into();
        }
    }
    v
}

fn records(r: &[DiagnosticRecord]) -> Value {
    serde_json::to_value(r).unwrap_or_default()
}

/// `events` with each run of tokens (one model reply) merged into one event.
fn coalesce_tokens(events: &[SynthEvent]) -> Vec<SynthEvent> {
    let mut out: Vec<SynthEvent> = Vec::new();
    for e in events {
        if let (EventKind::Token(t), Some(prev)) = (&e.kind, out.last_mut()) {
            if let EventKind::Token(text) = &mut prev.kind {
                text.push_str(t);
                continue;
            }
        }
        out.push(e.clone());
    }
    out
}

/// Progress lines on stderr, each with the time since the command started.
struct Progress {
    clock: Instant,
    enabled: bool,
    attempt: u32,
    tokens: u64,
    chars: usize,
}

impl Progress {
    fn new(clock: Instant, enabled: bool) -> Progress {
        Progress {
            clock,
            enabled,
            attempt: 0,
            tokens: 0,
            chars: 0,
        }
    }

    fn line(&self, text: &str) {
        if self.enabled {
            eprintln!("[{:>5} ms] {text}", self.clock.elapsed().as_millis());
        }
    }

    fn note(&self, text: &str) {
        self.line(&format!("note: {text}"));
    }

    fn event(&mut self, e: &SynthEvent) {
        if let EventKind::Token(t) = &e.kind {
            // Counted, not echoed: the program comes once, checked, at the end.
            self.tokens += 1;
            self.chars += t.len();
            return;
        }
        self.flush_tokens();
        if let EventKind::Prompting { attempt } = e.kind {
            self.attempt = attempt;
        }
        if let Some(text) = describe(e) {
            self.line(&text);
        }
        // `describe` names only the first error; the rest matter when fixing by hand.
        if let EventKind::Diagnostics { diagnostics, .. } = &e.kind {
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            if errors > 1 || (errors == 1 && diagnostics.len() > 1) {
                for d in diagnostics {
                    self.line(&format!("    {}", one_line(d)));
                }
            }
        }
    }

    /// The token count of the reply that just ended, if one streamed.
    fn flush_tokens(&mut self) {
        if self.tokens > 0 {
            self.line(&format!(
                "attempt {}: the model replied ({} tokens, {} characters)",
                self.attempt, self.tokens, self.chars
            ));
        }
        self.tokens = 0;
        self.chars = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_merged_per_reply() {
        let ev = |at_ms, kind| SynthEvent { at_ms, kind };
        let events = vec![
            ev(0, EventKind::Prompting { attempt: 1 }),
            ev(1, EventKind::Token("a ".into())),
            ev(2, EventKind::Token("b".into())),
            ev(3, EventKind::Prompting { attempt: 2 }),
            ev(4, EventKind::Token("c".into())),
        ];
        let merged = coalesce_tokens(&events);
        assert_eq!(merged.len(), 4);
        assert_eq!(merged[1].kind, EventKind::Token("a b".into()));
        assert_eq!(merged[1].at_ms, 1);
        assert_eq!(merged[3].kind, EventKind::Token("c".into()));
    }

    #[test]
    fn an_empty_request_is_a_usage_error() {
        assert!(read_request("   ").is_err());
        assert_eq!(read_request(" trace opens ").unwrap(), "trace opens");
    }
}
