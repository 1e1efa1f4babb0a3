//! Passes over a parsed program, one file each with one entry point: the
//! printer, annotation stripping, and the checks before load ([`check`]).
//!
//! The checks share two analyses built once per program: [`context`] (what
//! each attach point matches, what `args` holds, what the program defines in
//! C text) and [`types`] (a conservative type for every expression). Each
//! check only reports; none asks the kernel anything the analyses did not.

pub mod format;
pub mod print;
pub mod strip_annotations;

mod alternatives;
mod attach_points;
mod byte_order;
mod calls;
mod context;
mod fields;
mod identifiers;
mod maps;
mod printf;
mod probe_support;
mod str_arg;
mod types;
mod variables;

use crate::ast::Program;
use crate::builtins::Version;
use crate::diagnostic::Diagnostic;
use crate::facts::KernelFacts;

pub use alternatives::{FunctionAlternatives, FUNCTION_ALTERNATIVES};

/// How strict the checks are and which bpftrace they check for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// `system()`, `signal()`, `override()` allowed (bpftrace `--unsafe`).
    pub allow_unsafe: bool,
    /// Wildcard attach points expanding to more probes than this get a warning.
    pub max_probes: usize,
    /// Estimated cost of attaching one probe, for that warning (~70 ms on the
    /// project's 6.18 kernel).
    pub attach_ms_per_probe: u32,
    /// The bpftrace the program is for: builtins, argument counts and some
    /// rules differ between versions.
    pub version: Version,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            allow_unsafe: false,
            max_probes: 100,
            attach_ms_per_probe: 70,
            version: (0, 17),
        }
    }
}

/// Checks `program` (parsed from `source`) against the kernel described by
/// `facts`: attach points, probe types, fields, builtins, format strings,
/// variables, maps, byte order. Never panics and never fails: what is wrong
/// comes back as diagnostics, sorted by position. Parse errors are not
/// repeated here; `Error` nodes are skipped.
pub fn check(
    program: &Program,
    source: &str,
    facts: &dyn KernelFacts,
    options: &CheckOptions,
) -> Vec<Diagnostic> {
    // Kernel questions first, once: every later pass reads the answers.
    let ctx = context::Ctx::build(program, source, facts, options);
    let mut out = Vec::new();
    // Probes before everything else: a probe that cannot attach makes the
    // rest of its diagnostics secondary, and the later passes stay silent
    // about fields of probes that matched nothing.
    probe_support::run(&ctx, &mut out);
    attach_points::run(&ctx, &mut out);
    // Names next: bpftrace reports unknown functions, identifiers and wrong
    // argument counts before it looks at types.
    calls::run(&ctx, &mut out);
    identifiers::run(&ctx, &mut out);
    variables::run(&ctx, &mut out);
    // Types need the probes' fields and the variables' first assignments.
    let types = types::infer(&ctx);
    fields::run(&ctx, &types, &mut out);
    maps::run(&ctx, &types, &mut out);
    printf::run(&ctx, &types, &mut out);
    str_arg::run(&ctx, &types, &mut out);
    // Byte order last: it is a warning, and only worth reading once the
    // program is otherwise right.
    byte_order::run(&ctx, &types, &mut out);
    // One diagnostic per code and place, in source order.
    out.sort_by_key(|d| (d.span.start, d.span.end));
    out.dedup_by(|a, b| a.code == b.code && a.span == b.span);
    out
}
