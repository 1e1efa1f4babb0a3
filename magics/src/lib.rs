//! Parsing of notebook cells into `%line` and `%%cell` magics, with no I/O.
//!
//! The kernel asks this crate what a cell *is* (a bpftrace program, line magics, a
//! natural-language request, an introspection query) and whether it is complete;
//! executing it is the kernel's business.

mod cell;
mod completeness;
mod registry;

pub use cell::{
    parse_cell, BpftraceOptions, Cell, LineMagic, LlmArgs, MagicError, NlOptions, VerifyOptions,
    DEFAULT_PROBE_LIMIT,
};
pub use completeness::{is_complete, Completeness};
pub use registry::{find_magic, MagicInfo, MagicKind, MAGICS};
