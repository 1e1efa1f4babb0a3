//! The load check: the real kernel verifier on a program, without running it.
//!
//! bpftrace 0.17 has no dry run that reaches the verifier (`--emit-elf`/`-d` stop
//! before loading), so the program is loaded and attached with `exit()` as the last
//! thing its BEGIN probe does (last: code after `exit()` is dropped by the compiler and
//! would escape the verifier; bpftrace refuses a second BEGIN, so one is added only
//! when there is none). It detaches at once; its output is discarded. Annotations are
//! blanked, not removed, so bpftrace's line:column positions map straight back.

use std::path::Path;
use std::time::{Duration, Instant};

use kgent_frontend::ast::{ItemKind, ProbeKind, Program, StmtKind};
use kgent_frontend::{blank_annotations, Diagnostic, Severity, Span};

use crate::failure::{Failure, FailureKind};
use crate::runner::{verifier_log, BpftraceRun, RunError, RunEvent, RunSpec};

/// Attaching costs ~70 ms per probe here; the budget grows with the program.
const BASE_BUDGET: Duration = Duration::from_secs(30);

/// What the load check found.
#[derive(Clone, Debug)]
pub struct LoadCheck {
    /// Diagnostics against the original source (empty when it loaded).
    pub diagnostics: Vec<Diagnostic>,
    /// The classified failure, when bpftrace failed.
    pub failure: Option<Failure>,
    /// Probes bpftrace attached.
    pub probes: u64,
    pub elapsed: Duration,
}

impl LoadCheck {
    pub fn passed(&self) -> bool {
        self.failure.is_none() && !self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The text bpftrace loads for the check, and where an insertion shifted columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSource {
    pub text: String,
    /// Byte offset in the original source where `exit();` was inserted, if it was.
    pub inserted_at: Option<usize>,
    /// How many bytes were inserted there.
    pub inserted_len: usize,
}

const EXIT_STMT: &str = "exit(); ";

fn ends_with_block(kind: &StmtKind) -> bool {
    matches!(
        kind,
        StmtKind::If(_)
            | StmtKind::While { .. }
            | StmtKind::Unroll { .. }
            | StmtKind::For { .. }
            | StmtKind::Block(_)
    )
}

/// Builds the program to load: annotations blanked, `exit()` last in BEGIN.
pub fn check_source(source: &str, program: &Program) -> CheckSource {
    let mut text = blank_annotations(source, program);
    let begin_body = program.items.iter().find_map(|item| match &item.kind {
        ItemKind::Probe(p)
            if p.attach_points
                .iter()
                .any(|a| a.kind == Some(ProbeKind::Begin)) =>
        {
            Some(&p.body)
        }
        _ => None,
    });
    match begin_body {
        Some(body)
            if body.span.end > body.span.start
                && text.as_bytes().get(body.span.end as usize - 1) == Some(&b'}') =>
        {
            let at = body.span.end as usize - 1;
            // bpftrace 0.17 rejects empty statements (`;;`, `};`), so a `;` goes in only
            // when the last statement needs one.
            let needs_semicolon = body.stmts.last().is_some_and(|last| {
                let between = text.get(last.span.end as usize..at).unwrap_or("");
                !between.contains(';') && !ends_with_block(&last.kind)
            });
            let insert = if needs_semicolon {
                "; exit(); "
            } else {
                EXIT_STMT
            };
            text.insert_str(at, insert);
            CheckSource {
                text,
                inserted_at: Some(at),
                inserted_len: insert.len(),
            }
        }
        _ => {
            // Appended, so nothing before it moves.
            text.push_str("\nBEGIN { exit(); }\n");
            CheckSource {
                text,
                inserted_at: None,
                inserted_len: 0,
            }
        }
    }
}

/// Loads the program in the kernel and reports whether the verifier and the attach
/// accept it. `program` must be `parse(source).program`.
pub async fn load_check(
    bpftrace: &Path,
    source: &str,
    program: &Program,
    allow_unsafe: bool,
) -> LoadCheck {
    let started = Instant::now();
    let check = check_source(source, program);
    let probes_in_program: usize = program
        .items
        .iter()
        .map(|i| match &i.kind {
            ItemKind::Probe(p) => p.attach_points.len(),
            _ => 0,
        })
        .sum();
    let mut spec = RunSpec::new(bpftrace, check.text.clone());
    spec.allow_unsafe = allow_unsafe;
    let run = match BpftraceRun::spawn(&spec) {
        Ok(run) => run,
        Err(e) => {
            let kind = match e {
                RunError::NotFound { .. } => "bpftrace-missing",
                RunError::Spawn { .. } => "bpftrace-failed",
            };
            return LoadCheck {
                diagnostics: vec![Diagnostic::error(kind, e.to_string(), span(0, 0))],
                failure: None,
                probes: 0,
                elapsed: started.elapsed(),
            };
        }
    };
    // Wildcards can attach far more probes than are written; allow for the common case
    // and say so if the budget runs out.
    let budget = BASE_BUDGET + Duration::from_millis(100) * probes_in_program as u32;
    let (probes, exit) = drain(run, budget).await;
    let mut failure = exit.and_then(|e| e.failure);
    if let Some(f) = &mut failure {
        if f.kind == FailureKind::Verifier && f.log.is_empty() {
            f.log = verifier_log(&spec).await;
        }
    }
    let diagnostics = failure
        .as_ref()
        .map(|f| failure_diagnostics(f, source, &check))
        .unwrap_or_default();
    LoadCheck {
        diagnostics,
        failure,
        probes,
        elapsed: started.elapsed(),
    }
}

/// Runs to the end, keeping only what the check needs (the output is discarded, so a
/// program that prints a lot while attached costs no memory).
async fn drain(mut run: BpftraceRun, budget: Duration) -> (u64, Option<crate::runner::ExitInfo>) {
    let mut probes = 0;
    let deadline = tokio::time::sleep(budget);
    tokio::pin!(deadline);
    let mut stopping = false;
    loop {
        tokio::select! {
            ev = run.next_event() => match ev {
                RunEvent::Exited(exit) => return (probes, Some(exit)),
                RunEvent::Output(kgent_output::OutputEvent::AttachedProbes(n)) => probes = n,
                _ => {}
            },
            _ = &mut deadline => {
                if stopping {
                    run.kill();
                    return (probes, None);
                }
                stopping = true;
                run.interrupt();
                deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(5));
            }
        }
    }
}

/// bpftrace's messages as diagnostics on the original source.
pub fn failure_diagnostics(
    failure: &Failure,
    source: &str,
    check: &CheckSource,
) -> Vec<Diagnostic> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let inserted_line = check
        .inserted_at
        .map(|at| source[..at.min(source.len())].matches('\n').count() + 1);
    let code = failure.kind.code();
    let mut out: Vec<Diagnostic> = failure
        .diagnostics
        .iter()
        .map(|d| {
            let located = d.location.and_then(|loc| {
                let line_start = *line_starts.get(loc.line.checked_sub(1)?)?;
                let line_end = source[line_start..]
                    .find('\n')
                    .map_or(source.len(), |i| line_start + i);
                if !loc.has_columns() {
                    return Some(span(line_start as u32, line_end as u32));
                }
                // Columns after the inserted `exit();` on its line moved right.
                let shift = match (inserted_line, check.inserted_at) {
                    (Some(l), Some(at)) if l == loc.line && line_start + loc.col_start > at => {
                        check.inserted_len
                    }
                    _ => 0,
                };
                let start = (line_start + loc.col_start - 1)
                    .saturating_sub(shift)
                    .min(line_end);
                let end = (line_start + loc.col_end - 1)
                    .saturating_sub(shift)
                    .clamp(start, line_end);
                Some(span(start as u32, end as u32))
            });
            let at = located.unwrap_or_else(|| span(0, 0));
            let mut diag = Diagnostic::new(
                if d.is_warning {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                code,
                format!("bpftrace: {}", d.message),
                at,
            );
            if let Some(hint) = &failure.hint {
                diag = diag.with_help(hint.clone());
            }
            diag
        })
        .collect();
    if out.iter().all(|d| !d.is_error()) {
        out.push(
            Diagnostic::error(
                code,
                format!("bpftrace: {}", failure.kind.title()),
                span(0, 0),
            )
            .with_help(failure.hint.clone().unwrap_or_default()),
        );
    }
    if !failure.log.is_empty() {
        let tail = failure.log.len().saturating_sub(20);
        let label = if failure.kind == FailureKind::Verifier {
            "verifier log"
        } else {
            "bpftrace said"
        };
        out.push(Diagnostic::new(
            Severity::Note,
            code,
            format!("{label}:\n{}", failure.log[tail..].join("\n")),
            span(0, 0),
        ));
    }
    out
}

fn span(start: u32, end: u32) -> Span {
    Span { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{Diagnostic as BtDiag, Location};

    #[test]
    fn exit_goes_last_in_an_existing_begin() {
        let src = "BEGIN { printf(\"hi\\n\") }\nt:syscalls:sys_enter_openat { assume(pid > 0); @[comm] = count(); }";
        let parsed = kgent_frontend::parse(src);
        let check = check_source(src, &parsed.program);
        assert!(
            check
                .text
                .starts_with("BEGIN { printf(\"hi\\n\") ; exit(); }"),
            "{}",
            check.text
        );
        assert!(!check.text.contains("assume"));
        assert!(!kgent_frontend::parse(&check.text).has_errors());
    }

    #[test]
    fn begin_is_appended_when_missing() {
        let src = "t:syscalls:sys_enter_openat { @[comm] = count(); } // end";
        let parsed = kgent_frontend::parse(src);
        let check = check_source(src, &parsed.program);
        assert!(check.text.starts_with(src));
        assert!(check.text.ends_with("BEGIN { exit(); }\n"));
        assert_eq!(check.inserted_at, None);
    }

    #[test]
    fn positions_map_back_past_the_insertion() {
        let src = "BEGIN { @x = nosuch(); }";
        let parsed = kgent_frontend::parse(src);
        let check = check_source(src, &parsed.program);
        // bpftrace sees "BEGIN { @x = nosuch(); ; exit(); }": the error is before the insertion.
        let col = check.text.find("nosuch").unwrap() + 1;
        let failure = Failure {
            kind: FailureKind::Semantic,
            diagnostics: vec![BtDiag {
                message: "Unknown function: nosuch".into(),
                location: Some(Location {
                    line: 1,
                    col_start: col,
                    col_end: col + 8,
                }),
                source_line: None,
                is_warning: false,
            }],
            log: vec![],
            exit_code: Some(1),
            signal: None,
            hint: None,
        };
        let diags = failure_diagnostics(&failure, src, &check);
        assert_eq!(diags[0].span.text(src), "nosuch()");
        assert_eq!(diags[0].code, "semantic-error");
    }
}
