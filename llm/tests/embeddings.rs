//! EmbeddingsConfig from an explicit environment and llm.toml, and OpenAiEmbeddings
//! against the scripted server over real HTTP: batching, order, failures.
//!
//! As in config.rs, the environment is a map, never the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kgent_llm::testing::{hashed_embedding, Script, ScriptedServer, SCRIPTED_EMBEDDING_DIM};
use kgent_llm::{
    EmbeddingsConfig, LlmConfig, LlmError, OpenAiEmbeddings, DEFAULT_EMBEDDINGS_BATCH_SIZE,
    DEFAULT_EMBEDDINGS_TIMEOUT, OPENAI_BASE_URL,
};
use serde_json::json;

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

fn load(pairs: &[(&str, &str)], file: Option<&Path>) -> Result<Option<EmbeddingsConfig>, LlmError> {
    EmbeddingsConfig::load_from(env(pairs), file)
}

fn loaded(pairs: &[(&str, &str)], file: Option<&Path>) -> EmbeddingsConfig {
    load(pairs, file)
        .expect("valid")
        .expect("embeddings configured")
}

// ---------------------------------------------------------------- config

#[test]
fn nothing_configured_is_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(load(&[], None), Ok(None));
    assert_eq!(load(&[], Some(&dir.path().join("missing.toml"))), Ok(None));
    // A chat model alone does not switch embeddings on.
    let chat_only = write(
        dir.path(),
        "base_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"qwen\"\n",
    );
    assert_eq!(
        load(
            &[("KGENT_LLM_MODEL", "m"), ("OPENAI_API_KEY", "sk-x")],
            Some(&chat_only)
        ),
        Ok(None)
    );
    // Empty values are unset values.
    assert_eq!(
        load(
            &[
                ("KGENT_EMBEDDINGS_MODEL", " "),
                ("KGENT_EMBEDDINGS_BASE_URL", "")
            ],
            None
        ),
        Ok(None)
    );
}

#[test]
fn environment_borrows_the_chat_endpoint_and_key() {
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "nomic-embed-text"),
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:11434/v1/"),
            ("KGENT_LLM_API_KEY", "sk-chat"),
        ],
        None,
    );
    assert_eq!(cfg.model, "nomic-embed-text");
    assert_eq!(cfg.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-chat"));
    assert_eq!(cfg.timeout, DEFAULT_EMBEDDINGS_TIMEOUT);
    assert_eq!(cfg.batch_size, DEFAULT_EMBEDDINGS_BATCH_SIZE);
    assert_eq!(cfg.batch_size, 64);
    let described = cfg.describe();
    assert!(
        described.contains("http://127.0.0.1:11434/v1 (from KGENT_LLM_BASE_URL)"),
        "{described}"
    );
    assert!(
        described.contains("nomic-embed-text (from KGENT_EMBEDDINGS_MODEL)"),
        "{described}"
    );
    assert!(
        described.contains("set (from KGENT_LLM_API_KEY)"),
        "{described}"
    );

    // Own values win over the chat endpoint's.
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "bge-m3"),
            ("KGENT_EMBEDDINGS_BASE_URL", "http://127.0.0.1:8080/v1"),
            ("KGENT_EMBEDDINGS_API_KEY", "sk-emb"),
            ("KGENT_EMBEDDINGS_TIMEOUT", "2.5s"),
            ("KGENT_EMBEDDINGS_BATCH_SIZE", "16"),
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("KGENT_LLM_API_KEY", "sk-chat"),
        ],
        None,
    );
    assert_eq!(cfg.base_url, "http://127.0.0.1:8080/v1");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-emb"));
    assert_eq!(cfg.timeout, Duration::from_millis(2500));
    assert_eq!(cfg.batch_size, 16);

    // No chat base URL either: OpenAI itself, with OPENAI_API_KEY.
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "text-embedding-3-small"),
            ("OPENAI_API_KEY", "sk-openai"),
        ],
        None,
    );
    assert_eq!(cfg.base_url, OPENAI_BASE_URL);
    assert_eq!(cfg.api_key.as_deref(), Some("sk-openai"));
}

#[test]
fn the_chat_key_is_not_sent_to_another_server() {
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "e"),
            ("KGENT_EMBEDDINGS_BASE_URL", "http://127.0.0.1:8080/v1"),
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("KGENT_LLM_API_KEY", "sk-chat"),
        ],
        None,
    );
    assert_eq!(cfg.api_key, None);
    // Same scheme, host and port, other path: the same server.
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "e"),
            (
                "KGENT_EMBEDDINGS_BASE_URL",
                "http://127.0.0.1:11434/openai/v1",
            ),
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("KGENT_LLM_API_KEY", "sk-chat"),
        ],
        None,
    );
    assert_eq!(cfg.api_key.as_deref(), Some("sk-chat"));
    // Embeddings at OpenAI, chat elsewhere: the chat key is not borrowed, and
    // OpenAI without a key is an error that names the embeddings variable.
    let err = load(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "text-embedding-3-small"),
            ("KGENT_EMBEDDINGS_BASE_URL", OPENAI_BASE_URL),
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("KGENT_LLM_API_KEY", "sk-chat"),
        ],
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, LlmError::Config { origin, .. } if origin == "KGENT_EMBEDDINGS_BASE_URL"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("KGENT_EMBEDDINGS_API_KEY"),
        "{err}"
    );
}

#[test]
fn file_table_and_its_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "base_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"qwen\"\napi_key = \"sk-file\"\n\n\
         [embeddings]\nmodel = \"nomic-embed-text\"\ntimeout_secs = 20\nbatch_size = 32\n",
    );
    let cfg = loaded(&[], Some(&path));
    assert_eq!(cfg.model, "nomic-embed-text");
    assert_eq!(cfg.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-file"));
    assert_eq!(cfg.timeout, Duration::from_secs(20));
    assert_eq!(cfg.batch_size, 32);
    assert!(
        cfg.describe()
            .contains(&format!("nomic-embed-text (from {})", path.display())),
        "{}",
        cfg.describe()
    );
    // The chat configuration still loads from the same file.
    let chat = LlmConfig::load_from(env(&[]), Some(&path))
        .expect("valid")
        .expect("chat configured");
    assert_eq!(chat.model, "qwen");

    // A file with only an [embeddings] table configures no chat model.
    let only = write(
        dir.path(),
        "[embeddings]\nbase_url = \"http://127.0.0.1:8080/v1\"\nmodel = \"e\"\n",
    );
    assert_eq!(LlmConfig::load_from(env(&[]), Some(&only)), Ok(None));
    let cfg = loaded(&[], Some(&only));
    assert_eq!(cfg.base_url, "http://127.0.0.1:8080/v1");
    assert_eq!(cfg.api_key, None);
}

#[test]
fn precedence_between_environment_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "base_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"qwen\"\n\n\
         [embeddings]\nmodel = \"from-file\"\nbase_url = \"http://127.0.0.1:8080/v1\"\n\
         api_key = \"sk-emb-file\"\nbatch_size = 8\n",
    );
    // Environment beats the file at the same level.
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "from-env"),
            ("KGENT_EMBEDDINGS_BATCH_SIZE", "100"),
        ],
        Some(&path),
    );
    assert_eq!(cfg.model, "from-env");
    assert_eq!(cfg.batch_size, 100);
    assert_eq!(cfg.base_url, "http://127.0.0.1:8080/v1");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-emb-file"));
    let cfg = loaded(
        &[("KGENT_EMBEDDINGS_BASE_URL", "http://127.0.0.1:9000/v1")],
        Some(&path),
    );
    assert_eq!(cfg.base_url, "http://127.0.0.1:9000/v1");
    assert_eq!(cfg.model, "from-file");
    // An [embeddings] value beats a chat value, even one from the environment.
    let cfg = loaded(
        &[
            ("KGENT_LLM_BASE_URL", "http://127.0.0.1:7000/v1"),
            ("KGENT_LLM_API_KEY", "sk-chat-env"),
        ],
        Some(&path),
    );
    assert_eq!(cfg.base_url, "http://127.0.0.1:8080/v1");
    assert_eq!(cfg.api_key.as_deref(), Some("sk-emb-file"));
    // Without [embeddings] base_url, the chat base URL from the environment
    // beats the chat base URL in the file, as for chat itself.
    let no_url = write(
        dir.path(),
        "base_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"qwen\"\n\n[embeddings]\nmodel = \"e\"\n",
    );
    let cfg = loaded(
        &[("KGENT_LLM_BASE_URL", "http://127.0.0.1:7000/v1")],
        Some(&no_url),
    );
    assert_eq!(cfg.base_url, "http://127.0.0.1:7000/v1");
}

#[test]
fn precedence_of_keys_timeouts_and_chat_fallbacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "base_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"qwen\"\napi_key = \"sk-chat-file\"\n\n\
         [embeddings]\nmodel = \"e\"\napi_key = \"sk-emb-file\"\ntimeout_secs = 20\n",
    );
    // Environment beats the file for the key and the timeout too.
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_API_KEY", "sk-emb-env"),
            ("KGENT_EMBEDDINGS_TIMEOUT", "5"),
        ],
        Some(&path),
    );
    assert_eq!(cfg.api_key.as_deref(), Some("sk-emb-env"));
    assert_eq!(cfg.timeout, Duration::from_secs(5));
    assert!(
        cfg.describe()
            .contains("5 s per request (from KGENT_EMBEDDINGS_TIMEOUT)"),
        "{}",
        cfg.describe()
    );
    // The borrowed chat key: environment over file, KGENT_ over OPENAI_;
    // an empty variable is unset and falls through to the file.
    let no_key = write(
        dir.path(),
        "base_url = \"http://127.0.0.1:11434/v1\"\napi_key = \"sk-chat-file\"\n\n\
         [embeddings]\nmodel = \"e\"\n",
    );
    for (pairs, key) in [
        (&[][..], "sk-chat-file"),
        (&[("OPENAI_API_KEY", "sk-openai")][..], "sk-openai"),
        (
            &[
                ("KGENT_LLM_API_KEY", "sk-kgent"),
                ("OPENAI_API_KEY", "sk-openai"),
            ][..],
            "sk-kgent",
        ),
        (&[("KGENT_LLM_API_KEY", " ")][..], "sk-chat-file"),
    ] {
        let cfg = loaded(pairs, Some(&no_key));
        assert_eq!(cfg.api_key.as_deref(), Some(key), "{pairs:?}");
        assert_eq!(cfg.timeout, DEFAULT_EMBEDDINGS_TIMEOUT);
    }
    // The borrowed chat base URL: KGENT_LLM_BASE_URL over OPENAI_BASE_URL over the file.
    for (pairs, url, origin) in [
        (
            &[("OPENAI_BASE_URL", "http://127.0.0.1:6000/v1")][..],
            "http://127.0.0.1:6000/v1",
            "from OPENAI_BASE_URL".to_string(),
        ),
        (
            &[
                ("KGENT_LLM_BASE_URL", "http://127.0.0.1:7000/v1"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:6000/v1"),
            ][..],
            "http://127.0.0.1:7000/v1",
            "from KGENT_LLM_BASE_URL".to_string(),
        ),
        (
            &[("KGENT_LLM_BASE_URL", "")][..],
            "http://127.0.0.1:11434/v1",
            format!("from {}", path.display()),
        ),
    ] {
        let cfg = loaded(pairs, Some(&no_key));
        assert_eq!(cfg.base_url, url, "{pairs:?}");
        assert!(
            cfg.describe().contains(&format!("{url} ({origin})")),
            "{}",
            cfg.describe()
        );
        // The borrowed URL is the chat server's, so the chat key goes with it.
        assert_eq!(cfg.api_key.as_deref(), Some("sk-chat-file"), "{pairs:?}");
    }
}

#[test]
fn what_switches_embeddings_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Any of the three KGENT_EMBEDDINGS_ identity variables; then a model is
    // required, and the error names the environment (no line).
    for name in ["KGENT_EMBEDDINGS_BASE_URL", "KGENT_EMBEDDINGS_API_KEY"] {
        match load(&[(name, "http://127.0.0.1:8080/v1")], None) {
            Err(LlmError::Config {
                origin,
                line: None,
                message,
            }) => {
                assert_eq!(origin, "the environment");
                assert!(message.contains("KGENT_EMBEDDINGS_MODEL"), "{message}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // Limits alone do not switch embeddings on.
    assert_eq!(
        load(
            &[
                ("KGENT_EMBEDDINGS_TIMEOUT", "5"),
                ("KGENT_EMBEDDINGS_BATCH_SIZE", "8")
            ],
            None
        ),
        Ok(None)
    );
    // A file without an [embeddings] table still blames the environment.
    let chat_only = write(dir.path(), "model = \"qwen\"\n");
    match load(
        &[("KGENT_EMBEDDINGS_BASE_URL", "http://127.0.0.1:8080/v1")],
        Some(&chat_only),
    ) {
        Err(LlmError::Config {
            origin, line: None, ..
        }) => assert_eq!(origin, "the environment"),
        other => panic!("{other:?}"),
    }
    // An empty table switches them on, and the error points at it.
    let empty = write(dir.path(), "model = \"qwen\"\n\n[embeddings]\n");
    match load(&[], Some(&empty)) {
        Err(LlmError::Config { origin, line, .. }) => {
            assert_eq!(origin, empty.display().to_string());
            assert_eq!(line, Some(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_values_say_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        // A table without a model: the table's line.
        (
            "model = \"qwen\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[embeddings]\nbatch_size = 4\n",
            4,
            "KGENT_EMBEDDINGS_MODEL",
        ),
        // A typo in a key of the table.
        (
            "[embeddings]\nmodel = \"e\"\nbase_ulr = \"http://127.0.0.1:1/v1\"\n",
            3,
            "base_ulr",
        ),
        (
            "[embeddings]\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"e\"\nbatch_size = 0\n",
            4,
            "batch_size 0",
        ),
        (
            "[embeddings]\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"e\"\nbatch_size = -2\n",
            4,
            "batch_size",
        ),
        (
            "[embeddings]\nmodel = \"e\"\nbase_url = \"localhost:8080\"\n",
            3,
            "not an http(s) URL",
        ),
        (
            "[embeddings]\nmodel = \"e\"\nbase_url = \"http://127.0.0.1:1/v1\"\ntimeout_secs = 0\n",
            4,
            "out of range",
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
            }
            other => panic!("{text:?}: expected a Config error, got {other:?}"),
        }
    }
    for (name, value, says) in [
        ("KGENT_EMBEDDINGS_TIMEOUT", "soon", "seconds"),
        ("KGENT_EMBEDDINGS_BATCH_SIZE", "lots", "whole number"),
        ("KGENT_EMBEDDINGS_BATCH_SIZE", "5000", "outside"),
        ("KGENT_EMBEDDINGS_BASE_URL", "ftp://127.0.0.1/v1", "http(s)"),
        ("KGENT_EMBEDDINGS_API_KEY", "sk-a\nb", "stray newline"),
    ] {
        let err = load(
            &[
                ("KGENT_EMBEDDINGS_MODEL", "e"),
                ("KGENT_LLM_BASE_URL", "http://127.0.0.1:1/v1"),
                (name, value),
            ],
            None,
        )
        .unwrap_err();
        match &err {
            LlmError::Config {
                origin,
                line: None,
                message,
            } => {
                assert_eq!(origin, name, "{err}");
                assert!(message.contains(says), "{name}={value:?}: {message}");
            }
            other => panic!("{name}={value}: {other:?}"),
        }
    }
    // An endpoint but no model.
    let err = load(
        &[("KGENT_EMBEDDINGS_BASE_URL", "http://127.0.0.1:8080/v1")],
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("KGENT_EMBEDDINGS_MODEL"), "{err}");
}

#[test]
fn the_key_is_never_shown() {
    let cfg = loaded(
        &[
            ("KGENT_EMBEDDINGS_MODEL", "e"),
            (
                "KGENT_EMBEDDINGS_BASE_URL",
                "http://user:hunter2@127.0.0.1:8080/v1",
            ),
            ("KGENT_EMBEDDINGS_API_KEY", "sk-VERYSECRET"),
        ],
        None,
    );
    let client = OpenAiEmbeddings::new(cfg.clone()).expect("client");
    for shown in [
        cfg.describe(),
        format!("{cfg:?}"),
        format!("{client:?}"),
        client.describe(),
    ] {
        assert!(!shown.contains("VERYSECRET"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:8080/v1"), "{shown}");
    }
}

#[test]
fn code_built_config_is_validated_by_the_client() {
    let mut cfg = EmbeddingsConfig::new("http://127.0.0.1:1/v1/", "e");
    assert_eq!(cfg.base_url, "http://127.0.0.1:1/v1");
    cfg.batch_size = 0;
    assert!(matches!(
        OpenAiEmbeddings::new(cfg),
        Err(LlmError::Config { .. })
    ));
    assert!(matches!(
        OpenAiEmbeddings::new(EmbeddingsConfig::new("not a url", "e")),
        Err(LlmError::Config { .. })
    ));
}

// ---------------------------------------------------------------- client

fn client_for(base_url: String, batch_size: usize, timeout: Duration) -> OpenAiEmbeddings {
    let mut cfg = EmbeddingsConfig::new(base_url, "embed-model");
    cfg.api_key = Some("sk-emb-secret".into());
    cfg.batch_size = batch_size;
    cfg.timeout = timeout;
    OpenAiEmbeddings::new(cfg).expect("valid config")
}

fn client(server: &ScriptedServer) -> OpenAiEmbeddings {
    client_for(
        server.base_url(),
        DEFAULT_EMBEDDINGS_BATCH_SIZE,
        Duration::from_secs(10),
    )
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text number {i}")).collect()
}

/// Vectors that encode the text's number, so any reordering shows.
fn numbered(text: &str) -> Vec<f32> {
    let n: f32 = text.rsplit(' ').next().unwrap().parse().unwrap();
    vec![n, 1.0, -n]
}

#[tokio::test]
async fn batches_of_64_in_order() {
    let server = ScriptedServer::start(vec![]);
    server.set_embedding_fn(numbered);
    let input = texts(150);
    let vectors = client(&server).embed(&input).await.expect("vectors");
    assert_eq!(vectors.len(), 150);
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(v, &vec![i as f32, 1.0, -(i as f32)], "vector {i}");
    }
    // Three requests, 64 + 64 + 22 texts, each batch in order.
    let sent = server.embedding_inputs();
    assert_eq!(
        sent.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![64, 64, 22]
    );
    assert_eq!(sent.concat(), input);
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 3);
    for r in &recorded {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/embeddings");
        assert_eq!(r.header("authorization"), Some("Bearer sk-emb-secret"));
        assert_eq!(r.body["model"], "embed-model");
        assert!(r.body["input"].is_array());
    }
}

#[tokio::test]
async fn default_vectors_and_a_chosen_batch_size() {
    let server = ScriptedServer::start(vec![]);
    let input = texts(5);
    let c = client_for(server.base_url(), 2, Duration::from_secs(10));
    let vectors = c.embed(&input).await.expect("vectors");
    let expected: Vec<Vec<f32>> = input
        .iter()
        .map(|t| hashed_embedding(t, SCRIPTED_EMBEDDING_DIM))
        .collect();
    assert_eq!(vectors, expected);
    assert_eq!(server.embedding_inputs().len(), 3);
    // Nothing to embed, nothing sent.
    assert_eq!(c.embed(&[]).await, Ok(vec![]));
    assert_eq!(server.recorded().len(), 3);
}

#[tokio::test]
async fn a_reply_without_index_is_taken_in_order() {
    let server = ScriptedServer::start(vec![]);
    server.script_embeddings(vec![Script::Garbage(
        json!({"data": [{"embedding": [1.0, 0.0]}, {"embedding": [0.0, 1.0]}]}).to_string(),
    )]);
    let vectors = client(&server)
        .embed(&["a".into(), "b".into()])
        .await
        .expect("vectors");
    assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
}

#[tokio::test]
async fn unauthorized_is_an_auth_error() {
    let server = ScriptedServer::start(vec![]);
    server.script_embeddings(vec![Script::Status(
        401,
        json!({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
            .to_string(),
    )]);
    let err = client(&server).embed(&texts(3)).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Auth { status: 401, url, .. } if *url == server.base_url()),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("sk-emb-secret"), "{err}");
}

#[tokio::test]
async fn unknown_model_and_wrong_path() {
    let server = ScriptedServer::start(vec![]);
    server.script_embeddings(vec![
        Script::Status(
            404,
            json!({"error": {"message": "model \"embed-model\" not found, try pulling it first"}})
                .to_string(),
        ),
        Script::Status(404, "404 page not found".into()),
    ]);
    let c = client(&server);
    let err = c.embed(&texts(1)).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::ModelNotFound { model, .. } if model == "embed-model"),
        "{err:?}"
    );
    let err = c.embed(&texts(1)).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_error_ends_the_call_without_retry() {
    let server = ScriptedServer::start(vec![]);
    // The first batch succeeds, the second fails: no partial result, no third request.
    server.script_embeddings(vec![
        Script::Embeddings,
        Script::Status(500, "Internal Server Error".into()),
    ]);
    let c = client_for(server.base_url(), 64, Duration::from_secs(10));
    let err = c.embed(&texts(150)).await.unwrap_err();
    assert_eq!(
        err,
        LlmError::Server {
            url: server.base_url(),
            status: 500,
            message: "Internal Server Error".into()
        }
    );
    assert!(err.is_retryable());
    assert_eq!(server.embedding_inputs().len(), 2);
    // The queue is used up: the next call gets vectors again.
    assert_eq!(c.embed(&texts(2)).await.expect("vectors").len(), 2);
}

#[tokio::test]
async fn rate_limit_keeps_retry_after() {
    let server = ScriptedServer::start(vec![]);
    server.script_embeddings(vec![Script::rate_limited(3)]);
    let err = client(&server).embed(&texts(1)).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)), "{err:?}");
}

#[tokio::test]
async fn connection_refused_is_unreachable_and_fast() {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port();
    let c = client_for(
        format!("http://127.0.0.1:{port}/v1"),
        64,
        Duration::from_secs(20),
    );
    let started = Instant::now();
    let err = c.embed(&texts(1)).await.unwrap_err();
    match &err {
        LlmError::Unreachable { url, reason } => {
            assert_eq!(url, &format!("http://127.0.0.1:{port}/v1"));
            assert!(!reason.is_empty());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_server_times_out_per_request() {
    let server = ScriptedServer::start(vec![]);
    server.script_embeddings(vec![Script::delayed(
        Duration::from_secs(30),
        Script::Embeddings,
    )]);
    let c = client_for(server.base_url(), 64, Duration::from_millis(500));
    let started = Instant::now();
    let err = c.embed(&texts(1)).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Timeout { after, .. } if after == Duration::from_millis(500)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unusable_replies_are_bad_responses() {
    let cases = [
        ("<html>oops</html>".to_string(), "not JSON"),
        ("[1, 2]".to_string(), "JSON object"),
        (json!({"object": "list"}).to_string(), "no \"data\" list"),
        (
            json!({"data": [{"index": 0, "embedding": [1.0]}]}).to_string(),
            "1 embeddings for 2 texts",
        ),
        (
            json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]})
                .to_string(),
            "index 0 appears twice",
        ),
        (
            json!({"data": [{"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [2.0]}]})
                .to_string(),
            "not one of 0..2",
        ),
        (
            json!({"data": [{"index": 0, "embedding": "AACAPw=="}, {"index": 1, "embedding": "AACAPw=="}]})
                .to_string(),
            "base64",
        ),
        (
            json!({"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}]})
                .to_string(),
            "2 and of 1 dimensions",
        ),
        (
            json!({"data": [{"index": 0, "embedding": []}, {"index": 1, "embedding": []}]})
                .to_string(),
            "empty",
        ),
        (
            json!({"data": [{"index": 0, "embedding": [1.0, "x"]}, {"index": 1, "embedding": [1.0, 2.0]}]})
                .to_string(),
            "not a finite number",
        ),
        (
            json!({"data": [{"index": 0}, {"index": 1}]}).to_string(),
            "no \"embedding\" list",
        ),
    ];
    for (body, says) in cases {
        let server = ScriptedServer::start(vec![]);
        server.script_embeddings(vec![Script::Garbage(body.clone())]);
        let err = client(&server)
            .embed(&["a".into(), "b".into()])
            .await
            .unwrap_err();
        match &err {
            LlmError::BadResponse { reason, .. } => {
                assert!(reason.contains(says), "{body}: {reason}")
            }
            other => panic!("{body}: expected BadResponse, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_error_object_in_a_200_reply_is_classified() {
    let server = ScriptedServer::start(vec![]);
    server.script_embeddings(vec![Script::Garbage(
        json!({"error": {"message": "The server is overloaded", "code": 503}}).to_string(),
    )]);
    let err = client(&server).embed(&texts(1)).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Server { status: 503, message, .. } if message.contains("overloaded")),
        "{err:?}"
    );
}

#[tokio::test]
async fn dimensions_must_agree_across_batches() {
    let server = ScriptedServer::start(vec![]);
    // A server that changes model between two batches.
    server.set_embedding_fn(|t: &str| {
        if t.ends_with(" 0") {
            vec![1.0, 0.0, 0.0]
        } else {
            vec![1.0, 0.0]
        }
    });
    let c = client_for(server.base_url(), 1, Duration::from_secs(10));
    let err = c.embed(&texts(2)).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::BadResponse { reason, .. } if reason.contains("3 and of 2 dimensions")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_chat_queue_is_untouched_by_embeddings() {
    let server = ScriptedServer::start(vec![Script::reply("chat answer")]);
    client(&server).embed(&texts(2)).await.expect("vectors");
    assert_eq!(server.remaining(), 1, "embeddings took no chat script");
    // A chat script queued for embeddings by mistake is a loud 500.
    server.script_embeddings(vec![Script::reply("wrong queue")]);
    let err = client(&server).embed(&texts(1)).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Server { status: 500, message, .. } if message.contains("chat script")),
        "{err:?}"
    );
    assert_eq!(server.remaining_embeddings(), 0);
}
