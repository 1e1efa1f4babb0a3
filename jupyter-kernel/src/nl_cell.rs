//! A natural-language cell: the synthesis loop of `kgent_agent::synth`, shown
//! as one display that updates in place with each step, ending with the
//! program (highlighted), the history of attempts and how to attach it. An
//! accepted program is offered as a new `%%bpftrace` cell below
//! (`set_next_input`), headed by the request and where the program came from.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jupyter_protocol::{
    ExecutionCount, JupyterMessage, Media, MediaType, Payload, StreamContent, UpdateDisplayData,
};
use kgent_agent::setup::{self, LlmChoice};
use kgent_agent::synth::trace::{describe, one_line, pinned_cell, provenance_text};
use kgent_agent::synth::verification::Status;
use kgent_agent::synth::{
    DiagnosticRecord, EventKind, SynthCache, SynthEvent, SynthOptions, SynthOutcome, SynthRequest,
    SynthResult, Synthesizer, Verification,
};
use kgent_catalog::Privileges;
use kgent_magics::{BpftraceOptions, NlOptions};
use kgent_output::render::escape;
use tokio::sync::{mpsc, watch};

use crate::execute::{display, CellOutcome, RED, RESET};
use crate::server::Kernel;
use crate::verification_view::{
    annotated_html, annotated_plain, comprehension_text, verdict_text, verification_headline,
};
use crate::{highlight, trace_cell, verification_view};

/// Streamed tokens redraw the display at most this often.
const TOKEN_REDRAW: Duration = Duration::from_millis(150);
/// Lines of the model's reply shown while it streams.
const STREAM_TAIL_LINES: usize = 12;

pub struct NlCell<'a> {
    pub kernel: &'a Kernel,
    pub parent: &'a JupyterMessage,
    pub count: ExecutionCount,
    pub options: &'a NlOptions,
    pub request: &'a str,
    pub silent: bool,
}

pub async fn run(cell: NlCell<'_>, mut interrupts: watch::Receiver<u64>) -> CellOutcome {
    let NlCell {
        kernel,
        parent,
        options,
        request,
        ..
    } = cell;
    if request.trim().is_empty() {
        return CellOutcome::error(
            "UsageError",
            "the %%nl cell has no request",
            vec![format!(
                "{RED}UsageError{RESET}: write what you want to see below the %%nl line, e.g.\n    show which processes open files under /etc, with the path"
            )],
        );
    }
    let display_id = format!("kgent-nl-{}", uuid::Uuid::new_v4());
    let mut progress = Progress::new(request, options.run);
    display(kernel, parent, progress.media(), Some(display_id.clone())).await;

    let synth = match prepare(kernel, options).await {
        Ok(s) => s,
        Err(outcome) => {
            progress.fail_setup(&outcome);
            update(kernel, parent, &display_id, progress.media()).await;
            return outcome;
        }
    };
    let req = SynthRequest {
        request: request.trim().to_string(),
        hints: options.hint.clone(),
        max_attempts: options.retries.unwrap_or(3).max(1),
        offline: options.offline,
        load_check: synth.load_check,
        verify: !options.no_verify,
    };
    if let Some(why) = &synth.unverified {
        progress.unverified = Some(why.clone());
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<SynthEvent>();
    let synthesizer = synth.synthesizer.clone();
    let task_req = req.clone();
    let mut task = tokio::spawn(async move {
        let mut on_event = move |e: SynthEvent| {
            let _ = tx.send(e);
        };
        synthesizer.run(&task_req, &mut on_event).await
    });
    interrupts.borrow_and_update();
    let mut last_draw = Instant::now();
    let mut events_open = true;
    // Tokens that arrived since the last redraw; drawn at the latest TOKEN_REDRAW later.
    let mut undrawn = false;
    let redraw = tokio::time::sleep(TOKEN_REDRAW);
    tokio::pin!(redraw);
    let outcome: SynthOutcome = loop {
        tokio::select! {
            biased;
            changed = interrupts.changed() => {
                if changed.is_ok() {
                    // Dropping the loop kills a load check's bpftrace with it.
                    task.abort();
                    while let Ok(e) = rx.try_recv() {
                        progress.apply(&e);
                    }
                    progress.interrupted();
                    update(kernel, parent, &display_id, progress.media()).await;
                    return CellOutcome::error(
                        "Interrupted",
                        "synthesis stopped by the user",
                        vec![format!("{RED}Interrupted{RESET}: synthesis stopped; nothing was attached. Run the cell again to start over.")],
                    );
                }
            }
            event = rx.recv(), if events_open => {
                // Closed when the task ends; the task's branch then finishes the loop.
                let Some(event) = event else {
                    events_open = false;
                    continue;
                };
                let is_token = matches!(event.kind, EventKind::Token(_));
                progress.apply(&event);
                if !is_token || last_draw.elapsed() >= TOKEN_REDRAW {
                    update(kernel, parent, &display_id, progress.media()).await;
                    last_draw = Instant::now();
                    undrawn = false;
                } else if !undrawn {
                    undrawn = true;
                    redraw.as_mut().reset(tokio::time::Instant::from_std(last_draw + TOKEN_REDRAW));
                }
            }
            _ = &mut redraw, if undrawn => {
                update(kernel, parent, &display_id, progress.media()).await;
                last_draw = Instant::now();
                undrawn = false;
            }
            done = &mut task => {
                while let Ok(e) = rx.try_recv() {
                    progress.apply(&e);
                }
                match done {
                    Ok(outcome) => break outcome,
                    Err(e) => {
                        progress.steps.push(Step::fail(progress.last_ms(), "internal error".into()));
                        update(kernel, parent, &display_id, progress.media()).await;
                        return CellOutcome::error(
                            "InternalError",
                            &format!("the synthesis task failed: {e}"),
                            vec![format!("{RED}InternalError{RESET}: the synthesis task failed: {e}. Please report this.")],
                        );
                    }
                }
            }
        }
    };
    if let Some(e) = &outcome.cache_error {
        let note =
            format!("kgent: the answer could not be cached ({e}); a re-run will ask again\n");
        kernel
            .publish(StreamContent::stderr(&note).as_child_of(parent))
            .await;
    }
    progress.finish(&outcome);
    update(kernel, parent, &display_id, progress.media()).await;

    match &outcome.result {
        SynthResult::Accepted {
            program,
            provenance,
            ..
        } => {
            let pinned = pinned_cell(&req.request, provenance, program);
            if options.run {
                // `--run` is the person's approval given up front.
                let body = pinned.split_once('\n').map_or("", |(_, b)| b).to_string();
                kernel.assistant.learn(&req.request, &body, provenance_text(provenance));
                let run_options = BpftraceOptions {
                    timeout: options.timeout,
                    ..Default::default()
                };
                return trace_cell::run(
                    trace_cell::TraceCell {
                        kernel,
                        parent,
                        count: cell.count,
                        options: &run_options,
                        program: &body,
                        first_line: 1,
                        silent: cell.silent,
                    },
                    interrupts,
                )
                .await;
            }
            let mut payload = Vec::new();
            if kernel.assistant.first_offer(&outcome.cache_key) {
                payload.push(Payload::SetNextInput {
                    text: pinned,
                    replace: false,
                });
            }
            CellOutcome::Ok {
                payload,
                summary: format!("proposed: {}", provenance_text(provenance)),
            }
        }
        SynthResult::GaveUp { ask, .. } => {
            let mut tb = vec![format!(
                "{RED}No program passed the checks{RESET}; Kgent needs a hint."
            )];
            tb.extend(ask.lines().map(str::to_string));
            tb.push(String::new());
            tb.push(
                "Re-run with a hint, e.g. %%nl --hint \"use tracepoint:syscalls:sys_enter_openat\""
                    .to_string(),
            );
            CellOutcome::error("NeedsHint", first_line(ask), tb)
        }
        SynthResult::LlmUnavailable { message, .. } => CellOutcome::error(
            "LlmUnavailable",
            message,
            vec![
                format!("{RED}The model cannot be used{RESET}: {message}"),
                "%llm shows the provider; `%llm offline` or `%%nl --offline` answers from the verified example library.".to_string(),
            ],
        ),
        SynthResult::NoExample { message } => CellOutcome::error(
            "NoExample",
            message,
            vec![format!("{RED}No example fits{RESET}: {message}")],
        ),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

async fn update(kernel: &Kernel, parent: &JupyterMessage, display_id: &str, media: Media) {
    kernel
        .publish(UpdateDisplayData::new(media, display_id).as_child_of(parent))
        .await;
}

struct Prepared {
    synthesizer: Arc<Synthesizer>,
    load_check: bool,
    /// Why candidates cannot be verified (no `kgent-verifier`), when asked to.
    unverified: Option<String>,
}

/// Everything the loop needs: retriever, model, kernel facts.
async fn prepare(kernel: &Kernel, options: &NlOptions) -> Result<Prepared, CellOutcome> {
    let choice = if options.offline {
        LlmChoice::Offline
    } else {
        kernel.assistant.choice()
    };
    let provider = setup::provider_for(&choice, options.model.as_deref()).map_err(|e| {
        CellOutcome::error(
            "LlmConfig",
            &e.to_string(),
            vec![
                format!("{RED}The LLM configuration is not usable{RESET}: {e}"),
                "%llm shows what is configured; `%%nl --offline` answers from the verified example library.".to_string(),
            ],
        )
    })?;
    let retrieval = kernel.assistant.retrieval().await.map_err(|e| {
        CellOutcome::error(
            "LibraryUnavailable",
            &e,
            vec![format!(
                "{RED}The example library cannot be read{RESET}: {e}"
            )],
        )
    })?;
    let catalog = kernel.knowledge.catalog().await.map_err(|e| {
        CellOutcome::error(
            "CatalogUnavailable",
            &format!("cannot read the kernel's probe catalog: {e}"),
            vec![
                format!("{RED}cannot read the kernel's probe catalog{RESET}: {e}"),
                "Programs cannot be checked without it; `kgent doctor` in a terminal says what is missing.".to_string(),
            ],
        )
    })?;
    let caps = kernel.knowledge.caps().await;
    let mut check = kgent_frontend::CheckOptions::default();
    if let Some(info) = &caps.bpftrace {
        check.version = info.major_minor;
    }
    // The verifier check needs bpftrace and the right to load programs.
    let load_check =
        !options.no_load && caps.bpftrace.is_some() && Privileges::current().can_trace();
    let (verifier, unverified) = match kernel.assistant.verifier() {
        Ok(v) => (Some(v), None),
        Err(_) if options.no_verify => (None, None),
        Err(why) => (None, Some(why)),
    };
    let synth_options = SynthOptions {
        check,
        bpftrace: caps
            .bpftrace
            .as_ref()
            .map(|b| b.path.clone())
            .unwrap_or_else(|| "bpftrace".into()),
        kernel_fingerprint: setup::kernel_fingerprint(&caps),
        cache: SynthCache::open_default(),
        cache_library_version: Some(retrieval.shipped_version.clone()),
        verifier,
        ..Default::default()
    };
    let facts = Arc::new(kgent_agent::facts::CatalogFacts::new(catalog, Some(caps)));
    Ok(Prepared {
        synthesizer: Arc::new(Synthesizer::new(
            provider,
            retrieval.retriever.clone(),
            facts,
            synth_options,
        )),
        load_check,
        unverified,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Info,
    Busy,
    Ok,
    /// Done, with something the person should know (an unknown verdict).
    Warn,
    Fail,
}

impl Mark {
    fn glyph(self) -> &'static str {
        match self {
            Mark::Info => "·",
            Mark::Busy => "…",
            Mark::Ok => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Mark::Info | Mark::Busy => "#57606a",
            Mark::Ok => verification_view::OK,
            Mark::Warn => verification_view::WARN,
            Mark::Fail => verification_view::FAIL,
        }
    }
}

struct Step {
    at_ms: u64,
    mark: Mark,
    text: String,
}

impl Step {
    fn fail(at_ms: u64, text: String) -> Step {
        Step {
            at_ms,
            mark: Mark::Fail,
            text,
        }
    }
}

/// One attempt as the history shows it.
#[derive(Default)]
struct Attempt {
    number: u32,
    program: Option<String>,
    diagnostics: Vec<DiagnosticRecord>,
    failure: Option<String>,
    /// How its program verified (the last verification, offline).
    verification: Option<Verification>,
}

/// What the display shows, rebuilt from the events.
struct Progress {
    request: String,
    steps: Vec<Step>,
    attempts: Vec<Attempt>,
    streaming: String,
    tokens: usize,
    state: State,
    /// `--run`: the program attaches right after.
    run: bool,
    /// Tokens reported by the model so far (prompt, reply).
    usage: (u64, u64),
    /// Every verification, in order, with its attempt and when it ended.
    verifications: Vec<(u32, u64, Verification)>,
    /// Why candidates are not verified (no verifier), when they should be.
    unverified: Option<String>,
}

enum State {
    Running,
    Accepted {
        program: String,
        provenance: String,
        warnings: Vec<DiagnosticRecord>,
        notes: Vec<String>,
        from_cache: bool,
        total_ms: u128,
        verification: Option<Box<Verification>>,
    },
    Failed {
        headline: String,
        detail: String,
    },
}

impl Progress {
    fn new(request: &str, run: bool) -> Progress {
        Progress {
            request: request.trim().to_string(),
            steps: Vec::new(),
            attempts: Vec::new(),
            streaming: String::new(),
            tokens: 0,
            state: State::Running,
            run,
            usage: (0, 0),
            verifications: Vec::new(),
            unverified: None,
        }
    }

    fn last_ms(&self) -> u64 {
        self.steps.last().map_or(0, |s| s.at_ms)
    }

    fn attempt(&mut self, number: u32) -> &mut Attempt {
        if let Some(i) = self.attempts.iter().position(|a| a.number == number) {
            return &mut self.attempts[i];
        }
        self.attempts.push(Attempt {
            number,
            ..Default::default()
        });
        self.attempts.last_mut().expect("just pushed")
    }

    fn apply(&mut self, event: &SynthEvent) {
        let mark = match &event.kind {
            EventKind::Token(t) => {
                self.streaming.push_str(t);
                self.tokens += 1;
                return;
            }
            EventKind::Prompting { attempt } => {
                self.streaming.clear();
                self.tokens = 0;
                self.attempt(*attempt);
                Mark::Busy
            }
            EventKind::Candidate { attempt, program } => {
                self.attempt(*attempt).program = Some(program.clone());
                Mark::Info
            }
            EventKind::Diagnostics {
                attempt,
                diagnostics,
            } => {
                let failed = diagnostics.iter().any(DiagnosticRecord::is_error);
                self.attempt(*attempt).diagnostics = diagnostics.clone();
                if failed {
                    Mark::Fail
                } else {
                    Mark::Ok
                }
            }
            EventKind::Retry { attempt, reason } => {
                let a = self.attempt(*attempt);
                if a.failure.is_none() {
                    a.failure = Some(reason.clone());
                }
                Mark::Fail
            }
            EventKind::Verifying { .. } => Mark::Busy,
            EventKind::Verified {
                attempt,
                verification,
            } => {
                self.attempt(*attempt).verification = Some((**verification).clone());
                self.verifications
                    .push((*attempt, event.at_ms, (**verification).clone()));
                status_mark(verification.status())
            }
            EventKind::Accepted { .. } | EventKind::CacheHit { .. } => Mark::Ok,
            EventKind::GaveUp { .. } => Mark::Fail,
            EventKind::Started { .. } | EventKind::Retrieved { .. } | EventKind::Replied { .. } => {
                Mark::Info
            }
        };
        // A finished model call: say how much it wrote.
        if matches!(
            event.kind,
            EventKind::Candidate { .. } | EventKind::Retry { .. }
        ) && self.tokens > 0
        {
            self.steps.push(Step {
                at_ms: event.at_ms,
                mark: Mark::Info,
                text: format!("reply received ({} streamed chunks)", self.tokens),
            });
            self.tokens = 0;
            self.streaming.clear();
        }
        if let Some(text) = describe(event) {
            // A busy step is done once anything follows it.
            if let Some(last) = self.steps.last_mut() {
                if last.mark == Mark::Busy {
                    last.mark = Mark::Info;
                }
            }
            self.steps.push(Step {
                at_ms: event.at_ms,
                mark,
                text,
            });
        }
    }

    fn interrupted(&mut self) {
        self.streaming.clear();
        self.state = State::Failed {
            headline: "Interrupted".into(),
            detail: "Synthesis stopped; nothing was attached.".into(),
        };
    }

    fn fail_setup(&mut self, outcome: &CellOutcome) {
        if let CellOutcome::Error { ename, evalue, .. } = outcome {
            self.state = State::Failed {
                headline: ename.clone(),
                detail: evalue.clone(),
            };
        }
    }

    fn finish(&mut self, outcome: &SynthOutcome) {
        self.streaming.clear();
        self.state = match &outcome.result {
            SynthResult::Accepted {
                program,
                provenance,
                warnings,
                ..
            } => {
                let mut notes = Vec::new();
                if let Some(reason) = &outcome.weak_match {
                    notes.push(format!(
                        "The nearest example is a weak match ({reason}): check that it does what you asked, or configure an LLM (%llm)."
                    ));
                }
                for what in &outcome.not_applied {
                    notes.push(format!(
                        "Not applied: {what} (the example has no such parameter)."
                    ));
                }
                // A replayed answer may carry the verification it had then.
                if let (Some(why), None) = (&self.unverified, &outcome.verification) {
                    notes.push(format!("Not verified: {why}."));
                }
                State::Accepted {
                    program: program.clone(),
                    provenance: provenance_text(provenance),
                    warnings: warnings.clone(),
                    notes,
                    from_cache: outcome.from_cache,
                    total_ms: outcome.timings.total.as_millis(),
                    verification: outcome.verification.clone().map(Box::new),
                }
            }
            SynthResult::GaveUp { ask, .. } => State::Failed {
                headline: if self.last_failure_refuted() {
                    "No program passed the checks and the verifier: a hint is needed".into()
                } else {
                    "No program passed the checks: a hint is needed".into()
                },
                detail: ask.clone(),
            },
            SynthResult::LlmUnavailable { message, .. } => State::Failed {
                headline: "The model cannot be used".into(),
                detail: message.clone(),
            },
            SynthResult::NoExample { message } => State::Failed {
                headline: "No example fits".into(),
                detail: message.clone(),
            },
        };
    }

    fn media(&self) -> Media {
        Media::new(vec![
            MediaType::Plain(self.plain()),
            MediaType::Html(self.html()),
        ])
    }

    fn plain(&self) -> String {
        let mut out = format!("Kgent: {}\n", self.request);
        let steps = |out: &mut String| {
            for s in &self.steps {
                out.push_str(&format!(
                    "  {} [{:>6} ms] {}\n",
                    s.mark.glyph(),
                    s.at_ms,
                    s.text
                ));
            }
        };
        match &self.state {
            State::Running => {
                steps(&mut out);
                if !self.streaming.is_empty() {
                    out.push_str(&format!("  … model is writing ({} chunks)\n", self.tokens));
                }
            }
            State::Accepted {
                program,
                provenance,
                warnings,
                notes,
                verification,
                ..
            } => {
                out.push_str(&format!("✓ {provenance}\n"));
                for n in notes {
                    out.push_str(&format!("! {n}\n"));
                }
                for w in warnings {
                    out.push_str(&format!("  {}\n", one_line(w)));
                }
                out.push('\n');
                match verification.as_ref().filter(|v| v.report.is_some()) {
                    Some(v) => {
                        out.push_str(&format!(
                            "Verification: {}; {}\n",
                            verification_headline(v),
                            comprehension_text(&v.comprehension)
                        ));
                        out.push_str(&annotated_plain(v));
                    }
                    None => {
                        if let Some(v) = verification {
                            out.push_str(&format!("Verification: {}\n", v.summary()));
                        }
                        out.push_str(program.trim_end());
                    }
                }
                out.push_str("\n\n");
                out.push_str(self.how_to_attach());
                out.push_str("\n\nHistory:\n");
                steps(&mut out);
            }
            State::Failed { headline, detail } => {
                out.push_str(&format!("✗ {headline}\n{detail}\n\nHistory:\n"));
                steps(&mut out);
            }
        }
        out
    }

    fn html(&self) -> String {
        let mut out = String::from("<div class=\"kgent-nl\">");
        out.push_str(&format!(
            "<div><b>Kgent</b> · <i>{}</i></div>",
            escape::html(&self.request)
        ));
        match &self.state {
            State::Running => {
                out.push_str(&self.steps_html());
                if !self.streaming.is_empty() {
                    let tail: Vec<&str> = self.streaming.lines().collect();
                    let tail = tail[tail.len().saturating_sub(STREAM_TAIL_LINES)..].join("\n");
                    out.push_str(&format!(
                        "<div style=\"color:#57606a\">the model is writing ({} chunks)…</div><pre style=\"opacity:0.75;max-height:14em;overflow:auto\">{}</pre>",
                        self.tokens,
                        escape::html(&tail)
                    ));
                }
            }
            State::Accepted {
                program,
                provenance,
                warnings,
                notes,
                from_cache,
                total_ms,
                verification,
            } => {
                out.push_str(&format!(
                    "<div style=\"color:{}\">✓ Program ready: {}{}</div>",
                    Mark::Ok.colour(),
                    escape::html(provenance),
                    if *from_cache {
                        " <span style=\"color:#57606a\">(answered before: replayed from the cache, no model call)</span>"
                    } else {
                        ""
                    }
                ));
                for n in notes {
                    out.push_str(&format!(
                        "<div style=\"color:#9a6700\">⚠ {}</div>",
                        escape::html(n)
                    ));
                }
                if !warnings.is_empty() {
                    out.push_str("<ul>");
                    for w in warnings {
                        out.push_str(&format!("<li>{}</li>", escape::html(&one_line(w))));
                    }
                    out.push_str("</ul>");
                }
                match verification.as_ref().filter(|v| v.report.is_some()) {
                    Some(v) => {
                        out.push_str(&format!(
                            "<div style=\"color:{}\">{} Verification: {}</div>",
                            status_mark(v.status()).colour(),
                            status_mark(v.status()).glyph(),
                            escape::html(&format!(
                                "{}; {}",
                                verification_headline(v),
                                comprehension_text(&v.comprehension)
                            ))
                        ));
                        out.push_str(&annotated_html(v));
                    }
                    None => {
                        if let Some(v) = verification {
                            out.push_str(&format!(
                                "<div style=\"color:{}\">! {}</div>",
                                Mark::Warn.colour(),
                                escape::html(&v.summary())
                            ));
                        }
                        out.push_str(&highlight::html(program));
                    }
                }
                out.push_str(&format!(
                    "<div>{}</div>",
                    escape::html(self.how_to_attach())
                ));
                out.push_str(&self.verification_trace_html());
                out.push_str(&self.history_html(*total_ms));
            }
            State::Failed { headline, detail } => {
                out.push_str(&format!(
                    "<div style=\"color:{}\">✗ {}</div><pre>{}</pre>",
                    Mark::Fail.colour(),
                    escape::html(headline),
                    escape::html(detail)
                ));
                out.push_str(&self.verification_trace_html());
                out.push_str(&self.history_html(self.last_ms() as u128));
            }
        }
        out.push_str("</div>");
        out
    }

    /// Whether the last attempt failed at verification (not at the checks).
    fn last_failure_refuted(&self) -> bool {
        self.attempts
            .last()
            .and_then(|a| a.verification.as_ref())
            .is_some_and(|v| v.status() == Status::Refuted)
    }

    /// The collapsible verification trace: each verification (attempt,
    /// who annotated, verdict of every assertion with its time, notes).
    fn verification_trace_html(&self) -> String {
        if self.verifications.is_empty() {
            return String::new();
        }
        let total: u64 = self
            .verifications
            .iter()
            .map(|(_, _, v)| v.elapsed_ms)
            .sum();
        let mut out = format!(
            "<details><summary>Verification trace: {} run(s), {total} ms</summary><ul>",
            self.verifications.len()
        );
        for (attempt, at_ms, v) in &self.verifications {
            let mark = status_mark(v.status());
            out.push_str(&format!(
                "<li><span style=\"color:{}\">{}</span> <span style=\"color:#57606a;font-family:monospace\">{at_ms:>6} ms</span> {}: {} <span style=\"color:#57606a\">({})</span>",
                mark.colour(),
                mark.glyph(),
                if *attempt == 0 { "example".to_string() } else { format!("attempt {attempt}") },
                escape::html(&v.summary()),
                escape::html(&comprehension_text(&v.comprehension)),
            ));
            out.push_str("<ul>");
            for a in v.assertions() {
                let origin = v
                    .annotation_at(a.line)
                    .map(|n| format!(" [{}]", n.origin))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "<li><code>{}</code>{} line {}: {} ({:.1} ms)</li>",
                    escape::html(a.text.trim()),
                    escape::html(&origin),
                    a.line,
                    escape::html(&verdict_text(v, a)),
                    a.elapsed_ms
                ));
            }
            for n in &v.notes {
                out.push_str(&format!(
                    "<li style=\"color:#57606a\">note: {}</li>",
                    escape::html(n)
                ));
            }
            out.push_str("</ul></li>");
        }
        out.push_str("</ul></details>");
        out
    }

    fn how_to_attach(&self) -> &'static str {
        if self.run {
            "Attaching it now (--run); the notebook's stop button detaches it."
        } else {
            HOW_TO_ATTACH
        }
    }

    fn steps_html(&self) -> String {
        let mut out =
            String::from("<ul style=\"list-style:none;padding-left:0.5em;margin:0.3em 0\">");
        for s in &self.steps {
            out.push_str(&format!(
                "<li><span style=\"color:{}\">{}</span> <span style=\"color:#57606a;font-family:monospace\">{:>6} ms</span> {}</li>",
                s.mark.colour(),
                s.mark.glyph(),
                s.at_ms,
                escape::html(&s.text)
            ));
        }
        out.push_str("</ul>");
        out
    }

    /// The collapsible history: every step, and each attempt that failed with
    /// its program and why.
    fn history_html(&self, total_ms: u128) -> String {
        let failed: Vec<&Attempt> = self
            .attempts
            .iter()
            .filter(|a| a.failure.is_some() || a.diagnostics.iter().any(DiagnosticRecord::is_error))
            .collect();
        let tokens = match self.usage {
            (0, 0) => String::new(),
            (p, c) => format!(", {p} prompt + {c} reply tokens"),
        };
        let mut out = format!(
            "<details><summary>History: {} step(s), {} attempt(s), {} ms{tokens}</summary>",
            self.steps.len(),
            self.attempts.len().max(1),
            total_ms
        );
        out.push_str(&self.steps_html());
        for a in failed {
            out.push_str(&format!(
                "<details style=\"margin-left:1em\"><summary>{} failed{}</summary>",
                if a.number == 0 {
                    "the example".to_string()
                } else {
                    format!("attempt {}", a.number)
                },
                a.failure
                    .as_ref()
                    .map(|f| format!(": {}", escape::html(f)))
                    .unwrap_or_default()
            ));
            match a
                .verification
                .as_ref()
                .filter(|v| v.status() == Status::Refuted)
            {
                Some(v) => out.push_str(&annotated_html(v)),
                None => {
                    if let Some(p) = &a.program {
                        out.push_str(&highlight::html(p));
                    }
                }
            }
            if !a.diagnostics.is_empty() {
                out.push_str("<ul>");
                for d in &a.diagnostics {
                    out.push_str(&format!("<li>{}</li>", escape::html(&one_line(d))));
                }
                out.push_str("</ul>");
            }
            out.push_str("</details>");
        }
        out.push_str("</details>");
        out
    }
}

const HOW_TO_ATTACH: &str = "To attach it, run the %%bpftrace cell inserted below (it holds this program, the request and where it came from; running it approves it), or re-run this cell with --run.";

fn status_mark(status: Status) -> Mark {
    match status {
        Status::Proved | Status::NoAssertions => Mark::Ok,
        Status::Refuted => Mark::Fail,
        Status::Unknown | Status::NotVerified => Mark::Warn,
    }
}
