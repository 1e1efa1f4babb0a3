//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Most reading problems are not errors: the catalog
/// records them as [`crate::SourceProblem`]s and carries on with what it could read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// None of tracefs, kallsyms and BTF could be read, so there is nothing to describe.
    #[error("no kernel description could be read: {0}")]
    NoSources(String),
    /// The BTF blob is missing, malformed or of an unsupported version.
    #[error("BTF {} is unusable: {reason}", path.display())]
    Btf {
        /// The BTF file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A uprobe/usdt target is not an ELF file that can be read.
    #[error("{} is not a readable ELF file: {reason}", path.display())]
    Elf {
        /// The binary or library.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Mounting tracefs failed (usually: not root).
    #[error("cannot mount tracefs on {}: {source}", target.display())]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}
