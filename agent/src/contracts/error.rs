//! Why a contract file was refused: every error names its file and line, so
//! a person editing `specs/contracts/` can go straight to it.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// Not TOML, or not the schema (an unknown key, a missing key, a wrong type).
    #[error("{file}:{line}: {message}")]
    Toml {
        file: String,
        line: u32,
        message: String,
    },
    /// Well-formed, but wrong: an expression that does not parse, a field an
    /// expression reads without declaring it, a duplicate attach point.
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: u32,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// More than one of the above, in file order.
    #[error("{} problems in the contracts:\n{}", .0.len(), list(.0))]
    Several(Vec<ContractError>),
}

fn list(errors: &[ContractError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ContractError {
    /// The single errors, flattened.
    pub fn all(&self) -> Vec<&ContractError> {
        match self {
            ContractError::Several(v) => v.iter().flat_map(|e| e.all()).collect(),
            other => vec![other],
        }
    }
}
