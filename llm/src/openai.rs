//! `OpenAiProvider`: chat with any OpenAI-compatible endpoint through `async-openai`, in bounded time.
//!
//! What `async-openai` 0.43 does on its own, and what this module changes:
//! - Its default executor retries 429, 5xx and connection errors 3 times,
//!   sleeping for as long as `Retry-After` says (unbounded), and its error
//!   values drop the response headers. We install our own transport
//!   ([`Transport`], via the `middleware` feature) that sends each request
//!   once and turns every non-2xx answer into a [`TransportFailure`] that keeps
//!   status, `Retry-After` and body. The caller decides about retries.
//! - It has no timeout: the `reqwest` client gets one, and [`OpenAiProvider::chat`]
//!   wraps the whole call in a deadline plus an idle limit between stream chunks.
//! - Its typed responses require fields (`id`, `created` as u32, `object`,
//!   `choices[].index`, `message.role`, a closed set of `finish_reason`s) that
//!   local servers do not all send, so we use the `byot` methods with
//!   `serde_json::Value` and read replies leniently.
//! - Servers differ in what they accept; a 400 that names `stream`,
//!   `stream_options`, `max_tokens` or `temperature` makes us drop or rename
//!   that field and ask again (at most once per field, within the deadline).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::Client;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::provider::FinishReason;
use crate::{ChatCompletion, ChatMessage, ChatOptions, LlmConfig, LlmError, LlmProvider, Usage};

/// Slack given to reqwest's own timeout so that our deadline, which knows
/// what to call the failure, normally fires first.
const HTTP_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);
/// Connecting should never take long; a silent host is reported quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Error bodies are read only this far: enough for any message, bounded for HTML pages.
const ERROR_BODY_CAP: usize = 64 * 1024;
/// A JSON reply to a streaming request (server ignored `stream`) is read this far.
const REPLY_BODY_CAP: usize = 16 * 1024 * 1024;
/// Requests per call: the first plus one per compatibility adjustment.
const MAX_ATTEMPTS: usize = 5;

/// How to phrase a request for this server; learned from its 400 answers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Compat {
    stream: bool,
    include_usage: bool,
    max_tokens: MaxTokensField,
    temperature: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MaxTokensField {
    /// `max_tokens`: what every local server understands.
    Legacy,
    /// `max_completion_tokens`: what OpenAI's reasoning models insist on.
    Completion,
    /// Neither.
    Omit,
}

impl Default for Compat {
    fn default() -> Self {
        Compat {
            stream: true,
            include_usage: true,
            max_tokens: MaxTokensField::Legacy,
            temperature: true,
        }
    }
}

impl Compat {
    /// The request phrased differently if this rejection names something we
    /// can drop; `None` if the rejection is about something else.
    fn adjusted(self, status: u16, message: &str) -> Option<Compat> {
        if !matches!(status, 400 | 405 | 415 | 422 | 501) {
            return None;
        }
        let m = message.to_ascii_lowercase();
        let names = |field: &str| names_field(&m, field);
        let mut next = self;
        if self.stream && self.include_usage && names("stream_options") {
            next.include_usage = false;
        } else if self.stream && names("stream") {
            next.stream = false;
        } else if self.max_tokens == MaxTokensField::Legacy && names("max_tokens") {
            next.max_tokens = MaxTokensField::Completion;
        } else if self.max_tokens == MaxTokensField::Completion && names("max_completion_tokens") {
            next.max_tokens = MaxTokensField::Omit;
        } else if self.temperature && names("temperature") {
            next.temperature = false;
        } else {
            return None;
        }
        Some(next)
    }
}

/// Whether `message` (lower case) names `field` as a word of its own start:
/// "stream" in "'stream' is not supported" or "streaming unsupported", not in "upstream".
fn names_field(message: &str, field: &str) -> bool {
    message.match_indices(field).any(|(i, _)| {
        !message[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// An [`LlmProvider`] for OpenAI, Ollama, vLLM, llama.cpp server, LM Studio
/// and anything else that speaks `POST {base}/chat/completions`.
///
/// Calls need a Tokio runtime with I/O and time enabled (the deadlines are
/// Tokio timers).
pub struct OpenAiProvider {
    config: LlmConfig,
    client: Client<OpenAIConfig>,
    url: String,
    compat: Mutex<Compat>,
    errors: Classifier,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// A provider for `config` (validated first). Sends nothing yet.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        config.validate()?;
        let url = config.display_url();
        let client = build_client(&config.base_url, config.api_key.as_deref(), config.timeout)?;
        Ok(OpenAiProvider {
            errors: Classifier {
                url: url.clone(),
                model: config.model.clone(),
                timeout: config.timeout,
            },
            config,
            client,
            url,
            compat: Mutex::new(Compat::default()),
        })
    }

    /// The provider the environment and config file describe;
    /// [`LlmError::NotConfigured`] when they describe none.
    pub fn from_env() -> Result<Self, LlmError> {
        match LlmConfig::load()? {
            Some(config) => Self::new(config),
            None => Err(LlmError::NotConfigured),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    fn compat(&self) -> Compat {
        *self.compat.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn learn(&self, compat: Compat) {
        *self.compat.lock().unwrap_or_else(|e| e.into_inner()) = compat;
    }

    fn request_body(&self, messages: &[ChatMessage], opts: &ChatOptions, c: Compat) -> Value {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| json!({ "role": m.role.as_str(), "content": m.content }))
            .collect();
        let mut body =
            json!({ "model": self.config.model, "messages": messages, "stream": c.stream });
        if c.stream && c.include_usage {
            // Without this, OpenAI-style servers send no token counts when streaming.
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let Some(n) = opts.max_tokens.or(self.config.max_tokens) {
            match c.max_tokens {
                MaxTokensField::Legacy => body["max_tokens"] = json!(n),
                MaxTokensField::Completion => body["max_completion_tokens"] = json!(n),
                MaxTokensField::Omit => {}
            }
        }
        if let Some(t) = opts.temperature.or(self.config.temperature) {
            if c.temperature {
                // Via the shortest decimal, so 0.2f32 goes out as 0.2, not 0.20000000298.
                let t = t.to_string().parse::<f64>().unwrap_or(f64::from(t));
                body["temperature"] = json!(t);
            }
        }
        body
    }

    async fn chat_within_deadline(
        &self,
        messages: &[ChatMessage],
        opts: &ChatOptions,
        on_token: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, LlmError> {
        let mut compat = self.compat();
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let body = self.request_body(messages, opts, compat);
            let outcome = if compat.stream {
                self.streamed(body, on_token).await
            } else {
                self.unary(body).await.inspect(|reply| {
                    if !reply.text.is_empty() {
                        on_token(&reply.text);
                    }
                })
            };
            match outcome {
                Ok(reply) => return Ok(reply),
                Err(Failure::Http {
                    status,
                    retry_after,
                    body,
                }) => {
                    let message = error_message(&body);
                    match compat.adjusted(status, &message) {
                        Some(next) => {
                            compat = next;
                            self.learn(compat);
                            last = Some(self.status_error(status, retry_after, message));
                        }
                        None => return Err(self.status_error(status, retry_after, message)),
                    }
                }
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::NotAStream(_)) => {
                    return Err(self.bad("a JSON reply where none was expected".into()))
                }
            }
        }
        Err(last.unwrap_or_else(|| self.bad("too many rejected requests".into())))
    }

    /// One non-streaming request.
    async fn unary(&self, body: Value) -> Result<Reply, Failure> {
        let value: Value = self
            .client
            .chat()
            .create_byot(body)
            .await
            .map_err(|e| self.failure(e))?;
        self.parse_completion(&value)
    }

    /// One streaming request; falls back to reading a plain JSON reply when
    /// the server ignored `stream: true`.
    async fn streamed(
        &self,
        body: Value,
        on_token: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, Failure> {
        let mut stream = match self
            .client
            .chat()
            .create_stream_byot::<Value, Value>(body)
            .await
        {
            Ok(stream) => stream,
            Err(e) => {
                return match self.failure(e) {
                    Failure::NotAStream(json) => {
                        let reply = self.parse_json_completion(&json)?;
                        if !reply.text.is_empty() {
                            on_token(&reply.text);
                        }
                        Ok(reply)
                    }
                    other => Err(other),
                };
            }
        };
        let mut acc = StreamState::default();
        loop {
            // The idle limit: a server that goes quiet mid-reply is reported
            // long before the overall deadline.
            match tokio::time::timeout(self.config.idle_timeout, stream.next()).await {
                Err(_) => {
                    return Err(Failure::Final(LlmError::Stalled {
                        url: self.url.clone(),
                        idle: self.config.idle_timeout,
                        received_chars: acc.text.chars().count(),
                    }))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(match self.failure(e) {
                        Failure::Final(LlmError::BadResponse { reason, .. })
                            if !acc.text.is_empty() =>
                        {
                            Failure::Final(self.bad(format!(
                                "{reason} (after {} characters of reply)",
                                acc.text.chars().count()
                            )))
                        }
                        other => other,
                    })
                }
                Ok(Some(Ok(chunk))) => self.take_chunk(&mut acc, &chunk, on_token)?,
            }
        }
        if !acc.saw_choice {
            return Err(Failure::Final(
                self.bad("the event stream ended before any reply arrived".into()),
            ));
        }
        Ok(Reply {
            text: acc.text,
            model: acc.model,
            usage: acc.usage,
            finish_reason: acc.finish_reason,
        })
    }

    fn take_chunk(
        &self,
        acc: &mut StreamState,
        chunk: &Value,
        on_token: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), Failure> {
        if let Some(err) = chunk.get("error") {
            // OpenAI and vLLM report failures inside a 200 stream this way.
            return Err(self.embedded_error(err));
        }
        if acc.model.is_none() {
            acc.model = chunk
                .get("model")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_string);
        }
        if let Some(usage) = chunk.get("usage").and_then(parse_usage) {
            acc.usage = usage;
        }
        if let Some(choice) = first_choice(chunk) {
            acc.saw_choice = true;
            if let Some(piece) = choice.pointer("/delta/content").and_then(content_text) {
                if !piece.is_empty() {
                    on_token(&piece);
                    acc.text.push_str(&piece);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                acc.finish_reason = Some(FinishReason::parse(reason));
            }
        }
        Ok(())
    }

    fn parse_json_completion(&self, json: &str) -> Result<Reply, Failure> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            Failure::Final(self.bad(format!("the reply is not JSON ({e}): {}", snippet(json))))
        })?;
        self.parse_completion(&value)
    }

    /// Reads a non-streamed chat completion, tolerating missing fields.
    fn parse_completion(&self, value: &Value) -> Result<Reply, Failure> {
        if !value.is_object() {
            return Err(Failure::Final(self.bad(format!(
                "expected a JSON object, got {}",
                snippet(&value.to_string())
            ))));
        }
        if let Some(err) = value.get("error") {
            return Err(self.embedded_error(err));
        }
        let choice = match value.get("choices").and_then(Value::as_array) {
            None => {
                return Err(Failure::Final(
                    self.bad("it has no \"choices\" list".into()),
                ))
            }
            Some(list) if list.is_empty() => {
                return Err(Failure::Final(
                    self.bad("its \"choices\" list is empty".into()),
                ))
            }
            Some(_) => first_choice(value).unwrap_or(&Value::Null),
        };
        let Some(message) = choice.get("message").filter(|m| m.is_object()) else {
            return Err(Failure::Final(
                self.bad("its first choice has no \"message\"".into()),
            ));
        };
        let text = message
            .get("content")
            .and_then(content_text)
            .or_else(|| message.get("refusal").and_then(content_text))
            .unwrap_or_default();
        Ok(Reply {
            text,
            model: value
                .get("model")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            usage: value.get("usage").and_then(parse_usage).unwrap_or_default(),
            finish_reason: choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(FinishReason::parse),
        })
    }

    fn embedded_error(&self, err: &Value) -> Failure {
        self.errors.embedded_error(err)
    }

    fn bad(&self, reason: String) -> LlmError {
        self.errors.bad(reason)
    }

    fn status_error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    ) -> LlmError {
        self.errors.status_error(status, retry_after, message)
    }

    fn failure(&self, e: OpenAIError) -> Failure {
        self.errors.failure(e)
    }
}

/// Turns what went wrong in one request into an [`LlmError`] that names the
/// endpoint (and model); shared by the chat and the embeddings clients so
/// both sort failures the same way.
#[derive(Debug, Clone)]
pub(crate) struct Classifier {
    /// The endpoint as shown to people (no credentials).
    pub(crate) url: String,
    /// The model asked for, named in [`LlmError::ModelNotFound`].
    pub(crate) model: String,
    /// The request limit, named in [`LlmError::Timeout`].
    pub(crate) timeout: Duration,
}

impl Classifier {
    /// The error for a failed request that is not retried in another
    /// phrasing (every request but a chat's).
    pub(crate) fn error(&self, e: OpenAIError) -> LlmError {
        match self.failure(e) {
            Failure::Http {
                status,
                retry_after,
                body,
            } => self.status_error(status, retry_after, error_message(&body)),
            Failure::NotAStream(_) => self.bad("a JSON reply where none was expected".into()),
            Failure::Final(e) => e,
        }
    }

    /// An `{"error": ...}` object inside a 2xx reply.
    fn embedded_error(&self, err: &Value) -> Failure {
        Failure::Final(self.error_in_reply(err))
    }

    /// The error an `{"error": ...}` object inside a 2xx reply stands for.
    pub(crate) fn error_in_reply(&self, err: &Value) -> LlmError {
        let status = err
            .get("code")
            .and_then(|c| {
                c.as_u64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            })
            .filter(|c| (400..600).contains(c))
            .map_or(500, |c| c as u16);
        let message = error_message(&json!({ "error": err }).to_string());
        self.status_error(status, None, message)
    }

    pub(crate) fn bad(&self, reason: String) -> LlmError {
        LlmError::BadResponse {
            url: self.url.clone(),
            reason,
        }
    }

    /// The error for an HTTP failure status.
    fn status_error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    ) -> LlmError {
        let url = self.url.clone();
        match status {
            401 | 403 => LlmError::Auth {
                url,
                status,
                message,
            },
            429 => LlmError::RateLimited {
                url,
                retry_after,
                message,
            },
            400 | 404 if mentions_missing_model(&message) => LlmError::ModelNotFound {
                url,
                model: self.model.clone(),
                message,
            },
            500..=599 => LlmError::Server {
                url,
                status,
                message,
            },
            400..=499 => LlmError::Rejected {
                url,
                status,
                message,
            },
            _ => self.bad(format!("unexpected HTTP status {status}: {message}")),
        }
    }

    /// Sorts an error from async-openai.
    fn failure(&self, e: OpenAIError) -> Failure {
        match e {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<TransportFailure>() {
                Ok(failure) => match *failure {
                    TransportFailure::Http {
                        status,
                        retry_after,
                        body,
                    } => Failure::Http {
                        status,
                        retry_after,
                        body,
                    },
                    TransportFailure::NotAStream { body } => Failure::NotAStream(body),
                },
                Err(other) => Failure::Final(self.bad(other.to_string())),
            },
            OpenAIError::Reqwest(e) => Failure::Final(self.network_error(&e)),
            OpenAIError::JSONDeserialize(e, content) => Failure::Final(self.bad(format!(
                "the reply is not JSON ({e}): {}",
                snippet(&content)
            ))),
            OpenAIError::StreamError(e) => {
                Failure::Final(self.bad(format!("the event stream broke off: {e}")))
            }
            OpenAIError::ApiError(api) => Failure::Http {
                status: api.status_code.as_u16(),
                retry_after: None,
                body: json!({ "error": { "message": api.api_error.message } }).to_string(),
            },
            other => Failure::Final(self.bad(other.to_string())),
        }
    }

    fn network_error(&self, e: &reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            }
        } else if e.is_body() || e.is_decode() {
            self.bad(format!("reading it failed: {}", error_chain(e)))
        } else {
            // Connection refused, DNS, TLS, reset before the answer: nothing usable answered.
            LlmError::Unreachable {
                url: self.url.clone(),
                reason: root_cause(e),
            }
        }
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    async fn chat(
        &self,
        messages: &[ChatMessage],
        opts: &ChatOptions,
        on_token: &mut (dyn for<'t> FnMut(&'t str) + Send),
    ) -> Result<ChatCompletion, LlmError> {
        let started = Instant::now();
        // The one deadline that bounds everything below, whatever the server does.
        let reply = match tokio::time::timeout(
            self.config.timeout,
            self.chat_within_deadline(messages, opts, on_token),
        )
        .await
        {
            Ok(result) => result?,
            Err(_) => {
                return Err(LlmError::Timeout {
                    url: self.url.clone(),
                    after: self.config.timeout,
                })
            }
        };
        Ok(ChatCompletion {
            text: reply.text,
            model: reply.model.unwrap_or_else(|| self.config.model.clone()),
            usage: reply.usage,
            finish_reason: reply.finish_reason,
            elapsed: started.elapsed(),
        })
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.config.model, self.url)
    }
}

/// A reply before the provider adds timing and defaults.
struct Reply {
    text: String,
    model: Option<String>,
    usage: Usage,
    finish_reason: Option<FinishReason>,
}

#[derive(Default)]
struct StreamState {
    text: String,
    model: Option<String>,
    usage: Usage,
    finish_reason: Option<FinishReason>,
    saw_choice: bool,
}

/// One request's failure: an HTTP status (which may lead to a rephrased
/// request), a JSON reply where a stream was asked for, or an error to return as is.
enum Failure {
    Http {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    NotAStream(String),
    Final(LlmError),
}

impl From<LlmError> for Failure {
    fn from(e: LlmError) -> Self {
        Failure::Final(e)
    }
}

/// What [`Transport`] reports instead of a response, inside `OpenAIError::Boxed`.
#[derive(Debug)]
enum TransportFailure {
    /// A non-2xx answer, with what async-openai's own errors drop.
    Http {
        status: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    /// A 2xx JSON answer to a streaming request: the server does not stream.
    NotAStream { body: String },
}

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportFailure::Http { status, body, .. } => {
                write!(f, "HTTP {status}: {}", snippet(body))
            }
            TransportFailure::NotAStream { .. } => {
                f.write_str("a JSON reply to a streaming request")
            }
        }
    }
}

impl std::error::Error for TransportFailure {}

/// An async-openai client for `base_url` that sends each request once
/// through [`Transport`], with reqwest's own timeouts just beyond `timeout`.
pub(crate) fn build_client(
    base_url: &str,
    api_key: Option<&str>,
    timeout: Duration,
) -> Result<Client<OpenAIConfig>, LlmError> {
    let mut http = reqwest::Client::builder()
        .timeout(timeout.saturating_add(HTTP_TIMEOUT_MARGIN))
        .connect_timeout(timeout.min(CONNECT_TIMEOUT));
    if is_loopback(base_url) {
        // An HTTP_PROXY meant for the internet must not capture a local model server.
        http = http.no_proxy();
    }
    let http = http.build().map_err(|e| LlmError::Config {
        origin: "the HTTP client".to_string(),
        line: None,
        message: format!("cannot set it up: {}", error_chain(&e)),
    })?;
    // OpenAIConfig::new() also reads OPENAI_ORG_ID / OPENAI_PROJECT_ID and would
    // send them to whatever server this is (and unwrap()s their header values):
    // clear both, we have our own configuration.
    let openai = OpenAIConfig::new()
        .with_api_base(base_url.to_string())
        .with_api_key(api_key.unwrap_or_default().to_string())
        .with_org_id("")
        .with_project_id("");
    Ok(Client::build(http.clone(), openai).with_http_service(Transport { http }))
}

/// Sends each request exactly once (no retry layer) and keeps failure details.
#[derive(Clone)]
struct Transport {
    http: reqwest::Client,
}

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let wants_stream = request
                .body()
                .and_then(|b| b.as_bytes())
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .and_then(|v| v.get("stream").and_then(Value::as_bool))
                .unwrap_or(false);
            let response = http.execute(request).await?;
            let status = response.status();
            if !status.is_success() {
                let retry_after = retry_after(response.headers());
                let body = read_capped(response, ERROR_BODY_CAP).await;
                return Err(OpenAIError::Boxed(Box::new(TransportFailure::Http {
                    status: status.as_u16(),
                    retry_after,
                    body,
                })));
            }
            let is_json = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
            if wants_stream && is_json {
                let body = read_capped(response, REPLY_BODY_CAP).await;
                return Err(OpenAIError::Boxed(Box::new(TransportFailure::NotAStream {
                    body,
                })));
            }
            Ok(response)
        })
    }
}

/// The body as text, at most `cap` bytes; a read error keeps what arrived.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> String {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    // try_from_secs_f64: a server may send any number, and from_secs_f64 panics
    // on negative, NaN or huge values.
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if let Ok(d) = Duration::try_from_secs_f64(ms / 1000.0) {
            return Some(d);
        }
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The human part of an error body, whichever shape the server uses:
/// `{"error":{"message":..}}` (OpenAI, Ollama), `{"error":".."}`, `{"message":..}`
/// (vLLM), `{"detail":..}` (FastAPI servers), or plain text.
fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        v.pointer("/error/message")
            .and_then(text)
            .or_else(|| v.get("error").filter(|e| e.is_string()).and_then(text))
            .or_else(|| v.get("message").and_then(text))
            .or_else(|| v.get("detail").and_then(text))
            .map(|m| match v.pointer("/error/code").and_then(Value::as_str) {
                Some(code) if !m.contains(code) => format!("{m} ({code})"),
                _ => m,
            })
    });
    let message =
        from_json.unwrap_or_else(|| body.split_whitespace().collect::<Vec<_>>().join(" "));
    if message.trim().is_empty() {
        "(no message)".to_string()
    } else {
        snippet(message.trim())
    }
}

/// Whether a 400/404 message says the model does not exist.
fn mentions_missing_model(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("model_not_found")
        || (m.contains("model")
            && [
                "not found",
                "does not exist",
                "not exist",
                "no such",
                "unknown model",
                "not available",
            ]
            .iter()
            .any(|p| m.contains(p)))
}

fn first_choice(value: &Value) -> Option<&Value> {
    let choices = value.get("choices")?.as_array()?;
    choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
        .or_else(|| choices.first())
}

/// Message content as text: a string, or a list of parts with `text`.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
                .collect(),
        ),
        _ => None,
    }
}

fn parse_usage(v: &Value) -> Option<Usage> {
    let count = |key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let usage = Usage {
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    };
    usage.is_known().then_some(usage)
}

/// At most 300 characters, for messages.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The innermost cause, e.g. "Connection refused (os error 111)".
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

fn is_loopback(base_url: &str) -> bool {
    let Some(host) = reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_from_the_shapes_servers_use() {
        let openai = r#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(
            error_message(openai),
            "The model `gpt-9` does not exist (model_not_found)"
        );
        assert!(mentions_missing_model(&error_message(openai)));
        let vllm = r#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","code":404}"#;
        assert_eq!(error_message(vllm), "The model `x` does not exist.");
        let ollama = r#"{"error":{"message":"model \"llama9\" not found, try pulling it first","type":"api_error"}}"#;
        assert!(mentions_missing_model(&error_message(ollama)));
        assert_eq!(error_message(r#"{"error":"Unauthorized"}"#), "Unauthorized");
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message("<html>\n <b>502</b>\n</html>"),
            "<html> <b>502</b> </html>"
        );
        assert_eq!(error_message(""), "(no message)");
        assert!(!mentions_missing_model("Not Found"));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        for hostile in ["-1", "NaN", "1e300", "inf"] {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert("retry-after", hostile.parse().unwrap());
            h.insert("retry-after-ms", hostile.parse().unwrap());
            assert_eq!(retry_after(&h), None, "{hostile}");
        }
    }

    #[test]
    fn compatibility_adjustments_are_one_step_each() {
        let c = Compat::default();
        let c1 = c
            .adjusted(400, "Unrecognized request argument: stream_options")
            .unwrap();
        assert!(c1.stream && !c1.include_usage);
        let c2 = c1.adjusted(400, "streaming is not supported").unwrap();
        assert!(!c2.stream);
        assert_eq!(c2.adjusted(400, "streaming is not supported"), None);
        let msg = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.";
        let c3 = c.adjusted(400, msg).unwrap();
        assert_eq!(c3.max_tokens, MaxTokensField::Completion);
        let c4 = c3
            .adjusted(400, "Unsupported parameter: 'max_completion_tokens'")
            .unwrap();
        assert_eq!(c4.max_tokens, MaxTokensField::Omit);
        let t = "Unsupported value: 'temperature' does not support 0.2 with this model.";
        assert!(!c.adjusted(400, t).unwrap().temperature);
        assert_eq!(c.adjusted(500, t), None);
        assert_eq!(c.adjusted(400, "messages must not be empty"), None);
        // A proxy's "upstream" is not our `stream` field.
        assert_eq!(
            c.adjusted(400, "upstream provider rejected the request"),
            None
        );
        assert!(!c.adjusted(422, "'stream' must be false").unwrap().stream);
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8080/v1"));
        assert!(is_loopback("http://localhost:11434/v1"));
        assert!(is_loopback("http://[::1]:8000/v1"));
        assert!(!is_loopback("https://api.openai.com/v1"));
    }
}
