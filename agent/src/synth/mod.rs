//! The synthesis loop: a plain-English request in, a checked bpftrace program
//! (or an honest question back to the person) out.
//!
//! ```text
//! cache hit? ──yes──▶ replay the stored events, return the stored program
//!    │no
//! retrieve the 3 nearest verified examples
//!    │
//! offline (no provider, or asked)? ──▶ best example, adapted only where safe,
//!    │                                  parsed + checked, provenance `Retrieved`
//! prompt (rules, this kernel's probe types, examples, typed attach points)
//!    │
//! ┌─▶ LLM ─▶ extract_program ─▶ parse + check ─▶ [load check] ─▶ [verify] ─▶ accept
//! └── feedback (no program / each diagnostic with code, line:col, help,
//!     suggestion / each refuted assertion with its counterexample)
//!     at most `max_attempts`, then `GaveUp` with a question for the person
//! ```
//!
//! Verify (when a [`Verifier`] is configured and the request asks for it):
//! the model annotates the candidate with what the request means
//! ([`comprehend`], online only), `kgent-verifier` adds the contracts'
//! assumptions and the rules' assertions and proves or refutes every
//! assertion ([`verification`]). Refuted: feedback and another attempt
//! (offline: the next example). Unknown, or no verifier to ask: accepted,
//! and said so.
//!
//! LLM errors: `Unreachable`, `Auth`, `NotConfigured`, `Config`,
//! `ModelNotFound` and `Rejected` end the loop at once (asking again cannot
//! help); `Timeout`, `Stalled`, `RateLimited`, `Server` and `BadResponse` cost
//! one attempt, after a backoff that honours `Retry-After` but never exceeds
//! [`SynthOptions::max_backoff`] (5 s by default).
//!
//! Nothing here knows Jupyter: progress goes to an `on_event` callback as
//! [`SynthEvent`]s, each stamped with the milliseconds since the run started.

mod cache;
pub mod comprehend;
mod offline;
mod prompt;
pub mod trace;
pub mod verification;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kgent_frontend::{check, parse, CheckOptions, Diagnostic, KernelFacts, LineIndex};
use kgent_llm::{
    extract_program, ChatMessage, ChatOptions, FinishReason, LlmError, LlmProvider, Usage,
};
use kgent_retrieval::{Hit, Retriever};
use serde::{Deserialize, Serialize};

use crate::contracts::ContractSet;
use crate::verifier::{Verifier, VerifierRequest};

pub use cache::{cache_key, CachedSynthesis, SynthCache};
pub use offline::{adapt, match_strength, Adaptation, MatchStrength, RequestValues};
pub use prompt::{
    build_messages, feedback_for_diagnostics, feedback_for_refutation, system_prompt,
    NO_PROGRAM_FEEDBACK,
};
pub use verification::{Comprehension, Verification};

/// How many examples go into the prompt.
pub const PROMPT_EXAMPLES: usize = 3;

/// What the person asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthRequest {
    /// The plain-English request.
    pub request: String,
    /// Extra hints from the person (after a `GaveUp`, typically).
    pub hints: Vec<String>,
    /// LLM attempts before giving up (at least 1).
    pub max_attempts: u32,
    /// Answer from the example library only, even with a provider.
    pub offline: bool,
    /// Load the program in the kernel (bpftrace, needs root) before accepting it.
    pub load_check: bool,
    /// Annotate and verify the program before accepting it (when the
    /// synthesiser has a verifier).
    pub verify: bool,
}

impl SynthRequest {
    /// A request with no hints, 3 attempts, online, no load check, verified.
    pub fn new(request: impl Into<String>) -> SynthRequest {
        SynthRequest {
            request: request.into(),
            hints: Vec::new(),
            max_attempts: 3,
            offline: false,
            load_check: false,
            verify: true,
        }
    }
}

impl Default for SynthRequest {
    fn default() -> Self {
        SynthRequest::new("")
    }
}

/// How the synthesiser is set up.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// The checker's settings (bpftrace version, unsafe builtins).
    pub check: CheckOptions,
    /// bpftrace, for the load check.
    pub bpftrace: PathBuf,
    /// Per-call LLM settings.
    pub chat: ChatOptions,
    /// Backoff after a timeout or server error (grows with the attempt number).
    pub backoff: Duration,
    /// Upper bound on any wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
    /// Identifies the kernel's capabilities (part of the cache key); the caller
    /// computes it (e.g. a hash of the catalog's capability report).
    pub kernel_fingerprint: String,
    /// Where accepted syntheses are kept; `None`: no cache.
    pub cache: Option<SynthCache>,
    /// The library version in the cache key, when not the retriever's: the
    /// kernel passes the shipped library's, so that approving a program (which
    /// grows the user's library) does not invalidate every stored answer.
    pub cache_library_version: Option<String>,
    /// The symbolic verifier; `None`: candidates are not verified.
    pub verifier: Option<Arc<Verifier>>,
    /// Online, ask the model to annotate each candidate with what the
    /// request means (one more call per candidate that passes the checks).
    pub comprehend: bool,
    /// Time limit of one solver query (the verifier's default when `None`).
    pub verify_timeout_ms: Option<u32>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            check: CheckOptions::default(),
            bpftrace: PathBuf::from("bpftrace"),
            chat: ChatOptions::default(),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            kernel_fingerprint: String::new(),
            cache: None,
            cache_library_version: None,
            verifier: None,
            comprehend: true,
            verify_timeout_ms: None,
        }
    }
}

/// A diagnostic as plain data: for the notebook's display, the cache, and the
/// LLM feedback. Line and column are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticRecord {
    /// `error`, `warning` or `note`.
    pub severity: String,
    /// Stable code, e.g. `unknown-probe`.
    pub code: String,
    pub message: String,
    pub line: u32,
    pub column: u32,
    pub help: Option<String>,
    /// The fix, as a person reads it: "replace `a` with `b`".
    pub suggestion: Option<String>,
}

impl DiagnosticRecord {
    /// Records for `diagnostics` on `source`.
    pub fn from_diagnostics(source: &str, diagnostics: &[Diagnostic]) -> Vec<DiagnosticRecord> {
        let index = LineIndex::new(source);
        diagnostics
            .iter()
            .map(|d| {
                let at = index.line_col(d.span.start);
                DiagnosticRecord {
                    severity: d.severity.as_str().to_string(),
                    code: d.code.to_string(),
                    message: d.message.clone(),
                    line: at.line,
                    column: at.column,
                    help: d.help.clone(),
                    suggestion: d.suggestion.as_ref().map(|s| {
                        let old = source.get(s.span.range()).unwrap_or("");
                        let new = s.replacement.trim_start_matches('\n');
                        if s.span.is_empty() {
                            format!("insert `{new}`")
                        } else if new.is_empty() {
                            format!("remove `{old}`")
                        } else {
                            format!("replace `{old}` with `{new}`")
                        }
                    }),
                }
            })
            .collect()
    }

    pub fn is_error(&self) -> bool {
        self.severity == "error"
    }
}

/// Where an accepted program came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Written by the model (described by the provider) and checked here.
    Synthesised { model: String },
    /// A verified library example, with the parameters substituted.
    Retrieved {
        example_id: String,
        adapted: Vec<(String, String)>,
    },
}

/// What happened, as it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthEvent {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    pub kind: EventKind,
}

/// The events of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event", content = "data")]
pub enum EventKind {
    Started {
        request: String,
        offline: bool,
    },
    /// The answer comes from the reproducibility cache; the stored events follow.
    CacheHit {
        key: String,
    },
    Retrieved {
        examples: Vec<(String, String)>,
    },
    Prompting {
        attempt: u32,
    },
    Token(String),
    /// The model finished a reply: what it cost and why it stopped.
    Replied {
        attempt: u32,
        /// Token counts as the server reported them (unknown when it did not).
        usage: Usage,
        elapsed_ms: u64,
        /// `length` means the reply was cut off by the token budget.
        finish_reason: Option<String>,
    },
    Candidate {
        attempt: u32,
        program: String,
    },
    Diagnostics {
        attempt: u32,
        diagnostics: Vec<DiagnosticRecord>,
    },
    /// The candidate passed the checks; annotating (by the model when
    /// `by_model`) and verifying it.
    Verifying {
        attempt: u32,
        by_model: bool,
    },
    /// What verification found (a refutation is followed by a `Retry`).
    Verified {
        attempt: u32,
        verification: Box<Verification>,
    },
    Retry {
        attempt: u32,
        reason: String,
    },
    Accepted {
        attempt: u32,
        program: String,
        provenance: Provenance,
    },
    GaveUp {
        attempts: u32,
        last_diagnostics: Vec<DiagnosticRecord>,
        ask: String,
    },
}

/// How the run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum SynthResult {
    /// A program that passed the checks (and the load check, when asked).
    Accepted {
        program: String,
        provenance: Provenance,
        attempt: u32,
        /// Warnings the checker left (no errors).
        warnings: Vec<DiagnosticRecord>,
    },
    /// Every attempt failed; `ask` is the question for the person.
    GaveUp {
        attempts: u32,
        last_diagnostics: Vec<DiagnosticRecord>,
        ask: String,
    },
    /// The LLM cannot be used at all (unreachable, refused key, not
    /// configured...): nothing was retried. `message` says what to do.
    LlmUnavailable { error: LlmError, message: String },
    /// Offline, and the library has nothing for the request.
    NoExample { message: String },
}

/// Where the time went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    pub total: Duration,
    /// Waiting for the LLM.
    pub llm: Duration,
    /// Waiting between attempts.
    pub backoff: Duration,
    /// bpftrace load checks.
    pub load_check: Duration,
    /// The verifier (annotation and solving; the model's comprehension
    /// counts as `llm`).
    pub verify: Duration,
    /// Everything else: retrieval, prompts, extraction, parse, check.
    pub overhead: Duration,
}

/// The whole answer of [`Synthesizer::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOutcome {
    pub result: SynthResult,
    /// Every event sent to `on_event`, in order.
    pub events: Vec<SynthEvent>,
    /// LLM attempts made (0 offline and on a cache hit).
    pub attempts: u32,
    /// Offline: `Some(reason)` when the best example is a weak match for the
    /// request (see [`match_strength`]); the program is then probably not
    /// what was asked for.
    pub weak_match: Option<String>,
    /// Offline: things the request names that the example cannot take
    /// (e.g. a process name for an example without a `comm` parameter).
    pub not_applied: Vec<String>,
    pub from_cache: bool,
    /// How the accepted program verified (`None`: not verified, or not accepted).
    pub verification: Option<Verification>,
    /// Tokens the model used over all attempts, as reported (unknown parts stay `None`).
    pub usage: Usage,
    pub cache_key: String,
    /// Why an accepted result could not be stored in the cache, if it could not.
    pub cache_error: Option<String>,
    pub timings: Timings,
}

impl SynthOutcome {
    /// The accepted program, if any.
    pub fn program(&self) -> Option<&str> {
        match &self.result {
            SynthResult::Accepted { program, .. } => Some(program),
            _ => None,
        }
    }
}

/// Sends events to the caller and keeps them.
struct Emitter<'a> {
    start: Instant,
    on_event: &'a mut (dyn FnMut(SynthEvent) + Send),
    log: Vec<SynthEvent>,
}

impl Emitter<'_> {
    fn emit(&mut self, kind: EventKind) {
        let event = SynthEvent {
            at_ms: self.start.elapsed().as_millis() as u64,
            kind,
        };
        self.log.push(event.clone());
        (self.on_event)(event);
    }
}

/// The synthesis loop over one provider, retriever and kernel.
pub struct Synthesizer {
    provider: Option<Arc<dyn LlmProvider>>,
    retriever: Arc<Retriever>,
    facts: Arc<dyn KernelFacts + Send + Sync>,
    options: SynthOptions,
}

/// What checking one candidate found.
struct Verdict {
    records: Vec<DiagnosticRecord>,
    passed: bool,
}

impl Synthesizer {
    pub fn new(
        provider: Option<Arc<dyn LlmProvider>>,
        retriever: Arc<Retriever>,
        facts: Arc<dyn KernelFacts + Send + Sync>,
        options: SynthOptions,
    ) -> Synthesizer {
        Synthesizer {
            provider,
            retriever,
            facts,
            options,
        }
    }

    pub fn options(&self) -> &SynthOptions {
        &self.options
    }

    /// The model part of the cache key: the provider's description, or `offline`.
    fn model_id(&self, offline: bool) -> String {
        match (&self.provider, offline) {
            (Some(p), false) => p.describe(),
            _ => "offline".to_string(),
        }
    }

    /// The cache key of `req` with this synthesiser.
    pub fn cache_key(&self, req: &SynthRequest) -> String {
        let offline = req.offline || self.provider.is_none();
        // An answer made without a verifier is not the answer once one is there.
        let req = SynthRequest {
            verify: req.verify && self.options.verifier.is_some(),
            ..req.clone()
        };
        cache_key(
            &req,
            &self.model_id(offline),
            &self.options.kernel_fingerprint,
            self.options
                .cache_library_version
                .as_deref()
                .unwrap_or(self.retriever.library().version()),
        )
    }

    /// Runs the loop for `req`, reporting progress to `on_event`.
    pub async fn run(
        &self,
        req: &SynthRequest,
        on_event: &mut (dyn FnMut(SynthEvent) + Send),
    ) -> SynthOutcome {
        let offline = req.offline || self.provider.is_none();
        let key = self.cache_key(req);
        let mut em = Emitter {
            start: Instant::now(),
            on_event,
            log: Vec::new(),
        };
        em.emit(EventKind::Started {
            request: req.request.clone(),
            offline,
        });
        if let Some(hit) = self.options.cache.as_ref().and_then(|c| c.get(&key)) {
            return self.replay(hit, key, em);
        }
        let mut timings = Timings::default();
        let hits = self.nearest_runnable(&req.request);
        em.emit(EventKind::Retrieved {
            examples: hits
                .iter()
                .filter_map(|h| self.retriever.example(h))
                .map(|e| (e.id.clone(), e.request.clone()))
                .collect(),
        });
        let mut outcome = if offline {
            self.offline(req, &hits, &mut em, &mut timings).await
        } else {
            self.online(req, &hits, &mut em, &mut timings).await
        };
        timings.total = em.start.elapsed();
        timings.overhead = timings
            .total
            .saturating_sub(timings.llm + timings.backoff + timings.load_check + timings.verify);
        outcome.timings = timings;
        outcome.cache_key = key.clone();
        outcome.events = em.log;
        if let (Some(cache), SynthResult::Accepted { program, .. }) =
            (&self.options.cache, &outcome.result)
        {
            let entry = CachedSynthesis {
                key: key.clone(),
                request: req.request.clone(),
                program: program.clone(),
                events: cache::coalesce_tokens(&outcome.events),
                weak_match: outcome.weak_match.clone(),
                not_applied: outcome.not_applied.clone(),
            };
            // A cache that cannot be written only costs a later LLM call.
            if let Err(e) = cache.put(&entry) {
                outcome.cache_error = Some(format!("{}: {e}", cache.dir().display()));
            }
        }
        outcome
    }

    fn replay(&self, hit: CachedSynthesis, key: String, mut em: Emitter<'_>) -> SynthOutcome {
        em.emit(EventKind::CacheHit { key: key.clone() });
        let mut result = None;
        let mut verified: Vec<(u32, Verification)> = Vec::new();
        for event in hit.events {
            match &event.kind {
                EventKind::Verified {
                    attempt,
                    verification,
                } => verified.push((*attempt, (**verification).clone())),
                // The replay's own Started/CacheHit stand for the stored ones.
                EventKind::Started { .. } | EventKind::CacheHit { .. } => continue,
                EventKind::Accepted {
                    attempt,
                    program,
                    provenance,
                } => {
                    let warnings = self.check_program(program).records;
                    result = Some(SynthResult::Accepted {
                        program: program.clone(),
                        provenance: provenance.clone(),
                        attempt: *attempt,
                        warnings,
                    });
                }
                _ => {}
            }
            em.log.push(event.clone());
            (em.on_event)(event);
        }
        let result = result.unwrap_or_else(|| SynthResult::Accepted {
            program: hit.program.clone(),
            provenance: Provenance::Synthesised {
                model: "cache".into(),
            },
            attempt: 0,
            warnings: Vec::new(),
        });
        let accepted_attempt = match &result {
            SynthResult::Accepted { attempt, .. } => *attempt,
            _ => 0,
        };
        // The last verification of the accepted attempt (offline, attempt 0
        // verifies each example tried; the accepted one is the last).
        let verification = verified
            .into_iter()
            .rev()
            .find(|(attempt, _)| *attempt == accepted_attempt)
            .map(|(_, v)| v);
        let total = em.start.elapsed();
        SynthOutcome {
            result,
            events: em.log,
            attempts: 0,
            weak_match: hit.weak_match,
            not_applied: hit.not_applied,
            from_cache: true,
            verification,
            usage: Usage::default(),
            cache_key: key,
            cache_error: None,
            timings: Timings {
                total,
                overhead: total,
                ..Timings::default()
            },
        }
    }

    /// The examples nearest to `request`, those whose probe types attach on
    /// this kernel first (a kprobe example is no model, and no offline answer,
    /// where there are no kprobes), at most [`PROMPT_EXAMPLES`].
    fn nearest_runnable(&self, request: &str) -> Vec<Hit> {
        let mut hits = self.retriever.search(request, PROMPT_EXAMPLES * 4);
        let runnable = |h: &Hit| {
            self.retriever.example(h).is_some_and(|e| {
                e.probe_types.iter().all(|p| {
                    kgent_frontend::ast::ProbeKind::from_provider(p).is_none_or(|kind| {
                        !matches!(
                            self.facts.probe_support(kind),
                            kgent_frontend::ProbeSupport::Unsupported { .. }
                        )
                    })
                })
            })
        };
        // Stable: within each group the retrieval order stands.
        hits.sort_by_key(|h| !runnable(h));
        hits.truncate(PROMPT_EXAMPLES);
        hits
    }

    /// Parse + check against this kernel.
    fn check_program(&self, program: &str) -> Verdict {
        let parsed = parse(program);
        let mut diagnostics = parsed.diagnostics.clone();
        diagnostics.extend(check(
            &parsed.program,
            program,
            self.facts.as_ref(),
            &self.options.check,
        ));
        let passed = !diagnostics.iter().any(Diagnostic::is_error);
        Verdict {
            records: DiagnosticRecord::from_diagnostics(program, &diagnostics),
            passed,
        }
    }

    /// The kernel's verifier, through bpftrace.
    async fn load_check(&self, program: &str) -> Verdict {
        let parsed = parse(program);
        let result = crate::loadcheck::load_check(
            &self.options.bpftrace,
            program,
            &parsed.program,
            self.options.check.allow_unsafe,
        )
        .await;
        Verdict {
            records: DiagnosticRecord::from_diagnostics(program, &result.diagnostics),
            passed: result.passed(),
        }
    }

    /// The shipped contracts, for the model's comprehension prompt: loaded
    /// once per process (~5 ms), though the kernel makes a synthesiser per
    /// cell. `None` if they do not load, which their tests prevent.
    fn contracts(&self) -> Option<&'static ContractSet> {
        static SHIPPED: std::sync::OnceLock<Option<ContractSet>> = std::sync::OnceLock::new();
        SHIPPED.get_or_init(|| ContractSet::shipped().ok()).as_ref()
    }

    /// Annotates and verifies `program` (which passed the checks), or `None`
    /// when there is no verifier or `req` does not ask for verification.
    /// `model`: ask it for the request's annotations first (online). Model
    /// time goes to `timings.llm`; the tokens it used are returned.
    async fn verify_candidate(
        &self,
        req: &SynthRequest,
        attempt: u32,
        program: &str,
        model: Option<&Arc<dyn LlmProvider>>,
        em: &mut Emitter<'_>,
        timings: &mut Timings,
    ) -> Option<(Verification, Usage)> {
        let verifier = self.options.verifier.as_ref().filter(|_| req.verify)?;
        let mut usage = Usage::default();
        let model = model.filter(|_| self.options.comprehend);
        em.emit(EventKind::Verifying {
            attempt,
            by_model: model.is_some(),
        });
        let started = Instant::now();
        let mut comprehension = Comprehension::RulesOnly;
        let mut source = program.to_string();
        if let Some(provider) = model {
            let parsed = parse(program);
            let contracts = self
                .contracts()
                .map(|c| c.describe_program(&parsed.program, self.facts.as_ref()))
                .unwrap_or_default();
            let messages = comprehend::comprehension_messages(&req.request, program, &contracts);
            let asked = Instant::now();
            // Annotations are not streamed: the display shows the candidate.
            let reply = provider
                .chat(&messages, &self.options.chat, &mut |_: &str| {})
                .await;
            timings.llm += asked.elapsed();
            comprehension = match reply {
                Ok(reply) => {
                    add_usage(&mut usage, &reply.usage);
                    match comprehend::accept_annotated(program, &reply.text) {
                        Ok(annotated) => {
                            source = annotated;
                            Comprehension::Model {
                                model: provider.describe(),
                                usage: reply.usage,
                                elapsed_ms: asked.elapsed().as_millis() as u64,
                            }
                        }
                        Err(rejected) => Comprehension::Rejected {
                            reason: rejected.to_string(),
                        },
                    }
                }
                Err(error) => Comprehension::Failed {
                    error: error.to_string(),
                },
            };
        }
        let ask = |source: String| VerifierRequest {
            source,
            request: Some(req.request.clone()),
            annotate: true,
            timeout_ms: self.options.verify_timeout_ms,
            ..VerifierRequest::default()
        };
        let solving = Instant::now();
        let mut response = verifier.verify(ask(source.clone())).await;
        // Annotations the verifier cannot use (say, a name the program never
        // assigns) are the model's mistake, not the program's: verify the
        // program with the contracts and rules alone.
        if let (Ok(r), Comprehension::Model { .. }) = (&response, &comprehension) {
            if let Some(error) = &r.error {
                comprehension = Comprehension::Rejected {
                    reason: format!("the verifier could not use them: {error}"),
                };
                source = program.to_string();
                response = verifier.verify(ask(source.clone())).await;
            }
        }
        timings.verify += solving.elapsed();
        let mut verification = match response {
            Ok(r) => Verification::from_response(r, comprehension),
            Err(e) => Verification::failed(&source, e.to_string(), comprehension),
        };
        match &verification.comprehension {
            Comprehension::Rejected { reason } => verification
                .notes
                .push(format!("the model's annotations were not used: {reason}")),
            Comprehension::Failed { error } => verification
                .notes
                .push(format!("the model could not annotate the program: {error}")),
            _ => {}
        }
        verification.elapsed_ms = started.elapsed().as_millis() as u64;
        em.emit(EventKind::Verified {
            attempt,
            verification: Box::new(verification.clone()),
        });
        Some((verification, usage))
    }

    async fn offline(
        &self,
        req: &SynthRequest,
        hits: &[Hit],
        em: &mut Emitter<'_>,
        timings: &mut Timings,
    ) -> SynthOutcome {
        let mut outcome = blank_outcome(SynthResult::NoExample {
            message: String::new(),
        });
        let mut candidates: Vec<(&Hit, &kgent_retrieval::Example)> = hits
            .iter()
            .filter_map(|h| self.retriever.example(h).map(|e| (h, e)))
            .collect();
        // A strong match further down beats a weak one on top.
        candidates.sort_by_key(|(h, e)| {
            matches!(match_strength(&req.request, h, e), MatchStrength::Weak(_))
        });
        if candidates.is_empty() {
            let message = format!(
                "no example in the library matches {:?}; describe the events to trace \
                 (system call, tracepoint, process) or configure an LLM",
                req.request
            );
            outcome.result = SynthResult::NoExample { message };
            return outcome;
        }
        // Hints can name the values too ("the process is nginx").
        let text = std::iter::once(req.request.as_str())
            .chain(req.hints.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(". ");
        let values = RequestValues::from_request(&text);
        // The nearest example first; one this kernel cannot run (say, a kprobe
        // where there are no kprobes) gives way to the next nearest.
        let mut first_failure: Option<(String, Vec<DiagnosticRecord>, Option<String>)> = None;
        for (i, (hit, example)) in candidates.iter().enumerate() {
            let adaptation = adapt(example, &values);
            em.emit(EventKind::Candidate {
                attempt: 0,
                program: adaptation.program.clone(),
            });
            let mut verdict = self.check_program(&adaptation.program);
            if verdict.passed && req.load_check {
                let started = Instant::now();
                let mut loaded = self.load_check(&adaptation.program).await;
                timings.load_check += started.elapsed();
                loaded.records.splice(0..0, verdict.records);
                verdict = loaded;
            }
            em.emit(EventKind::Diagnostics {
                attempt: 0,
                diagnostics: verdict.records.clone(),
            });
            let verification = if verdict.passed {
                self.verify_candidate(req, 0, &adaptation.program, None, em, timings)
                    .await
                    .map(|(v, _)| v)
            } else {
                None
            };
            let refuted = verification.as_ref().and_then(Verification::refutation);
            if verdict.passed && refuted.is_none() {
                outcome.verification = verification;
                if let MatchStrength::Weak(reason) = match_strength(&req.request, hit, example) {
                    outcome.weak_match = Some(reason);
                }
                outcome.not_applied = adaptation.not_applied.clone();
                let provenance = Provenance::Retrieved {
                    example_id: example.id.clone(),
                    adapted: adaptation.adapted.clone(),
                };
                em.emit(EventKind::Accepted {
                    attempt: 0,
                    program: adaptation.program.clone(),
                    provenance: provenance.clone(),
                });
                outcome.result = SynthResult::Accepted {
                    program: adaptation.program,
                    provenance,
                    attempt: 0,
                    warnings: verdict.records,
                };
                return outcome;
            }
            if let Some((next, _)) = candidates.get(i + 1) {
                let why = match &refuted {
                    Some(problem) => format!("is not what was asked ({problem})"),
                    None => "does not pass the checks on this kernel".to_string(),
                };
                em.emit(EventKind::Retry {
                    attempt: 0,
                    reason: format!("example {} {why}; trying {}", example.id, next.example_id),
                });
            }
            first_failure.get_or_insert((example.id.clone(), verdict.records, refuted));
        }
        let (example_id, records, refuted) = first_failure.unwrap_or_default();
        let ask = match refuted {
            Some(problem) => prompt::ask_offline_refuted(&example_id, &problem),
            None => prompt::ask_offline(&example_id, &records),
        };
        em.emit(EventKind::GaveUp {
            attempts: 0,
            last_diagnostics: records.clone(),
            ask: ask.clone(),
        });
        outcome.result = SynthResult::GaveUp {
            attempts: 0,
            last_diagnostics: records,
            ask,
        };
        outcome
    }

    async fn online(
        &self,
        req: &SynthRequest,
        hits: &[Hit],
        em: &mut Emitter<'_>,
        timings: &mut Timings,
    ) -> SynthOutcome {
        let Some(provider) = self.provider.as_ref() else {
            return blank_outcome(SynthResult::LlmUnavailable {
                error: LlmError::NotConfigured,
                message: LlmError::NotConfigured.to_string(),
            });
        };
        let model = provider.describe();
        let examples: Vec<_> = hits
            .iter()
            .filter_map(|h| self.retriever.example(h))
            .collect();
        let mut messages = build_messages(req, &examples, self.facts.as_ref());
        let max_attempts = req.max_attempts.max(1);
        let mut last_diagnostics = Vec::new();
        let mut last_problem = String::new();
        let mut usage = Usage::default();
        let mut attempt = 0;
        while attempt < max_attempts {
            attempt += 1;
            em.emit(EventKind::Prompting { attempt });
            let started = Instant::now();
            let reply = {
                let start = em.start;
                let log = &mut em.log;
                let on_event = &mut *em.on_event;
                let mut on_token = |t: &str| {
                    let event = SynthEvent {
                        at_ms: start.elapsed().as_millis() as u64,
                        kind: EventKind::Token(t.to_string()),
                    };
                    log.push(event.clone());
                    on_event(event);
                };
                provider
                    .chat(&messages, &self.options.chat, &mut on_token)
                    .await
            };
            timings.llm += started.elapsed();
            let reply = match reply {
                Ok(r) => r,
                Err(error) if is_fatal(&error) => {
                    let message = error.to_string();
                    let mut outcome = blank_outcome(SynthResult::LlmUnavailable {
                        error,
                        message: message.clone(),
                    });
                    outcome.attempts = attempt;
                    outcome.usage = usage;
                    return outcome;
                }
                Err(error) => {
                    last_problem = error.to_string();
                    if attempt < max_attempts {
                        let wait = self.backoff_for(&error, attempt);
                        em.emit(EventKind::Retry {
                            attempt,
                            reason: format!("{last_problem} (waiting {} ms)", wait.as_millis()),
                        });
                        tokio::time::sleep(wait).await;
                        timings.backoff += wait;
                    }
                    continue;
                }
            };
            add_usage(&mut usage, &reply.usage);
            em.emit(EventKind::Replied {
                attempt,
                usage: reply.usage,
                elapsed_ms: reply.elapsed.as_millis() as u64,
                finish_reason: reply.finish_reason.as_ref().map(finish_name),
            });
            messages.push(ChatMessage::assistant(reply.text.clone()));
            let Some(program) = extract_program(&reply.text) else {
                last_problem = "the reply had no program".into();
                last_diagnostics.clear();
                messages.push(ChatMessage::user(NO_PROGRAM_FEEDBACK));
                if attempt < max_attempts {
                    em.emit(EventKind::Retry {
                        attempt,
                        reason: "the reply had no program".into(),
                    });
                }
                continue;
            };
            em.emit(EventKind::Candidate {
                attempt,
                program: program.clone(),
            });
            let mut verdict = self.check_program(&program);
            if verdict.passed && req.load_check {
                let started = Instant::now();
                let mut loaded = self.load_check(&program).await;
                timings.load_check += started.elapsed();
                loaded.records.splice(0..0, verdict.records);
                verdict = loaded;
            }
            em.emit(EventKind::Diagnostics {
                attempt,
                diagnostics: verdict.records.clone(),
            });
            let verification = if verdict.passed {
                self.verify_candidate(req, attempt, &program, Some(provider), em, timings)
                    .await
                    .map(|(v, tokens)| {
                        add_usage(&mut usage, &tokens);
                        v
                    })
            } else {
                None
            };
            if let Some(problem) = verification.as_ref().and_then(Verification::refutation) {
                last_problem = problem;
                last_diagnostics.clear();
                if let Some(v) = &verification {
                    messages.push(ChatMessage::user(feedback_for_refutation(
                        attempt,
                        max_attempts,
                        v,
                    )));
                }
                if attempt < max_attempts {
                    em.emit(EventKind::Retry {
                        attempt,
                        reason: last_problem.clone(),
                    });
                }
                continue;
            }
            if verdict.passed {
                let provenance = Provenance::Synthesised { model };
                em.emit(EventKind::Accepted {
                    attempt,
                    program: program.clone(),
                    provenance: provenance.clone(),
                });
                let mut outcome = blank_outcome(SynthResult::Accepted {
                    program,
                    provenance,
                    attempt,
                    warnings: verdict.records,
                });
                outcome.attempts = attempt;
                outcome.usage = usage;
                outcome.verification = verification;
                return outcome;
            }
            let errors = verdict.records.iter().filter(|d| d.is_error()).count();
            last_problem = format!("the program has {errors} error(s)");
            messages.push(ChatMessage::user(feedback_for_diagnostics(
                attempt,
                max_attempts,
                &verdict.records,
            )));
            last_diagnostics = verdict.records;
            if attempt < max_attempts {
                em.emit(EventKind::Retry {
                    attempt,
                    reason: last_problem.clone(),
                });
            }
        }
        let ask = prompt::ask_after_failures(
            &req.request,
            max_attempts,
            &last_problem,
            &last_diagnostics,
        );
        em.emit(EventKind::GaveUp {
            attempts: attempt,
            last_diagnostics: last_diagnostics.clone(),
            ask: ask.clone(),
        });
        let mut outcome = blank_outcome(SynthResult::GaveUp {
            attempts: attempt,
            last_diagnostics,
            ask,
        });
        outcome.attempts = attempt;
        outcome.usage = usage;
        outcome
    }

    /// The wait before the next attempt: `Retry-After` when the server sent
    /// one, else the base backoff times the attempt; never over the maximum.
    fn backoff_for(&self, error: &LlmError, attempt: u32) -> Duration {
        error
            .retry_after()
            .unwrap_or(self.options.backoff * attempt)
            .min(self.options.max_backoff)
    }
}

fn add_usage(total: &mut Usage, more: &Usage) {
    let add = |a: Option<u32>, b: Option<u32>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    total.prompt_tokens = add(total.prompt_tokens, more.prompt_tokens);
    total.completion_tokens = add(total.completion_tokens, more.completion_tokens);
}

fn finish_name(f: &FinishReason) -> String {
    match f {
        FinishReason::Stop => "stop".into(),
        FinishReason::Length => "length".into(),
        FinishReason::ContentFilter => "content_filter".into(),
        FinishReason::ToolCalls => "tool_calls".into(),
        FinishReason::Other(o) => o.clone(),
    }
}

/// Errors that asking again cannot fix.
fn is_fatal(error: &LlmError) -> bool {
    matches!(
        error,
        LlmError::Unreachable { .. }
            | LlmError::Auth { .. }
            | LlmError::NotConfigured
            | LlmError::Config { .. }
            | LlmError::ModelNotFound { .. }
            | LlmError::Rejected { .. }
    )
}

fn blank_outcome(result: SynthResult) -> SynthOutcome {
    SynthOutcome {
        result,
        events: Vec::new(),
        attempts: 0,
        weak_match: None,
        not_applied: Vec::new(),
        from_cache: false,
        verification: None,
        usage: Usage::default(),
        cache_key: String::new(),
        cache_error: None,
        timings: Timings::default(),
    }
}
