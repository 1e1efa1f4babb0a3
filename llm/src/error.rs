//! `LlmError`: every way an LLM call or its configuration can fail, sorted for people and for the agent loop.
//!
//! Each message names the endpoint and says what to do, because it is shown as
//! is in the notebook and in `kgent doctor`. The agent loop reads the variant
//! (and [`LlmError::is_retryable`], [`LlmError::retry_after`]) rather than text.

use std::time::Duration;

/// Why an LLM call or the LLM configuration failed.
///
/// URLs in these values never carry credentials: they come from
/// [`crate::LlmConfig::display_url`], which drops any `user:password@` part.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// No endpoint or model is configured; Kgent then works offline.
    #[error(
        "no LLM is configured: set KGENT_LLM_BASE_URL and KGENT_LLM_MODEL, or write \
         base_url and model in ~/.config/kgent/llm.toml (Kgent works offline without one)"
    )]
    NotConfigured,

    /// The configuration (environment or file) is invalid.
    #[error("LLM configuration error in {origin}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Config {
        /// Where the bad value came from: a file path or an environment variable.
        origin: String,
        /// 1-based line in the file, when the error is in a file.
        line: Option<usize>,
        /// What is wrong and what is expected.
        message: String,
    },

    /// Nothing answered: connection refused, DNS failure, TLS failure, reset.
    #[error("the LLM endpoint {url} is unreachable ({reason}); is the server running, and is the base URL right?")]
    Unreachable {
        /// The configured base URL.
        url: String,
        /// The lowest-level cause, e.g. "Connection refused (os error 111)".
        reason: String,
    },

    /// The whole call did not finish within the configured request timeout.
    #[error(
        "the LLM endpoint {url} did not finish within {}; raise KGENT_LLM_TIMEOUT \
         (timeout_secs in llm.toml) for slow local models, or lower max_tokens",
        secs(*after)
    )]
    Timeout {
        /// The configured base URL.
        url: String,
        /// The limit that was reached.
        after: Duration,
    },

    /// A streamed reply stopped sending data in mid-answer.
    #[error(
        "the LLM endpoint {url} stopped sending for {} in mid-reply (after {received_chars} characters); \
         the server may be overloaded; try again",
        secs(*idle)
    )]
    Stalled {
        /// The configured base URL.
        url: String,
        /// The idle time allowed between two chunks.
        idle: Duration,
        /// How much text had arrived before the stall.
        received_chars: usize,
    },

    /// HTTP 429: the server asks to slow down (or the account is out of quota).
    #[error(
        "the LLM endpoint {url} is rate limiting requests{}: {message}",
        retry_after.map(|d| format!(" (retry after {})", secs(d))).unwrap_or_default()
    )]
    RateLimited {
        /// The configured base URL.
        url: String,
        /// From `Retry-After` (or `retry-after-ms`), when the server sent it.
        retry_after: Option<Duration>,
        /// The server's own words, e.g. quota exhausted.
        message: String,
    },

    /// HTTP 401 or 403: the key is missing, wrong or lacks permission.
    #[error(
        "the LLM endpoint {url} refused the API key (HTTP {status}): {message}; \
         set KGENT_LLM_API_KEY (or OPENAI_API_KEY, or api_key in llm.toml)"
    )]
    Auth {
        /// The configured base URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The server's own words.
        message: String,
    },

    /// The server does not know the configured model.
    #[error(
        "the LLM endpoint {url} has no model {model:?}: {message}; set KGENT_LLM_MODEL \
         (or model in llm.toml) to one it serves (for Ollama: `ollama pull {model}`)"
    )]
    ModelNotFound {
        /// The configured base URL.
        url: String,
        /// The model that was asked for.
        model: String,
        /// The server's own words.
        message: String,
    },

    /// HTTP 5xx: the server failed.
    #[error("the LLM endpoint {url} failed (HTTP {status}): {message}; try again later")]
    Server {
        /// The configured base URL.
        url: String,
        /// The 5xx status.
        status: u16,
        /// The server's own words.
        message: String,
    },

    /// Any other HTTP 4xx: the server rejected the request itself.
    #[error("the LLM endpoint {url} rejected the request (HTTP {status}): {message}{}", hint_for(*status))]
    Rejected {
        /// The configured base URL.
        url: String,
        /// The 4xx status.
        status: u16,
        /// The server's own words.
        message: String,
    },

    /// The server answered 2xx but not with a usable chat completion or
    /// embeddings list.
    #[error("the LLM endpoint {url} sent a reply that is not usable: {reason}; is it OpenAI-compatible?")]
    BadResponse {
        /// The configured base URL.
        url: String,
        /// What was wrong with it (unparseable JSON, no choices, no message,
        /// a missing or misshapen embedding...).
        reason: String,
    },
}

impl LlmError {
    /// Whether the same request may succeed if sent again later
    /// (after [`LlmError::retry_after`] when there is one).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::Unreachable { .. }
                | LlmError::Timeout { .. }
                | LlmError::Stalled { .. }
                | LlmError::RateLimited { .. }
                | LlmError::Server { .. }
        )
    }

    /// How long the server asked us to wait, for [`LlmError::RateLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Seconds, as a person reads them ("2 s", "0.5 s").
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// A 404 that does not mention a model is usually a base URL without `/v1`.
fn hint_for(status: u16) -> &'static str {
    match status {
        404 => "; check the base URL (OpenAI-compatible servers usually need the /v1 suffix)",
        _ => "",
    }
}
