//! What the checker asks of a kernel: which probe types attach, which probes
//! exist, the typed fields of tracepoints and kernel functions, and BTF
//! structs, unions, typedefs and enum values.
//!
//! The checker does no I/O: the live implementation sits over the kernel
//! catalog (in `kgent-agent`), and [`StaticFacts`] answers from memory, loaded
//! from a JSON fixture, for tests.
//!
//! An implementation that does not know something says so (`None`,
//! [`ProbeSupport::Unknown`], [`MatchProblem::Unknowable`]); the checker then
//! stays silent rather than guess.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ast::ProbeKind;
use crate::suggest;

/// Whether probes of one type attach on this kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeSupport {
    Works,
    Unsupported {
        /// Why, e.g. "kernel has no kprobes (CONFIG_KPROBES off)".
        reason: String,
        /// Probe types or probes to use instead, most useful first.
        alternatives: Vec<String>,
    },
    /// Not known (not tested, or no way to tell).
    Unknown,
}

/// Why a probe search could not give a complete answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchProblem {
    /// The uprobe/usdt binary or library does not exist: the attach point is wrong.
    TargetMissing(String),
    /// The answer cannot be known here (a source is unreadable, a wildcard
    /// path): the checker says nothing about this attach point.
    Unknowable(String),
}

/// Probes matching an attach-point pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeMatches {
    /// Full names as `bpftrace -l` prints them, sorted, at most the limit asked for.
    pub names: Vec<String>,
    /// How many names matched before the limit.
    pub total: usize,
    pub problem: Option<MatchProblem>,
}

/// The byte order of an integer value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByteOrder {
    #[default]
    Host,
    /// Big endian, from types such as `__be16`, `__be32`, `__be64`, `__sum16`.
    Network,
}

/// `struct` or `union`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Struct,
    Union,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Struct => "struct",
            RecordKind::Union => "union",
        }
    }
}

/// A named struct or union, e.g. `struct sock`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordRef {
    pub kind: RecordKind,
    pub name: String,
}

impl RecordRef {
    pub fn new(kind: RecordKind, name: impl Into<String>) -> RecordRef {
        RecordRef {
            kind,
            name: name.into(),
        }
    }

    /// `struct sock`.
    pub fn spelled(&self) -> String {
        format!("{} {}", self.kind.as_str(), self.name)
    }

    /// Parses `struct sock` / `union foo`.
    pub fn parse(text: &str) -> Option<RecordRef> {
        let (kw, name) = text.trim().split_once(' ')?;
        let kind = match kw {
            "struct" => RecordKind::Struct,
            "union" => RecordKind::Union,
            _ => return None,
        };
        let name = name.trim();
        (!name.is_empty()).then(|| RecordRef::new(kind, name))
    }
}

/// One typed field of a tracepoint, parameter of a kernel function, or member
/// of a struct or union.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldInfo {
    pub name: String,
    /// The C type as spelled (`const char *`, `__be16`, `__u8[4]`).
    pub c_type: String,
    /// Size in bytes (0 when unknown).
    pub size: u64,
    #[serde(default)]
    pub signed: bool,
    /// A pointer, after typedefs.
    #[serde(default)]
    pub pointer: bool,
    /// Network order for `__be*`/`__sum16` values and arrays of them (through typedefs).
    #[serde(default)]
    pub byte_order: ByteOrder,
    /// The struct or union this field is, or points to (one level), after typedefs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
}

/// The answer to [`KernelFacts::member`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberLookup {
    Found(FieldInfo),
    /// The record exists and has no such member.
    Missing,
    /// The record is not known (no BTF, or no such record).
    UnknownRecord,
}

/// What the checker needs to know about the kernel (and binaries) a program
/// will run on. Every method must be cheap after its first call for the same
/// arguments: the checker asks again for every use.
pub trait KernelFacts {
    /// Whether probes of `kind` attach here.
    fn probe_support(&self, kind: ProbeKind) -> ProbeSupport;

    /// Probes matching `pattern`, an attach point in canonical spelling with
    /// bpftrace's pattern semantics (`tracepoint:syscalls:sys_enter_open*`,
    /// `kprobe:vfs_*`, `uprobe:/bin/bash:readline`, `uprobe:libc:malloc`).
    fn matching_probes(&self, pattern: &str, limit: usize) -> ProbeMatches;

    /// Existing probes whose names are close to `name` (a canonical attach point
    /// that matched nothing), nearest first, for "did you mean".
    fn similar_probes(&self, name: &str, limit: usize) -> Vec<String>;

    /// The typed fields of one probe (`tracepoint:CAT:EVENT`) or the
    /// parameters of a kernel function (`kfunc:NAME`); `None` when unknown.
    fn probe_fields(&self, probe: &str) -> Option<Vec<FieldInfo>>;

    /// Whether kernel type information (BTF) is available at all. Without it
    /// the checker never says a struct or enum value does not exist.
    fn types_available(&self) -> bool;

    /// The members of a struct or union, members of anonymous members
    /// included (as C lets you name them); `None` when the record is unknown.
    fn record_fields(&self, record: &RecordRef) -> Option<Vec<FieldInfo>>;

    /// One member of a struct or union, looking inside anonymous members.
    fn member(&self, record: &RecordRef, member: &str) -> MemberLookup {
        match self.record_fields(record) {
            None => MemberLookup::UnknownRecord,
            Some(fields) => fields
                .into_iter()
                .find(|f| f.name == member)
                .map_or(MemberLookup::Missing, MemberLookup::Found),
        }
    }

    /// What a typedef names (`__be16` -> `__u16`), one level.
    fn typedef_target(&self, name: &str) -> Option<String>;

    /// The value of an enum constant known to the kernel (`TCP_ESTABLISHED`).
    fn enum_constant(&self, name: &str) -> Option<i128>;
}

/// Kernel facts held in memory: a fixture for tests, serialisable as JSON.
///
/// Probe names are canonical full names (`tracepoint:sched:sched_switch`,
/// `kprobe:vfs_read`, `kfunc:vfs_read`, `uprobe:/bin/bash:readline`);
/// return-probe types share the names of their entry types. Uprobe targets
/// given as library names (`libc`) resolve through `targets`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticFacts {
    /// Where these facts came from (kernel release, date), for people.
    #[serde(default)]
    pub description: String,
    /// Per probe type (canonical provider name, e.g. `kprobe`).
    #[serde(default)]
    pub probe_support: BTreeMap<String, ProbeSupport>,
    #[serde(default)]
    pub probes: BTreeSet<String>,
    /// Uprobe/usdt targets as written (`libc`, `/bin/bash`) -> the file path.
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
    #[serde(default)]
    pub probe_fields: BTreeMap<String, Vec<FieldInfo>>,
    #[serde(default)]
    pub types_available: bool,
    /// Records by spelled name (`struct sock`), members flattened.
    #[serde(default)]
    pub records: BTreeMap<String, Vec<FieldInfo>>,
    #[serde(default)]
    pub typedefs: BTreeMap<String, String>,
    #[serde(default)]
    pub enums: BTreeMap<String, i64>,
}

/// What [`StaticFacts::capture`] copies from another implementation.
#[derive(Clone, Debug, Default)]
pub struct CaptureSpec<'a> {
    pub description: String,
    /// Patterns whose matches become known probes (`tracepoint:sched:*`).
    pub probe_patterns: &'a [&'a str],
    /// Probes whose fields are copied.
    pub fields_of: &'a [&'a str],
    /// Uprobe targets as written (`libc`), resolved by matching `uprobe:TARGET:*`.
    pub targets: &'a [&'a str],
    pub records: &'a [RecordRef],
    pub typedefs: &'a [&'a str],
    pub enums: &'a [&'a str],
}

/// Provider spellings that share one name set in [`StaticFacts`].
fn name_provider(provider: &str) -> Option<&'static str> {
    Some(match ProbeKind::from_provider(provider)? {
        ProbeKind::Tracepoint => "tracepoint",
        ProbeKind::Rawtracepoint => "rawtracepoint",
        ProbeKind::Kprobe | ProbeKind::Kretprobe => "kprobe",
        ProbeKind::Fentry | ProbeKind::Fexit => "kfunc",
        ProbeKind::Uprobe | ProbeKind::Uretprobe => "uprobe",
        ProbeKind::Usdt => "usdt",
        ProbeKind::Software => "software",
        ProbeKind::Hardware => "hardware",
        _ => return None,
    })
}

impl StaticFacts {
    pub fn from_json(text: &str) -> Result<StaticFacts, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data into a string cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Copies what `spec` names from `facts` (e.g. the live kernel) into a fixture.
    pub fn capture(facts: &dyn KernelFacts, spec: &CaptureSpec<'_>) -> StaticFacts {
        let mut out = StaticFacts {
            description: spec.description.clone(),
            types_available: facts.types_available(),
            ..StaticFacts::default()
        };
        for kind in [
            ProbeKind::Begin,
            ProbeKind::End,
            ProbeKind::Kprobe,
            ProbeKind::Kretprobe,
            ProbeKind::Uprobe,
            ProbeKind::Uretprobe,
            ProbeKind::Usdt,
            ProbeKind::Tracepoint,
            ProbeKind::Rawtracepoint,
            ProbeKind::Profile,
            ProbeKind::Interval,
            ProbeKind::Software,
            ProbeKind::Hardware,
            ProbeKind::Fentry,
            ProbeKind::Fexit,
        ] {
            out.probe_support
                .insert(kind.as_str().to_string(), facts.probe_support(kind));
        }
        for pattern in spec.probe_patterns {
            let found = facts.matching_probes(pattern, 100_000);
            for name in found.names {
                out.probes.insert(normalize_name(&name));
            }
        }
        for target in spec.targets {
            let found = facts.matching_probes(&format!("uprobe:{target}:*"), 1);
            if let Some(name) = found.names.first() {
                if let Some(path) = name
                    .strip_prefix("uprobe:")
                    .and_then(|r| r.rsplit_once(':'))
                    .map(|(p, _)| p)
                {
                    out.targets.insert(target.to_string(), path.to_string());
                    out.targets.insert(path.to_string(), path.to_string());
                }
            }
        }
        for probe in spec.fields_of {
            if let Some(fields) = facts.probe_fields(probe) {
                out.probe_fields.insert(normalize_name(probe), fields);
            }
        }
        for record in spec.records {
            if let Some(fields) = facts.record_fields(record) {
                out.records.insert(record.spelled(), fields);
            }
        }
        for name in spec.typedefs {
            if let Some(target) = facts.typedef_target(name) {
                out.typedefs.insert(name.to_string(), target);
            }
        }
        for name in spec.enums {
            if let Some(v) = facts
                .enum_constant(name)
                .and_then(|v| i64::try_from(v).ok())
            {
                out.enums.insert(name.to_string(), v);
            }
        }
        out
    }

    /// Splits a pattern into (name-set provider, provider as asked, rest with
    /// the uprobe target resolved), or a problem.
    fn resolve<'p>(
        &self,
        pattern: &'p str,
    ) -> Result<(&'static str, &'p str, String), MatchProblem> {
        let (provider, rest) = pattern
            .split_once(':')
            .ok_or_else(|| MatchProblem::Unknowable(format!("no provider in {pattern}")))?;
        let set = name_provider(provider)
            .ok_or_else(|| MatchProblem::Unknowable(format!("no names for {provider}")))?;
        if matches!(set, "uprobe" | "usdt") {
            let (target, func) = rest.split_once(':').unwrap_or((rest, "*"));
            if target.contains(['*', '?']) {
                return Err(MatchProblem::Unknowable(format!(
                    "wildcard target {target}"
                )));
            }
            let path = self
                .targets
                .get(target)
                .ok_or_else(|| MatchProblem::TargetMissing(target.to_string()))?;
            return Ok((set, provider, format!("{path}:{func}")));
        }
        Ok((set, provider, rest.to_string()))
    }
}

/// `t:x:y` -> `tracepoint:x:y`, `uretprobe:` -> `uprobe:`, `kretfunc:`/`fentry:` -> `kfunc:`.
fn normalize_name(name: &str) -> String {
    match name.split_once(':') {
        Some((p, rest)) => match name_provider(p) {
            Some(set) => format!("{set}:{rest}"),
            None => name.to_string(),
        },
        None => name.to_string(),
    }
}

/// Shell-style matching with `*` and `?`, as bpftrace matches probe names
/// (`?` matches one byte; probe names are ASCII).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

impl KernelFacts for StaticFacts {
    fn probe_support(&self, kind: ProbeKind) -> ProbeSupport {
        self.probe_support
            .get(kind.as_str())
            .cloned()
            .unwrap_or(ProbeSupport::Unknown)
    }

    fn matching_probes(&self, pattern: &str, limit: usize) -> ProbeMatches {
        let (set, provider, rest) = match self.resolve(pattern) {
            Ok(r) => r,
            Err(problem) => {
                return ProbeMatches {
                    problem: Some(problem),
                    ..ProbeMatches::default()
                }
            }
        };
        let full = format!("{set}:{rest}");
        let matching: Vec<&String> = if full.contains(['*', '?']) {
            // Names are sorted: start at the text before the first wildcard.
            let literal = full.split(['*', '?']).next().unwrap_or_default();
            self.probes
                .range(literal.to_string()..)
                .take_while(|n| n.starts_with(literal))
                .filter(|n| wildcard_match(&full, n))
                .collect()
        } else {
            self.probes.get(&full).into_iter().collect()
        };
        ProbeMatches {
            total: matching.len(),
            names: matching
                .into_iter()
                .take(limit)
                .map(|n| format!("{provider}{}", &n[set.len()..]))
                .collect(),
            problem: None,
        }
    }

    fn similar_probes(&self, name: &str, limit: usize) -> Vec<String> {
        let Ok((set, provider, rest)) = self.resolve(name) else {
            return Vec::new();
        };
        let prefix = format!("{set}:");
        let candidates: Vec<&str> = self
            .probes
            .range(prefix.clone()..)
            .take_while(|n| n.starts_with(&prefix))
            .map(|n| &n[prefix.len()..])
            .collect();
        similar_names(&rest, &candidates, limit)
            .into_iter()
            .map(|n| format!("{provider}:{n}"))
            .collect()
    }

    fn probe_fields(&self, probe: &str) -> Option<Vec<FieldInfo>> {
        self.probe_fields.get(&normalize_name(probe)).cloned()
    }

    fn types_available(&self) -> bool {
        self.types_available
    }

    fn record_fields(&self, record: &RecordRef) -> Option<Vec<FieldInfo>> {
        self.records.get(&record.spelled()).cloned()
    }

    fn member(&self, record: &RecordRef, member: &str) -> MemberLookup {
        match self.records.get(&record.spelled()) {
            None => MemberLookup::UnknownRecord,
            Some(fields) => fields
                .iter()
                .find(|f| f.name == member)
                .cloned()
                .map_or(MemberLookup::Missing, MemberLookup::Found),
        }
    }

    fn typedef_target(&self, name: &str) -> Option<String> {
        self.typedefs.get(name).cloned()
    }

    fn enum_constant(&self, name: &str) -> Option<i128> {
        self.enums.get(name).map(|&v| i128::from(v))
    }
}

/// Ranks `candidates` (names after the provider, `CAT:EVENT` or `PATH:FUNC`)
/// by closeness to `wanted`: within the same category or binary, the nearest
/// last part; otherwise the nearest category with the same last part, or the
/// same last part anywhere. Shared by fact implementations.
pub fn similar_names(wanted: &str, candidates: &[&str], limit: usize) -> Vec<String> {
    let (head, last) = match wanted.rsplit_once(':') {
        Some((h, l)) => (Some(h), l),
        None => (None, wanted),
    };
    let split = |c: &'_ str| match c.rsplit_once(':') {
        Some((h, l)) => (Some(h.to_string()), l.to_string()),
        None => (None, c.to_string()),
    };
    let parts: Vec<(Option<String>, String)> = candidates.iter().map(|c| split(c)).collect();
    let same_head: Vec<&str> = parts
        .iter()
        .filter(|(h, _)| h.as_deref() == head)
        .map(|(_, l)| l.as_str())
        .collect();
    if !same_head.is_empty() {
        return suggest::nearest(last, same_head.iter().copied(), limit)
            .into_iter()
            .map(|l| match head {
                Some(h) => format!("{h}:{l}"),
                None => l.to_string(),
            })
            .collect();
    }
    // The head (category, binary) is wrong: the same last part elsewhere, or a near head.
    let mut out: Vec<String> = parts
        .iter()
        .filter(|(_, l)| l == last)
        .map(|(h, l)| match h {
            Some(h) => format!("{h}:{l}"),
            None => l.clone(),
        })
        .collect();
    if out.is_empty() {
        if let Some(head) = head {
            let heads: BTreeSet<&str> = parts.iter().filter_map(|(h, _)| h.as_deref()).collect();
            for h in suggest::nearest(head, heads.iter().copied(), limit) {
                let in_head: Vec<&str> = parts
                    .iter()
                    .filter(|(ph, _)| ph.as_deref() == Some(h))
                    .map(|(_, l)| l.as_str())
                    .collect();
                if let Some(l) = suggest::nearest(last, in_head.iter().copied(), 1).first() {
                    out.push(format!("{h}:{l}"));
                }
            }
        }
    }
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> StaticFacts {
        let mut f = StaticFacts::default();
        for n in [
            "tracepoint:syscalls:sys_enter_openat",
            "tracepoint:syscalls:sys_enter_open",
            "tracepoint:syscalls:sys_enter_read",
            "tracepoint:sched:sched_switch",
            "kprobe:vfs_read",
            "uprobe:/bin/bash:readline",
        ] {
            f.probes.insert(n.to_string());
        }
        f.targets.insert("/bin/bash".into(), "/bin/bash".into());
        f.targets.insert("bash".into(), "/bin/bash".into());
        f
    }

    #[test]
    fn matching_follows_bpftrace_patterns_and_aliases() {
        let f = facts();
        let m = f.matching_probes("tracepoint:syscalls:sys_enter_open*", 10);
        assert_eq!(m.total, 2);
        assert_eq!(
            f.matching_probes("t:sched:*", 10).names,
            ["t:sched:sched_switch"]
        );
        assert_eq!(f.matching_probes("kretprobe:vfs_read", 10).total, 1);
        assert_eq!(
            f.matching_probes("uretprobe:bash:readline", 10).names,
            ["uretprobe:/bin/bash:readline"]
        );
        assert_eq!(
            f.matching_probes("uprobe:/bin/zsh:x", 10).problem,
            Some(MatchProblem::TargetMissing("/bin/zsh".into()))
        );
        assert_eq!(f.matching_probes("tracepoint:nope:x", 10).total, 0);
    }

    #[test]
    fn similar_probes_prefer_the_same_category() {
        let f = facts();
        assert_eq!(
            f.similar_probes("tracepoint:syscalls:sys_enter_opn", 2),
            [
                "tracepoint:syscalls:sys_enter_open",
                "tracepoint:syscalls:sys_enter_openat"
            ]
        );
        assert_eq!(
            f.similar_probes("tracepoint:sycalls:sys_enter_read", 2),
            ["tracepoint:syscalls:sys_enter_read"]
        );
        assert_eq!(
            f.similar_probes("uprobe:/bin/bash:readlin", 1),
            ["uprobe:/bin/bash:readline"]
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a*d", "abc"));
        assert!(wildcard_match("sys_enter_*", "sys_enter_read"));
    }

    #[test]
    fn json_round_trip() {
        let f = facts();
        assert_eq!(StaticFacts::from_json(&f.to_json()).unwrap(), f);
    }
}
