//! LlmConfig from an explicit environment and a temporary llm.toml: precedence, errors by line, no key leaks.
//!
//! The environment is a map passed to `LlmConfig::load_from`, never the
//! process environment, so these tests cannot race with each other.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kgent_llm::{LlmConfig, LlmError, OpenAiProvider, DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("kgent").join("llm.toml");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, text).expect("write");
    path
}

fn load(pairs: &[(&str, &str)], file: Option<&Path>) -> Result<Option<LlmConfig>, LlmError> {
    LlmConfig::load_from(env(pairs), file)
}

#[test]
fn nothing_configured_is_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("kgent/llm.toml");
    assert_eq!(load(&[], None), Ok(None));
    assert_eq!(load(&[], Some(&missing)), Ok(None));
    // OpenAI's variables alone do not switch Kgent's LLM on.
    assert_eq!(
        load(
            &[
                ("OPENAI_API_KEY", "sk-x"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
            ],
            Some(&missing)
        ),
        Ok(None)
    );
    // Empty values are unset values.
    assert_eq!(
        load(
            &[("KGENT_LLM_MODEL", ""), ("KGENT_LLM_BASE_URL", " ")],
            None
        ),
        Ok(None)
    );
}

#[test]
fn environment_only() {
    let cfg = load(
        &[
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:11434/v1/"),
            ("KGENT_LLM_MODEL", "qwen2.5-coder:7b"),
            ("KGENT_LLM_TIMEOUT", "30"),
            ("KGENT_LLM_IDLE_TIMEOUT", "2.5s"),
            ("KGENT_LLM_MAX_TOKENS", "512"),
            ("KGENT_LLM_TEMPERATURE", "0"),
        ],
        None,
    )
    .expect("valid")
    .expect("configured");
    assert_eq!(cfg.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(cfg.model, "qwen2.5-coder:7b");
    assert_eq!(cfg.api_key, None);
    assert_eq!(cfg.timeout, Duration::from_secs(30));
    assert_eq!(cfg.idle_timeout, Duration::from_millis(2500));
    assert_eq!(cfg.max_tokens, Some(512));
    assert_eq!(cfg.temperature, Some(0.0));
}

#[test]
fn openai_variables_are_fallbacks() {
    let cfg = load(
        &[
            ("KGENT_LLM_MODEL", "gpt-4o-mini"),
            ("OPENAI_API_KEY", "sk-fallback"),
            ("OPENAI_BASE_URL", "https://proxy.example/v1"),
        ],
        None,
    )
    .expect("valid")
    .expect("configured");
    assert_eq!(cfg.base_url, "https://proxy.example/v1");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-fallback"));
    let cfg = load(
        &[
            ("KGENT_LLM_MODEL", "m"),
            ("KGENT_LLM_API_KEY", "sk-kgent"),
            ("OPENAI_API_KEY", "sk-fallback"),
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:8000/v1"),
            ("OPENAI_BASE_URL", "https://proxy.example/v1"),
        ],
        None,
    )
    .expect("valid")
    .expect("configured");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-kgent"));
    assert_eq!(cfg.base_url, "http://127.0.0.1:8000/v1");
    // A model alone means OpenAI itself, which needs a key.
    let cfg = load(
        &[
            ("KGENT_LLM_MODEL", "gpt-4o-mini"),
            ("OPENAI_API_KEY", "sk-1"),
        ],
        None,
    )
    .expect("valid")
    .expect("configured");
    assert_eq!(cfg.base_url, kgent_llm::OPENAI_BASE_URL);
    let err = load(&[("KGENT_LLM_MODEL", "gpt-4o-mini")], None).unwrap_err();
    assert!(err.to_string().contains("needs an API key"), "{err}");
}

#[test]
fn file_only_and_default_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "# Ollama on this machine\nbase_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"llama3.1:8b\"\ntimeout_secs = 300\ntemperature = 0\n",
    );
    let xdg = dir.path().to_str().expect("utf-8 path");
    assert_eq!(
        LlmConfig::default_path(&env(&[("XDG_CONFIG_HOME", xdg), ("HOME", "/nonexistent")])),
        Some(path.clone())
    );
    assert_eq!(
        LlmConfig::default_path(&env(&[("HOME", "/home/u")])),
        Some(PathBuf::from("/home/u/.config/kgent/llm.toml"))
    );
    // A relative XDG_CONFIG_HOME is ignored, as the spec says.
    assert_eq!(
        LlmConfig::default_path(&env(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/home/u")])),
        Some(PathBuf::from("/home/u/.config/kgent/llm.toml"))
    );
    assert_eq!(LlmConfig::default_path(&env(&[])), None);

    let cfg = load(&[], Some(&path)).expect("valid").expect("configured");
    assert_eq!(cfg.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(cfg.model, "llama3.1:8b");
    assert_eq!(cfg.timeout, Duration::from_secs(300));
    assert_eq!(cfg.temperature, Some(0.0));
    assert_eq!(cfg.max_tokens, Some(DEFAULT_MAX_TOKENS));
    let described = cfg.describe();
    assert!(
        described.contains(&format!("llama3.1:8b (from {})", path.display())),
        "{described}"
    );
    assert!(
        described.contains("max tokens:   2048 (default)"),
        "{described}"
    );
    assert!(described.contains("API key:      not set"), "{described}");
}

#[test]
fn environment_wins_over_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "base_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"from-file\"\napi_key = \"sk-file\"\ntimeout_secs = 300\n",
    );
    let cfg = load(
        &[("KGENT_LLM_MODEL", "from-env"), ("KGENT_LLM_TIMEOUT", "20")],
        Some(&path),
    )
    .expect("valid")
    .expect("configured");
    assert_eq!(cfg.model, "from-env");
    assert_eq!(cfg.timeout, Duration::from_secs(20));
    assert_eq!(cfg.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-file"));
    // The OPENAI_* fallbacks are environment too, and beat the file.
    let cfg = load(&[("OPENAI_API_KEY", "sk-env")], Some(&path))
        .expect("valid")
        .expect("configured");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-env"));
    assert!(cfg.describe().contains("set (from OPENAI_API_KEY)"));
}

#[test]
fn malformed_file_says_which_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        // Syntax error.
        (
            "model = \"m\"\nbase_url = \"http://127.0.0.1:1/v1\"\ntimeout_secs = = 3\n",
            3,
            "",
        ),
        // Unterminated string.
        ("model = \"m\n", 1, ""),
        // A typo in a key.
        (
            "model = \"m\"\n\nbase_ulr = \"http://127.0.0.1:1/v1\"\n",
            3,
            "base_ulr",
        ),
        // Wrong type.
        ("model = \"m\"\ntimeout_secs = \"soon\"\n", 2, ""),
        // Right type, bad value.
        (
            "base_url = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\ntemperature = 5.0\n",
            3,
            "temperature",
        ),
        (
            "base_url = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\n\ntimeout_secs = -1\n",
            4,
            "out of range",
        ),
        ("model = \"m\"\nmax_tokens = -3\n", 2, "max_tokens"),
        (
            "model = \"m\"\nbase_url = \"localhost:11434\"\n",
            2,
            "not an http(s) URL",
        ),
    ];
    for (text, line, says) in cases {
        let path = write(dir.path(), text);
        match load(&[], Some(&path)) {
            Err(LlmError::Config {
                origin,
                line: got,
                message,
            }) => {
                assert_eq!(origin, path.display().to_string(), "{text}");
                assert_eq!(got, Some(line), "{text:?}: {message}");
                assert!(message.contains(says), "{text:?}: {message}");
                let shown = load(&[], Some(&path)).unwrap_err().to_string();
                assert!(shown.contains(&format!("line {line}")), "{shown}");
            }
            other => panic!("{text:?}: expected a Config error, got {other:?}"),
        }
    }
}

#[test]
fn bad_environment_values_name_the_variable() {
    for (name, value) in [
        ("KGENT_LLM_TIMEOUT", "soon"),
        ("KGENT_LLM_TIMEOUT", "0"),
        ("KGENT_LLM_MAX_TOKENS", "lots"),
        ("KGENT_LLM_TEMPERATURE", "9"),
        ("KGENT_LLM_BASE_URL", "ftp://127.0.0.1/v1"),
    ] {
        let err = load(
            &[
                ("KGENT_LLM_MODEL", "m"),
                ("KGENT_LLM_BASE_URL", "http://127.0.0.1:1/v1"),
                (name, value),
            ],
            None,
        )
        .unwrap_err();
        match &err {
            LlmError::Config {
                origin, line: None, ..
            } => assert_eq!(origin, name, "{err}"),
            other => panic!("{name}={value}: {other:?}"),
        }
    }
}

#[test]
fn endpoint_without_model_is_an_error() {
    let err = load(&[("KGENT_LLM_BASE_URL", "http://127.0.0.1:11434/v1")], None).unwrap_err();
    assert!(err.to_string().contains("KGENT_LLM_MODEL"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "base_url = \"http://127.0.0.1:11434/v1\"\n");
    let err = load(&[], Some(&path)).unwrap_err();
    assert!(
        matches!(&err, LlmError::Config { origin, .. } if *origin == path.display().to_string()),
        "{err:?}"
    );
}

#[test]
fn what_counts_as_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Without a file the missing model is blamed on the environment.
    match load(&[("KGENT_LLM_API_KEY", "sk-x")], None) {
        Err(LlmError::Config {
            origin, line: None, ..
        }) => assert_eq!(origin, "the environment"),
        other => panic!("{other:?}"),
    }
    // A file with only an [embeddings] table does not switch chat on, but
    // once a variable does, the missing model is blamed on the file.
    let only = write(dir.path(), "[embeddings]\nmodel = \"e\"\n");
    assert_eq!(load(&[], Some(&only)), Ok(None));
    match load(
        &[("KGENT_LLM_BASE_URL", "http://127.0.0.1:1/v1")],
        Some(&only),
    ) {
        Err(LlmError::Config {
            origin, line: None, ..
        }) => assert_eq!(origin, only.display().to_string()),
        other => panic!("{other:?}"),
    }
    // An empty file counts as configured; limits alone in the environment do not.
    let empty = write(dir.path(), "");
    assert!(matches!(
        load(&[], Some(&empty)),
        Err(LlmError::Config { .. })
    ));
    assert_eq!(load(&[("KGENT_LLM_TIMEOUT", "5")], None), Ok(None));
    // Limits from the file are reported by the line of the value.
    let path = write(
        dir.path(),
        "model = \"m\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\nidle_timeout_secs = 0.0\n",
    );
    match load(&[], Some(&path)) {
        Err(LlmError::Config { line, message, .. }) => {
            assert_eq!(line, Some(4), "{message}");
            assert!(message.contains("out of range"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_key_is_never_shown() {
    let key = "sk-proj-VERYSECRET123";
    let cfg = load(
        &[
            ("KGENT_LLM_MODEL", "m"),
            (
                "KGENT_LLM_BASE_URL",
                "http://user:hunter2@127.0.0.1:8000/v1",
            ),
            ("KGENT_LLM_API_KEY", key),
        ],
        None,
    )
    .expect("valid")
    .expect("configured");
    for shown in [cfg.describe(), format!("{cfg:?}")] {
        assert!(!shown.contains("VERYSECRET"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:8000/v1"), "{shown}");
    }
    assert!(cfg
        .describe()
        .contains("API key:      set (from KGENT_LLM_API_KEY)"));
    let provider = OpenAiProvider::new(cfg).expect("provider");
    assert!(!format!("{provider:?}").contains("VERYSECRET"));

    // A key with a stray newline is refused (it would panic inside async-openai),
    // and the message does not repeat it.
    let err = load(
        &[
            ("KGENT_LLM_MODEL", "m"),
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:1/v1"),
            ("KGENT_LLM_API_KEY", "sk-abc\ndef"),
        ],
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, LlmError::Config { origin, .. } if origin == "KGENT_LLM_API_KEY"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("sk-abc"), "{err}");
}

#[test]
fn code_built_config_is_validated_by_the_provider() {
    let mut cfg = LlmConfig::new("http://127.0.0.1:1/v1/", "m");
    assert_eq!(cfg.base_url, "http://127.0.0.1:1/v1");
    assert_eq!(cfg.timeout, DEFAULT_TIMEOUT);
    cfg.timeout = Duration::ZERO;
    assert!(matches!(
        OpenAiProvider::new(cfg),
        Err(LlmError::Config { .. })
    ));
    let cfg = LlmConfig::new("not a url", "m");
    assert!(matches!(
        OpenAiProvider::new(cfg),
        Err(LlmError::Config { .. })
    ));
}

#[test]
fn error_texts_say_what_to_do() {
    let url = "http://127.0.0.1:11434/v1".to_string();
    let cases = [
        (LlmError::NotConfigured, "KGENT_LLM_MODEL"),
        (
            LlmError::Unreachable {
                url: url.clone(),
                reason: "Connection refused (os error 111)".into(),
            },
            "is the server running",
        ),
        (
            LlmError::Timeout {
                url: url.clone(),
                after: Duration::from_secs(120),
            },
            "KGENT_LLM_TIMEOUT",
        ),
        (
            LlmError::ModelNotFound {
                url: url.clone(),
                model: "llama9".into(),
                message: "not found".into(),
            },
            "ollama pull llama9",
        ),
        (
            LlmError::RateLimited {
                url: url.clone(),
                retry_after: Some(Duration::from_secs(7)),
                message: "slow down".into(),
            },
            "retry after 7 s",
        ),
    ];
    for (err, says) in cases {
        let text = err.to_string();
        assert!(text.contains(says), "{text}");
        if !matches!(err, LlmError::NotConfigured) {
            assert!(text.contains(&url), "{text}");
        }
    }
}
