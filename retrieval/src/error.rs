//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading the example library, embedding
/// text, or reading and writing the vector index.
///
/// Messages name the file or directory involved, so a person can fix it
/// without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    /// A file or directory could not be read, created or listed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// An example file is not valid TOML or does not have the expected keys
    /// and types; `reason` carries the parser's line and column.
    #[error("{}: {reason}", path.display())]
    Parse {
        /// The example file.
        path: PathBuf,
        /// The TOML parser's message.
        reason: String,
    },

    /// An example parsed but breaks a rule of the library (empty request,
    /// duplicate id, a parameter whose default has the wrong type, ...).
    /// `origin` is the file, or `<memory>` for examples built in code.
    #[error("{origin}: example `{id}`: {reason}")]
    Invalid {
        /// Where the example came from.
        origin: String,
        /// The example id.
        id: String,
        /// The broken rule.
        reason: String,
    },

    /// The evaluation set could not be used.
    #[error("{}: {reason}", path.display())]
    EvalSet {
        /// The evaluation file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An embedder failed, or returned vectors of the wrong number or size.
    #[error("embedder `{embedder}`: {reason}")]
    Embedding {
        /// The embedder id.
        embedder: String,
        /// What went wrong.
        reason: String,
    },

    /// The LMDB environment behind the vector index failed.
    #[error("vector index at {}: {source}", path.display())]
    Store {
        /// The index directory.
        path: PathBuf,
        /// The LMDB error.
        #[source]
        source: heed::Error,
    },

    /// The LMDB environment of the user library (approved programs) failed.
    #[error("user library at {}: {source}", path.display())]
    UserLibrary {
        /// The user library directory.
        path: PathBuf,
        /// The LMDB error.
        #[source]
        source: heed::Error,
    },

    /// The approximate-nearest-neighbour index failed.
    #[error("vector index at {}: {source}", path.display())]
    Index {
        /// The index directory.
        path: PathBuf,
        /// The arroy error.
        #[source]
        source: arroy::Error,
    },

    /// No place to keep the index or the user library: neither
    /// `$XDG_DATA_HOME` nor `$HOME` is set.
    #[error("no data directory: set XDG_DATA_HOME or HOME, or pass a directory")]
    NoDataDir,
}

/// Shorthand for this crate's results.
pub type Result<T, E = RetrievalError> = std::result::Result<T, E>;
