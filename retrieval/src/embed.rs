//! Sentence embedders: the [`Embedder`] trait, the bundled offline model
//! (feature `bundled-embedder`), and a weak hashed n-gram fallback.
//!
//! An OpenAI-compatible `/v1/embeddings` client belongs in `kgent-llm`, the
//! project's only networked crate: it implements [`Embedder`] there (or in
//! the kernel, wrapping `kgent-llm`), and this crate never opens a socket.

use std::sync::Arc;

use crate::error::{Result, RetrievalError};

/// Turns text into fixed-size vectors whose cosine similarity means
/// "similar meaning".
///
/// `embed` is blocking. An implementation backed by an async HTTP client can
/// run the request with `tokio::runtime::Handle::block_on` as long as the
/// caller is on a blocking thread (`spawn_blocking`); an async caller can
/// instead embed the query itself and pass the vector to
/// [`crate::Retriever::search_with_vector`].
pub trait Embedder: Send + Sync {
    /// Names the coordinate space: model, revision and dimension. Vectors
    /// from embedders with different ids are never compared, even at equal
    /// dimension, and each id gets its own vector index.
    fn id(&self) -> String;

    /// Length of every vector `embed` returns.
    fn dim(&self) -> usize;

    /// One vector per text, in order. Texts are non-empty.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// Checks an embedder's answer: one vector per text, each of the declared
/// dimension and finite. Everything that stores or compares vectors goes
/// through this, so a misbehaving remote model fails loudly.
pub(crate) fn embed_checked(embedder: &dyn Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let vectors = embedder.embed(texts)?;
    let fail = |reason: String| RetrievalError::Embedding {
        embedder: embedder.id(),
        reason,
    };
    if vectors.len() != texts.len() {
        return Err(fail(format!(
            "returned {} vectors for {} texts",
            vectors.len(),
            texts.len()
        )));
    }
    let dim = embedder.dim();
    for v in &vectors {
        if v.len() != dim {
            return Err(fail(format!(
                "returned a {}-d vector, declared {dim}",
                v.len()
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(fail("returned a non-finite coordinate".into()));
        }
    }
    Ok(vectors)
}

/// The default embedder: the best one compiled in. `Ok(None)` when the
/// crate was built without `bundled-embedder`, so callers fall back to BM25
/// alone rather than to the weak [`HashedNgramEmbedder`] without knowing it.
pub fn default_embedder() -> Result<Option<Arc<dyn Embedder>>> {
    #[cfg(feature = "bundled-embedder")]
    {
        Ok(Some(Arc::new(BundledEmbedder::new()?)))
    }
    #[cfg(not(feature = "bundled-embedder"))]
    {
        Ok(None)
    }
}

#[cfg(feature = "bundled-embedder")]
pub use bundled::BundledEmbedder;

#[cfg(feature = "bundled-embedder")]
mod bundled {
    use super::Embedder;
    use crate::error::{Result, RetrievalError};

    /// `sentence-transformers/paraphrase-MiniLM-L3-v2` (Apache-2.0), 4-bit
    /// weights compiled into the binary by the `pocket-encoder` crate: 384-d,
    /// L2-normalized, CPU only, no download at build or run time. Small and
    /// weaker than MiniLM-L6; see the crate README for measured recall.
    #[derive(Clone)]
    pub struct BundledEmbedder {
        encoder: pocket_encoder::Encoder,
        id: String,
    }

    impl BundledEmbedder {
        /// Loads the compiled-in weights (once per process; ~0.2 s).
        pub fn new() -> Result<BundledEmbedder> {
            let info = pocket_encoder::model_info();
            let encoder =
                pocket_encoder::Encoder::new().map_err(|e| RetrievalError::Embedding {
                    embedder: info.id.clone(),
                    reason: e.to_string(),
                })?;
            // The weights' checksum is part of the id: a new quantization is
            // a new coordinate space even if the model name stays.
            let revision = info.revision.trim_start_matches("sha256:");
            let id = format!(
                "{}@{}/{}d",
                info.id,
                &revision[..revision.len().min(12)],
                info.dimensions
            );
            Ok(BundledEmbedder { encoder, id })
        }
    }

    impl Embedder for BundledEmbedder {
        fn id(&self) -> String {
            self.id.clone()
        }

        fn dim(&self) -> usize {
            384
        }

        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            self.encoder
                .embed(texts)
                .map_err(|e| RetrievalError::Embedding {
                    embedder: self.id.clone(),
                    reason: e.to_string(),
                })
        }
    }
}

/// WEAK fallback: character 3-grams and whole words, hashed into a fixed
/// number of signed buckets and L2-normalized. It knows spelling, not
/// meaning ("slow disk" is not near "block latency"), so it adds little on
/// top of BM25; it exists so the vector path can run, and be tested, with
/// no model at all.
#[derive(Debug, Clone)]
pub struct HashedNgramEmbedder {
    dim: usize,
}

impl HashedNgramEmbedder {
    /// An embedder with `dim` buckets (at least 16).
    pub fn new(dim: usize) -> HashedNgramEmbedder {
        HashedNgramEmbedder { dim: dim.max(16) }
    }

    fn one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        let lower = text.to_lowercase();
        let mut add = |feature: &str, weight: f32| {
            let h = fnv1a(feature.as_bytes());
            let bucket = (h % self.dim as u64) as usize;
            // The sign bit from another part of the hash halves collisions'
            // bias (the "hashing trick").
            let sign = if (h >> 63) == 1 { -1.0 } else { 1.0 };
            v[bucket] += sign * weight;
        };
        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            add(word, 1.0);
            let padded: Vec<char> = format!(" {word} ").chars().collect();
            for gram in padded.windows(3) {
                add(&gram.iter().collect::<String>(), 0.5);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        } else {
            // Cosine needs a non-zero vector; text with no letters or digits
            // gets a fixed direction.
            v[0] = 1.0;
        }
        v
    }
}

impl Default for HashedNgramEmbedder {
    fn default() -> Self {
        HashedNgramEmbedder::new(512)
    }
}

impl Embedder for HashedNgramEmbedder {
    fn id(&self) -> String {
        format!("hashed-char3-words-v1/{}d", self.dim)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.one(t)).collect())
    }
}

/// 64-bit FNV-1a: stable across Rust versions and platforms, unlike
/// `std`'s `DefaultHasher`, so stored vectors stay valid.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Cosine similarity of two vectors of equal length (0 if either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_embedder_is_normalized_and_spelling_aware() {
        let e = HashedNgramEmbedder::default();
        let v = e
            .embed(&["open files", "opening a file", "tcp retransmit"])
            .unwrap();
        assert!(v.iter().all(|x| x.len() == 512));
        let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
        assert_eq!(e.id(), "hashed-char3-words-v1/512d");
    }

    struct Liar;
    impl Embedder for Liar {
        fn id(&self) -> String {
            "liar/3d".into()
        }
        fn dim(&self) -> usize {
            3
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            Ok(texts.iter().map(|_| vec![1.0, 0.0]).collect())
        }
    }

    #[test]
    fn wrong_dimension_is_caught() {
        let err = embed_checked(&Liar, &["x"]).unwrap_err().to_string();
        assert!(err.contains("liar/3d") && err.contains("2-d"), "{err}");
    }
}
