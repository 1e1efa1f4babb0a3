//! The reproducibility cache: an accepted synthesis, replayable without the LLM.
//!
//! One JSON file per key, `<key>.json`, under a directory
//! (`~/.cache/kgent/synth/` by default). The key is the SHA-256 of the
//! request, the hints, the model, the kernel's capability fingerprint, this
//! library's version and the example library's version (and whether the
//! answer was offline, load-checked or verified): change any and the answer is made
//! afresh.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EventKind, SynthEvent, SynthRequest};

/// Bumped when the loop changes in a way that changes its answers.
const FORMAT: &str = "kgent-synth-cache-v2";

/// One stored synthesis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedSynthesis {
    pub key: String,
    pub request: String,
    pub program: String,
    /// The events of the original run (tokens merged per attempt).
    pub events: Vec<SynthEvent>,
    #[serde(default)]
    pub weak_match: Option<String>,
    #[serde(default)]
    pub not_applied: Vec<String>,
}

/// The cache key of a request (hex SHA-256).
pub fn cache_key(
    req: &SynthRequest,
    model: &str,
    kernel_fingerprint: &str,
    library_version: &str,
) -> String {
    let material = serde_json::json!({
        "format": FORMAT,
        "request": req.request.trim(),
        "hints": req.hints,
        "offline": req.offline || model == "offline",
        "load_check": req.load_check,
        "verify": req.verify,
        "model": model,
        "kernel": kernel_fingerprint,
        "kgent": env!("CARGO_PKG_VERSION"),
        "library": library_version,
    });
    let digest = Sha256::digest(material.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stored syntheses, one JSON file each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthCache {
    dir: PathBuf,
}

impl SynthCache {
    /// A cache in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> SynthCache {
        SynthCache { dir: dir.into() }
    }

    /// `$XDG_CACHE_HOME/kgent/synth`, else `~/.cache/kgent/synth`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("kgent").join("synth"))
    }

    /// The cache in [`SynthCache::default_dir`].
    pub fn open_default() -> Option<SynthCache> {
        Self::default_dir().map(SynthCache::new)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The stored synthesis for `key`; `None` when absent or unreadable
    /// (a damaged entry is a miss, not an error).
    pub fn get(&self, key: &str) -> Option<CachedSynthesis> {
        if !key.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let text = std::fs::read_to_string(self.path(key)).ok()?;
        let entry: CachedSynthesis = serde_json::from_str(&text).ok()?;
        (entry.key == key).then_some(entry)
    }

    /// Stores `entry` (written to a temporary file, then renamed, so a
    /// reader never sees half a file).
    pub fn put(&self, entry: &CachedSynthesis) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let text = serde_json::to_string_pretty(entry).map_err(std::io::Error::other)?;
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", entry.key, std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.path(&entry.key))
    }
}

/// `events` with consecutive tokens merged into one (the stored replay need
/// not be as fine-grained as the live stream).
pub(crate) fn coalesce_tokens(events: &[SynthEvent]) -> Vec<SynthEvent> {
    let mut out: Vec<SynthEvent> = Vec::new();
    for e in events {
        if let (
            EventKind::Token(t),
            Some(SynthEvent {
                kind: EventKind::Token(prev),
                ..
            }),
        ) = (&e.kind, out.last_mut())
        {
            prev.push_str(t);
            continue;
        }
        out.push(e.clone());
    }
    out
}
