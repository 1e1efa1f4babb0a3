//! What the running kernel offers for tracing: probe names, their typed fields, and which
//! probe types really attach here.
//!
//! Two parts, both of which only read files (and, for [`caps::detect`], run bpftrace):
//! - [`catalog`]: tracepoints (tracefs), kernel text symbols (kallsyms), kernel functions (BTF),
//!   user-space functions and USDT probes (ELF), searchable with bpftrace-style patterns, with
//!   completion and typed fields.
//! - [`btf`]: a reader for the kernel's BTF type information ([`btf::BtfTypes`]).
//! - [`caps`]: bpftrace, tracefs, privileges, which probe types attach, `kgent doctor` lines and
//!   alternatives for probe types that fail.

pub mod btf;
pub mod caps;
pub mod catalog;
mod elf;
mod error;
mod names;
mod tracefs;

pub use caps::{
    alternatives, capabilities, capabilities_given, detect, doctor_lines, find_bpftrace,
    locate_bpftrace, mount_tracefs, tracefs_state, BpftraceInfo, Capabilities, DoctorLine,
    Privileges, ProbeType, Support, TracefsState,
};
pub use catalog::{
    Catalog, CatalogCounts, CatalogPaths, Field, ProbeFields, SearchResult, SourceKind,
    SourceProblem,
};
pub use error::CatalogError;
