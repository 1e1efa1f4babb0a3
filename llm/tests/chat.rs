//! OpenAiProvider against the scripted server over real HTTP on 127.0.0.1: replies, failures, limits.
//!
//! Timing checks are generous upper bounds that prove "does not hang", never
//! exact durations.

use std::time::{Duration, Instant};

use kgent_llm::testing::{pieces, Script, ScriptedServer};
use kgent_llm::{
    extract_program, ChatCompletion, ChatMessage, ChatOptions, FinishReason, LlmConfig, LlmError,
    LlmProvider, OpenAiProvider, Usage,
};
use serde_json::json;

const PROGRAM: &str =
    "tracepoint:syscalls:sys_enter_openat\n{\n  printf(\"%s %s\\n\", comm, str(args.filename));\n}";

fn provider_with(base_url: String, timeout: Duration, idle: Duration) -> OpenAiProvider {
    let mut cfg = LlmConfig::new(base_url, "test-model");
    cfg.api_key = Some("sk-test-secret".into());
    cfg.timeout = timeout;
    cfg.idle_timeout = idle;
    OpenAiProvider::new(cfg).expect("valid config")
}

fn provider(server: &ScriptedServer) -> OpenAiProvider {
    provider_with(
        server.base_url(),
        Duration::from_secs(10),
        Duration::from_secs(5),
    )
}

struct Outcome {
    result: Result<ChatCompletion, LlmError>,
    tokens: Vec<String>,
    took: Duration,
}

async fn ask(p: &dyn LlmProvider) -> Outcome {
    let messages = [
        ChatMessage::system("You write bpftrace programs."),
        ChatMessage::user("Trace every file open with the process name."),
    ];
    let mut tokens = Vec::new();
    let started = Instant::now();
    let result = p
        .chat(&messages, &ChatOptions::default(), &mut |t: &str| {
            tokens.push(t.to_string())
        })
        .await;
    Outcome {
        result,
        tokens,
        took: started.elapsed(),
    }
}

#[tokio::test]
async fn streamed_reply_reaches_on_token_in_order_with_usage() {
    let text = "Here is a program that traces opens: it prints the process and file.";
    let server = ScriptedServer::start(vec![Script::reply(text)]);
    let out = ask(&provider(&server)).await;
    let done = out.result.expect("reply");
    assert_eq!(done.text, text);
    assert!(out.tokens.len() > 1, "streamed in pieces: {:?}", out.tokens);
    assert_eq!(out.tokens, pieces(text));
    assert_eq!(out.tokens.concat(), text);
    assert_eq!(done.model, "test-model");
    assert_eq!(done.finish_reason, Some(FinishReason::Stop));
    // 4 + 8 words in the two messages.
    assert_eq!(
        done.usage,
        Usage {
            prompt_tokens: Some(12),
            completion_tokens: Some(pieces(text).len() as u32)
        }
    );

    let sent = server.recorded();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(
        sent[0].header("authorization"),
        Some("Bearer sk-test-secret")
    );
    let body = &sent[0].body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You write bpftrace programs."})
    );
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["max_tokens"], kgent_llm::DEFAULT_MAX_TOKENS);
    assert_eq!(body["temperature"], json!(0.2));
}

#[tokio::test]
async fn options_override_config() {
    let server = ScriptedServer::start(vec![Script::reply("ok")]);
    let p = provider(&server);
    let opts = ChatOptions {
        max_tokens: Some(77),
        temperature: Some(0.0),
    };
    p.chat(&[ChatMessage::user("hi")], &opts, &mut |_: &str| {})
        .await
        .expect("reply");
    let body = &server.requests()[0];
    assert_eq!(body["max_tokens"], 77);
    assert_eq!(body["temperature"], json!(0.0));
}

#[tokio::test]
async fn reply_in_a_markdown_fence_yields_the_program() {
    let text =
        format!("Sure, this traces opens:\n\n```bpftrace\n{PROGRAM}\n```\n\nRun it as root.");
    let server = ScriptedServer::start(vec![Script::Reply(text.clone())]);
    let out = ask(&provider(&server)).await;
    let done = out.result.expect("reply");
    assert_eq!(done.text, text);
    assert_eq!(out.tokens.concat(), text);
    assert_eq!(extract_program(&done.text).as_deref(), Some(PROGRAM));
}

#[tokio::test]
async fn reply_without_a_program() {
    let text = "Which process do you want to trace? Please give its name or PID.";
    let server = ScriptedServer::start(vec![Script::reply(text)]);
    let done = ask(&provider(&server)).await.result.expect("reply");
    assert_eq!(done.text, text);
    assert_eq!(extract_program(&done.text), None);
}

#[tokio::test]
async fn server_without_usage_counts_as_unknown() {
    let server = ScriptedServer::start(vec![Script::ReplyWithoutUsage("streamed".into())]);
    let done = ask(&provider(&server)).await.result.expect("reply");
    assert_eq!(done.text, "streamed");
    assert_eq!(done.usage, Usage::default());
    assert!(!done.usage.is_known());
    // The non-streaming path too.
    let server = ScriptedServer::start(vec![
        Script::Status(
            400,
            json!({"error": {"message": "stream unsupported"}}).to_string(),
        ),
        Script::ReplyWithoutUsage("plain".into()),
    ]);
    let done = ask(&provider(&server)).await.result.expect("reply");
    assert_eq!(done.text, "plain");
    assert_eq!(done.usage, Usage::default());
}

#[tokio::test]
async fn json_reply_to_a_streaming_request_is_read_once() {
    let text = format!("```\n{PROGRAM}\n```");
    let server = ScriptedServer::start(vec![Script::NonStreaming(text.clone())]);
    let out = ask(&provider(&server)).await;
    let done = out.result.expect("reply");
    assert_eq!(done.text, text);
    assert_eq!(out.tokens, vec![text]);
    assert_eq!(server.requests().len(), 1, "no second request");
}

#[tokio::test]
async fn rejected_streaming_falls_back_to_a_plain_request_and_is_remembered() {
    let server = ScriptedServer::start(vec![
        Script::Status(
            400,
            json!({"error": {"message": "stream is not supported by this server"}}).to_string(),
        ),
        Script::reply("first answer"),
        Script::reply("second answer"),
    ]);
    let p = provider(&server);
    let out = ask(&p).await;
    assert_eq!(out.result.expect("reply").text, "first answer");
    assert_eq!(out.tokens, vec!["first answer".to_string()]);
    let out = ask(&p).await;
    assert_eq!(out.result.expect("reply").text, "second answer");
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["stream"], true);
    assert_eq!(sent[1]["stream"], false);
    assert!(sent[1].get("stream_options").is_none());
    assert_eq!(sent[2]["stream"], false, "learned: no streaming retry");
}

#[tokio::test]
async fn max_tokens_is_renamed_when_the_server_asks() {
    let server = ScriptedServer::start(vec![
        Script::Status(400, json!({"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}).to_string()),
        Script::Status(400, json!({"error": {"message": "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.", "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}).to_string()),
        Script::reply("fine"),
    ]);
    let done = ask(&provider(&server)).await.result.expect("reply");
    assert_eq!(done.text, "fine");
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    assert!(sent[1].get("max_tokens").is_none());
    assert_eq!(
        sent[1]["max_completion_tokens"],
        kgent_llm::DEFAULT_MAX_TOKENS
    );
    assert!(sent[2].get("temperature").is_none());
}

#[tokio::test]
async fn endpoint_down_is_unreachable_and_fast() {
    // Bind, note the port, close: nothing listens there any more.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port();
    let p = provider_with(
        format!("http://127.0.0.1:{port}/v1"),
        Duration::from_secs(20),
        Duration::from_secs(5),
    );
    let out = ask(&p).await;
    match out.result {
        Err(LlmError::Unreachable {
            ref url,
            ref reason,
        }) => {
            assert_eq!(url, &format!("http://127.0.0.1:{port}/v1"));
            assert!(!reason.is_empty());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let message = out.result.unwrap_err().to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(out.took < Duration::from_secs(5), "took {:?}", out.took);
}

#[tokio::test]
async fn slow_server_times_out_within_the_limit() {
    let server = ScriptedServer::start(vec![Script::delayed(
        Duration::from_secs(30),
        Script::reply("too late"),
    )]);
    let p = provider_with(
        server.base_url(),
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let out = ask(&p).await;
    assert!(
        matches!(out.result, Err(LlmError::Timeout { after, .. }) if after == Duration::from_secs(1)),
        "{:?}",
        out.result
    );
    assert!(out.took < Duration::from_secs(5), "took {:?}", out.took);
}

#[tokio::test]
async fn stalled_stream_is_reported_after_the_idle_limit() {
    let server = ScriptedServer::start(vec![Script::StallStream { after_tokens: 3 }]);
    let p = provider_with(
        server.base_url(),
        Duration::from_secs(20),
        Duration::from_millis(300),
    );
    let out = ask(&p).await;
    match &out.result {
        Err(LlmError::Stalled {
            received_chars,
            idle,
            ..
        }) => {
            assert_eq!(*received_chars, "tok0 tok1 tok2 ".len());
            assert_eq!(*idle, Duration::from_millis(300));
        }
        other => panic!("expected Stalled, got {other:?}"),
    }
    assert_eq!(out.tokens.concat(), "tok0 tok1 tok2 ");
    assert!(out.took < Duration::from_secs(10), "took {:?}", out.took);
}

#[tokio::test]
async fn stalled_stream_is_still_bounded_by_the_total_timeout() {
    let server = ScriptedServer::start(vec![Script::StallStream { after_tokens: 2 }]);
    let p = provider_with(
        server.base_url(),
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    let out = ask(&p).await;
    assert!(
        matches!(out.result, Err(LlmError::Timeout { .. })),
        "{:?}",
        out.result
    );
    assert!(out.took < Duration::from_secs(5), "took {:?}", out.took);
}

#[tokio::test]
async fn stalled_plain_reply_is_bounded_too() {
    let server = ScriptedServer::start(vec![
        Script::Status(
            400,
            json!({"error": {"message": "stream unsupported"}}).to_string(),
        ),
        Script::StallStream { after_tokens: 2 },
    ]);
    let p = provider_with(
        server.base_url(),
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    let out = ask(&p).await;
    assert!(
        matches!(out.result, Err(LlmError::Timeout { .. })),
        "{:?}",
        out.result
    );
    assert!(out.took < Duration::from_secs(5), "took {:?}", out.took);
}

#[tokio::test]
async fn rate_limit_returns_promptly_with_retry_after() {
    let server = ScriptedServer::start(vec![Script::rate_limited(7), Script::reply("unused")]);
    let out = ask(&provider(&server)).await;
    match &out.result {
        Err(
            e @ LlmError::RateLimited {
                retry_after,
                message,
                ..
            },
        ) => {
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
            assert!(message.contains("Rate limit reached"), "{message}");
            assert!(e.is_retryable());
            assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(out.took < Duration::from_secs(3), "took {:?}", out.took);
    assert_eq!(
        server.requests().len(),
        1,
        "async-openai's own retries are off"
    );
    assert_eq!(server.remaining(), 1);
}

#[tokio::test]
async fn rate_limit_with_a_plain_text_body() {
    // async-openai's retry layer would fail to parse this body as JSON.
    let server = ScriptedServer::start(vec![Script::WithHeaders(
        vec![("Retry-After".into(), "2".into())],
        Box::new(Script::Status(429, "slow down".into())),
    )]);
    let out = ask(&provider(&server)).await;
    assert_eq!(
        out.result.unwrap_err(),
        LlmError::RateLimited {
            url: server.base_url(),
            retry_after: Some(Duration::from_secs(2)),
            message: "slow down".into()
        }
    );
}

#[tokio::test]
async fn unauthorized_and_forbidden_are_auth_errors() {
    for status in [401, 403] {
        let server = ScriptedServer::start(vec![Script::Status(
            status,
            json!({"error": {"message": "Incorrect API key provided: sk-test-***ret.", "type": "invalid_request_error", "code": "invalid_api_key"}}).to_string(),
        )]);
        let out = ask(&provider(&server)).await;
        let err = out.result.unwrap_err();
        assert!(
            matches!(err, LlmError::Auth { status: s, .. } if s == status),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.contains("KGENT_LLM_API_KEY"), "{text}");
        assert!(!text.contains("sk-test-secret"), "{text}");
    }
}

#[tokio::test]
async fn server_error_is_not_retried() {
    let server = ScriptedServer::start(vec![
        Script::Status(500, "Internal Server Error".into()),
        Script::reply("unused"),
    ]);
    let out = ask(&provider(&server)).await;
    assert_eq!(
        out.result.unwrap_err(),
        LlmError::Server {
            url: server.base_url(),
            status: 500,
            message: "Internal Server Error".into()
        }
    );
    assert_eq!(server.requests().len(), 1);
    assert!(out.took < Duration::from_secs(3), "took {:?}", out.took);
}

#[tokio::test]
async fn unknown_model_and_wrong_path() {
    let server = ScriptedServer::start(vec![
        Script::Status(404, json!({"error": {"message": "model \"test-model\" not found, try pulling it first", "type": "api_error"}}).to_string()),
        Script::Status(404, "404 page not found".into()),
    ]);
    let p = provider(&server);
    let err = ask(&p).await.result.unwrap_err();
    assert!(
        matches!(&err, LlmError::ModelNotFound { model, .. } if model == "test-model"),
        "{err:?}"
    );
    let err = ask(&p).await.result.unwrap_err();
    assert!(
        matches!(err, LlmError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/v1"), "{err}");
}

#[tokio::test]
async fn garbage_bodies_are_bad_responses() {
    let cases = [
        // Not SSE at all: no events.
        Script::Garbage("<html><body>Bad Gateway</body></html>".into()),
        // SSE whose data is not JSON.
        Script::Garbage("data: {not json\n\n".into()),
        // SSE with JSON but no choices, then the end.
        Script::Garbage("data: {\"id\":\"x\"}\n\ndata: [DONE]\n\n".into()),
    ];
    for script in cases {
        let server = ScriptedServer::start(vec![script.clone()]);
        let out = ask(&provider(&server)).await;
        assert!(
            matches!(out.result, Err(LlmError::BadResponse { .. })),
            "{script:?}: {:?}",
            out.result
        );
    }
    // The same through the non-streaming path.
    let plain_cases = [
        ("<html>oops</html>", "not JSON"),
        ("{\"choices\": []}", "empty"),
        ("{\"id\": \"x\"}", "no \"choices\""),
        ("{\"choices\": [{\"index\": 0}]}", "no \"message\""),
        ("[1, 2]", "JSON object"),
    ];
    for (body, says) in plain_cases {
        let server = ScriptedServer::start(vec![
            Script::Status(
                400,
                "{\"error\":{\"message\":\"streaming unsupported\"}}".into(),
            ),
            Script::Garbage(body.into()),
        ]);
        let err = ask(&provider(&server)).await.result.unwrap_err();
        match &err {
            LlmError::BadResponse { reason, .. } => {
                assert!(reason.contains(says), "{body}: {reason}")
            }
            other => panic!("{body}: expected BadResponse, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn error_inside_a_stream_is_classified() {
    let server = ScriptedServer::start(vec![Script::Garbage(
        "data: {\"error\":{\"message\":\"The server is overloaded\",\"code\":503}}\n\n".into(),
    )]);
    let err = ask(&provider(&server)).await.result.unwrap_err();
    assert!(
        matches!(&err, LlmError::Server { status: 503, message, .. } if message.contains("overloaded")),
        "{err:?}"
    );
}

#[tokio::test]
async fn requests_beyond_the_script_get_an_error_not_a_hang() {
    let server = ScriptedServer::start(vec![]);
    let err = ask(&provider(&server)).await.result.unwrap_err();
    assert!(
        matches!(err, LlmError::Server { status: 500, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn provider_works_behind_a_trait_object() {
    let server = ScriptedServer::start(vec![Script::reply("dyn ok")]);
    let p: std::sync::Arc<dyn LlmProvider> = std::sync::Arc::new(provider(&server));
    assert!(p.describe().contains("test-model"));
    assert!(!p.describe().contains("sk-test-secret"));
    // The call's future is Send, so the agent can spawn it.
    let handle = tokio::spawn(async move { ask(p.as_ref()).await.result });
    assert_eq!(handle.await.expect("task").expect("reply").text, "dyn ok");
}

#[test]
fn scripted_server_runs_without_a_runtime() {
    // Started and dropped from a plain test: it has its own thread and runtime.
    let server = ScriptedServer::start(vec![Script::StallStream { after_tokens: 1 }]);
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let p = provider_with(
        server.base_url(),
        Duration::from_secs(5),
        Duration::from_millis(200),
    );
    let err = rt.block_on(ask(&p)).result.unwrap_err();
    assert!(matches!(err, LlmError::Stalled { .. }), "{err:?}");
    // Dropping the server closes the stalled connection and returns.
    drop(server);
}
