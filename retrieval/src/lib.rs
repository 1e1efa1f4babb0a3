//! kgent-retrieval: finds the example programs closest to a plain-English
//! request, to use as few-shot material or as the offline answer.
//!
//! - [`Library`]: the request/program pairs of `specs/examples/*.toml`
//!   (plus user-approved programs), with a content [`Library::version`].
//! - [`UserLibrary`]: the programs the person approved, in LMDB under
//!   `~/.local/share/kgent/user-library/`; [`Library::with_user`] merges
//!   them into the shipped library so later requests retrieve them.
//! - [`Bm25Index`]: lexical search over request, description, tags and
//!   probe names.
//! - [`Embedder`]: text to vectors. [`BundledEmbedder`] (feature
//!   `bundled-embedder`, on by default) runs a small sentence model compiled
//!   into the binary; [`HashedNgramEmbedder`] is a weak model-free fallback.
//!   A remote `/v1/embeddings` embedder belongs in `kgent-llm`.
//! - [`VectorStore`]: arroy + LMDB under `~/.local/share/kgent/index/`, one
//!   index per (embedder, library version), rebuilt when either changes.
//! - [`Retriever`]: BM25 and vectors fused by reciprocal rank fusion;
//!   BM25 alone when there is no embedder.
//! - [`eval`]: recall@k and MRR over a labelled set of paraphrases.
//!
//! Nothing here uses the network.
//!
//! ```no_run
//! use kgent_retrieval::{default_embedder, Library, Retriever, VectorStore};
//!
//! # fn main() -> kgent_retrieval::Result<()> {
//! let library = Library::load("specs/examples")?;
//! // Any failure on the vector side (no data directory, read-only disk,
//! // no embedder compiled in) still leaves BM25.
//! let hybrid = match default_embedder()? {
//!     Some(embedder) => VectorStore::open_default()
//!         .and_then(|store| Retriever::hybrid(library.clone(), embedder, &store))
//!         .ok(),
//!     None => None,
//! };
//! let retriever = hybrid.unwrap_or_else(|| Retriever::lexical(library));
//! for hit in retriever.search("who's opening /etc files", 3) {
//!     let example = retriever.example(&hit).expect("hits name library examples");
//!     println!("{:.4} {} {}", hit.score, hit.example_id, example.request);
//! }
//! # Ok(())
//! # }
//! ```

mod embed;
mod error;
pub mod eval;
mod hybrid;
mod lexical;
mod library;
mod lmdb;
mod store;
mod user;

#[cfg(feature = "bundled-embedder")]
pub use embed::BundledEmbedder;
pub use embed::{cosine, default_embedder, Embedder, HashedNgramEmbedder};
pub use error::{Result, RetrievalError};
pub use hybrid::{fuse, Hit, HybridConfig, Recipe, Retriever};
pub use lexical::{probe_words, Bm25Index, DomainTokenizer, FieldWeights};
pub use library::{Example, Library, OutputKind, ParamKind, ParamValue, Parameter};
pub use store::{BuildReport, Document, VectorIndex, VectorStore};
pub use user::{Approved, UserExamples, UserLibrary, USER_FORMAT, USER_ID_PREFIX, USER_TAG};
