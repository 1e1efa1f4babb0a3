//! The Kgent pipeline as a library. It runs bpftrace programs and classifies their
//! failures; it knows nothing of Jupyter.

pub mod builtins;
pub mod contracts;
pub mod embeddings;
pub mod facts;
pub mod failure;
pub mod loadcheck;
pub mod probe_scan;
pub mod runner;
pub mod setup;
pub mod synth;
pub mod verifier;
pub mod watchdog;

pub use builtins::{builtin, Builtin, BuiltinKind, BUILTINS};
pub use failure::{classify, Diagnostic, Failure, FailureKind, Location};
pub use probe_scan::{attach_points, AttachPoint};
pub use runner::{kill_all_runs, BpftraceRun, ExitInfo, RunError, RunEvent, RunSpec};
