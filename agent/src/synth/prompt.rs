//! The prompt: the rules this project learned about bpftrace 0.17, what
//! attaches on this kernel, the nearest verified examples, and the typed
//! attach points the request's words point at. Also the feedback after a
//! failed attempt and the question to the person after the last one.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use kgent_frontend::ast::ProbeKind;
use kgent_frontend::{KernelFacts, ProbeSupport};
use kgent_llm::ChatMessage;
use kgent_retrieval::Example;

use super::verification::Verification;
use super::{DiagnosticRecord, SynthRequest};

/// Feedback when a reply holds no program.
pub const NO_PROGRAM_FEEDBACK: &str = "Your reply had no program. Reply with exactly one complete \
bpftrace program in a ```bpftrace fence, and nothing else inside the fence.";

/// Attach points listed in the prompt, at most.
const MAX_ATTACH_POINTS: usize = 8;
/// Fields listed per attach point, at most.
const MAX_FIELDS: usize = 12;

/// The rules, learned the hard way on this project's bpftrace 0.17.
const RULES: &str = "\
You write bpftrace programs for bpftrace 0.17 on Linux. Rules:
- At most one BEGIN probe and one END probe per program.
- Compare strings with strncmp(a, \"literal\", N) == 0 for prefixes, or == on whole strings \
(comm == \"bash\"); there is no strcmp, startswith or contains.
- Read char* values with str(): str(args->filename), str(arg0). Never print a char* with %s directly.
- printf has no %i: use %d (and %u, %lu, %s, %x, %p).
- Prefer tracepoints (tracepoint:CATEGORY:EVENT with typed args->FIELD) over kprobes: \
they are stable and their fields are known below.
- All system calls at once: tracepoint:raw_syscalls:sys_enter/sys_exit with args->id, \
not a wildcard over tracepoint:syscalls:*.
- Latency: store nsecs in a map keyed by tid on entry, read it with a /@start[tid]/ \
predicate on exit, then delete(@start[tid]). Say units in map names (@lat_us).
- Keep output bounded: aggregate into maps (count(), sum(), hist()) unless events are rare or filtered.
- Stop after N seconds only when asked: interval:s:N { exit(); }.
- No system(), signal() or override(); nothing that needs --unsafe.
Reply with one complete program in a single ```bpftrace fence, then at most two sentences.";

/// Probe kinds whose support the prompt states.
const KINDS: &[ProbeKind] = &[
    ProbeKind::Tracepoint,
    ProbeKind::Kprobe,
    ProbeKind::Kretprobe,
    ProbeKind::Fentry,
    ProbeKind::Fexit,
    ProbeKind::Rawtracepoint,
    ProbeKind::Uprobe,
    ProbeKind::Uretprobe,
    ProbeKind::Usdt,
    ProbeKind::Profile,
    ProbeKind::Interval,
    ProbeKind::Software,
    ProbeKind::Hardware,
];

/// The system message: rules plus this kernel's probe types.
pub fn system_prompt(facts: &dyn KernelFacts) -> String {
    let mut out = String::from(RULES);
    let mut works = Vec::new();
    let mut broken = Vec::new();
    for &kind in KINDS {
        match facts.probe_support(kind) {
            ProbeSupport::Works => works.push(kind.as_str()),
            ProbeSupport::Unsupported {
                reason,
                alternatives,
            } => {
                let alt = alternatives.first().map(String::as_str).unwrap_or("");
                broken.push(format!(
                    "- {}: does NOT work here ({reason}){}",
                    kind.as_str(),
                    if alt.is_empty() {
                        String::new()
                    } else {
                        format!("; use {alt}")
                    }
                ));
            }
            ProbeSupport::Unknown => {}
        }
    }
    if !works.is_empty() || !broken.is_empty() {
        out.push_str("\n\nOn THIS kernel:\n");
        if !works.is_empty() {
            let _ = writeln!(out, "- these probe types work: {}", works.join(", "));
        }
        for b in broken {
            out.push_str(&b);
            out.push('\n');
        }
    }
    out
}

/// Words too common to name an attach point.
const STOP: &[&str] = &[
    "the",
    "and",
    "for",
    "with",
    "that",
    "this",
    "show",
    "which",
    "what",
    "who",
    "how",
    "print",
    "count",
    "trace",
    "each",
    "every",
    "per",
    "all",
    "from",
    "into",
    "over",
    "when",
    "while",
    "are",
    "was",
    "being",
    "seconds",
    "second",
    "minutes",
    "then",
    "stop",
    "result",
    "list",
    "display",
    "watch",
    "time",
    "times",
    "process",
    "processes",
    "program",
    "programs",
    "by",
    "me",
    "my",
    "its",
    "their",
    "them",
    "calls",
    "call",
    "system",
    "kernel",
    "histogram",
];

/// Request words mapped to the spelling attach points use.
const SYNONYMS: &[(&str, &str)] = &[
    ("opens", "open"),
    ("opening", "open"),
    ("opened", "open"),
    ("files", "open"),
    ("file", "open"),
    ("reads", "read"),
    ("writes", "write"),
    ("exec", "exec"),
    ("executes", "exec"),
    ("execs", "exec"),
    ("started", "exec"),
    ("starts", "exec"),
    ("new", "exec"),
    ("forks", "fork"),
    ("exits", "exit"),
    ("disk", "block_rq"),
    ("block", "block_rq"),
    ("io", "block_rq"),
    ("connections", "connect"),
    ("connects", "connect"),
    ("tcp", "tcp"),
    ("retransmits", "retransmit"),
    ("signals", "kill"),
    ("signal", "kill"),
    ("kills", "kill"),
    ("switches", "sched_switch"),
    ("scheduler", "sched_switch"),
    ("wakeups", "sched_wakeup"),
    ("packets", "netif"),
    ("drops", "kfree_skb"),
];

/// Search terms for attach points from the request (and hints).
pub(crate) fn keywords(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .map(str::to_ascii_lowercase)
    {
        if (word.len() < 3 && word != "io") || STOP.contains(&word.as_str()) {
            continue;
        }
        if word.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let term = SYNONYMS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, t)| t.to_string())
            .unwrap_or(word);
        if !out.contains(&term) {
            out.push(term);
        }
    }
    out
}

/// Attach points worth showing: those of the examples first (verified), then
/// tracepoints whose names contain a request keyword.
pub(crate) fn relevant_attach_points(
    text: &str,
    examples: &[&Example],
    facts: &dyn KernelFacts,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let push = |name: String, out: &mut Vec<String>| {
        if out.len() < MAX_ATTACH_POINTS && !out.contains(&name) {
            out.push(name);
        }
    };
    for example in examples {
        for ap in crate::probe_scan::attach_points(&example.program) {
            let long = match ap.text.strip_prefix("t:") {
                Some(rest) => format!("tracepoint:{rest}"),
                None => ap.text.clone(),
            };
            if long.starts_with("tracepoint:") && !long.contains('*') {
                push(long, &mut out);
            }
        }
    }
    for word in keywords(text) {
        let found = facts.matching_probes(&format!("tracepoint:*:*{word}*"), 3);
        for name in found.names {
            // Prefer entry points of syscalls; the exit side has only `ret`.
            push(name, &mut out);
        }
    }
    out
}

/// The typed fields of `probe`, one line.
fn fields_line(facts: &dyn KernelFacts, probe: &str) -> Option<String> {
    let fields = facts.probe_fields(probe)?;
    let shown: Vec<String> = fields
        .iter()
        .filter(|f| !f.name.starts_with("common_") && f.name != "__syscall_nr")
        .take(MAX_FIELDS)
        .map(|f| format!("{} {}", f.c_type, f.name))
        .collect();
    Some(shown.join("; "))
}

/// The first user message: the request, hints, examples and attach points.
pub fn user_prompt(req: &SynthRequest, examples: &[&Example], facts: &dyn KernelFacts) -> String {
    let mut out = String::new();
    if !examples.is_empty() {
        out.push_str("Verified examples for similar requests:\n\n");
        for e in examples {
            let _ = writeln!(
                out,
                "Request: {}\n```bpftrace\n{}\n```\n",
                e.request,
                e.program.trim_end()
            );
        }
    }
    let text = std::iter::once(req.request.as_str())
        .chain(req.hints.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let points = relevant_attach_points(&text, examples, facts);
    if !points.is_empty() {
        out.push_str("Attach points that exist on this kernel, with their args fields:\n");
        let mut seen = BTreeSet::new();
        for p in points {
            if !seen.insert(p.clone()) {
                continue;
            }
            match fields_line(facts, &p) {
                Some(fields) if !fields.is_empty() => {
                    let _ = writeln!(out, "- {p}: {fields}");
                }
                _ => {
                    let _ = writeln!(out, "- {p}");
                }
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Request: {}", req.request.trim());
    if !req.hints.is_empty() {
        out.push_str("Hints from the person:\n");
        for h in &req.hints {
            let _ = writeln!(out, "- {h}");
        }
    }
    out.push_str("\nWrite one bpftrace program for this request, in a ```bpftrace fence.");
    out
}

/// The opening conversation: system rules, then the task.
pub fn build_messages(
    req: &SynthRequest,
    examples: &[&Example],
    facts: &dyn KernelFacts,
) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(system_prompt(facts)),
        ChatMessage::user(user_prompt(req, examples, facts)),
    ]
}

/// One diagnostic as the LLM reads it.
fn diagnostic_line(d: &DiagnosticRecord) -> String {
    let mut s = format!(
        "- {}[{}] at line {}:{}: {}",
        d.severity, d.code, d.line, d.column, d.message
    );
    if let Some(h) = &d.help {
        let _ = write!(s, "\n  help: {h}");
    }
    if let Some(sg) = &d.suggestion {
        let _ = write!(s, "\n  suggestion: {sg}");
    }
    s
}

/// Feedback after a candidate failed the checks.
pub fn feedback_for_diagnostics(
    attempt: u32,
    max_attempts: u32,
    diagnostics: &[DiagnosticRecord],
) -> String {
    let mut out = format!(
        "Your program failed the checks against this kernel (attempt {attempt} of {max_attempts}). \
         Fix every error below and reply with the whole corrected program in one ```bpftrace fence.\n"
    );
    for d in diagnostics {
        out.push_str(&diagnostic_line(d));
        out.push('\n');
    }
    out
}

/// The feedback after the verifier refuted assertions of a program that
/// passed the checks: each refuted assertion with where it came from, the
/// counterexample and what the program prints for it, then the annotated
/// program it was verified as.
pub fn feedback_for_refutation(
    attempt: u32,
    max_attempts: u32,
    verification: &Verification,
) -> String {
    let refuted = verification.refuted();
    let mut out = format!(
        "Your program passes the checks but does not do what was asked: the verifier refuted \
         {} assertion(s) (attempt {attempt} of {max_attempts}). Each assertion states what the \
         request needs; the counterexample is an event for which the program breaks it. Fix the \
         program's code (do not change or remove the assertions) and reply with the whole \
         corrected program, without annotations, in one ```bpftrace fence.\n",
        refuted.len()
    );
    for (assertion, cex) in refuted {
        let _ = write!(
            out,
            "- line {}: `{}`",
            assertion.line,
            assertion.text.trim()
        );
        if let Some(a) = verification.annotation_at(assertion.line) {
            let _ = write!(out, " ({}: {})", a.origin, a.why);
        }
        let _ = write!(
            out,
            "\n  counterexample: {}",
            verification.counterexample_text(assertion, cex)
        );
        if !cex.printed.is_empty() {
            out.push_str("\n  on that path the program prints, before the assertion:");
            // Printed text keeps its newlines; one output line per line here.
            for line in cex.printed.iter().flat_map(|p| p.lines()) {
                let _ = write!(out, "\n    {line}");
            }
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "The program as verified, with its annotations:\n```bpftrace\n{}\n```\n",
        verification.annotated_source.trim_end()
    );
    out
}

/// The question for the person after the last failed attempt.
pub(crate) fn ask_after_failures(
    request: &str,
    attempts: u32,
    last_problem: &str,
    diagnostics: &[DiagnosticRecord],
) -> String {
    let mut out = format!(
        "I could not write a program for {request:?} that passes the checks in {attempts} attempt(s). "
    );
    let errors: Vec<&DiagnosticRecord> = diagnostics.iter().filter(|d| d.is_error()).collect();
    if errors.is_empty() {
        let _ = write!(out, "The last attempt failed because {last_problem}. ");
    } else {
        out.push_str("The last program still had:\n");
        for d in &errors {
            out.push_str(&diagnostic_line(d));
            out.push('\n');
        }
    }
    out.push_str(hint_question(&errors));
    out
}

/// What hint would help, from the kind of error.
fn hint_question(errors: &[&DiagnosticRecord]) -> &'static str {
    let has = |codes: &[&str]| errors.iter().any(|d| codes.contains(&d.code.as_str()));
    if has(&[
        "unknown-probe",
        "unsupported-probe-type",
        "invalid-attach-point",
    ]) {
        "Which event should be traced? Naming the tracepoint or system call \
         (e.g. `tracepoint:syscalls:sys_enter_openat`) would help."
    } else if has(&["no-such-field", "unknown-type", "member-operator"]) {
        "Which value do you want to see? Naming the field or argument would help."
    } else if errors.is_empty() {
        "You can try again, add a hint (the event, the process, the value to show), \
         or run offline to get the nearest verified example."
    } else {
        "A hint about the events to trace and the values to show would help; \
         or run offline to get the nearest verified example."
    }
}

/// The question when the adapted offline example fails the checks.
pub(crate) fn ask_offline(example_id: &str, diagnostics: &[DiagnosticRecord]) -> String {
    let errors: Vec<&DiagnosticRecord> = diagnostics.iter().filter(|d| d.is_error()).collect();
    let mut out = format!(
        "The nearest verified example ({example_id}) does not pass the checks on this kernel:\n"
    );
    for d in &errors {
        out.push_str(&diagnostic_line(d));
        out.push('\n');
    }
    out.push_str(hint_question(&errors));
    out
}

/// The question when the examples tried offline pass the checks but the
/// verifier refutes what the request asks of them.
pub(crate) fn ask_offline_refuted(example_id: &str, problem: &str) -> String {
    format!(
        "The nearest verified example ({example_id}) does not do what was asked: {problem}. \
         No example in the library does. Rephrase the request, add a hint, or configure an LLM \
         to write a program for it."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_drop_common_words_and_map_synonyms() {
        assert_eq!(
            keywords("Show which processes open files under /etc"),
            ["open", "under", "etc"]
        );
        assert_eq!(keywords("trace disk io for 5 seconds"), ["block_rq"]);
    }
}
