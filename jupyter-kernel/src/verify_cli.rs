//! `kgent verify`: a program's `assert`s decided by the symbolic verifier, after
//! annotating it from its attach points' contracts and the rules (unless
//! `--no-annotate`). The verifier runs in the `kgent-verifier` helper process
//! (`kgent_agent::verifier`): this binary does not link Z3.
//!
//! Exit status: 0 every assertion proved (or none), 1 one refuted (or the program
//! does not parse), 3 some without a verdict and none refuted (unknown, or the
//! verifier crashed or ran out of time), 2 usage error (unreadable file, no verifier).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use kgent_agent::verifier::{
    AnnotationKindData, AssertionData, VerdictData, Verifier, VerifierError, VerifierRequest,
    VerifierResponse,
};

/// `kgent verify`'s arguments.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The program file, or `-` for standard input.
    pub file: PathBuf,
    /// Print the verifier's response as JSON.
    #[arg(long)]
    pub json: bool,
    /// The English request the program is for; the rules compare the two. Default: the
    /// program's `// Request:` comment line, if any.
    #[arg(long, value_name = "TEXT")]
    pub request: Option<String>,
    /// Verify only the program's own assume/assert annotations (no contract
    /// assumptions, no rule assertions).
    #[arg(long = "no-annotate")]
    pub no_annotate: bool,
    /// Time limit of one solver query, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u32>,
}

const USAGE_ERROR: u8 = 2;
const REFUTED: u8 = 1;
const UNKNOWN: u8 = 3;

pub fn main(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (name, source) = match crate::check::read_source(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kgent verify: {e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let verifier = match Verifier::locate() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("kgent verify: {e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let request_text = args.request.clone().or_else(|| pinned_request(&source));
    let request = VerifierRequest {
        id: 0,
        source,
        request: request_text.clone(),
        annotate: !args.no_annotate,
        timeout_ms: args.timeout_ms,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let r = verifier.verify(request).await;
        verifier.shutdown().await;
        r
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    let response = match result {
        Ok(r) => r,
        Err(e @ (VerifierError::NotFound { .. } | VerifierError::Spawn { .. })) => {
            eprintln!("kgent verify: {e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        Err(e) => {
            eprintln!("kgent verify: no verdict: {e}");
            return Ok(ExitCode::from(UNKNOWN));
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        );
    } else {
        print!("{}", render(&name, request_text.as_deref(), &response));
    }
    if let Some(e) = &response.error {
        if args.json {
            eprintln!("kgent verify: {e}");
        }
        return Ok(ExitCode::from(REFUTED));
    }
    Ok(ExitCode::from(exit_code(&response)))
}

/// 0 all proved (or no assertions), 1 any refuted, 3 any unknown.
fn exit_code(response: &VerifierResponse) -> u8 {
    match &response.report {
        Some(r) if r.any_refuted() => REFUTED,
        Some(r) if r.any_unknown() => UNKNOWN,
        Some(_) => 0,
        None => UNKNOWN,
    }
}

/// The request of a pinned cell (`// Request: ...` among the leading comments).
fn pinned_request(source: &str) -> Option<String> {
    source
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("//"))
        .find_map(|l| {
            let rest = l.trim_start_matches('/').trim_start();
            rest.strip_prefix("Request:")
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
        })
}

/// The annotated program with line numbers; under each annotation its kind and
/// origin, under each assertion its verdict; then a summary.
fn render(name: &str, request: Option<&str>, response: &VerifierResponse) -> String {
    let mut out = String::new();
    let source = &response.annotated_source;
    if let Some(e) = &response.error {
        let _ = writeln!(out, "{name}: {e}");
        for note in &response.notes {
            let _ = writeln!(out, "note: {note}");
        }
        return out;
    }
    let assertions: &[AssertionData] = response
        .report
        .as_ref()
        .map_or(&[], |r| r.assertions.as_slice());
    let count = source.lines().count().max(1);
    let width = count.to_string().len();
    let pad = " ".repeat(width);
    for (i, text) in source.lines().enumerate() {
        let line = i as u32 + 1;
        let _ = writeln!(out, "{line:>width$} | {text}");
        let indent: String = text
            .chars()
            .take_while(|c| c.is_whitespace())
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let here: Vec<&AssertionData> = assertions.iter().filter(|a| a.line == line).collect();
        let mut asserts_seen = 0;
        for a in response.annotations.iter().filter(|a| a.line == line) {
            match a.kind {
                AnnotationKindData::Assume => {
                    let _ = writeln!(out, "{pad} | {indent}= assume, from {}", a.origin);
                    let _ = writeln!(out, "{pad} | {indent}    why: {}", a.why);
                }
                AnnotationKindData::Assert => {
                    let verdict = here.get(asserts_seen).copied();
                    asserts_seen += 1;
                    let _ = write!(out, "{pad} | {indent}= assert, from {}: ", a.origin);
                    verdict_lines(&mut out, &pad, &indent, verdict);
                    if a.why != "written in the program" {
                        let _ = writeln!(out, "{pad} | {indent}    why: {}", a.why);
                    }
                }
            }
        }
        // Assertions with no annotation listed (there should be none).
        for a in here.iter().skip(asserts_seen) {
            let _ = write!(out, "{pad} | {indent}= assert: ");
            verdict_lines(&mut out, &pad, &indent, Some(a));
        }
    }
    out.push('\n');
    let (mut proved, mut refuted, mut unknown) = (0, 0, 0);
    for a in assertions {
        match a.verdict {
            VerdictData::Proved => proved += 1,
            VerdictData::Refuted { .. } => refuted += 1,
            VerdictData::Unknown { .. } => unknown += 1,
        }
    }
    let verdict = if refuted > 0 {
        "REFUTED"
    } else if unknown > 0 {
        "UNKNOWN"
    } else {
        "PROVED"
    };
    let elapsed = response.report.as_ref().map_or(0.0, |r| r.elapsed_ms);
    let _ = writeln!(
        out,
        "{name}: {verdict}: {} assertion{}: {proved} proved, {refuted} refuted, {unknown} unknown \
         ({elapsed:.1} ms)",
        assertions.len(),
        if assertions.len() == 1 { "" } else { "s" },
    );
    match request {
        Some(r) => {
            let _ = writeln!(out, "request: {r}");
        }
        None => {
            let _ = writeln!(
                out,
                "request: none given (--request TEXT lets the rules compare it with the program)"
            );
        }
    }
    let report_notes = response.report.iter().flat_map(|r| r.notes.iter());
    for note in response.notes.iter().chain(report_notes) {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// `proved (1.2 ms)` / `REFUTED (..)` with the counterexample / `unknown: why`.
fn verdict_lines(out: &mut String, pad: &str, indent: &str, a: Option<&AssertionData>) {
    let Some(a) = a else {
        let _ = writeln!(out, "no verdict");
        return;
    };
    let ms = a.elapsed_ms;
    match &a.verdict {
        VerdictData::Proved if a.vacuous => {
            let _ = writeln!(out, "proved, vacuously: no path reaches it ({ms:.1} ms)");
        }
        VerdictData::Proved => {
            let _ = writeln!(out, "proved ({ms:.1} ms)");
        }
        VerdictData::Refuted { counterexample } => {
            let _ = writeln!(out, "REFUTED ({ms:.1} ms)");
            let inputs: Vec<String> = counterexample
                .inputs
                .iter()
                .map(|i| format!("{} = {}", i.name, i.shown))
                .collect();
            let inputs = if inputs.is_empty() {
                "any inputs".to_string()
            } else {
                inputs.join(", ")
            };
            let _ = writeln!(
                out,
                "{pad} | {indent}    counterexample in {}: {inputs}",
                counterexample.probe
            );
            if counterexample.printed.is_empty() {
                let _ = writeln!(
                    out,
                    "{pad} | {indent}    prints nothing before the assertion"
                );
            }
            for printed in &counterexample.printed {
                let _ = writeln!(
                    out,
                    "{pad} | {indent}    prints: {:?}",
                    printed.trim_end_matches('\n')
                );
            }
        }
        VerdictData::Unknown { reason } => {
            let _ = writeln!(out, "unknown: {reason} ({ms:.1} ms)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_cell_names_its_request() {
        assert_eq!(
            pinned_request("// Request: IPv4 and IPv6 connects\n// Kgent: x\nkprobe:f {}"),
            Some("IPv4 and IPv6 connects".into())
        );
        assert_eq!(pinned_request("kprobe:f {}\n// Request: late"), None);
    }
}
