//! bpftrace's builtin variables and functions: the table lives in the front
//! end (`kgent_frontend::builtins`), where the checker uses it; re-exported
//! here for completion and inspection.

pub use kgent_frontend::builtins::{builtin, Builtin, BuiltinKind, BUILTINS};
