//! kgent-llm: the only part of Kgent that talks to the network.
//!
//! - [`LlmConfig`]: endpoint, model, key and limits, from the environment and
//!   `~/.config/kgent/llm.toml`; `None` means no LLM (Kgent works offline).
//! - [`LlmProvider`]: a streaming chat call, bounded in time whatever the
//!   server does; [`OpenAiProvider`] implements it for any OpenAI-compatible
//!   endpoint (OpenAI, Ollama, vLLM, llama.cpp server, LM Studio).
//! - [`LlmError`]: failures sorted for people (each message says what to do)
//!   and for the agent loop ([`LlmError::is_retryable`], [`LlmError::retry_after`]).
//! - [`EmbeddingsConfig`] and [`OpenAiEmbeddings`]: an OpenAI-compatible
//!   `/v1/embeddings` model for retrieval, configured by `KGENT_EMBEDDINGS_*`
//!   or the `[embeddings]` table of `llm.toml`; `None` means none.
//! - [`extract_program`]: the bpftrace program in a reply, if any.
//! - `testing` feature: `testing::ScriptedServer`, a scripted
//!   OpenAI-compatible server on 127.0.0.1 (chat and embeddings) for tests of
//!   this and other crates.

mod config;
mod embeddings;
mod error;
mod extract;
mod openai;
mod provider;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{
    EmbeddingsConfig, LlmConfig, Origin, DEFAULT_EMBEDDINGS_BATCH_SIZE, DEFAULT_EMBEDDINGS_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TIMEOUT,
    MAX_EMBEDDINGS_BATCH_SIZE, OPENAI_BASE_URL,
};
pub use embeddings::OpenAiEmbeddings;
pub use error::LlmError;
pub use extract::{extract_program, looks_like_bpftrace};
pub use openai::OpenAiProvider;
pub use provider::{
    ChatCompletion, ChatMessage, ChatOptions, FinishReason, LlmProvider, Role, Usage,
};
