//! `OpenAiEmbeddings`: text to vectors through any OpenAI-compatible `POST {base}/embeddings`.
//!
//! Built on `async-openai` (feature `embedding`) with the chat provider's
//! transport and error sorting: each request is sent once (no hidden
//! retries), bounded by the configured timeout, and failures come back as
//! the same [`LlmError`] variants as chat failures.
//!
//! The request is async-openai's typed `CreateEmbeddingRequest`; the reply is
//! read as plain JSON (`byot`) because the typed `CreateEmbeddingResponse`
//! requires `object`, `model`, per-item `index` and a `usage` with both token
//! counts, which local servers do not all send. What we do require is one
//! float vector per text, all of one length, each placed by its `index`
//! (servers may answer out of order), or by position when there is none.

use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput};
use async_openai::Client;
use serde_json::Value;

use crate::openai::{build_client, snippet, Classifier};
use crate::{EmbeddingsConfig, LlmError};

/// An OpenAI-compatible embeddings client (OpenAI, Ollama, vLLM, llama.cpp
/// server, LM Studio, Text Embeddings Inference).
///
/// Calls need a Tokio runtime with I/O and time enabled. Connections are
/// pooled per client and belong to the runtime that opened them, so use one
/// client from one runtime (`kgent-agent`'s `RemoteEmbedder` does).
pub struct OpenAiEmbeddings {
    config: EmbeddingsConfig,
    client: Client<OpenAIConfig>,
    errors: Classifier,
}

impl std::fmt::Debug for OpenAiEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbeddings")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OpenAiEmbeddings {
    /// A client for `config` (validated first). Sends nothing yet.
    pub fn new(config: EmbeddingsConfig) -> Result<Self, LlmError> {
        config.validate()?;
        let client = build_client(&config.base_url, config.api_key.as_deref(), config.timeout)?;
        Ok(OpenAiEmbeddings {
            errors: Classifier {
                url: config.display_url(),
                model: config.model.clone(),
                timeout: config.timeout,
            },
            config,
            client,
        })
    }

    /// The client the environment and config file describe; `Ok(None)`
    /// when they configure no embeddings model.
    pub fn from_env() -> Result<Option<Self>, LlmError> {
        EmbeddingsConfig::load()?.map(Self::new).transpose()
    }

    /// The configuration in use.
    pub fn config(&self) -> &EmbeddingsConfig {
        &self.config
    }

    /// A one-line description for logs (model and endpoint, no key).
    pub fn describe(&self) -> String {
        format!("{} at {}", self.config.model, self.errors.url)
    }

    /// One vector per text, in the order of `texts`, all of one length.
    ///
    /// Texts go out in requests of [`EmbeddingsConfig::batch_size`], one
    /// after another; each request is bounded by
    /// [`EmbeddingsConfig::timeout`] and the first failure ends the call
    /// (nothing is retried: the caller decides, with
    /// [`LlmError::is_retryable`]). No texts, no request.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size.max(1)) {
            let vectors = self.embed_batch(batch).await?;
            // Within a batch `parse` checks this; across batches a server
            // behind a load balancer could still mix two models.
            if let (Some(seen), Some(now)) = (out.first(), vectors.first()) {
                if seen.len() != now.len() {
                    return Err(self.errors.bad(format!(
                        "embeddings of {} and of {} dimensions in one call",
                        seen.len(),
                        now.len()
                    )));
                }
            }
            out.extend(vectors);
        }
        Ok(out)
    }

    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let request = CreateEmbeddingRequest {
            model: self.config.model.clone(),
            input: EmbeddingInput::StringArray(batch.to_vec()),
            // encoding_format stays unset: float is every server's default,
            // and some older local servers reject the field.
            ..CreateEmbeddingRequest::default()
        };
        let embeddings = self.client.embeddings();
        let call = embeddings.create_byot::<_, Value>(request);
        let value = match tokio::time::timeout(self.config.timeout, call).await {
            Err(_) => {
                return Err(LlmError::Timeout {
                    url: self.errors.url.clone(),
                    after: self.config.timeout,
                })
            }
            Ok(Err(e)) => return Err(self.errors.error(e)),
            Ok(Ok(value)) => value,
        };
        self.parse(&value, batch.len())
    }

    /// The vectors of one reply, ordered by their `index`.
    fn parse(&self, value: &Value, expected: usize) -> Result<Vec<Vec<f32>>, LlmError> {
        let bad = |reason: String| self.errors.bad(format!("embeddings reply: {reason}"));
        if !value.is_object() {
            return Err(bad(format!(
                "expected a JSON object, got {}",
                snippet(&value.to_string())
            )));
        }
        if let Some(err) = value.get("error") {
            return Err(self.errors.error_in_reply(err));
        }
        let Some(data) = value.get("data").and_then(Value::as_array) else {
            return Err(bad("it has no \"data\" list".into()));
        };
        if data.len() != expected {
            return Err(bad(format!(
                "{} embeddings for {expected} texts",
                data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
        for (position, item) in data.iter().enumerate() {
            let index = match item.get("index") {
                None | Some(Value::Null) => position,
                Some(v) => match v.as_u64().and_then(|i| usize::try_from(i).ok()) {
                    Some(i) if i < expected => i,
                    _ => {
                        return Err(bad(format!(
                            "item {position} has index {v}, not one of 0..{expected}"
                        )))
                    }
                },
            };
            if slots[index].is_some() {
                return Err(bad(format!("index {index} appears twice")));
            }
            let vector = match item.get("embedding") {
                Some(Value::Array(xs)) => xs
                    .iter()
                    .map(|x| x.as_f64().map(|f| f as f32).filter(|f| f.is_finite()))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(|| {
                        bad(format!(
                            "embedding {index} holds something not a finite number"
                        ))
                    })?,
                Some(Value::String(_)) => {
                    return Err(bad(format!(
                        "embedding {index} is base64 text, not a list of floats"
                    )))
                }
                _ => return Err(bad(format!("item {position} has no \"embedding\" list"))),
            };
            if vector.is_empty() {
                return Err(bad(format!("embedding {index} is empty")));
            }
            slots[index] = Some(vector);
        }
        // Every slot is filled: `expected` distinct indices below `expected`.
        let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
        if let Some(first) = vectors.first() {
            if let Some(other) = vectors.iter().find(|v| v.len() != first.len()) {
                return Err(bad(format!(
                    "embeddings of {} and of {} dimensions in one reply",
                    first.len(),
                    other.len()
                )));
            }
        }
        Ok(vectors)
    }
}
