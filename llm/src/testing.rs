//! `ScriptedServer`: an OpenAI-compatible chat and embeddings server on 127.0.0.1 that answers from a script, for tests.
//!
//! Enabled by the `testing` feature. Other crates use it as
//! `kgent-llm = { workspace = true, features = ["testing"] }` under
//! `[dev-dependencies]`.
//!
//! Each request to `POST /v1/chat/completions` takes the next [`Script`] and
//! is answered as it asks: server-sent events when `"stream": true`, one JSON
//! object otherwise. What the client sent is kept, in order ([`ScriptedServer::requests`]).
//!
//! `POST /v1/embeddings` has its own queue ([`ScriptedServer::script_embeddings`]);
//! when it is empty, as by default, each text gets the vector of the server's
//! embedding function ([`hashed_embedding`] unless
//! [`ScriptedServer::set_embedding_fn`] chose another), so any number of
//! embeddings requests succeed without a script. The vectors are listed in
//! reverse order, each with its `index`, so a client that ignores `index`
//! gets them wrong.
//!
//! The server runs on its own thread with its own Tokio runtime, so it works
//! from synchronous tests and from any runtime flavour, and keeps answering
//! while a test blocks. Dropping it stops it and closes every connection,
//! including stalled ones. It is built on hyper rather than wiremock because
//! wiremock sends whole bodies, and a stream that stalls mid-way needs a body
//! that stops after a few chunks.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

/// How the server answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// A normal reply with `text`, streamed or not as the request asks, with
    /// usage (prompt tokens: words in the messages; completion tokens: the
    /// number of streamed pieces). When streaming, usage comes in a last
    /// chunk only if the request set `stream_options.include_usage`, as OpenAI does.
    Reply(String),
    /// Like `Reply`, with no usage at all, as many local servers do.
    ReplyWithoutUsage(String),
    /// A plain JSON reply even when the request asked to stream.
    NonStreaming(String),
    /// An HTTP status and body, e.g. `Status(500, "boom".into())`.
    Status(u16, String),
    /// The inner answer with extra response headers.
    WithHeaders(Vec<(String, String)>, Box<Script>),
    /// Wait this long before sending anything, then answer with the inner script.
    Delay(Duration, Box<Script>),
    /// Send the headers and `after_tokens` pieces of a reply, then nothing,
    /// without closing the connection.
    StallStream {
        /// Pieces sent before the stall.
        after_tokens: usize,
    },
    /// Status 200 with this body, labelled as JSON (or as an event stream when
    /// the request asked to stream).
    Garbage(String),
    /// For `POST /v1/embeddings`: one vector per input text from the
    /// embedding function (what the server does when no script is queued).
    /// A chat request given this script gets a 500.
    Embeddings,
}

impl Script {
    /// A normal reply.
    pub fn reply(text: impl Into<String>) -> Self {
        Script::Reply(text.into())
    }

    /// `429 Too Many Requests` with `Retry-After: secs` and an OpenAI-style error body.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Script::WithHeaders(
            vec![("retry-after".into(), retry_after_secs.to_string())],
            Box::new(Script::Status(
                429,
                json!({"error": {"message": "Rate limit reached; please try again later.",
                                 "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
                .to_string(),
            )),
        )
    }

    /// `inner`, after `delay`.
    pub fn delayed(delay: Duration, inner: Script) -> Self {
        Script::Delay(delay, Box::new(inner))
    }
}

/// One request as received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The JSON body (a JSON string holding the raw text if it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Text to vector, for the scripted embeddings endpoint.
pub type EmbeddingFn = Arc<dyn Fn(&str) -> Vec<f32> + Send + Sync>;

/// Length of the default scripted embeddings ([`hashed_embedding`]).
pub const SCRIPTED_EMBEDDING_DIM: usize = 8;

/// The default scripted embedding: `dim` numbers from an FNV-1a hash of the
/// text, L2-normalized. Deterministic, different for different texts, and
/// meaningless (similar texts are not near each other).
pub fn hashed_embedding(text: &str, dim: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut v: Vec<f32> = (0..dim.max(1))
        .map(|_| {
            // xorshift64: a cheap stream of numbers from the hash.
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            (h >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

struct State {
    scripts: VecDeque<Script>,
    embedding_scripts: VecDeque<Script>,
    embed: EmbeddingFn,
    recorded: Vec<RecordedRequest>,
    served: usize,
}

impl Default for State {
    fn default() -> Self {
        State {
            scripts: VecDeque::new(),
            embedding_scripts: VecDeque::new(),
            embed: Arc::new(|text: &str| hashed_embedding(text, SCRIPTED_EMBEDDING_DIM)),
            recorded: Vec::new(),
            served: 0,
        }
    }
}

/// A scripted OpenAI-compatible server on 127.0.0.1, ephemeral port.
pub struct ScriptedServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Starts a server that answers with `scripts`, one per request, in order.
    ///
    /// # Panics
    /// If no loopback port can be bound or no thread started (test set-up
    /// failure); see [`ScriptedServer::try_start`].
    pub fn start(scripts: Vec<Script>) -> Self {
        Self::try_start(scripts).expect("scripted LLM server: cannot listen on 127.0.0.1")
    }

    /// Like [`ScriptedServer::start`], reporting set-up failures.
    pub fn try_start(scripts: Vec<Script>) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            scripts: scripts.into(),
            ..State::default()
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("scripted-llm-server".into())
            .spawn(move || runtime.block_on(serve(listener, thread_state, rx)))?;
        Ok(ScriptedServer {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/v1`, to use as the base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JSON bodies the client sent, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.lock()
            .recorded
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// Everything about each request (method, path, headers, body), in order.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.lock().recorded.clone()
    }

    /// Chat scripts not used yet.
    pub fn remaining(&self) -> usize {
        self.lock().scripts.len()
    }

    /// Queues `scripts` for the next requests to `POST /v1/embeddings`, one
    /// each, in order, after any already queued. Once they are used up the
    /// server answers with the embedding function again.
    pub fn script_embeddings(&self, scripts: Vec<Script>) {
        self.lock().embedding_scripts.extend(scripts);
    }

    /// Embeddings scripts not used yet.
    pub fn remaining_embeddings(&self) -> usize {
        self.lock().embedding_scripts.len()
    }

    /// Sets the function that gives each text its vector (default:
    /// [`hashed_embedding`] with [`SCRIPTED_EMBEDDING_DIM`]). It should
    /// return vectors of one length, as a real model does.
    pub fn set_embedding_fn(&self, embed: impl Fn(&str) -> Vec<f32> + Send + Sync + 'static) {
        self.lock().embed = Arc::new(embed);
    }

    /// The texts of each request to `/v1/embeddings`, in order (failed ones included).
    pub fn embedding_inputs(&self) -> Vec<Vec<String>> {
        self.lock()
            .recorded
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/embeddings"))
            .map(|r| embedding_inputs(&r.body).unwrap_or_default())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The thread ends its runtime, which drops every connection task.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let ask = Ask::from(&body);
    let is_post = parts.method == hyper::Method::POST;
    let route = if is_post && path.ends_with("/chat/completions") {
        Route::Chat
    } else if is_post && path.ends_with("/embeddings") {
        Route::Embeddings(embedding_inputs(&body))
    } else {
        Route::Unknown
    };
    let (script, n, embed) = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.recorded.push(RecordedRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        });
        st.served += 1;
        let script = match route {
            Route::Chat => st.scripts.pop_front(),
            Route::Embeddings(_) => Some(
                st.embedding_scripts
                    .pop_front()
                    .unwrap_or(Script::Embeddings),
            ),
            Route::Unknown => None,
        };
        (script, st.served, st.embed.clone())
    };
    let Some(mut script) = script else {
        let message = if path.ends_with("/chat/completions") {
            format!("scripted server: no script left for request {n}")
        } else {
            format!("scripted server: no route for {path}")
        };
        let status = if path.ends_with("/chat/completions") {
            500
        } else {
            404
        };
        return Ok(plain(
            status,
            "application/json",
            json!({"error": {"message": message}}).to_string(),
        ));
    };

    // Unwrap delays and extra headers, outermost first.
    let mut headers = Vec::new();
    let script = loop {
        match script {
            Script::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                script = *inner;
            }
            Script::WithHeaders(h, inner) => {
                headers.extend(h);
                script = *inner;
            }
            leaf => break leaf,
        }
    };

    let mut response = match (script, &route) {
        (Script::Embeddings, Route::Embeddings(inputs)) => embeddings_reply(&ask, inputs, &embed),
        (Script::Embeddings, _) => plain(
            500,
            "application/json",
            json!({"error": {"message": "scripted server: Script::Embeddings answers only /v1/embeddings"}})
                .to_string(),
        ),
        (
            Script::Reply(_)
            | Script::ReplyWithoutUsage(_)
            | Script::NonStreaming(_)
            | Script::StallStream { .. },
            Route::Embeddings(_),
        ) => plain(
            500,
            "application/json",
            json!({"error": {"message": "scripted server: a chat script was queued for an embeddings request"}})
                .to_string(),
        ),
        (script, _) => chat_answer(script, &ask, n),
    };

    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// Which endpoint a request is for.
enum Route {
    Chat,
    /// With the input texts, or `None` when `input` is not text.
    Embeddings(Option<Vec<String>>),
    Unknown,
}

/// The answer to a chat request.
fn chat_answer(script: Script, ask: &Ask, n: usize) -> Response<Body> {
    match script {
        Script::Reply(text) => reply(ask, &text, true, n),
        Script::ReplyWithoutUsage(text) => reply(ask, &text, false, n),
        Script::NonStreaming(text) => json_reply(ask, &text, true, n),
        Script::Status(code, body) => {
            let ct = if serde_json::from_str::<Value>(&body).is_ok() {
                "application/json"
            } else {
                "text/plain"
            };
            plain(code, ct, body)
        }
        Script::StallStream { after_tokens } => stall(ask, after_tokens, n),
        Script::Garbage(body) => {
            let ct = if ask.stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            plain(200, ct, body)
        }
        // Unwrapped by the caller; Embeddings is answered there.
        Script::Delay(..) | Script::WithHeaders(..) | Script::Embeddings => {
            plain(500, "text/plain", String::new())
        }
    }
}

/// The texts of an embeddings request: `input` as one string or a list of strings.
fn embedding_inputs(body: &Value) -> Option<Vec<String>> {
    match body.get("input")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// An OpenAI-style embeddings list, in reverse order with `index` fields.
fn embeddings_reply(
    ask: &Ask,
    inputs: &Option<Vec<String>>,
    embed: &EmbeddingFn,
) -> Response<Body> {
    let Some(inputs) = inputs else {
        return plain(
            400,
            "application/json",
            json!({"error": {"message": "scripted server: 'input' must be a string or a list of strings", "type": "invalid_request_error"}})
                .to_string(),
        );
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embed(text)}))
        .collect();
    let words: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let body = json!({
        "object": "list",
        "data": data,
        "model": ask.model,
        "usage": {"prompt_tokens": words, "total_tokens": words},
    });
    plain(200, "application/json", body.to_string())
}

/// What the request asked for.
struct Ask {
    stream: bool,
    include_usage: bool,
    model: String,
    prompt_words: u64,
}

impl From<&Value> for Ask {
    fn from(body: &Value) -> Self {
        Ask {
            stream: body.get("stream").and_then(Value::as_bool) == Some(true),
            include_usage: body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true),
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("scripted-model")
                .to_string(),
            prompt_words: body
                .get("messages")
                .and_then(Value::as_array)
                .map_or(0, |ms| {
                    ms.iter()
                        .filter_map(|m| m.get("content").and_then(Value::as_str))
                        .map(|c| c.split_whitespace().count() as u64)
                        .sum()
                }),
        }
    }
}

/// The text in pieces as a streaming server sends them: words with their trailing space.
pub fn pieces(text: &str) -> Vec<String> {
    text.split_inclusive(char::is_whitespace)
        .map(str::to_string)
        .collect()
}

const CREATED: u64 = 1_700_000_000;

fn reply(ask: &Ask, text: &str, usage: bool, n: usize) -> Response<Body> {
    if !ask.stream {
        return json_reply(ask, text, usage, n);
    }
    let parts = pieces(text);
    let mut events = vec![chunk(
        ask,
        n,
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    events.extend(
        parts
            .iter()
            .map(|p| chunk(ask, n, json!({ "content": p }), None)),
    );
    events.push(chunk(ask, n, json!({}), Some("stop")));
    if usage && ask.include_usage {
        events.push(json!({
            "id": format!("chatcmpl-scripted-{n}"), "object": "chat.completion.chunk",
            "created": CREATED, "model": ask.model, "choices": [],
            "usage": usage_json(ask, parts.len()),
        }));
    }
    let mut body = String::new();
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    sse(futures::stream::iter([Bytes::from(body)]).boxed(), 200)
}

fn json_reply(ask: &Ask, text: &str, usage: bool, n: usize) -> Response<Body> {
    let mut v = json!({
        "id": format!("chatcmpl-scripted-{n}"),
        "object": "chat.completion",
        "created": CREATED,
        "model": ask.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }],
    });
    if usage {
        v["usage"] = usage_json(ask, pieces(text).len());
    }
    plain(200, "application/json", v.to_string())
}

fn stall(ask: &Ask, after_tokens: usize, n: usize) -> Response<Body> {
    let words = (0..after_tokens).map(|i| format!("tok{i} "));
    if !ask.stream {
        // Headers and the start of a JSON object, then silence.
        let start = Bytes::from(format!(
            "{{\"id\":\"chatcmpl-scripted-{n}\",\"object\":\"chat.completion\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{}",
            words.collect::<String>()
        ));
        let body = futures::stream::iter([start]).chain(futures::stream::pending());
        let mut r = sse(body.boxed(), 200);
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return r;
    }
    let mut frames = vec![chunk(
        ask,
        n,
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    frames.extend(words.map(|w| chunk(ask, n, json!({ "content": w }), None)));
    let frames = frames
        .into_iter()
        .map(|e| Bytes::from(format!("data: {e}\n\n")));
    let body = futures::stream::iter(frames).chain(futures::stream::pending());
    sse(body.boxed(), 200)
}

fn chunk(ask: &Ask, n: usize, delta: Value, finish: Option<&str>) -> Value {
    let mut c = json!({
        "id": format!("chatcmpl-scripted-{n}"),
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": ask.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    if ask.include_usage {
        c["usage"] = Value::Null;
    }
    c
}

fn usage_json(ask: &Ask, completion: usize) -> Value {
    json!({
        "prompt_tokens": ask.prompt_words,
        "completion_tokens": completion,
        "total_tokens": ask.prompt_words + completion as u64,
    })
}

fn sse(body: futures::stream::BoxStream<'static, Bytes>, status: u16) -> Response<Body> {
    let body = StreamBody::new(body.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut r = Response::new(BodyExt::boxed_unsync(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
}

fn plain(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}
