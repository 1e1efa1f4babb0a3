//! What the running kernel offers for tracing: probe names, their typed fields, and which
//! probe types really attach here.
//!
//! Two parts, both of which only read files (and, for [`caps::detect`], run bpftrace):
//! - [`catalog`]: tracepoints (tracefs), kernel text symbols (kallsyms), kernel functions (BTF),
//!   user-space functions and USDT probes (ELF), searchable with bpftrace-style patterns, with
//!   completion and typed fields.
//! - [`caps`]: bpftrace, tracefs, privileges, which probe types attach, `kgent doctor` lines and
//!   alternatives for probe types that fail.

mod btf;
pub mod caps;
pub mod catalog;
mod elf;
mod error;
mod names;
mod tracefs;

pub use caps::{
    alternatives, capabilities, detect, doctor_lines, find_bpftrace, mount_tracefs, tracefs_state,
    BpftraceInfo, Capabilities, DoctorLine, Privileges, ProbeType, Support, TracefsState,
};
pub use catalog::{
    Catalog, CatalogCounts, CatalogPaths, Field, ProbeFields, SearchResult, SourceKind,
    SourceProblem,
};
pub use error::CatalogError;
#[doc(hidden)]
pub fn __btf_bench(n: usize) -> Vec<f64> {
    (0..n).map(|_| { let t = std::time::Instant::now(); let b = btf::BtfIndex::load(std::path::Path::new("/sys/kernel/btf/vmlinux")).unwrap(); std::hint::black_box(&b); drop(b); t.elapsed().as_secs_f64()*1e3 }).collect()
}
