//! `RemoteEmbedder`: retrieval's [`Embedder`] backed by an OpenAI-compatible
//! `/v1/embeddings` model, through [`kgent_llm::OpenAiEmbeddings`].
//!
//! [`Embedder::embed`] is blocking and the client is async. The embedder owns
//! a small current-thread Tokio runtime on a thread of its own and runs every
//! request there, which buys three things:
//! - `embed` works from any thread: plain threads with no runtime,
//!   `spawn_blocking` threads, and even async tasks (which it blocks for the
//!   length of the request; async code should prefer
//!   [`RemoteEmbedder::embed_async`] and `Retriever::search_with_vector`);
//!   `Handle::block_on` would panic in async tasks and needs a caller's runtime;
//! - the pooled HTTP connections live on that runtime, so they keep working
//!   after whichever runtime called [`RemoteEmbedder::connect`] is gone;
//! - the caller's runtime flavour does not matter.
//!
//! The network itself is `kgent-llm`'s: this file only moves calls between threads.

use std::sync::{mpsc, Arc};

use kgent_llm::{EmbeddingsConfig, LlmError, OpenAiEmbeddings};
use kgent_retrieval::{Embedder, RetrievalError};

/// Embedded once by [`RemoteEmbedder::connect`] to learn the model's dimension.
const PROBE_TEXT: &str = "trace which processes open files";

/// An [`Embedder`] that asks an OpenAI-compatible embeddings endpoint.
///
/// Its [`Embedder::id`] is `openai:<base_url>#<model>:<dim>` (the base URL
/// without credentials), so the vector index is rebuilt when the endpoint,
/// the model or its dimension changes, and reused across kernels otherwise.
/// A server that swaps the weights behind an unchanged model name is not
/// noticed; remove the index then.
pub struct RemoteEmbedder {
    client: Arc<OpenAiEmbeddings>,
    worker: Worker,
    id: String,
    dim: usize,
}

impl std::fmt::Debug for RemoteEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEmbedder")
            .field("id", &self.id)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl RemoteEmbedder {
    /// Validates `config`, starts the embedder's thread and embeds one probe
    /// text to learn the dimension. Fails as that request fails (endpoint
    /// down, bad key, unknown model...), so a configured but unusable
    /// endpoint is found at start-up, not in the middle of a search.
    pub async fn connect(config: EmbeddingsConfig) -> Result<Self, LlmError> {
        let unprobed = Self::unprobed(config)?;
        let probe = unprobed.embed_async(&[PROBE_TEXT.to_string()]).await;
        unprobed.probed(probe)
    }

    /// [`RemoteEmbedder::connect`] for code that is not async. Blocks, so
    /// do not call it from an async task.
    pub fn connect_blocking(config: EmbeddingsConfig) -> Result<Self, LlmError> {
        let unprobed = Self::unprobed(config)?;
        let probe = unprobed.run_blocking(vec![PROBE_TEXT.to_string()]);
        unprobed.probed(probe)
    }

    /// The embedder the environment and `llm.toml` configure
    /// ([`EmbeddingsConfig::load`]), connected; `Ok(None)` when none is.
    pub async fn from_env() -> Result<Option<Self>, LlmError> {
        match EmbeddingsConfig::load()? {
            Some(config) => Self::connect(config).await.map(Some),
            None => Ok(None),
        }
    }

    fn unprobed(config: EmbeddingsConfig) -> Result<Self, LlmError> {
        let client = Arc::new(OpenAiEmbeddings::new(config)?);
        let worker = Worker::start().map_err(|e| LlmError::Config {
            origin: "the embeddings thread".to_string(),
            line: None,
            message: format!("cannot start it: {e}"),
        })?;
        Ok(RemoteEmbedder {
            client,
            worker,
            id: String::new(),
            dim: 0,
        })
    }

    fn probed(mut self, probe: Result<Vec<Vec<f32>>, LlmError>) -> Result<Self, LlmError> {
        // The client returns one non-empty vector per text or an error.
        self.dim = probe?.first().map_or(0, Vec::len);
        let config = self.client.config();
        self.id = format!(
            "openai:{}#{}:{}",
            config.display_url(),
            config.model,
            self.dim
        );
        Ok(self)
    }

    /// The client's configuration.
    pub fn config(&self) -> &EmbeddingsConfig {
        self.client.config()
    }

    /// A one-line description for logs (model, endpoint and dimension; no key).
    pub fn describe(&self) -> String {
        format!("{} ({}-d)", self.client.describe(), self.dim)
    }

    /// The async form of [`Embedder::embed`], for async callers: embed the
    /// query here and pass the vector to `Retriever::search_with_vector`.
    /// Runs on the embedder's own runtime like every other request.
    pub async fn embed_async(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let client = self.client.clone();
        let texts = texts.to_vec();
        match self
            .worker
            .handle
            .spawn(async move { client.embed(&texts).await })
            .await
        {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(self.stopped()),
        }
    }

    /// Runs one embeddings call on the worker and waits for it on this thread.
    fn run_blocking(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, LlmError> {
        // A std channel, not a oneshot's blocking_recv, because that one
        // panics when called from an async task.
        let (tx, rx) = mpsc::sync_channel(1);
        let client = self.client.clone();
        self.worker.handle.spawn(async move {
            let _ = tx.send(client.embed(&texts).await);
        });
        rx.recv().unwrap_or_else(|_| Err(self.stopped()))
    }

    /// The call's task ended without an answer (it panicked, or the runtime
    /// is shutting down).
    fn stopped(&self) -> LlmError {
        LlmError::Unreachable {
            url: self.client.config().display_url(),
            reason: "the embeddings thread stopped before the request finished".to_string(),
        }
    }
}

impl Embedder for RemoteEmbedder {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// Blocks until every batch is embedded; see the module notes for which
    /// threads may call it.
    fn embed(&self, texts: &[&str]) -> kgent_retrieval::Result<Vec<Vec<f32>>> {
        let texts = texts.iter().map(|t| t.to_string()).collect();
        self.run_blocking(texts)
            .map_err(|e| RetrievalError::Embedding {
                embedder: self.id.clone(),
                reason: e.to_string(),
            })
    }
}

/// A current-thread runtime driven by a thread of its own until dropped.
struct Worker {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start() -> std::io::Result<Worker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kgent-embeddings".into())
            // Spawned tasks run while this block_on waits; dropping the
            // runtime at the end cancels whatever is still in flight.
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                })
            })?;
        Ok(Worker {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Joining itself would deadlock; the runtime then ends on its own.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
