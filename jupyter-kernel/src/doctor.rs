//! `kgent doctor`: what this machine offers for tracing, each missing piece with its fix.

use std::process::ExitCode;

use kgent_catalog::{capabilities, doctor_lines, DoctorLine};

/// The LLM endpoint, as natural-language cells will find it (environment, then
/// `~/.config/kgent/llm.toml`).
fn llm_line() -> DoctorLine {
    let check = "LLM endpoint".to_string();
    match kgent_llm::LlmConfig::load() {
        Ok(Some(c)) => DoctorLine {
            check,
            ok: true,
            detail: format!(
                "{} at {}{}",
                c.model,
                c.display_url(),
                if c.api_key.is_some() { " (with an API key)" } else { "" }
            ),
            fix: None,
        },
        Ok(None) => DoctorLine {
            check,
            ok: false,
            detail: "not configured: natural-language cells answer from the verified example library (offline)".into(),
            fix: Some("set KGENT_LLM_BASE_URL and KGENT_LLM_MODEL (any OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 for Ollama; KGENT_LLM_API_KEY if it needs one), or write ~/.config/kgent/llm.toml".into()),
        },
        Err(e) => DoctorLine {
            check,
            ok: false,
            detail: format!("the configuration is not usable: {e}"),
            fix: Some("fix the setting named above; until then natural-language cells work offline".into()),
        },
    }
}

/// Where retrieval's sentence vectors come from.
fn embeddings_line() -> DoctorLine {
    let check = "Embeddings".to_string();
    match kgent_llm::EmbeddingsConfig::load() {
        Ok(Some(c)) => DoctorLine {
            check,
            ok: true,
            detail: format!(
                "{} at {} (checked on first use; the bundled model is the fallback)",
                c.model,
                c.display_url()
            ),
            fix: None,
        },
        Ok(None) => DoctorLine {
            check,
            ok: true,
            detail: "the bundled offline sentence model".into(),
            fix: None,
        },
        Err(e) => DoctorLine {
            check,
            ok: false,
            detail: format!("the configuration is not usable: {e}; the bundled model is used"),
            fix: Some("fix the [embeddings] settings or unset KGENT_EMBEDDINGS_*".into()),
        },
    }
}

/// The verified example library and the person's approved programs.
fn library_line() -> DoctorLine {
    let check = "Example library".to_string();
    match kgent_agent::setup::shipped_library() {
        Ok(lib) => {
            let approved = kgent_retrieval::UserLibrary::open_default()
                .and_then(|u| u.len())
                .map(|n| format!(", {n} approved by you"))
                .unwrap_or_default();
            DoctorLine {
                check,
                ok: true,
                detail: format!("{} verified examples{approved}", lib.len()),
                fix: None,
            }
        }
        Err(e) => DoctorLine {
            check,
            ok: false,
            detail: e.to_string(),
            fix: Some(format!(
                "unset {} or point it at a valid directory",
                kgent_agent::setup::EXAMPLES_DIR_ENV
            )),
        },
    }
}

/// The symbolic verifier helper: found, and proving a test assertion (so
/// Z3 loads and answers).
fn verifier_line() -> DoctorLine {
    use kgent_agent::verifier::{Verifier, VerifierRequest};
    let check = "Verifier".to_string();
    let verifier = match Verifier::locate() {
        Ok(v) => v,
        Err(e) => {
            return DoctorLine {
                check,
                ok: false,
                detail: format!("{e}; programs are checked but not verified"),
                fix: Some(
                    "cargo build --release -p kgent-verify --bin kgent-verifier, and put it \
                     next to kgent"
                        .into(),
                ),
            }
        }
    };
    let probe = "BEGIN { $x = 20; assert($x + $x == 40, \"arithmetic\"); }";
    let started = std::time::Instant::now();
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let r = verifier.verify(VerifierRequest::new(probe)).await;
                verifier.shutdown().await;
                r.map_err(|e| e.to_string())
            })
        });
    let path = verifier.path().display();
    match answer {
        Ok(r)
            if r.report
                .as_ref()
                .is_some_and(|r| r.all_proved() && !r.assertions.is_empty()) =>
        {
            DoctorLine {
                check,
                ok: true,
                detail: format!(
                    "{path}: proved a test assertion ({} ms, start included)",
                    started.elapsed().as_millis()
                ),
                fix: None,
            }
        }
        Ok(r) => DoctorLine {
            check,
            ok: false,
            detail: format!(
                "{path} answered but did not prove a test assertion: {}",
                r.error.unwrap_or_else(|| format!("{:?}", r.report))
            ),
            fix: Some("a kgent-verifier from another kgent version? rebuild both".into()),
        },
        Err(e) => DoctorLine {
            check,
            ok: false,
            detail: format!("{path} does not work: {e}"),
            fix: Some(format!(
                "run {path} by hand to see why (it needs Z3: apt install libz3-4)"
            )),
        },
    }
}

pub fn run(refresh: bool, json: bool) -> ExitCode {
    let caps = capabilities(refresh);
    let mut lines = doctor_lines(&caps);
    lines.push(llm_line());
    lines.push(embeddings_line());
    lines.push(library_line());
    lines.push(verifier_line());
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
