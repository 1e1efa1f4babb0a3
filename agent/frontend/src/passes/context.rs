//! What the checks share, built once per program: for each probe, what each
//! attach point is (canonical name, support on this kernel, what it matches)
//! and what `args` holds there; what the program itself defines in C text
//! and `#define`s; which functions and macros it declares.
//!
//! All kernel questions about attach points are asked here, once.

use std::collections::HashSet;

use crate::ast::*;
use crate::facts::{FieldInfo, KernelFacts, ProbeMatches, ProbeSupport, RecordRef};

use super::CheckOptions;

/// Wildcard tracepoints matching at most this many probes have their `args`
/// fields checked against every match; more and `args` is left unchecked.
const MAX_ARGS_EXPANSION: usize = 16;

/// Names fetched per attach point; totals are counted beyond it.
const MATCH_LIMIT: usize = 64;

pub(crate) struct Ctx<'a> {
    pub source: &'a str,
    pub facts: &'a dyn KernelFacts,
    pub options: &'a CheckOptions,
    pub program: &'a Program,
    pub probes: Vec<ProbeCtx<'a>>,
    /// Records defined in the program's C text (`struct foo`, `union bar`).
    pub c_records: HashSet<String>,
    /// Every identifier appearing in the program's C text and `#define`s.
    pub c_words: HashSet<String>,
    /// The program `#include`s headers: names may come from them.
    pub has_includes: bool,
    /// Names of `fn` functions and `macro`s the program declares.
    pub user_callables: HashSet<&'a str>,
}

pub(crate) struct ProbeCtx<'a> {
    pub probe: &'a Probe,
    pub points: Vec<PointCtx<'a>>,
    pub args: ArgsSource,
}

pub(crate) struct PointCtx<'a> {
    pub ap: &'a AttachPoint,
    /// `None` for providers the parser already reported as unknown.
    pub kind: Option<ProbeKind>,
    /// The canonical pattern asked of the facts (`tracepoint:syscalls:sys_enter_openat`);
    /// `None` when the attach point is not checked (BEGIN, interval, positional parameters...).
    pub query: Option<String>,
    pub support: ProbeSupport,
    /// What `query` matched, when asked (not for unsupported probe types).
    pub matches: Option<ProbeMatches>,
}

/// What `args` means in a probe.
#[derive(Clone, Debug)]
pub(crate) enum ArgsSource {
    /// Fields per concrete probe (display name, fields); a wildcard tracepoint
    /// contributes one entry per match.
    Fields(Vec<(String, Vec<FieldInfo>)>),
    /// `args` exists but its fields are not known here.
    Unknown,
    /// The probe type has no `args` (in this bpftrace version).
    Unavailable(ProbeKind),
}

impl<'a> Ctx<'a> {
    pub fn build(
        program: &'a Program,
        source: &'a str,
        facts: &'a dyn KernelFacts,
        options: &'a CheckOptions,
    ) -> Ctx<'a> {
        let mut c_records = HashSet::new();
        let mut c_words = HashSet::new();
        let mut has_includes = false;
        let mut user_callables = HashSet::new();
        let mut probes = Vec::new();
        for item in &program.items {
            match &item.kind {
                ItemKind::Preprocessor(p) => {
                    if p.kind == PreprocessorKind::Include {
                        has_includes = true;
                    }
                    collect_words(&p.text, &mut c_words);
                }
                ItemKind::CDefinition(def) => {
                    collect_words(&def.text, &mut c_words);
                    collect_records(&def.text, &mut c_records);
                }
                ItemKind::Function(f) => {
                    user_callables.insert(f.name.name.as_str());
                }
                ItemKind::Macro(m) => {
                    user_callables.insert(m.name.name.as_str());
                }
                ItemKind::Probe(probe) => probes.push(probe),
                ItemKind::Config(_) | ItemKind::Error => {}
            }
        }
        let probes = probes
            .into_iter()
            .map(|probe| {
                let points: Vec<PointCtx<'a>> = probe
                    .attach_points
                    .iter()
                    .map(|ap| point(ap, facts))
                    .collect();
                let args = args_source(&points, facts, options);
                ProbeCtx {
                    probe,
                    points,
                    args,
                }
            })
            .collect();
        Ctx {
            source,
            facts,
            options,
            program,
            probes,
            c_records,
            c_words,
            has_includes,
            user_callables,
        }
    }

    /// Whether the program defines `record` in its own C text (then BTF is not consulted).
    pub fn defines_record(&self, record: &RecordRef) -> bool {
        self.c_records.contains(&record.spelled())
    }

    pub fn version_at_least(&self, v: (u32, u32)) -> bool {
        self.options.version >= v
    }
}

fn point<'a>(ap: &'a AttachPoint, facts: &dyn KernelFacts) -> PointCtx<'a> {
    let kind = ap.kind;
    let support = kind.map_or(ProbeSupport::Unknown, |k| facts.probe_support(k));
    let query = kind.and_then(|k| canonical_query(ap, k));
    let matches = match (&query, &support) {
        (Some(q), ProbeSupport::Works | ProbeSupport::Unknown) => {
            Some(facts.matching_probes(q, MATCH_LIMIT))
        }
        _ => None,
    };
    PointCtx {
        ap,
        kind,
        query,
        support,
        matches,
    }
}

/// The canonical pattern to look an attach point up with, for the probe
/// types whose names the facts know. `None` for everything else, and for
/// attach points using positional parameters or forms the checker does not
/// model (modules, addresses, C++ names).
fn canonical_query(ap: &AttachPoint, kind: ProbeKind) -> Option<String> {
    let parts: Vec<&str> = ap.parts.iter().map(|p| p.value.as_str()).collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.contains('$') || p.contains(char::is_whitespace))
    {
        return None;
    }
    // `func+0x10`: the function is what must exist.
    let strip_offset = |s: &str| -> Option<String> {
        let base = s.split('+').next().unwrap_or(s);
        (!base.is_empty() && !base.starts_with(|c: char| c.is_ascii_digit()))
            .then(|| base.to_string())
    };
    match (kind, parts.as_slice()) {
        (ProbeKind::Tracepoint, [cat, event]) => Some(format!("tracepoint:{cat}:{event}")),
        (ProbeKind::Kprobe | ProbeKind::Kretprobe, [func]) => {
            Some(format!("kprobe:{}", strip_offset(func)?))
        }
        (ProbeKind::Fentry | ProbeKind::Fexit, [func]) => Some(format!("kfunc:{func}")),
        (ProbeKind::Uprobe | ProbeKind::Uretprobe, [target, func]) => {
            Some(format!("uprobe:{target}:{}", strip_offset(func)?))
        }
        (ProbeKind::Usdt, [target, name]) => Some(format!("usdt:{target}:{name}")),
        (ProbeKind::Usdt, [target, provider, name]) => {
            Some(format!("usdt:{target}:{provider}:{name}"))
        }
        _ => None,
    }
}

fn args_source(
    points: &[PointCtx<'_>],
    facts: &dyn KernelFacts,
    options: &CheckOptions,
) -> ArgsSource {
    let mut fields = Vec::new();
    let mut unknown = false;
    for p in points {
        let Some(kind) = p.kind else {
            unknown = true;
            continue;
        };
        match kind {
            ProbeKind::Tracepoint => {
                let Some(m) = &p.matches else {
                    unknown = true;
                    continue;
                };
                if m.total == 0 || m.total > MAX_ARGS_EXPANSION || m.names.len() < m.total {
                    unknown = true;
                    continue;
                }
                for name in &m.names {
                    match facts.probe_fields(name) {
                        Some(f) => fields.push((name.clone(), f)),
                        None => unknown = true,
                    }
                }
            }
            ProbeKind::Fentry | ProbeKind::Fexit => {
                match p.query.as_deref().and_then(|q| facts.probe_fields(q)) {
                    Some(f) => fields.push((p.ap.raw.clone(), f)),
                    None => unknown = true,
                }
            }
            ProbeKind::Uprobe | ProbeKind::Uretprobe => unknown = true,
            ProbeKind::Rawtracepoint if options.version >= (0, 24) => unknown = true,
            ProbeKind::Usdt if options.version >= (0, 19) => unknown = true,
            other => return ArgsSource::Unavailable(other),
        }
    }
    if unknown {
        ArgsSource::Unknown
    } else {
        ArgsSource::Fields(fields)
    }
}

/// Identifiers in C text: `[A-Za-z_][A-Za-z0-9_]*` runs.
fn collect_words(text: &str, out: &mut HashSet<String>) {
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            out.insert(word.to_string());
        }
    }
}

/// `struct NAME {` and `union NAME {` definitions anywhere in C text (also
/// nested ones and typedef'd ones).
fn collect_records(text: &str, out: &mut HashSet<String>) {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '{'))
        .flat_map(|w| split_keep_brace(w))
        .filter(|w| !w.is_empty())
        .collect();
    for win in words.windows(3) {
        if matches!(win[0], "struct" | "union") && win[2] == "{" {
            out.insert(format!("{} {}", win[0], win[1]));
        }
    }
}

fn split_keep_brace(w: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = w;
    while let Some(i) = rest.find('{') {
        out.push(&rest[..i]);
        out.push("{");
        rest = &rest[i + 1..];
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_defined_in_c_text() {
        let mut out = HashSet::new();
        collect_records(
            "struct nameidata {\n struct path path; struct qstr last; };\ntypedef union u{int a;} u_t;",
            &mut out,
        );
        assert!(out.contains("struct nameidata"));
        assert!(out.contains("union u"));
        assert!(!out.contains("struct path"));
    }
}
