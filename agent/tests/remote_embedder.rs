//! RemoteEmbedder against the scripted OpenAI-compatible server: hybrid
//! retrieval whose vector side comes over HTTP, errors, and the threads it may be called from.

use std::sync::Arc;
use std::time::Duration;

use kgent_agent::embeddings::RemoteEmbedder;
use kgent_llm::testing::{hashed_embedding, Script, ScriptedServer, SCRIPTED_EMBEDDING_DIM};
use kgent_llm::{EmbeddingsConfig, LlmError};
use kgent_retrieval::{
    Embedder, Example, Library, OutputKind, RetrievalError, Retriever, VectorStore,
};
use serde_json::json;

fn example(id: &str, request: &str, description: &str, probe: &str) -> Example {
    Example {
        id: id.into(),
        request: request.into(),
        description: description.into(),
        tags: vec![id.split('-').next().unwrap_or(id).to_string()],
        probe_types: vec!["tracepoint".into()],
        min_bpftrace: "0.17".into(),
        output: OutputKind::Lines,
        parameters: vec![],
        program: format!("{probe}\n{{\n    printf(\"%s\\n\", comm);\n}}"),
    }
}

fn library() -> Library {
    Library::from_examples(vec![
        example(
            "process-execs",
            "Show new processes as they start, with their command",
            "Prints every exec with its pid and command.",
            "tracepoint:sched:sched_process_exec",
        ),
        example(
            "files-opens",
            "Which files are being opened, and by whom",
            "Prints each openat call with the process name and path.",
            "tracepoint:syscalls:sys_enter_openat",
        ),
        example(
            "disk-latency",
            "Histogram of disk I/O latency",
            "Block device request latency as a power-of-two histogram.",
            "tracepoint:block:block_rq_issue",
        ),
    ])
    .expect("valid library")
}

/// Shares no word with any example: BM25 finds nothing, so only the
/// vectors can rank it.
const QUERY: &str = "what got launched lately";

/// A toy model with three directions: starting programs, opening files,
/// disk latency. `launched` goes where `launched_means` says.
fn concepts(launched_means: usize) -> impl Fn(&str) -> Vec<f32> + Send + Sync + 'static {
    move |text: &str| {
        let t = text.to_lowercase();
        let axis = if t.contains("launched") {
            Some(launched_means)
        } else if t.contains("exec") || t.contains("new processes") {
            Some(0)
        } else if t.contains("open") {
            Some(1)
        } else if t.contains("latency") {
            Some(2)
        } else {
            None
        };
        let mut v = vec![0.05; 3];
        match axis {
            Some(a) => v[a] = 1.0,
            None => v = vec![0.5; 3],
        }
        v
    }
}

fn config(server: &ScriptedServer) -> EmbeddingsConfig {
    let mut config = EmbeddingsConfig::new(server.base_url(), "embed-model");
    config.timeout = Duration::from_secs(10);
    config
}

/// Connects from a runtime that is gone before the embedder is used, as a
/// kernel's start-up runtime might be.
fn connect(server: &ScriptedServer) -> RemoteEmbedder {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let embedder = rt
        .block_on(RemoteEmbedder::connect(config(server)))
        .expect("connects");
    drop(rt);
    embedder
}

#[test]
fn hybrid_retrieval_finds_the_example_the_remote_vectors_point_to() {
    let server = ScriptedServer::start(vec![]);
    server.set_embedding_fn(concepts(0));
    let embedder = Arc::new(connect(&server));
    assert_eq!(embedder.dim(), 3);
    let id = format!("openai:{}#embed-model:3", server.base_url());
    assert_eq!(embedder.id(), id);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = VectorStore::open(dir.path()).expect("store");
    let retriever = Retriever::hybrid(library(), embedder.clone(), &store).expect("retriever");
    assert_eq!(retriever.embedder_id(), Some(id.clone()));
    assert!(retriever.build_report().expect("report").built);
    // Probe, then every request and description went over HTTP.
    let sent = server.embedding_inputs().concat();
    for e in library().examples() {
        assert!(sent.contains(&e.request), "{} not embedded", e.id);
        assert!(sent.contains(&e.description), "{} not embedded", e.id);
    }

    assert!(retriever.lexical_ranking(QUERY, 10).is_empty());
    let hits = retriever.try_search(QUERY, 3).expect("search");
    assert_eq!(hits[0].example_id, "process-execs", "{hits:?}");
    assert_eq!(hits[0].vector_rank, Some(1));
    assert_eq!(hits[0].bm25_rank, None);
    assert_eq!(
        server.embedding_inputs().last(),
        Some(&vec![QUERY.to_string()])
    );

    // The ranking follows the server: the same index, a query vector that
    // now points at disk latency.
    server.set_embedding_fn(concepts(2));
    let hits = retriever.try_search(QUERY, 3).expect("search");
    assert_eq!(hits[0].example_id, "disk-latency", "{hits:?}");
}

#[test]
fn the_index_is_reused_by_the_next_connection() {
    let server = ScriptedServer::start(vec![]);
    server.set_embedding_fn(concepts(0));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = VectorStore::open(dir.path()).expect("store");
    Retriever::hybrid(library(), Arc::new(connect(&server)), &store).expect("first");
    let before = server.embedding_inputs().len();

    // Same endpoint, model and dimension: same id, so only the probe is sent.
    let again = Retriever::hybrid(library(), Arc::new(connect(&server)), &store).expect("again");
    assert!(!again.build_report().expect("report").built);
    assert_eq!(server.embedding_inputs().len(), before + 1);
    assert_eq!(again.search(QUERY, 1)[0].example_id, "process-execs");
}

#[test]
fn a_failing_endpoint_is_a_retrieval_error_and_search_falls_back_to_bm25() {
    let server = ScriptedServer::start(vec![]);
    server.set_embedding_fn(concepts(0));
    let embedder = Arc::new(connect(&server));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = VectorStore::open(dir.path()).expect("store");
    let retriever = Retriever::hybrid(library(), embedder.clone(), &store).expect("retriever");

    server.script_embeddings(vec![
        Script::Status(500, "model crashed".into()),
        Script::Status(500, "model crashed".into()),
    ]);
    match retriever.try_search("disk latency", 3) {
        Err(RetrievalError::Embedding {
            embedder: who,
            reason,
        }) => {
            assert_eq!(who, embedder.id());
            assert!(
                reason.contains("HTTP 500") && reason.contains("model crashed"),
                "{reason}"
            );
        }
        other => panic!("expected an Embedding error, got {other:?}"),
    }
    let hits = retriever.search("disk latency", 3);
    assert_eq!(hits[0].example_id, "disk-latency");
    assert!(hits.iter().all(|h| h.vector_rank.is_none()), "{hits:?}");
    assert_eq!(server.remaining_embeddings(), 0);
}

#[tokio::test]
async fn connect_fails_as_the_probe_fails() {
    let server = ScriptedServer::start(vec![]);
    server.script_embeddings(vec![Script::Status(
        401,
        json!({"error": {"message": "bad key"}}).to_string(),
    )]);
    let err = RemoteEmbedder::connect(config(&server)).await.unwrap_err();
    assert!(matches!(err, LlmError::Auth { status: 401, .. }), "{err:?}");

    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port();
    let down = EmbeddingsConfig::new(format!("http://127.0.0.1:{port}/v1"), "e");
    let err = RemoteEmbedder::connect(down).await.unwrap_err();
    assert!(matches!(err, LlmError::Unreachable { .. }), "{err:?}");

    let mut bad = config(&server);
    bad.batch_size = 0;
    let err = RemoteEmbedder::connect(bad).await.unwrap_err();
    assert!(matches!(err, LlmError::Config { .. }), "{err:?}");
}

#[test]
fn embed_works_from_any_thread() {
    let server = ScriptedServer::start(vec![]);
    let embedder = Arc::new(RemoteEmbedder::connect_blocking(config(&server)).expect("connects"));
    assert_eq!(embedder.dim(), SCRIPTED_EMBEDDING_DIM);
    let expected = |t: &str| hashed_embedding(t, SCRIPTED_EMBEDDING_DIM);

    // A plain thread with no runtime.
    let e = embedder.clone();
    let from_thread = std::thread::spawn(move || e.embed(&["plain", "thread"]))
        .join()
        .expect("thread")
        .expect("vectors");
    assert_eq!(from_thread, vec![expected("plain"), expected("thread")]);

    // Inside async tasks of both runtime flavours: blocking, but no panic;
    // spawn_blocking; and the async form.
    for multi in [false, true] {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("runtime");
        let e = embedder.clone();
        let (inline, blocking, asynchronous) = rt.block_on(async move {
            let inline = e.embed(&["inline"]).expect("inline");
            let e2 = e.clone();
            let blocking = tokio::task::spawn_blocking(move || e2.embed(&["blocking"]))
                .await
                .expect("join")
                .expect("blocking");
            let asynchronous = e.embed_async(&["async".to_string()]).await.expect("async");
            (inline, blocking, asynchronous)
        });
        assert_eq!(inline, vec![expected("inline")]);
        assert_eq!(blocking, vec![expected("blocking")]);
        assert_eq!(asynchronous, vec![expected("async")]);
    }
    // Errors keep the embedder's id and the endpoint's explanation.
    server.script_embeddings(vec![Script::Status(
        404,
        json!({"error": {"message": "model \"embed-model\" not found"}}).to_string(),
    )]);
    let err = embedder.embed(&["x"]).unwrap_err().to_string();
    assert!(
        err.contains(&embedder.id()) && err.contains("has no model"),
        "{err}"
    );
}
