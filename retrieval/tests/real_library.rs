//! Tests against the real example library in `specs/examples/` and the
//! evaluation set in `eval/`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use kgent_retrieval::eval::EvalSet;
use kgent_retrieval::{HashedNgramEmbedder, Library, Retriever, VectorStore};

fn library_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/examples")
}

fn library() -> Library {
    Library::load(library_dir()).expect("the example library loads")
}

#[test]
fn the_real_library_loads_without_duplicates() {
    let lib = library();
    assert!(lib.len() >= 150, "only {} examples", lib.len());
    let mut requests: HashMap<String, &str> = HashMap::new();
    for e in lib.examples() {
        let key = e.request.trim().to_lowercase();
        if let Some(other) = requests.insert(key, &e.id) {
            panic!("`{}` and `{other}` have the same request", e.id);
        }
        assert!(!e.tags.is_empty(), "{} has no tags", e.id);
    }
    // Loading twice gives the same version; it is a hex content hash.
    assert_eq!(lib.version(), library().version());
    assert!(lib.version().chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn bm25_finds_each_example_by_its_own_request() {
    let lib = library();
    let retriever = Retriever::lexical(lib.clone());
    let mut not_first = Vec::new();
    for e in lib.examples() {
        let top: Vec<String> = retriever
            .search(&e.request, 2)
            .into_iter()
            .map(|h| h.example_id)
            .collect();
        assert!(
            top.contains(&e.id),
            "{}: its own request ranks below 2: {top:?}",
            e.id
        );
        if top[0] != e.id {
            not_first.push(format!("{} -> {}", e.id, top[0]));
        }
    }
    // Known: "Histogram of disk I/O latency" (block-io-latency) uses only
    // words that block-io-latency-by-device's request, tags and description
    // also have, more often. Anything beyond 1% is a regression.
    assert!(
        not_first.len() * 100 <= lib.len(),
        "exact requests not ranked first: {not_first:?}"
    );
}

#[test]
fn hybrid_search_on_the_real_library_with_the_hashed_embedder() {
    let lib = library();
    let dir = tempfile::tempdir().unwrap();
    let store = VectorStore::open(dir.path()).unwrap();
    let embedder = Arc::new(HashedNgramEmbedder::default());
    let retriever = Retriever::hybrid(lib.clone(), embedder.clone(), &store).unwrap();
    assert!(retriever.build_report().unwrap().built);

    let hits = retriever.search(
        "Show which processes open files under /etc, with the path",
        5,
    );
    assert_eq!(hits[0].example_id, "files-opens-under-etc");
    assert_eq!(hits[0].bm25_rank, Some(1));
    assert!(hits[0].vector_rank.is_some());
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

    // Reopening with the same library loads the index; an approved program
    // makes a new library version and a new index.
    let again = Retriever::hybrid(lib.clone(), embedder.clone(), &store).unwrap();
    assert!(!again.build_report().unwrap().built);
    let mut approved = lib.get("files-opens-under-etc").unwrap().clone();
    approved.id = "user-watch-etc-shadow".into();
    approved.request = "Tell me whenever anything touches /etc/shadow or /etc/gshadow".into();
    let grown = lib.with_examples(vec![approved]).unwrap();
    assert_ne!(grown.version(), lib.version());
    let grown = Retriever::hybrid(grown, embedder, &store).unwrap();
    let report = grown.build_report().unwrap();
    assert!(report.built);
    // Only the new request was embedded; the rest came from the cache.
    assert_eq!(report.embedded, 1);
    let hits = grown.search("anything touching /etc/gshadow", 3);
    assert_eq!(hits[0].example_id, "user-watch-etc-shadow");
}

#[test]
fn the_eval_set_is_large_and_labelled_with_real_ids() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("eval/paraphrases.toml");
    let set = EvalSet::load(&path).unwrap();
    assert!(set.queries.len() >= 80, "{} queries", set.queries.len());
    set.check_labels(&library(), &path).unwrap();
    // Paraphrases, not copies: no query repeats a library request.
    let lib = library();
    for q in &set.queries {
        assert!(
            lib.examples()
                .iter()
                .all(|e| !e.request.eq_ignore_ascii_case(q.text.trim())),
            "{:?} is a library request",
            q.text
        );
    }
}

#[cfg(feature = "bundled-embedder")]
#[test]
fn bundled_embedder_runs_offline_and_ranks_a_paraphrase_higher() {
    use kgent_retrieval::{cosine, BundledEmbedder, Embedder};
    let e = BundledEmbedder::new().unwrap();
    assert!(e.id().starts_with("pocket-encoder/") && e.id().ends_with("/384d"));
    let v = e
        .embed(&[
            "which programs open the most files",
            "count file opens per process",
            "tcp retransmissions by destination",
        ])
        .unwrap();
    assert_eq!(v[0].len(), 384);
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
}
