//! A `%%verify` cell: the program is annotated (contracts, rules) and its
//! assertions proved or refuted by `kgent-verifier`, never run. Shown like a
//! natural-language cell's verification; a refuted assertion is the cell's
//! error, with its counterexample, as a failed `assert` is anywhere else.

use std::time::Instant;

use jupyter_protocol::{JupyterMessage, Media, MediaType};
use kgent_agent::synth::trace::pinned_request;
use kgent_agent::synth::verification::Status;
use kgent_agent::synth::{Comprehension, Verification};
use kgent_agent::verifier::VerifierRequest;
use kgent_magics::VerifyOptions;
use kgent_output::render::escape;
use tokio::sync::watch;

use crate::execute::{display, CellOutcome, RED, RESET};
use crate::server::Kernel;
use crate::verification_view::{self, annotated_html, annotated_plain, verification_headline};

pub struct VerifyCell<'a> {
    pub kernel: &'a Kernel,
    pub parent: &'a JupyterMessage,
    pub options: &'a VerifyOptions,
    pub program: &'a str,
}

pub async fn run(cell: VerifyCell<'_>, mut interrupts: watch::Receiver<u64>) -> CellOutcome {
    let VerifyCell {
        kernel,
        parent,
        options,
        program,
    } = cell;
    let has_code = program
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with("//"));
    if !has_code {
        return CellOutcome::error(
            "UsageError",
            "the %%verify cell has no program",
            vec![format!(
                "{RED}UsageError{RESET}: write a bpftrace program below the %%verify line, with assert(COND, \"why\") where it must hold"
            )],
        );
    }
    let verifier = match kernel.assistant.verifier() {
        Ok(v) => v,
        Err(why) => {
            return CellOutcome::error(
                "VerifierUnavailable",
                &why,
                vec![format!("{RED}The verifier is not available{RESET}: {why}")],
            )
        }
    };
    let request = options
        .request
        .clone()
        .or_else(|| pinned_request(program))
        .filter(|r| !r.trim().is_empty());
    let ask = VerifierRequest {
        source: program.to_string(),
        request: request.clone(),
        annotate: !options.no_annotate,
        ..VerifierRequest::default()
    };
    let started = Instant::now();
    interrupts.borrow_and_update();
    let response = tokio::select! {
        biased;
        // Dropping the request stops the verifier process working on it.
        Ok(()) = interrupts.changed() => {
            return CellOutcome::error(
                "Interrupted",
                "verification stopped by the user",
                vec![format!("{RED}Interrupted{RESET}: verification stopped.")],
            );
        }
        r = verifier.verify(ask) => r,
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            return CellOutcome::error(
                "VerifierFailed",
                &e.to_string(),
                vec![format!("{RED}The verifier failed{RESET}: {e}")],
            )
        }
    };
    if let Some(e) = &response.error {
        return CellOutcome::error(
            "VerifyError",
            e,
            vec![format!("{RED}Cannot verify the program{RESET}: {e}")],
        );
    }
    let mut v = Verification::from_response(response, Comprehension::RulesOnly);
    v.elapsed_ms = started.elapsed().as_millis() as u64;
    display(kernel, parent, media(&v, request.as_deref()), None).await;
    match v.status() {
        Status::Refuted => {
            let refuted = v.refuted();
            let mut tb = vec![format!(
                "{RED}AssertionRefuted{RESET}: {} of {} assertion(s) refuted",
                refuted.len(),
                v.assertions().len()
            )];
            for (a, cex) in &refuted {
                tb.push(format!("  line {}: {}", a.line, a.text.trim()));
                tb.push(format!(
                    "    counterexample: {}",
                    v.counterexample_text(a, cex)
                ));
                for line in cex.printed.iter().flat_map(|p| p.lines()) {
                    tb.push(format!("    it printed: {line}"));
                }
            }
            CellOutcome::error("AssertionRefuted", &v.refutation().unwrap_or_default(), tb)
        }
        _ => CellOutcome::ok(v.summary()),
    }
}

fn media(v: &Verification, request: Option<&str>) -> Media {
    let (glyph, colour) = verification_view::status_style(v.status());
    let about = request
        .map(|r| format!(" for the request “{r}”"))
        .unwrap_or_default();
    let headline = format!("{glyph} Verification{about}: {}", verification_headline(v));
    let mut plain = format!("{headline}\n{}", annotated_plain(v));
    let mut html = format!(
        "<div class=\"kgent-verify\"><div style=\"color:{colour}\">{}</div>{}",
        escape::html(&headline),
        annotated_html(v)
    );
    for n in &v.notes {
        plain.push_str(&format!("note: {n}\n"));
        html.push_str(&format!(
            "<div style=\"color:#57606a\">note: {}</div>",
            escape::html(n)
        ));
    }
    html.push_str("</div>");
    Media::new(vec![MediaType::Plain(plain), MediaType::Html(html)])
}
