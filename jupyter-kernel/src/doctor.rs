//! `kgent doctor`: what this machine offers for tracing, each missing piece with its fix.

use std::process::ExitCode;

use kgent_catalog::{capabilities, doctor_lines, DoctorLine};

/// The LLM endpoint, as the synthesis agent will find it.
fn llm_line() -> DoctorLine {
    let base = std::env::var("KGENT_LLM_BASE_URL")
        .ok()
        .or_else(|| std::env::var("OPENAI_BASE_URL").ok())
        .filter(|s| !s.trim().is_empty());
    let key = std::env::var("KGENT_LLM_API_KEY")
        .ok()
        .or_else(|| std::env::var("OPENAI_API_KEY").ok())
        .is_some_and(|s| !s.trim().is_empty());
    match (base, key) {
        (Some(base), _) => DoctorLine {
            check: "LLM endpoint".into(),
            ok: true,
            detail: format!("configured: {base}{}", if key { " (with an API key)" } else { "" }),
            fix: None,
        },
        (None, true) => DoctorLine {
            check: "LLM endpoint".into(),
            ok: true,
            detail: "OpenAI's API (an API key is set, no base URL)".into(),
            fix: None,
        },
        (None, false) => DoctorLine {
            check: "LLM endpoint".into(),
            ok: false,
            detail: "not configured: natural-language cells will use the offline example library".into(),
            fix: Some("set KGENT_LLM_BASE_URL (any OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 for Ollama) and KGENT_LLM_API_KEY if it needs one".into()),
        },
    }
}

pub fn run(refresh: bool, json: bool) -> ExitCode {
    let caps = capabilities(refresh);
    let mut lines = doctor_lines(&caps);
    lines.push(llm_line());
    // Tracing is impossible without bpftrace and privileges; the rest only narrows it.
    let fatal = caps.bpftrace.is_none() || !caps.privileges.can_trace();
    if json {
        let value = serde_json::json!({
            "kernel_release": caps.kernel_release,
            "checks": lines.iter().map(|l| serde_json::json!({
                "check": l.check, "ok": l.ok, "detail": l.detail, "fix": l.fix,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!("kgent doctor: kernel {}", caps.kernel_release);
        let width = lines.iter().map(|l| l.check.len()).max().unwrap_or(0);
        for l in &lines {
            let mark = if l.ok { "ok  " } else { "MISS" };
            println!("  [{mark}] {:<width$}  {}", l.check, l.detail);
            if let Some(fix) = &l.fix {
                println!("         {:<width$}  fix: {fix}", "");
            }
        }
    }
    if fatal {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
