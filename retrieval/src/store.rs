//! The on-disk vector index: arroy (approximate nearest neighbours, cosine)
//! in an LMDB environment opened with heed, plus a cache of embeddings.
//!
//! One LMDB environment per directory holds three databases:
//! - `vectors`: the arroy trees; one arroy index (a `u16`) per
//!   (embedder id, library version, document recipe);
//! - `indexes`: for each such key, a small text record naming its arroy
//!   index, dimension and which example each item is;
//! - `embeddings`: vectors by hash of (embedder id, text), so that adding
//!   one approved program re-embeds one text, not the whole library.
//!
//! Concurrency: LMDB gives readers consistent snapshots, and allows one
//! write transaction at a time across processes (its lock file). A rebuild
//! happens inside one write transaction and re-checks, once it holds it,
//! whether another kernel already built the same key, so concurrent kernels
//! neither corrupt nor duplicate the index.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arroy::distances::Cosine;
use arroy::{Reader, Writer};
use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Env, RoTxn, WithoutTls};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use crate::embed::{embed_checked, Embedder};
use crate::error::{Result, RetrievalError};
use crate::lmdb::{open_env, open_shared, Registry};

/// LMDB reserves this much address space (not disk): the file grows as
/// needed. The default of 10 MiB would fill up after a few embedders.
const MAP_SIZE: usize = 1 << 30;

/// Index versions kept per (embedder, recipe): the current library's and a
/// few older ones, so a kernel still running an older library (say, before
/// a program was approved in another kernel) keeps working.
const KEEP_VERSIONS: usize = 4;

/// Texts embedded per call, to bound the memory of one request.
const EMBED_BATCH: usize = 64;

/// Envs opened by this process, by canonical path: heed refuses to open the
/// same environment twice in one process, so every `VectorStore` for a
/// directory shares one.
static OPEN_STORES: LazyLock<Registry<StoreInner>> = LazyLock::new(Default::default);

struct StoreInner {
    dir: PathBuf,
    env: Env<WithoutTls>,
    vectors: arroy::Database<'static, Cosine>,
    indexes: heed::Database<'static, Str, Str>,
    embeddings: heed::Database<'static, Bytes, Bytes>,
}

/// A directory holding vector indexes. Cheap to clone.
#[derive(Clone)]
pub struct VectorStore {
    inner: Arc<StoreInner>,
}

/// One document to index: the example's position in the library, its id,
/// and the text to embed. An example may have several documents (request and
/// description); search returns each example once, at its best rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The example id.
    pub example_id: String,
    /// The text embedded for it.
    pub text: String,
}

/// What [`VectorStore::index`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// False when a matching index was already on disk.
    pub built: bool,
    /// Texts sent to the embedder (not found in the embedding cache).
    pub embedded: usize,
    /// Texts whose vectors came from the cache.
    pub cached: usize,
    /// Wall time of the whole call.
    pub elapsed: Duration,
}

/// A built vector index for one (embedder, library version, recipe).
#[derive(Clone)]
pub struct VectorIndex {
    store: VectorStore,
    key: String,
    record: String,
    index: u16,
    items: Vec<String>,
    /// Documents per example (rounded down): how many more items to ask
    /// arroy for, since an example with several documents takes several.
    per_example: usize,
}

/// The `indexes` record of one arroy index, as text so that a person can
/// read it with `mdb_dump`.
struct Record {
    index: u16,
    dim: usize,
    /// Build order across the store (1, 2, ...): wall-clock time can go
    /// backwards or repeat within a second, and only the order matters.
    seq: u64,
    items: Vec<String>,
}

impl Record {
    fn encode(&self) -> String {
        let mut s = format!("index={}\ndim={}\nseq={}\n", self.index, self.dim, self.seq);
        for item in &self.items {
            s.push_str("item=");
            s.push_str(item);
            s.push('\n');
        }
        s
    }

    fn decode(text: &str) -> Option<Record> {
        let mut record = Record {
            index: 0,
            dim: 0,
            seq: 0,
            items: Vec::new(),
        };
        let mut seen_index = false;
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "index" => {
                    record.index = v.parse().ok()?;
                    seen_index = true;
                }
                "dim" => record.dim = v.parse().ok()?,
                "seq" => record.seq = v.parse().ok()?,
                "item" => record.items.push(v.to_string()),
                _ => {}
            }
        }
        (seen_index && record.dim > 0).then_some(record)
    }
}

impl VectorStore {
    /// `$XDG_DATA_HOME/kgent/index`, else `~/.local/share/kgent/index`.
    pub fn default_dir() -> Result<PathBuf> {
        Ok(kgent_data_dir()?.join("index"))
    }

    /// Opens the store in [`VectorStore::default_dir`].
    pub fn open_default() -> Result<VectorStore> {
        VectorStore::open(VectorStore::default_dir()?)
    }

    /// Opens (creating if needed) the store in `dir`. Within one process,
    /// opening the same directory twice returns the same store.
    pub fn open(dir: impl AsRef<Path>) -> Result<VectorStore> {
        let inner = open_shared(&OPEN_STORES, dir.as_ref(), |canonical| {
            let store_err = |source| RetrievalError::Store {
                path: canonical.clone(),
                source,
            };
            let env = open_env(&canonical, MAP_SIZE, 3).map_err(store_err)?;
            let wtxn = env.write_txn().map_err(store_err)?;
            let (vectors, indexes, embeddings) = env
                .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                    let vectors = dbo.create_database(wtxn, Some("vectors"))?;
                    let indexes = dbo.create_database(wtxn, Some("indexes"))?;
                    let embeddings = dbo.create_database(wtxn, Some("embeddings"))?;
                    Ok(CommitOrAbort::<_, ()>::Commit((
                        vectors, indexes, embeddings,
                    )))
                })
                .map_err(store_err)?
                .unwrap_commit();
            Ok(StoreInner {
                dir: canonical,
                env,
                vectors,
                indexes,
                embeddings,
            })
        })?;
        Ok(VectorStore { inner })
    }

    /// The directory of the LMDB environment.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn heed_err(&self) -> impl Fn(heed::Error) -> RetrievalError + '_ {
        move |source| RetrievalError::Store {
            path: self.inner.dir.clone(),
            source,
        }
    }

    fn arroy_err(&self) -> impl Fn(arroy::Error) -> RetrievalError + '_ {
        move |source| RetrievalError::Index {
            path: self.inner.dir.clone(),
            source,
        }
    }

    /// The key of an index: the embedder id comes first so that all versions
    /// of one embedder's index are adjacent (and found by prefix).
    fn key(embedder_id: &str, recipe: &str, library_version: &str) -> String {
        format!("{embedder_id}\t{recipe}\t{library_version}")
    }

    /// The index of `documents` under (`embedder`, `recipe`,
    /// `library_version`): opened if it is on disk, built (and older
    /// versions beyond the last few removed) otherwise. `recipe` names how
    /// the documents were made from the library, so a change of recipe is a
    /// new index too.
    pub fn index(
        &self,
        embedder: &dyn Embedder,
        recipe: &str,
        library_version: &str,
        documents: &[Document],
    ) -> Result<(VectorIndex, BuildReport)> {
        let started = Instant::now();
        let embedder_id = embedder.id();
        let key = VectorStore::key(&embedder_id, recipe, library_version);
        if let Some(index) = self.open_index(&key)? {
            let report = BuildReport {
                built: false,
                embedded: 0,
                cached: 0,
                elapsed: started.elapsed(),
            };
            return Ok((index, report));
        }

        // Embedding is the slow part: do it before taking the write lock,
        // so other kernels can keep writing (and reading) meanwhile.
        let dim = embedder.dim();
        let hashes: Vec<[u8; 32]> = documents
            .iter()
            .map(|d| text_hash(&embedder_id, &d.text))
            .collect();
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; documents.len()];
        {
            let rtxn = self.inner.env.read_txn().map_err(self.heed_err())?;
            for (slot, hash) in vectors.iter_mut().zip(&hashes) {
                let cached = self
                    .inner
                    .embeddings
                    .get(&rtxn, hash)
                    .map_err(self.heed_err())?;
                *slot = cached.and_then(|bytes| decode_vector(bytes, dim));
            }
        }
        let missing: Vec<usize> = (0..documents.len())
            .filter(|&i| vectors[i].is_none())
            .collect();
        let mut fresh = Vec::with_capacity(missing.len());
        for chunk in missing.chunks(EMBED_BATCH) {
            let texts: Vec<&str> = chunk.iter().map(|&i| documents[i].text.as_str()).collect();
            for (&i, v) in chunk.iter().zip(embed_checked(embedder, &texts)?) {
                fresh.push(i);
                vectors[i] = Some(v);
            }
        }

        let mut wtxn = self.inner.env.write_txn().map_err(self.heed_err())?;
        // Another kernel may have built this very index while we embedded.
        if let Some(text) = self
            .inner
            .indexes
            .get(&wtxn, &key)
            .map_err(self.heed_err())?
        {
            if Record::decode(text).is_some() {
                drop(wtxn);
                if let Some(index) = self.open_index(&key)? {
                    let report = BuildReport {
                        built: false,
                        embedded: fresh.len(),
                        cached: documents.len() - fresh.len(),
                        elapsed: started.elapsed(),
                    };
                    return Ok((index, report));
                }
                wtxn = self.inner.env.write_txn().map_err(self.heed_err())?;
            }
        }
        for &i in &fresh {
            let bytes = encode_vector(vectors[i].as_deref().unwrap_or_default());
            self.inner
                .embeddings
                .put(&mut wtxn, &hashes[i], &bytes)
                .map_err(self.heed_err())?;
        }

        let (index_id, seq) = self.slot_for(&wtxn, &key)?;
        let writer = Writer::<Cosine>::new(self.inner.vectors, index_id, dim);
        writer.clear(&mut wtxn).map_err(self.arroy_err())?;
        for (item, v) in vectors.iter().enumerate() {
            let v = v.as_deref().unwrap_or_default();
            writer
                .add_item(&mut wtxn, item as u32, v)
                .map_err(self.arroy_err())?;
        }
        // A fixed seed keeps the trees, and so the results, reproducible.
        let mut rng = StdRng::seed_from_u64(0x006b_6765_6e74);
        writer
            .builder(&mut rng)
            .build(&mut wtxn)
            .map_err(self.arroy_err())?;
        let record = Record {
            index: index_id,
            dim,
            seq,
            items: documents.iter().map(|d| d.example_id.clone()).collect(),
        };
        self.inner
            .indexes
            .put(&mut wtxn, &key, &record.encode())
            .map_err(self.heed_err())?;
        self.forget_old_versions(&mut wtxn, &embedder_id, recipe, &key)?;
        wtxn.commit().map_err(self.heed_err())?;

        let index = self
            .open_index(&key)?
            .ok_or_else(|| RetrievalError::Store {
                path: self.inner.dir.clone(),
                source: heed::Error::Io(std::io::Error::other(
                    "index vanished right after it was built",
                )),
            })?;
        let report = BuildReport {
            built: true,
            embedded: fresh.len(),
            cached: documents.len() - fresh.len(),
            elapsed: started.elapsed(),
        };
        Ok((index, report))
    }

    /// The index under `key`, if its record is on disk and arroy can read it.
    fn open_index(&self, key: &str) -> Result<Option<VectorIndex>> {
        let rtxn = self.inner.env.read_txn().map_err(self.heed_err())?;
        let Some(text) = self
            .inner
            .indexes
            .get(&rtxn, key)
            .map_err(self.heed_err())?
        else {
            return Ok(None);
        };
        let Some(record) = Record::decode(text) else {
            return Ok(None);
        };
        match Reader::<Cosine>::open(&rtxn, record.index, self.inner.vectors) {
            Ok(reader) if reader.dimensions() == record.dim => {}
            // Half-written or foreign data under our key: rebuild it.
            Ok(_) | Err(arroy::Error::MissingMetadata(_) | arroy::Error::NeedBuild(_)) => {
                return Ok(None)
            }
            Err(e) => return Err(self.arroy_err()(e)),
        }
        let examples = record.items.iter().collect::<HashSet<_>>().len();
        Ok(Some(VectorIndex {
            store: self.clone(),
            key: key.to_string(),
            record: text.to_string(),
            index: record.index,
            per_example: (record.items.len() / examples.max(1)).max(1),
            items: record.items,
        }))
    }

    /// The arroy index number for `key` (its current one, else the smallest
    /// unused) and the next build sequence number.
    fn slot_for(&self, rtxn: &RoTxn, key: &str) -> Result<(u16, u64)> {
        let mut used = HashSet::new();
        let mut own = None;
        let mut max_seq = 0;
        for entry in self.inner.indexes.iter(rtxn).map_err(self.heed_err())? {
            let (k, text) = entry.map_err(self.heed_err())?;
            if let Some(r) = Record::decode(text) {
                max_seq = max_seq.max(r.seq);
                if k == key {
                    own = Some(r.index);
                }
                used.insert(r.index);
            }
        }
        let index =
            match own {
                Some(i) => i,
                None => (0..=u16::MAX).find(|i| !used.contains(i)).ok_or_else(|| {
                    RetrievalError::Index {
                        path: self.inner.dir.clone(),
                        source: arroy::Error::DatabaseFull,
                    }
                })?,
            };
        Ok((index, max_seq + 1))
    }

    /// Keeps the newest [`KEEP_VERSIONS`] indexes of this embedder and
    /// recipe (always including `current`) and deletes the rest.
    fn forget_old_versions(
        &self,
        wtxn: &mut heed::RwTxn,
        embedder_id: &str,
        recipe: &str,
        current: &str,
    ) -> Result<()> {
        let prefix = format!("{embedder_id}\t{recipe}\t");
        let mut versions = Vec::new();
        for entry in self
            .inner
            .indexes
            .prefix_iter(wtxn, &prefix)
            .map_err(self.heed_err())?
        {
            let (k, text) = entry.map_err(self.heed_err())?;
            if k == current {
                continue;
            }
            let built = Record::decode(text).map(|r| (r.seq, r.index));
            versions.push((k.to_string(), built));
        }
        // Newest first; undecodable records sort last and go first.
        versions.sort_by(|a, b| b.1.map(|x| x.0).cmp(&a.1.map(|x| x.0)));
        for (k, built) in versions.into_iter().skip(KEEP_VERSIONS - 1) {
            if let Some((_, index)) = built {
                Writer::<Cosine>::new(self.inner.vectors, index, 1)
                    .clear(wtxn)
                    .map_err(self.arroy_err())?;
            }
            self.inner
                .indexes
                .delete(wtxn, &k)
                .map_err(self.heed_err())?;
        }
        Ok(())
    }

    /// Keys of the indexes on disk (`embedder \t recipe \t library version`),
    /// for diagnostics and tests.
    pub fn index_keys(&self) -> Result<Vec<String>> {
        let rtxn = self.inner.env.read_txn().map_err(self.heed_err())?;
        let mut keys = Vec::new();
        for entry in self.inner.indexes.iter(&rtxn).map_err(self.heed_err())? {
            keys.push(entry.map_err(self.heed_err())?.0.to_string());
        }
        Ok(keys)
    }
}

impl VectorIndex {
    /// The nearest examples to `vector`, best first, each example once:
    /// `(example id, cosine distance)`. `Ok(None)` means the index was
    /// replaced or removed on disk since it was opened (by another kernel);
    /// open it again.
    pub fn search(&self, vector: &[f32], k: usize) -> Result<Option<Vec<(String, f32)>>> {
        let store = &self.store;
        let rtxn = store.inner.env.read_txn().map_err(store.heed_err())?;
        // Same snapshot as the search: item numbers mean what we think.
        let current = store
            .inner
            .indexes
            .get(&rtxn, &self.key)
            .map_err(store.heed_err())?;
        if current != Some(self.record.as_str()) {
            return Ok(None);
        }
        let reader = match Reader::<Cosine>::open(&rtxn, self.index, store.inner.vectors) {
            Ok(r) => r,
            Err(arroy::Error::MissingMetadata(_) | arroy::Error::NeedBuild(_)) => return Ok(None),
            Err(e) => return Err(store.arroy_err()(e)),
        };
        if k == 0 || self.items.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let count = (k * self.per_example).min(self.items.len());
        let mut query = reader.nns(count);
        // arroy's default search_k trades recall for speed; the brief
        // measured recall@5 0.80 by default and 1.00 with count*trees*15.
        if let Some(search_k) = NonZeroUsize::new(count * reader.n_trees().max(1) * 15) {
            query.search_k(search_k);
        }
        let found = query.by_vector(&rtxn, vector).map_err(store.arroy_err())?;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(k);
        for (item, distance) in found {
            let Some(id) = self.items.get(item as usize) else {
                continue;
            };
            if seen.insert(id.as_str()) {
                out.push((id.clone(), distance));
                if out.len() == k {
                    break;
                }
            }
        }
        Ok(Some(out))
    }

    /// The key this index is stored under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Number of documents (vectors) in the index.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the index has no documents.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// `$XDG_DATA_HOME/kgent`, else `~/.local/share/kgent`: the base of the
/// vector index and of the user library.
pub(crate) fn kgent_data_dir() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(p) => p,
        None => match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join(".local/share"),
            _ => return Err(RetrievalError::NoDataDir),
        },
    };
    Ok(base.join("kgent"))
}

fn text_hash(embedder_id: &str, text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((embedder_id.len() as u64).to_le_bytes());
    h.update(embedder_id.as_bytes());
    h.update(text.as_bytes());
    h.finalize().into()
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8], dim: usize) -> Option<Vec<f32>> {
    if bytes.len() != dim * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::HashedNgramEmbedder;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the texts it embeds, to see the cache at work.
    struct Counting {
        inner: HashedNgramEmbedder,
        calls: AtomicUsize,
    }

    impl Embedder for Counting {
        fn id(&self) -> String {
            self.inner.id()
        }
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            self.calls.fetch_add(texts.len(), Ordering::SeqCst);
            self.inner.embed(texts)
        }
    }

    fn docs(texts: &[(&str, &str)]) -> Vec<Document> {
        texts
            .iter()
            .map(|(id, text)| Document {
                example_id: id.to_string(),
                text: text.to_string(),
            })
            .collect()
    }

    #[test]
    fn builds_once_reuses_and_rebuilds_on_version_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = VectorStore::open(dir.path()).unwrap();
        let e = Counting {
            inner: HashedNgramEmbedder::new(64),
            calls: AtomicUsize::new(0),
        };
        let d1 = docs(&[
            ("a", "trace file opens"),
            ("b", "tcp retransmits"),
            ("c", "disk latency"),
        ]);
        let (idx, r) = store.index(&e, "request", "v1", &d1).unwrap();
        assert!(r.built);
        assert_eq!((r.embedded, r.cached), (3, 0));
        let hits = idx
            .search(&e.inner.embed(&["tcp retransmit"]).unwrap()[0], 2)
            .unwrap()
            .unwrap();
        assert_eq!(hits[0].0, "b");

        // Same key: opened, not built, nothing embedded.
        let (_, r) = store.index(&e, "request", "v1", &d1).unwrap();
        assert!(!r.built);
        assert_eq!(e.calls.load(Ordering::SeqCst), 3);

        // A new library version: rebuilt, but only the new text is embedded.
        let mut d2 = d1.clone();
        d2.push(Document {
            example_id: "d".into(),
            text: "page faults".into(),
        });
        let (idx2, r) = store.index(&e, "request", "v2", &d2).unwrap();
        assert!(r.built);
        assert_eq!((r.embedded, r.cached), (1, 3));
        assert_eq!(idx2.len(), 4);
        let hits = idx2
            .search(&e.inner.embed(&["page faults"]).unwrap()[0], 1)
            .unwrap()
            .unwrap();
        assert_eq!(hits[0].0, "d");
        // Both versions stay on disk; the old handle still works.
        assert_eq!(store.index_keys().unwrap().len(), 2);
        assert!(idx.search(&[0.0; 64], 1).unwrap().is_some());
    }

    #[test]
    fn reopening_the_directory_finds_the_index_and_old_versions_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let e = HashedNgramEmbedder::new(32);
        let d = docs(&[("a", "one"), ("b", "two")]);
        {
            let store = VectorStore::open(dir.path()).unwrap();
            for v in 0..(KEEP_VERSIONS + 2) {
                store.index(&e, "r", &format!("v{v}"), &d).unwrap();
            }
            assert_eq!(store.index_keys().unwrap().len(), KEEP_VERSIONS);
        }
        // All handles dropped: the environment is closed and opened afresh.
        let store = VectorStore::open(dir.path()).unwrap();
        let (_, r) = store
            .index(&e, "r", &format!("v{}", KEEP_VERSIONS + 1), &d)
            .unwrap();
        assert!(!r.built);
        // Same process, same directory: shared, not an EnvAlreadyOpened error.
        let again = VectorStore::open(dir.path()).unwrap();
        assert_eq!(again.dir(), store.dir());
    }

    #[test]
    fn an_index_replaced_on_disk_reports_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = VectorStore::open(dir.path()).unwrap();
        let e = HashedNgramEmbedder::new(32);
        let (idx, _) = store.index(&e, "r", "v", &docs(&[("a", "one")])).unwrap();
        // Simulate another kernel rewriting the same key with other items.
        let mut wtxn = store.inner.env.write_txn().unwrap();
        store.inner.indexes.delete(&mut wtxn, idx.key()).unwrap();
        wtxn.commit().unwrap();
        assert!(idx.search(&[1.0; 32], 1).unwrap().is_none());
    }

    #[test]
    fn record_round_trips() {
        let r = Record {
            index: 7,
            dim: 384,
            seq: 1,
            items: vec!["a".into(), "b".into()],
        };
        let back = Record::decode(&r.encode()).unwrap();
        assert_eq!((back.index, back.dim, back.items), (7, 384, r.items));
        assert!(Record::decode("garbage").is_none());
    }
}
