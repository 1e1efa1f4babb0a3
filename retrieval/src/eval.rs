//! Measuring retrieval: an evaluation set of paraphrased requests labelled
//! with the examples that answer them, and recall@k / MRR over rankings.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, RetrievalError};
use crate::library::Library;

/// One labelled query.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalQuery {
    /// What the person types.
    pub text: String,
    /// Ids of every example that answers it acceptably.
    pub relevant: Vec<String>,
    /// How it is phrased: `terse`, `student`, `sysadmin`, `plain`, ...
    #[serde(default)]
    pub style: String,
}

/// A set of labelled queries (`eval/paraphrases.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    /// The queries, in file order.
    #[serde(rename = "query")]
    pub queries: Vec<EvalQuery>,
}

impl EvalSet {
    /// Reads an evaluation file.
    pub fn load(path: impl AsRef<Path>) -> Result<EvalSet> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RetrievalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        EvalSet::parse(&text, path)
    }

    /// Parses the text of an evaluation file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<EvalSet> {
        let set: EvalSet = toml::from_str(text).map_err(|e| RetrievalError::EvalSet {
            path: origin.to_path_buf(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        for (i, q) in set.queries.iter().enumerate() {
            if q.text.trim().is_empty() || q.relevant.is_empty() {
                return Err(RetrievalError::EvalSet {
                    path: origin.to_path_buf(),
                    reason: format!("query {} needs a text and at least one relevant id", i + 1),
                });
            }
        }
        Ok(set)
    }

    /// Every label names an example of `library`, so a renamed example
    /// cannot silently turn into a miss.
    pub fn check_labels(&self, library: &Library, origin: &Path) -> Result<()> {
        for q in &self.queries {
            for id in &q.relevant {
                if library.get(id).is_none() {
                    return Err(RetrievalError::EvalSet {
                        path: origin.to_path_buf(),
                        reason: format!(
                            "query {:?} is labelled with unknown example `{id}`",
                            q.text
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Summary figures over a set of queries.
///
/// `recall_at_k` is the fraction of queries with at least one relevant
/// example in the top k (a person needs one right program, not all of
/// them). `mrr` is the mean of 1/rank of the first relevant example,
/// counting 0 when none is in the ranking given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Number of queries.
    pub queries: usize,
    /// Share of queries answered at rank 1.
    pub recall_at_1: f64,
    /// Share answered in the top 3.
    pub recall_at_3: f64,
    /// Share answered in the top 5.
    pub recall_at_5: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
}

impl Metrics {
    /// Figures from the 1-based rank of the first relevant example of each
    /// query (`None`: not found).
    pub fn from_ranks(ranks: &[Option<usize>]) -> Metrics {
        let n = ranks.len();
        let share = |k: usize| {
            if n == 0 {
                return 0.0;
            }
            ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count() as f64 / n as f64
        };
        let mrr = if n == 0 {
            0.0
        } else {
            ranks
                .iter()
                .map(|r| r.map_or(0.0, |r| 1.0 / r as f64))
                .sum::<f64>()
                / n as f64
        };
        Metrics {
            queries: n,
            recall_at_1: share(1),
            recall_at_3: share(3),
            recall_at_5: share(5),
            mrr,
        }
    }
}

/// The 1-based rank of the first id in `ranking` that is in `relevant`.
pub fn first_relevant_rank(ranking: &[String], relevant: &[String]) -> Option<usize> {
    ranking
        .iter()
        .position(|id| relevant.contains(id))
        .map(|i| i + 1)
}

/// Runs `rank` on every query and scores the results. Returns the figures
/// and each query's rank of its first relevant example.
pub fn evaluate(
    set: &EvalSet,
    mut rank: impl FnMut(&str) -> Vec<String>,
) -> (Metrics, Vec<Option<usize>>) {
    let ranks: Vec<Option<usize>> = set
        .queries
        .iter()
        .map(|q| first_relevant_rank(&rank(&q.text), &q.relevant))
        .collect();
    (Metrics::from_ranks(&ranks), ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"
[[query]]
text = "alpha"
relevant = ["a"]
style = "terse"

[[query]]
text = "beta"
relevant = ["b", "bb"]

[[query]]
text = "gamma"
relevant = ["g"]

[[query]]
text = "delta"
relevant = ["d"]
"#;

    #[test]
    fn recall_and_mrr_on_a_hand_made_set() {
        let set = EvalSet::parse(SET, Path::new("tiny.toml")).unwrap();
        assert_eq!(set.queries.len(), 4);
        assert_eq!(set.queries[1].style, "");
        let rankings = |q: &str| -> Vec<String> {
            let list: &[&str] = match q {
                "alpha" => &["a", "x", "y"],           // rank 1
                "beta" => &["x", "y", "bb", "b"],      // rank 3 (first of the two)
                "gamma" => &["x", "y", "z", "w", "g"], // rank 5
                _ => &["x"],                           // not found
            };
            list.iter().map(|s| s.to_string()).collect()
        };
        let (m, ranks) = evaluate(&set, rankings);
        assert_eq!(ranks, [Some(1), Some(3), Some(5), None]);
        assert_eq!(m.queries, 4);
        assert_eq!(m.recall_at_1, 0.25);
        assert_eq!(m.recall_at_3, 0.5);
        assert_eq!(m.recall_at_5, 0.75);
        let mrr = (1.0 + 1.0 / 3.0 + 1.0 / 5.0 + 0.0) / 4.0;
        assert!((m.mrr - mrr).abs() < 1e-12);
    }

    #[test]
    fn empty_and_malformed_sets() {
        let m = Metrics::from_ranks(&[]);
        assert_eq!((m.queries, m.recall_at_1, m.mrr), (0, 0.0, 0.0));
        let err = EvalSet::parse(
            "[[query]]\ntext = \"x\"\nrelevant = []\n",
            Path::new("e.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("e.toml") && err.contains("query 1"), "{err}");
    }
}
