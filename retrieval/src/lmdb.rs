//! Opening LMDB environments once per directory per process: heed refuses to
//! open the same environment twice in one process, so each kind of store
//! keeps a registry of what it opened and hands out the same value again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use heed::{Env, EnvOpenOptions, WithoutTls};

use crate::error::{Result, RetrievalError};

/// Opened values by canonical directory.
pub(crate) type Registry<T> = Mutex<HashMap<PathBuf, Weak<T>>>;

/// The value for `dir` from `registry`, or a new one made by `make` from the
/// canonical directory (created if needed). The registry lock is held while
/// `make` runs, so two threads never open the same environment.
pub(crate) fn open_shared<T>(
    registry: &Registry<T>,
    dir: &Path,
    make: impl FnOnce(PathBuf) -> Result<T>,
) -> Result<Arc<T>> {
    let io = |source| RetrievalError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let canonical = dir.canonicalize().map_err(io)?;
    let mut open = registry.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(inner) = open.get(&canonical).and_then(Weak::upgrade) {
        return Ok(inner);
    }
    let inner = Arc::new(make(canonical.clone())?);
    open.retain(|_, weak| weak.strong_count() > 0);
    open.insert(canonical, Arc::downgrade(&inner));
    Ok(inner)
}

/// An environment in `dir` with room for `max_dbs` named databases.
pub(crate) fn open_env(dir: &Path, map_size: usize, max_dbs: u32) -> heed::Result<Env<WithoutTls>> {
    // SAFETY: heed's precondition is that nothing else maps these files in a
    // way that breaks LMDB's own locking: we never use NO_LOCK, and callers go
    // through `open_shared`, which prevents a second open in this process.
    unsafe {
        EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(map_size)
            .max_dbs(max_dbs)
            .open(dir)
    }
}
