//! Putting a [`crate::synth::Synthesizer`] together from what this machine has:
//! the example library (compiled in; `KGENT_EXAMPLES_DIR` overrides it), the
//! best retriever that opens (hybrid with the bundled embedder, else BM25),
//! the LLM from the configuration (or none: offline), and a fingerprint of
//! the kernel's capabilities for the reproducibility cache.
//!
//! The kernel and `kgent synth` share this, so both answer a request alike.

use std::path::PathBuf;
use std::sync::Arc;

use include_dir::{include_dir, Dir};
use kgent_catalog::{Capabilities, Support};
use kgent_llm::{LlmConfig, LlmError, LlmProvider, OpenAiProvider};
use kgent_retrieval::{Embedder, Example, Library, RetrievalError, Retriever, VectorStore};
use sha2::{Digest, Sha256};

/// `specs/examples/*.toml` at build time.
static SHIPPED_EXAMPLES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../specs/examples");

/// Names a directory of example files to use instead of the compiled-in library.
pub const EXAMPLES_DIR_ENV: &str = "KGENT_EXAMPLES_DIR";

/// The verified example library: `$KGENT_EXAMPLES_DIR` when set, else the one
/// compiled into this binary.
pub fn shipped_library() -> Result<Library, RetrievalError> {
    if let Some(dir) = std::env::var_os(EXAMPLES_DIR_ENV).filter(|d| !d.is_empty()) {
        return Library::load(PathBuf::from(dir));
    }
    compiled_library()
}

/// The library compiled into this binary.
pub fn compiled_library() -> Result<Library, RetrievalError> {
    let mut examples = Vec::new();
    for file in SHIPPED_EXAMPLES.files() {
        let path = file.path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = file.contents_utf8().unwrap_or_default();
        let origin = PathBuf::from("specs/examples").join(path);
        examples.push(Example::from_toml(&id, text, &origin)?);
    }
    Library::from_examples(examples)
}

/// How retrieval ended up, for `%llm` and `kgent doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievalSummary {
    /// Examples searched.
    pub examples: usize,
    /// The embedder's id, or `None` for BM25 alone.
    pub embedder: Option<String>,
    /// Why the vectors are not used, when they are not.
    pub degraded: Option<String>,
}

/// A retriever over `library`: BM25 fused with `embedder`'s vectors kept in
/// `store_dir` (the user's data directory when `None`), or BM25 alone when
/// there is no embedder or the index cannot be opened; the summary says which.
pub fn build_retriever(
    library: Library,
    embedder: Option<Arc<dyn Embedder>>,
    store_dir: Option<PathBuf>,
) -> (Retriever, RetrievalSummary) {
    let examples = library.len();
    let Some(embedder) = embedder else {
        return (
            Retriever::lexical(library),
            RetrievalSummary {
                examples,
                embedder: None,
                degraded: None,
            },
        );
    };
    let store = match store_dir {
        Some(dir) => VectorStore::open(dir),
        None => VectorStore::open_default(),
    };
    let hybrid = store.and_then(|store| Retriever::hybrid(library.clone(), embedder, &store));
    match hybrid {
        Ok(retriever) => {
            let summary = RetrievalSummary {
                examples,
                embedder: retriever.embedder_id(),
                degraded: None,
            };
            (retriever, summary)
        }
        // Keyword search still finds most examples; say why vectors are off.
        Err(e) => (
            Retriever::lexical(library),
            RetrievalSummary {
                examples,
                embedder: None,
                degraded: Some(format!("vector search is off: {e}")),
            },
        ),
    }
}

/// The embedder retrieval uses: an OpenAI-compatible `/v1/embeddings`
/// endpoint when one is configured (`KGENT_EMBEDDINGS_MODEL` or an
/// `[embeddings]` table in llm.toml) and answers, else the bundled model.
/// The second value says why the preferred one is not used. Blocking: the
/// remote one is probed once here.
pub fn embedder() -> (Option<Arc<dyn Embedder>>, Option<String>) {
    match kgent_llm::EmbeddingsConfig::load() {
        Ok(None) => bundled_embedder(),
        Ok(Some(config)) => match crate::embeddings::RemoteEmbedder::connect_blocking(config) {
            Ok(remote) => (Some(Arc::new(remote)), None),
            Err(e) => {
                let (bundled, _) = bundled_embedder();
                (
                    bundled,
                    Some(format!("the embeddings endpoint is not used: {e}")),
                )
            }
        },
        Err(e) => {
            let (bundled, _) = bundled_embedder();
            (
                bundled,
                Some(format!("the embeddings configuration is not usable: {e}")),
            )
        }
    }
}

/// The sentence embedder compiled in, if any (`None` also when it fails to
/// load, with the reason).
pub fn bundled_embedder() -> (Option<Arc<dyn Embedder>>, Option<String>) {
    match kgent_retrieval::default_embedder() {
        Ok(e) => (e, None),
        Err(e) => (
            None,
            Some(format!("the bundled embedder did not load: {e}")),
        ),
    }
}

/// The retriever a session uses and what it searches.
pub struct SessionRetrieval {
    pub retriever: Arc<Retriever>,
    pub summary: RetrievalSummary,
    /// The shipped library's version: the cache key uses it, so that approved
    /// programs joining the person's library do not invalidate stored answers.
    pub shipped_version: String,
    /// The person's approved programs that are searched too.
    pub approved: usize,
    /// Problems reading the approved programs (the shipped library still answers).
    pub warnings: Vec<String>,
}

/// The shipped library plus the person's approved programs
/// (`kgent_retrieval::UserLibrary`), searched with [`embedder`]'s vectors.
/// Blocking: the vector index may be built (seconds, once per library version).
pub fn session_retrieval() -> Result<SessionRetrieval, String> {
    let shipped = shipped_library().map_err(|e| format!("the example library: {e}"))?;
    let shipped_version = shipped.version().to_string();
    let (library, approved, mut warnings) =
        match kgent_retrieval::UserLibrary::open_default().and_then(|u| shipped.with_user(&u)) {
            Ok((library, warnings)) => {
                let approved = library.len().saturating_sub(shipped.len());
                (library, approved, warnings)
            }
            Err(e) => (
                shipped,
                0,
                vec![format!("approved programs are not searched: {e}")],
            ),
        };
    let (embedder, embedder_problem) = embedder();
    let (retriever, mut summary) = build_retriever(library, embedder, None);
    if let Some(p) = embedder_problem {
        warnings.push(p.clone());
        summary.degraded.get_or_insert(p);
    }
    Ok(SessionRetrieval {
        retriever: Arc::new(retriever),
        summary,
        shipped_version,
        approved,
        warnings,
    })
}

/// Which LLM a session uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LlmChoice {
    /// Whatever the environment and `~/.config/kgent/llm.toml` say (offline
    /// when they say nothing).
    #[default]
    Configured,
    /// The example library only, even if an LLM is configured.
    Offline,
    /// Set for this session (`%llm --base-url ... --model ...`).
    Custom(Box<LlmConfig>),
}

/// The provider for `choice`, with `model` replacing the configured model
/// when given. `Ok(None)`: offline (chosen, or nothing configured).
pub fn provider_for(
    choice: &LlmChoice,
    model: Option<&str>,
) -> Result<Option<Arc<dyn LlmProvider>>, LlmError> {
    let config = match choice {
        LlmChoice::Offline => return Ok(None),
        LlmChoice::Configured => match LlmConfig::load()? {
            Some(c) => c,
            None => return Ok(None),
        },
        LlmChoice::Custom(c) => (**c).clone(),
    };
    let mut config = config;
    if let Some(model) = model.filter(|m| !m.trim().is_empty()) {
        config.model = model.trim().to_string();
    }
    Ok(Some(Arc::new(OpenAiProvider::new(config)?)))
}

/// Identifies what the kernel can attach (part of the cache key): the kernel
/// release, the bpftrace version, BTF, and which probe types work. Two
/// machines with equal fingerprints give equal answers to equal requests.
pub fn kernel_fingerprint(caps: &Capabilities) -> String {
    let mut h = Sha256::new();
    h.update(b"kgent-kernel-v1\0");
    h.update(caps.kernel_release.as_bytes());
    h.update(b"\0");
    if let Some(b) = &caps.bpftrace {
        h.update(format!("{:?}", b.major_minor).as_bytes());
    }
    h.update([u8::from(caps.btf)]);
    for (probe, support) in &caps.probes {
        h.update(format!("{probe:?}={}", matches!(support, Support::Works)).as_bytes());
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_library_is_the_one_in_specs() {
        let compiled = compiled_library().expect("compiled library parses");
        let dir = Library::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/examples"))
            .expect("specs/examples loads");
        assert!(compiled.len() >= 150, "{} examples", compiled.len());
        assert_eq!(compiled.version(), dir.version());
    }

    #[test]
    fn without_an_embedder_retrieval_is_keyword_only_and_says_so() {
        let lib = compiled_library().unwrap();
        let (retriever, summary) = build_retriever(lib, None, None);
        assert_eq!(summary.embedder, None);
        assert!(summary.examples >= 150);
        let hits = retriever.search("which files are opened under /etc", 3);
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn offline_choice_has_no_provider_and_custom_takes_the_model_override() {
        assert!(provider_for(&LlmChoice::Offline, Some("x"))
            .unwrap()
            .is_none());
        let custom = LlmChoice::Custom(Box::new(LlmConfig::new(
            "http://127.0.0.1:9/v1",
            "base-model",
        )));
        let p = provider_for(&custom, Some("other-model")).unwrap().unwrap();
        assert!(p.describe().contains("other-model"), "{}", p.describe());
    }

    #[test]
    fn fingerprint_changes_with_probe_support() {
        let mut caps = kgent_catalog::capabilities(false);
        let a = kernel_fingerprint(&caps);
        assert_eq!(a, kernel_fingerprint(&caps));
        let first = *caps.probes.keys().next().unwrap();
        let flipped = match caps.probes[&first] {
            Support::Works => Support::Fails {
                reason: "test".into(),
            },
            _ => Support::Works,
        };
        caps.probes.insert(first, flipped);
        assert_ne!(a, kernel_fingerprint(&caps));
    }
}
