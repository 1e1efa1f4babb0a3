//! Hybrid search: BM25 and vector rankings fused by reciprocal rank fusion.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::embed::{embed_checked, Embedder};
use crate::error::Result;
use crate::lexical::{Bm25Index, FieldWeights};
use crate::library::{Example, Library};
use crate::store::{BuildReport, Document, VectorIndex, VectorStore};

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The example's id in the library.
    pub example_id: String,
    /// Fused score: the sum over rankings of `weight / (rrf_k + rank)`.
    /// Only comparable within one search.
    pub score: f32,
    /// 1-based rank in the BM25 ranking, if the example was in it.
    pub bm25_rank: Option<usize>,
    /// 1-based rank in the vector ranking, if the example was in it.
    pub vector_rank: Option<usize>,
}

/// Which text of each example is embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipe {
    /// The request sentence only.
    Request,
    /// Request and description as one text (the model truncates at 128
    /// tokens, so long descriptions are cut).
    RequestAndDescription,
    /// Request and description as two vectors; an example ranks at the
    /// better of the two.
    RequestOrDescription,
}

impl Recipe {
    /// Stored in the index key: a new recipe is a new index.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Request => "request-v1",
            Recipe::RequestAndDescription => "request+description-v1",
            Recipe::RequestOrDescription => "request|description-v1",
        }
    }

    /// The documents to embed for `library`.
    pub fn documents(self, library: &Library) -> Vec<Document> {
        let mut docs = Vec::new();
        for e in library.examples() {
            let doc = |text: String| Document {
                example_id: e.id.clone(),
                text,
            };
            match self {
                Recipe::Request => docs.push(doc(e.request.clone())),
                Recipe::RequestAndDescription => {
                    docs.push(doc(format!("{} {}", e.request, e.description)))
                }
                Recipe::RequestOrDescription => {
                    docs.push(doc(e.request.clone()));
                    docs.push(doc(e.description.clone()));
                }
            }
        }
        docs
    }
}

/// Tuning of the hybrid search. The defaults are what `retrieval_eval`
/// measured best on `eval/paraphrases.toml` (see the crate README).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridConfig {
    /// The `k` of reciprocal rank fusion: larger flattens the difference
    /// between rank 1 and rank 10.
    pub rrf_k: f32,
    /// Candidates taken from each ranking before fusion.
    pub depth: usize,
    /// Weight of the BM25 ranking in the fusion.
    pub bm25_weight: f32,
    /// Weight of the vector ranking in the fusion.
    pub vector_weight: f32,
    /// BM25 field weights.
    pub fields: FieldWeights,
    /// What is embedded per example.
    pub recipe: Recipe,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig {
            rrf_k: 60.0,
            depth: 50,
            bm25_weight: 1.0,
            vector_weight: 1.0,
            fields: FieldWeights::default(),
            recipe: Recipe::RequestOrDescription,
        }
    }
}

/// Fuses two rankings (best first) by reciprocal rank fusion. Ties are
/// broken by the better single rank, then BM25 before vector, then id, so
/// the order is reproducible.
pub fn fuse(bm25: &[String], vector: &[String], config: &HybridConfig) -> Vec<Hit> {
    let mut hits: HashMap<String, Hit> = HashMap::new();
    let mut add = |list: &[String], weight: f32, is_bm25: bool| {
        for (i, id) in list.iter().enumerate() {
            let rank = i + 1;
            let hit = hits.entry(id.clone()).or_insert_with(|| Hit {
                example_id: id.clone(),
                score: 0.0,
                bm25_rank: None,
                vector_rank: None,
            });
            // An id listed twice in one ranking counts once, at its best rank.
            let slot = if is_bm25 {
                &mut hit.bm25_rank
            } else {
                &mut hit.vector_rank
            };
            if slot.is_none() {
                *slot = Some(rank);
                hit.score += weight / (config.rrf_k + rank as f32);
            }
        }
    };
    add(bm25, config.bm25_weight, true);
    add(vector, config.vector_weight, false);
    let mut out: Vec<Hit> = hits.into_values().collect();
    let best = |h: &Hit| {
        h.bm25_rank
            .unwrap_or(usize::MAX)
            .min(h.vector_rank.unwrap_or(usize::MAX))
    };
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(best(a).cmp(&best(b)))
            .then(
                a.bm25_rank
                    .unwrap_or(usize::MAX)
                    .cmp(&b.bm25_rank.unwrap_or(usize::MAX)),
            )
            .then(a.example_id.cmp(&b.example_id))
    });
    out
}

struct VectorPart {
    embedder: Arc<dyn Embedder>,
    store: VectorStore,
    index: RwLock<Arc<VectorIndex>>,
    report: BuildReport,
}

/// Finds the examples closest to a request.
pub struct Retriever {
    library: Library,
    bm25: Bm25Index,
    vector: Option<VectorPart>,
    config: HybridConfig,
}

impl Retriever {
    /// BM25 only: no embedder, no index on disk.
    pub fn lexical(library: Library) -> Retriever {
        Retriever::lexical_with(library, HybridConfig::default())
    }

    /// BM25 only, with chosen field weights.
    pub fn lexical_with(library: Library, config: HybridConfig) -> Retriever {
        Retriever {
            bm25: Bm25Index::with_weights(&library, config.fields),
            library,
            vector: None,
            config,
        }
    }

    /// BM25 fused with `embedder`'s vectors, kept in `store` (built there on
    /// first use, and again whenever the library or embedder changes).
    pub fn hybrid(
        library: Library,
        embedder: Arc<dyn Embedder>,
        store: &VectorStore,
    ) -> Result<Retriever> {
        Retriever::hybrid_with(library, embedder, store, HybridConfig::default())
    }

    /// [`Retriever::hybrid`] with a chosen configuration.
    pub fn hybrid_with(
        library: Library,
        embedder: Arc<dyn Embedder>,
        store: &VectorStore,
        config: HybridConfig,
    ) -> Result<Retriever> {
        let documents = config.recipe.documents(&library);
        let (index, report) = store.index(
            embedder.as_ref(),
            config.recipe.name(),
            library.version(),
            &documents,
        )?;
        let mut retriever = Retriever::lexical_with(library, config);
        retriever.vector = Some(VectorPart {
            embedder,
            store: store.clone(),
            index: RwLock::new(Arc::new(index)),
            report,
        });
        Ok(retriever)
    }

    /// The library searched.
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// The example a hit names.
    pub fn example(&self, hit: &Hit) -> Option<&Example> {
        self.library.get(&hit.example_id)
    }

    /// The embedder's id, when there is one.
    pub fn embedder_id(&self) -> Option<String> {
        self.vector.as_ref().map(|v| v.embedder.id())
    }

    /// What opening the vector index did (built or loaded, how long).
    pub fn build_report(&self) -> Option<&BuildReport> {
        self.vector.as_ref().map(|v| &v.report)
    }

    /// The configuration in use.
    pub fn config(&self) -> &HybridConfig {
        &self.config
    }

    /// The best `k` examples for `query`. If the embedder or the index fails,
    /// this returns the BM25 ranking alone (every `vector_rank` is `None`);
    /// use [`Retriever::try_search`] to see the error instead.
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        match self.try_search(query, k) {
            Ok(hits) => hits,
            Err(_) => {
                let lexical = self.lexical_ranking(query, self.config.depth);
                let mut hits = fuse(&lexical, &[], &self.config);
                hits.truncate(k);
                hits
            }
        }
    }

    /// The best `k` examples for `query`, or the embedder's or index's error.
    pub fn try_search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let vector = match &self.vector {
            Some(part) if !query.trim().is_empty() => {
                Some(embed_checked(part.embedder.as_ref(), &[query])?.remove(0))
            }
            _ => None,
        };
        self.search_with_vector(query, vector.as_deref(), k)
    }

    /// Like [`Retriever::try_search`], with the query's vector computed by
    /// the caller (with the same embedder), e.g. by an async HTTP client.
    /// With `None`, BM25 alone.
    pub fn search_with_vector(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        k: usize,
    ) -> Result<Vec<Hit>> {
        if query.trim().is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let lexical = self.lexical_ranking(query, self.config.depth);
        let semantic = match vector {
            Some(v) => self.vector_ranking_of(v, self.config.depth)?,
            None => Vec::new(),
        };
        let mut hits = fuse(&lexical, &semantic, &self.config);
        hits.truncate(k);
        Ok(hits)
    }

    /// The BM25 ranking alone: example ids, best first.
    pub fn lexical_ranking(&self, query: &str, depth: usize) -> Vec<String> {
        self.bm25
            .search(query, depth)
            .into_iter()
            .map(|(i, _)| self.library.examples()[i].id.clone())
            .collect()
    }

    /// The vector ranking alone (empty without an embedder).
    pub fn vector_ranking(&self, query: &str, depth: usize) -> Result<Vec<String>> {
        match &self.vector {
            Some(part) if !query.trim().is_empty() => {
                let v = embed_checked(part.embedder.as_ref(), &[query])?.remove(0);
                self.vector_ranking_of(&v, depth)
            }
            _ => Ok(Vec::new()),
        }
    }

    fn vector_ranking_of(&self, vector: &[f32], depth: usize) -> Result<Vec<String>> {
        let Some(part) = &self.vector else {
            return Ok(Vec::new());
        };
        let index = part.index.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(found) = index.search(vector, depth)? {
            return Ok(found.into_iter().map(|(id, _)| id).collect());
        }
        // Another kernel dropped or replaced our index: build it again (from
        // the embedding cache, so this is quick) and retry once.
        let documents = self.config.recipe.documents(&self.library);
        let (fresh, _) = part.store.index(
            part.embedder.as_ref(),
            self.config.recipe.name(),
            self.library.version(),
            &documents,
        )?;
        let fresh = Arc::new(fresh);
        *part.index.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(fresh
            .search(vector, depth)?
            .unwrap_or_default()
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fusion_rewards_agreement() {
        let config = HybridConfig::default();
        // `b` is second in both lists; `a` and `c` are first in one each.
        let hits = fuse(&ids(&["a", "b", "d"]), &ids(&["c", "b", "a"]), &config);
        let order: Vec<&str> = hits.iter().map(|h| h.example_id.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        // a: 1/61 + 1/63; b: 2/62; c: 1/61; d: 1/63.
        assert!((hits[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
        assert_eq!((hits[0].bm25_rank, hits[0].vector_rank), (Some(1), Some(3)));
        assert_eq!((hits[2].bm25_rank, hits[2].vector_rank), (None, Some(1)));
    }

    #[test]
    fn fusion_ties_prefer_the_better_single_rank_then_bm25() {
        let config = HybridConfig::default();
        let hits = fuse(&ids(&["x"]), &ids(&["y"]), &config);
        // Equal score and equal best rank: the BM25 hit first.
        assert_eq!(hits[0].example_id, "x");
        assert_eq!(hits[1].example_id, "y");
    }

    #[test]
    fn fusion_weights_and_duplicates() {
        let config = HybridConfig {
            vector_weight: 3.0,
            ..HybridConfig::default()
        };
        let hits = fuse(&ids(&["a", "b"]), &ids(&["b", "b"]), &config);
        assert_eq!(hits[0].example_id, "b");
        assert!((hits[0].score - (1.0 / 62.0 + 3.0 / 61.0)).abs() < 1e-6);
        let lexical_only = fuse(&ids(&["a", "b"]), &[], &config);
        assert_eq!(lexical_only[0].example_id, "a");
        assert!(lexical_only.iter().all(|h| h.vector_rank.is_none()));
    }
}
