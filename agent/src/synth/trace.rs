//! The loop's events as lines a person reads (the CLI prints them, the
//! notebook shows them), and the header that pins an accepted program in a
//! notebook cell.

use super::{DiagnosticRecord, EventKind, Provenance, SynthEvent};

/// The comment line that starts a pinned program: `// Request: ...`.
pub const REQUEST_PREFIX: &str = "// Request: ";
/// The comment line saying where the pinned program came from.
pub const SOURCE_PREFIX: &str = "// Kgent: ";

/// One line for `event`; `None` for tokens (shown as a running count instead).
pub fn describe(event: &SynthEvent) -> Option<String> {
    let text = match &event.kind {
        EventKind::Started { request, offline } => format!(
            "request: {request:?}{}",
            if *offline {
                " (offline: from the example library)"
            } else {
                ""
            }
        ),
        EventKind::CacheHit { key } => format!(
            "answered before: replaying the stored result (cache key {})",
            &key[..key.len().min(12)]
        ),
        EventKind::Retrieved { examples } => {
            if examples.is_empty() {
                "no similar example in the library".to_string()
            } else {
                let ids: Vec<&str> = examples.iter().map(|(id, _)| id.as_str()).collect();
                format!("similar verified examples: {}", ids.join(", "))
            }
        }
        EventKind::Prompting { attempt } => format!("attempt {attempt}: asking the model"),
        EventKind::Token(_) => return None,
        EventKind::Replied {
            attempt,
            usage,
            elapsed_ms,
            finish_reason,
        } => {
            let tokens = match (usage.prompt_tokens, usage.completion_tokens) {
                (Some(p), Some(c)) => format!("{p} prompt + {c} reply tokens"),
                (None, Some(c)) => format!("{c} reply tokens"),
                (Some(p), None) => format!("{p} prompt tokens"),
                (None, None) => "token counts not reported".to_string(),
            };
            let cut = if finish_reason.as_deref() == Some("length") {
                "; cut off by the token limit"
            } else {
                ""
            };
            format!("attempt {attempt}: the model replied in {elapsed_ms} ms ({tokens}{cut})")
        }
        EventKind::Candidate { attempt, program } => format!(
            "{}: candidate program ({} lines)",
            attempt_name(*attempt),
            program.lines().count()
        ),
        EventKind::Diagnostics {
            attempt,
            diagnostics,
        } => {
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let warnings = diagnostics.len() - errors;
            match (errors, warnings) {
                (0, 0) => format!("{}: checks passed", attempt_name(*attempt)),
                (0, w) => format!("{}: checks passed, {w} warning(s)", attempt_name(*attempt)),
                (e, _) => {
                    let first = diagnostics.iter().find(|d| d.is_error()).map(one_line);
                    format!(
                        "{}: {e} error(s){}",
                        attempt_name(*attempt),
                        first.map(|f| format!(", first: {f}")).unwrap_or_default()
                    )
                }
            }
        }
        // Offline, the next nearest example is tried; there is no feedback.
        EventKind::Verifying { attempt, by_model } => format!(
            "{}: {}",
            attempt_name(*attempt),
            if *by_model {
                "the model annotates what the request means; verifying"
            } else {
                "annotating from the contracts and rules; verifying"
            }
        ),
        EventKind::Verified {
            attempt,
            verification,
        } => format!(
            "{}: {}",
            attempt_name(*attempt),
            match verification.refutation() {
                Some(problem) => problem,
                None => verification.summary(),
            }
        ),
        EventKind::Retry { attempt: 0, reason } => reason.clone(),
        EventKind::Retry { attempt, reason } => {
            format!("attempt {attempt} failed ({reason}); feedback sent, trying again")
        }
        EventKind::Accepted {
            attempt,
            provenance,
            ..
        } => format!(
            "accepted{}: {}",
            if *attempt > 0 {
                format!(" at attempt {attempt}")
            } else {
                String::new()
            },
            provenance_text(provenance)
        ),
        EventKind::GaveUp {
            attempts,
            last_diagnostics,
            ..
        } => {
            if *attempts == 0 && !last_diagnostics.iter().any(DiagnosticRecord::is_error) {
                "gave up: the verifier refutes the examples for this request".to_string()
            } else if *attempts == 0 {
                "gave up: the example does not pass the checks on this kernel".to_string()
            } else {
                format!("gave up after {attempts} attempt(s): a hint is needed")
            }
        }
    };
    Some(text)
}

fn attempt_name(attempt: u32) -> String {
    if attempt == 0 {
        "example".to_string()
    } else {
        format!("attempt {attempt}")
    }
}

/// `2:5 error[unknown-probe] message (fix: replace `a` with `b`)`.
pub fn one_line(d: &DiagnosticRecord) -> String {
    let mut s = format!(
        "{}:{} {}[{}] {}",
        d.line, d.column, d.severity, d.code, d.message
    );
    if let Some(fix) = &d.suggestion {
        s.push_str(&format!(" (fix: {fix})"));
    } else if let Some(help) = &d.help {
        s.push_str(&format!(" ({help})"));
    }
    s
}

/// Where a program came from, honestly: a model wrote it, or it is a library
/// example (and what was changed in it).
pub fn provenance_text(p: &Provenance) -> String {
    match p {
        Provenance::Synthesised { model } => format!("synthesised by {model}, checked by Kgent"),
        Provenance::Retrieved {
            example_id,
            adapted,
        } => {
            let mut s = format!("retrieved from the verified example library ({example_id})");
            if !adapted.is_empty() {
                let changes: Vec<String> =
                    adapted.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!(", adapted: {}", changes.join(", ")));
            }
            s
        }
    }
}

/// The text of a `%%bpftrace` cell that pins `program`, headed by the request
/// and the provenance so the notebook itself says where it came from.
pub fn pinned_cell(request: &str, provenance: &Provenance, program: &str) -> String {
    let request = request.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "%%bpftrace\n{REQUEST_PREFIX}{request}\n{SOURCE_PREFIX}{}\n{}\n",
        provenance_text(provenance),
        program.trim_end()
    )
}

/// The request a pinned program was made for, if `program` starts with the
/// header [`pinned_cell`] writes (comments and blank lines before it allowed).
pub fn pinned_request(program: &str) -> Option<String> {
    program
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("//"))
        .find_map(|l| l.strip_prefix(REQUEST_PREFIX.trim_end()))
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> SynthEvent {
        SynthEvent { at_ms: 0, kind }
    }

    #[test]
    fn diagnostics_line_names_the_first_error_and_its_fix() {
        let d = DiagnosticRecord {
            severity: "error".into(),
            code: "unknown-probe".into(),
            message: "no such tracepoint".into(),
            line: 2,
            column: 1,
            help: None,
            suggestion: Some("replace `a` with `b`".into()),
        };
        let line = describe(&ev(EventKind::Diagnostics {
            attempt: 1,
            diagnostics: vec![d],
        }))
        .unwrap();
        assert_eq!(
            line,
            "attempt 1: 1 error(s), first: 2:1 error[unknown-probe] no such tracepoint (fix: replace `a` with `b`)"
        );
        assert_eq!(describe(&ev(EventKind::Token("x".into()))), None);
    }

    #[test]
    fn retrieved_programs_never_claim_to_be_synthesised() {
        let p = Provenance::Retrieved {
            example_id: "procs-exec".into(),
            adapted: vec![("comm".into(), "nginx".into())],
        };
        let text = provenance_text(&p);
        assert!(
            text.contains("retrieved") && text.contains("comm=nginx"),
            "{text}"
        );
        assert!(!text.contains("synthesised"));
    }

    #[test]
    fn a_pinned_cell_round_trips_its_request() {
        let p = Provenance::Synthesised { model: "m".into() };
        let cell = pinned_cell("show  opens\nunder /etc", &p, "BEGIN { exit(); }\n");
        assert!(cell.starts_with("%%bpftrace\n// Request: show opens under /etc\n// Kgent: "));
        let body = cell.split_once('\n').unwrap().1;
        assert_eq!(
            pinned_request(body).as_deref(),
            Some("show opens under /etc")
        );
        assert_eq!(pinned_request("BEGIN { exit(); }"), None);
        assert_eq!(pinned_request("BEGIN {}\n// Request: late"), None);
    }
}
