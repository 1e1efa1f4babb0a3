//! The `LlmProvider` trait and the plain data that crosses it: messages, options, completions.
//!
//! The agent depends on this trait, not on `async-openai`, so it can be driven
//! by [`crate::OpenAiProvider`] in production and by anything else in tests.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::LlmError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person (or the agent speaking for them).
    User,
    /// The model's earlier replies.
    Assistant,
}

impl Role {
    /// The role's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message (an earlier reply, fed back).
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Per-call settings; `None` uses the value from [`crate::LlmConfig`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatOptions {
    /// Reply budget in tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0..=2.
    pub temperature: Option<f32>,
}

/// Token counts as the server reported them; `None` when it did not
/// (many local servers send no usage), which is unknown, not zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: Option<u32>,
    /// Tokens in the reply.
    pub completion_tokens: Option<u32>,
}

impl Usage {
    /// Whether the server reported anything.
    pub fn is_known(&self) -> bool {
        self.prompt_tokens.is_some() || self.completion_tokens.is_some()
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token budget ran out: the reply (and any program in it) may be cut off.
    Length,
    /// The provider's content filter removed text.
    ContentFilter,
    /// The model called a tool (we offer none, so unusual).
    ToolCalls,
    /// Anything else the server said, verbatim (servers differ).
    Other(String),
}

impl FinishReason {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "stop" | "eos" | "end_turn" | "stop_sequence" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            other => FinishReason::Other(other.to_string()),
        }
    }
}

/// A finished reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    /// The whole reply text (the streamed tokens, concatenated).
    pub text: String,
    /// The model that answered, as the server named it.
    pub model: String,
    /// Token counts, where reported.
    pub usage: Usage,
    /// Why the model stopped, where reported.
    pub finish_reason: Option<FinishReason>,
    /// Wall-clock time of the call, retries for compatibility included.
    pub elapsed: Duration,
}

/// A chat model that streams its reply.
///
/// Uses `#[async_trait]` (a boxed `Send` future) rather than a native
/// `async fn` in the trait because the agent holds providers as
/// `Arc<dyn LlmProvider>` (real or scripted) and native async trait methods
/// are not object-safe; one allocation per LLM call costs nothing next to
/// the call itself.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Sends `messages` and returns the reply. Each piece of text is passed
    /// to `on_token` as it arrives, in order; the pieces concatenate to
    /// [`ChatCompletion::text`]. When the server does not stream, `on_token`
    /// gets the whole text once.
    ///
    /// The whole call is bounded by the configured timeout, whatever the
    /// server does; nothing is retried after a failure answer (429, 5xx):
    /// the caller decides, using [`LlmError::is_retryable`].
    ///
    /// (`for<'t>` is spelled out because `#[async_trait]` would otherwise
    /// give the `&str` a named lifetime and the callback would stop being
    /// callable with each token's own borrow.)
    async fn chat(
        &self,
        messages: &[ChatMessage],
        opts: &ChatOptions,
        on_token: &mut (dyn for<'t> FnMut(&'t str) + Send),
    ) -> Result<ChatCompletion, LlmError>;

    /// A one-line description for logs and `%llm` (endpoint and model, no key).
    fn describe(&self) -> String;
}
