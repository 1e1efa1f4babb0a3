//! `%llm`: shows which model natural-language cells use, or sets it for the session.

use jupyter_protocol::{Media, MediaType};
use kgent_agent::setup::LlmChoice;
use kgent_llm::{LlmConfig, LlmError};
use kgent_magics::LlmArgs;
use kgent_output::render::escape;

use crate::assistant::Assistant;

/// Applies `args` (if they change anything) and describes the result.
pub async fn run(assistant: &Assistant, args: &LlmArgs) -> Result<Media, String> {
    let env = |name: &str| std::env::var(name).ok();
    apply(assistant, args, &env)?;
    let mut text = describe_choice(&assistant.choice());
    match assistant.retrieval().await {
        Ok(r) => {
            let how = match (&r.summary.embedder, &r.summary.degraded) {
                (Some(e), None) => format!("BM25 fused with sentence vectors ({e})"),
                (Some(e), Some(why)) => {
                    format!("BM25 fused with sentence vectors ({e}); {why}")
                }
                (None, Some(why)) => format!("keyword search (BM25) only: {why}"),
                (None, None) => "keyword search (BM25) only".to_string(),
            };
            let yours = if r.approved > 0 {
                format!(" ({} approved by you)", r.approved)
            } else {
                String::new()
            };
            text.push_str(&format!(
                "\nexamples:     {} verified request/program pairs{yours}, {how}",
                r.summary.examples
            ));
        }
        Err(e) => text.push_str(&format!("\nexamples:     unavailable: {e}")),
    }
    if let Some(dir) = kgent_agent::synth::SynthCache::default_dir() {
        text.push_str(&format!(
            "\nanswers kept: {} (a re-run replays them without calling the model)",
            dir.display()
        ));
    }
    let html = format!("<pre>{}</pre>", escape::html(&text));
    Ok(Media::new(vec![
        MediaType::Plain(text),
        MediaType::Html(html),
    ]))
}

/// Changes the session's choice as `args` say; `Err` for a choice that cannot work.
pub fn apply(
    assistant: &Assistant,
    args: &LlmArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let setting = args.base_url.is_some()
        || args.model.is_some()
        || args.api_key_env.is_some()
        || args.timeout.is_some();
    match args.action.as_deref() {
        Some("offline") if setting => {
            return Err("`%llm offline` takes no other options".to_string())
        }
        Some("offline") => {
            assistant.set_choice(LlmChoice::Offline);
            return Ok(());
        }
        Some(_) if !setting => {
            // `online` and `reset`: back to the environment and config file.
            assistant.set_choice(LlmChoice::Configured);
            return Ok(());
        }
        _ => {}
    }
    if !setting {
        return Ok(());
    }
    // Start from what is in use, so `%llm --model X` changes only the model.
    let base = match assistant.choice() {
        LlmChoice::Custom(c) => Some(*c),
        _ => LlmConfig::load().map_err(|e| e.to_string())?,
    };
    let mut config = match (base, &args.base_url) {
        (_, Some(url)) => {
            let model = args
                .model
                .clone()
                .ok_or("--base-url needs --model too (the name the server knows the model by)")?;
            LlmConfig::new(url.clone(), model)
        }
        (Some(c), None) => c,
        (None, None) => {
            return Err(
                "no endpoint is configured yet: give --base-url URL --model NAME (any OpenAI-compatible server)"
                    .to_string(),
            )
        }
    };
    if let Some(model) = &args.model {
        config.model = model.clone();
    }
    if let Some(var) = &args.api_key_env {
        let key = env(var).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
            format!("the environment variable {var} is not set in the kernel's environment")
        })?;
        config.api_key = Some(key);
    }
    if let Some(t) = args.timeout {
        config.timeout = t;
    }
    config.validate().map_err(|e: LlmError| e.to_string())?;
    assistant.set_choice(LlmChoice::Custom(Box::new(config)));
    Ok(())
}

fn describe_choice(choice: &LlmChoice) -> String {
    match choice {
        LlmChoice::Offline => "provider:     offline (chosen with %llm offline): answers come from the verified example library\n              %llm reset goes back to the configured model".to_string(),
        LlmChoice::Custom(c) => format!("provider:     set in this session (%llm reset undoes it)\n{}", c.describe()),
        LlmChoice::Configured => match LlmConfig::load() {
            Ok(Some(c)) => format!("provider:     configured\n{}", c.describe()),
            Ok(None) => "provider:     offline: no model is configured, answers come from the verified example library\n              to use a model: set KGENT_LLM_BASE_URL and KGENT_LLM_MODEL (any OpenAI-compatible server:\n              OpenAI, Ollama, vLLM, llama.cpp), write ~/.config/kgent/llm.toml, or run\n              %llm --base-url http://127.0.0.1:11434/v1 --model NAME".to_string(),
            Err(e) => format!("provider:     the configuration is not usable: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> LlmArgs {
        match kgent_magics::parse_cell(line).unwrap() {
            kgent_magics::Cell::Lines(m) => match &m[0] {
                kgent_magics::LineMagic::Llm(a) => a.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offline_then_custom_then_reset() {
        let a = Assistant::default();
        let env = |name: &str| (name == "MY_KEY").then(|| "sk-test".to_string());
        apply(&a, &args("%llm offline"), &env).unwrap();
        assert_eq!(a.choice(), LlmChoice::Offline);
        apply(
            &a,
            &args("%llm --base-url http://127.0.0.1:11434/v1 --model llama3 --api-key-env MY_KEY --timeout 20s"),
            &env,
        )
        .unwrap();
        let LlmChoice::Custom(c) = a.choice() else {
            panic!()
        };
        assert_eq!(c.model, "llama3");
        assert_eq!(c.api_key.as_deref(), Some("sk-test"));
        assert_eq!(c.timeout, std::time::Duration::from_secs(20));
        // Only the model changes.
        apply(&a, &args("%llm --model qwen"), &env).unwrap();
        let LlmChoice::Custom(c) = a.choice() else {
            panic!()
        };
        assert_eq!(
            (c.model.as_str(), c.base_url.as_str()),
            ("qwen", "http://127.0.0.1:11434/v1")
        );
        assert!(!describe_choice(&a.choice()).contains("sk-test"));
        apply(&a, &args("%llm reset"), &env).unwrap();
        assert_eq!(a.choice(), LlmChoice::Configured);
    }

    #[test]
    fn impossible_settings_are_refused_with_the_reason() {
        let a = Assistant::default();
        let env = |_: &str| None;
        let e = apply(&a, &args("%llm --base-url http://x/v1"), &env).unwrap_err();
        assert!(e.contains("--model"), "{e}");
        let e = apply(
            &a,
            &args("%llm --base-url http://x/v1 --model m --api-key-env NOPE"),
            &env,
        )
        .unwrap_err();
        assert!(e.contains("NOPE"), "{e}");
        let e = apply(&a, &args("%llm offline --model m"), &env).unwrap_err();
        assert!(e.contains("offline"), "{e}");
        assert_eq!(a.choice(), LlmChoice::Configured);
    }
}
