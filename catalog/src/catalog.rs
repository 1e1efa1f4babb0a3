//! The probe catalog: every probe name the running kernel (or a saved copy of its description)
//! offers, bpftrace-style search and completion over them, and typed fields per probe.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

use crate::btf::{BtfIndex, BtfTypes};
use crate::caps::ProbeType;
use crate::elf::{resolve_target, ElfProbes};
use crate::error::CatalogError;
use crate::names::{NameSet, NameSetBuilder};
use crate::tracefs;

/// bpftrace 0.17's software events (name, alias), from its `SW_PROBE_LIST`.
const SOFTWARE: &[(&str, &str)] = &[
    ("alignment-faults", ""),
    ("bpf-output", ""),
    ("context-switches", "cs"),
    ("cpu-clock", "cpu"),
    ("cpu-migrations", ""),
    ("dummy", ""),
    ("emulation-faults", ""),
    ("major-faults", ""),
    ("minor-faults", ""),
    ("page-faults", "faults"),
    ("task-clock", ""),
];

/// bpftrace 0.17's hardware events (name, alias), from its `HW_PROBE_LIST`.
const HARDWARE: &[(&str, &str)] = &[
    ("backend-stalls", ""),
    ("branch-instructions", "branches"),
    ("branch-misses", ""),
    ("bus-cycles", ""),
    ("cache-misses", ""),
    ("cache-references", ""),
    ("cpu-cycles", "cycles"),
    ("frontend-stalls", ""),
    ("instructions", ""),
    ("ref-cycles", ""),
];

/// Units accepted by `profile:UNIT:N` and `interval:UNIT:N`.
const PROFILE_UNITS: &[&str] = &["hz", "ms", "s", "us"];
const INTERVAL_UNITS: &[&str] = &["hz", "ms", "s", "us"];

/// Providers a bare pattern ("*openat*") is matched against. Return probes and raw tracepoints
/// are left out because they would only repeat the kprobe/kfunc/tracepoint names.
const BARE_PROVIDERS: &[ProbeType] = &[
    ProbeType::Tracepoint,
    ProbeType::Kprobe,
    ProbeType::Kfunc,
    ProbeType::Software,
    ProbeType::Hardware,
    ProbeType::Profile,
    ProbeType::Interval,
    ProbeType::Begin,
    ProbeType::End,
];

/// Providers offered when completing a word without a colon, in the order people reach for them.
const COMPLETION_PROVIDERS: &[ProbeType] = &ProbeType::ALL;

/// At most this many parsed ELF files are kept; completion re-reads the same one per keystroke.
const ELF_CACHE_MAX: usize = 16;

/// At most this many matches in one category are confirmed one by one (a `stat` of their
/// `format` files) by [`Catalog::tracepoints_from_directories`]; more are left to the list.
const DIRECTORY_MATCHES_MAX: usize = 64;

/// Where the kernel description is read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPaths {
    /// tracefs root: `available_events` and `events/<category>/<event>/format` below it.
    pub tracefs: PathBuf,
    /// `/proc/kallsyms` or a saved copy.
    pub kallsyms: PathBuf,
    /// Raw BTF of the kernel (`/sys/kernel/btf/vmlinux`) or a saved copy.
    pub btf: PathBuf,
}

impl Default for CatalogPaths {
    fn default() -> Self {
        CatalogPaths {
            tracefs: PathBuf::from("/sys/kernel/tracing"),
            kallsyms: PathBuf::from("/proc/kallsyms"),
            btf: PathBuf::from("/sys/kernel/btf/vmlinux"),
        }
    }
}

impl CatalogPaths {
    /// A saved kernel description in one directory: `available_events`, `events/`, `kallsyms`
    /// and `vmlinux` (raw BTF) side by side.
    pub fn from_dir(dir: impl AsRef<Path>) -> CatalogPaths {
        let dir = dir.as_ref();
        CatalogPaths {
            tracefs: dir.to_path_buf(),
            kallsyms: dir.join("kallsyms"),
            btf: dir.join("vmlinux"),
        }
    }

    /// The defaults, but with tracefs wherever it is actually mounted (older systems mount it
    /// under `/sys/kernel/debug/tracing` only).
    pub fn detect() -> CatalogPaths {
        CatalogPaths::for_tracefs(&crate::caps::tracefs_state())
    }

    /// The defaults, with tracefs where `state` (from [`crate::tracefs_state`]) says it is
    /// mounted.
    pub fn for_tracefs(state: &crate::caps::TracefsState) -> CatalogPaths {
        let mut p = CatalogPaths::default();
        if let crate::caps::TracefsState::Mounted(dir) = state {
            p.tracefs = dir.clone();
        }
        p
    }
}

/// Which part of the kernel description a [`SourceProblem`] concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SourceKind {
    /// tracefs `available_events`: tracepoint and raw tracepoint names.
    Tracefs,
    /// kallsyms: kprobe names.
    Kallsyms,
    /// BTF: kfunc names and typed function signatures.
    Btf,
}

impl SourceKind {
    /// Every source, in the order they are reported.
    pub const ALL: [SourceKind; 3] = [SourceKind::Tracefs, SourceKind::Kallsyms, SourceKind::Btf];

    /// What is missing without this source, for messages.
    pub fn what_is_missing(&self) -> &'static str {
        match self {
            SourceKind::Tracefs => "tracepoint names and fields",
            SourceKind::Kallsyms => "kprobe function names",
            SourceKind::Btf => "kfunc names and kernel function signatures",
        }
    }
}

/// A source that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceProblem {
    /// Which source.
    pub source: SourceKind,
    /// The file that was tried.
    pub path: PathBuf,
    /// Why it could not be used, with a fix where there is an obvious one.
    pub reason: String,
}

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} unavailable ({}): {}",
            self.source.what_is_missing(),
            self.path.display(),
            self.reason
        )
    }
}

/// Result of [`Catalog::search`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Full probe names as `bpftrace -l` prints them, sorted, at most `limit` of them.
    pub names: Vec<String>,
    /// How many names matched before the limit was applied.
    pub total_matches: usize,
    /// Why part of the answer may be missing (unknown provider, uprobe target not found,
    /// source unavailable...). Empty when the answer is complete.
    pub warnings: Vec<String>,
}

/// One typed field of a tracepoint, or one parameter of a kernel function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Name as used in `args->NAME` (tracepoints, kfuncs). bpftrace 0.17 kprobes cannot use
    /// names: parameter N is `argN` there.
    pub name: String,
    /// C type, e.g. `const char *`, `__u8[4]`, `struct sock *`.
    pub c_type: String,
    /// Byte offset in the tracepoint record; for function parameters, the 8-byte argument slot
    /// (index * 8).
    pub offset: usize,
    /// Size in bytes (0 when unknown).
    pub size: usize,
    /// Whether the value is a signed integer.
    pub signed: bool,
}

/// Typed fields of one probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFields {
    /// Full canonical probe name, e.g. `tracepoint:syscalls:sys_enter_openat`.
    pub probe: String,
    /// Tracepoint fields (without `common_*`) or function parameters, in order.
    pub fields: Vec<Field>,
    /// Return type of a kernel function (`kfunc`/`kprobe` and their return variants).
    pub ret: Option<String>,
}

/// How many names each source contributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogCounts {
    /// Tracepoints in `available_events`.
    pub tracepoints: usize,
    /// Distinct kernel text symbols (kprobe candidates).
    pub kernel_symbols: usize,
    /// Distinct BTF functions (kfunc candidates).
    pub btf_functions: usize,
}

/// What the kernel offers for tracing. Cheap to share: `Send + Sync`, all methods take `&self`.
///
/// Each source is read on first use, at most once: tracefs `available_events` (~1 ms) by
/// tracepoint and raw tracepoint queries, kallsyms (~45-90 ms: the kernel formats it anew on
/// every read) by kprobe queries, BTF (~3-10 ms) by kfunc queries and [`Catalog::btf_types`].
/// Queries over several providers (a bare `*openat*`), [`Catalog::counts`] and
/// [`Catalog::unavailable_sources`] read everything. [`Catalog::preload`] reads every source
/// now, in parallel; [`Catalog::loaded_sources`] tells which have been read.
#[derive(Debug)]
pub struct Catalog {
    paths: CatalogPaths,
    tracefs: OnceLock<Result<TracefsNames, SourceProblem>>,
    /// kallsyms text symbols.
    ksyms: OnceLock<Result<NameSet, SourceProblem>>,
    btf: OnceLock<Result<BtfIndex, SourceProblem>>,
    /// Filled by [`Catalog::unavailable_sources`], after every source was read.
    problems: OnceLock<Vec<SourceProblem>>,
    empty: NameSet,
    software: NameSet,
    hardware: NameSet,
    profile: NameSet,
    interval: NameSet,
    begin_end: NameSet,
    fields_cache: Mutex<HashMap<String, Option<ProbeFields>>>,
    elf_cache: Mutex<HashMap<PathBuf, (FileStamp, Arc<ElfProbes>)>>,
    /// Whether an exact event was looked up in every category already (see
    /// [`Catalog::tracepoints_from_directories`]).
    scanned_categories: std::sync::atomic::AtomicBool,
}

/// Names from `available_events`.
#[derive(Debug)]
struct TracefsNames {
    /// "category:event".
    tracepoints: NameSet,
    /// "event" (raw tracepoints are named without category), built on first use: only
    /// rawtracepoint queries need it.
    raw_tracepoints: OnceLock<NameSet>,
}

impl TracefsNames {
    fn raw_tracepoints(&self) -> &NameSet {
        self.raw_tracepoints.get_or_init(|| {
            NameSet::from_names(
                self.tracepoints
                    .iter()
                    .filter_map(|tp| tp.split_once(':').map(|(_, e)| e)),
            )
        })
    }
}

/// Identifies one version of a file, so cached ELF listings notice rebuilt binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// One provider's names with how they are spelled in full: `prefix + name + suffix`.
struct Group<'a> {
    prefix: String,
    suffix: &'static str,
    names: &'a NameSet,
}

/// A pattern either for the name part only (provider given) or for the full probe name.
struct Matcher {
    wild: WildMatch,
    /// Text before the first wildcard: narrows the sorted range to scan.
    literal: String,
    /// Text after the last wildcard: every match ends with it, a cheaper test than the
    /// pattern (`tracepoint:*:tcp_set_state` scans all ~2,300 tracepoints).
    tail: String,
    full: bool,
}

impl Matcher {
    fn new(pattern: &str, full: bool) -> Matcher {
        let literal = pattern
            .split(['*', '?'])
            .next()
            .unwrap_or_default()
            .to_string();
        let tail = pattern
            .rsplit(['*', '?'])
            .next()
            .unwrap_or_default()
            .to_string();
        Matcher {
            wild: WildMatch::new(pattern),
            literal,
            tail,
            full,
        }
    }

    /// Matching names of `g`, in sorted order.
    fn matches<'a>(&self, g: &Group<'a>) -> Vec<&'a str> {
        if !self.full {
            let range = g.names.prefix_range(&self.literal);
            return g
                .names
                .iter_range(range)
                .filter(|n| n.ends_with(&self.tail) && self.wild.matches(n))
                .collect();
        }
        // Full-name matching: use the literal prefix to skip whole groups or narrow the range.
        let range = if self.literal.len() <= g.prefix.len() {
            if !g.prefix.starts_with(&self.literal) {
                return Vec::new();
            }
            0..g.names.len()
        } else {
            match self.literal.strip_prefix(g.prefix.as_str()) {
                Some(rest) => g.names.prefix_range(rest),
                None => return Vec::new(),
            }
        };
        let mut buf = String::new();
        g.names
            .iter_range(range)
            .filter(|n| {
                buf.clear();
                buf.push_str(&g.prefix);
                buf.push_str(n);
                buf.push_str(g.suffix);
                buf.ends_with(&self.tail) && self.wild.matches(&buf)
            })
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a cache lock leaves only a cache behind; keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn static_set(list: &[(&'static str, &'static str)]) -> NameSet {
    NameSet::from_names(
        list.iter()
            .flat_map(|(n, a)| [*n, *a])
            .filter(|s| !s.is_empty()),
    )
}

fn read_text(path: &Path) -> Result<String, std::io::Error> {
    use std::io::Read;
    // procfs/tracefs files report size 0 and are generated per read() call. Reads of 64 KiB
    // are measurably faster there than the ever-larger reads of `fs::read` (kallsyms: ~45 ms
    // vs ~80 ms), since the kernel formats into a buffer as large as the request.
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(file.metadata().map_or(0, |m| m.len() as usize));
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Kernel text symbols from kallsyms text (`ADDR TYPE NAME [MODULE]`), types `t`/`T` only.
fn parse_kallsyms(text: &str) -> NameSet {
    let mut b = NameSetBuilder::with_capacity(text.len() / 4, text.len() / 40);
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(_addr), Some(ty), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if ty != "t" && ty != "T" {
            continue;
        }
        // __pfx_/__cfi_ symbols are padding and CFI preambles in front of real functions
        // (~58k of 122k here); they can never be probed.
        // `.cold` symbols are the out-of-line unlikely halves of functions, never an entry.
        if name.starts_with("__pfx_") || name.starts_with("__cfi_") || name.ends_with(".cold") {
            continue;
        }
        b.push(name, 0);
    }
    b.build()
}

/// Splits "provider:rest"; `None` for a word without a colon.
fn split_provider(pattern: &str) -> Option<(&str, &str)> {
    pattern.split_once(':')
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Splits a uprobe/usdt "target:rest" at the first colon (paths have none; C++ names may).
fn split_target(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once(':') {
        Some((t, r)) => (t, Some(r)),
        None => (rest, None),
    }
}

/// A source file that could not be opened or read, with a fix where there is an obvious one.
fn io_problem(
    kind: SourceKind,
    paths: &CatalogPaths,
    path: PathBuf,
    e: &std::io::Error,
) -> SourceProblem {
    use std::io::ErrorKind;
    let reason = match (kind, e.kind()) {
        (SourceKind::Tracefs, ErrorKind::NotFound) => format!(
            "tracefs is not mounted at {} (fix: mount -t tracefs nodev {})",
            paths.tracefs.display(),
            paths.tracefs.display()
        ),
        (SourceKind::Tracefs, ErrorKind::PermissionDenied) => {
            format!("{e} (tracefs is readable by root only: run as root)")
        }
        (SourceKind::Btf, ErrorKind::NotFound) => {
            "no BTF file (kernel built without CONFIG_DEBUG_INFO_BTF?)".to_string()
        }
        _ => e.to_string(),
    };
    SourceProblem {
        source: kind,
        path,
        reason,
    }
}

fn load_tracepoints(paths: &CatalogPaths) -> Result<TracefsNames, SourceProblem> {
    let path = paths.tracefs.join("available_events");
    let text =
        read_text(&path).map_err(|e| io_problem(SourceKind::Tracefs, paths, path.clone(), &e))?;
    let tracepoints = NameSet::from_names(tracefs::parse_available_events(&text));
    if tracepoints.len() == 0 {
        return Err(SourceProblem {
            source: SourceKind::Tracefs,
            path,
            reason: "no tracepoints listed".into(),
        });
    }
    Ok(TracefsNames {
        tracepoints,
        raw_tracepoints: OnceLock::new(),
    })
}

fn load_kallsyms(paths: &CatalogPaths) -> Result<NameSet, SourceProblem> {
    let path = &paths.kallsyms;
    let text =
        read_text(path).map_err(|e| io_problem(SourceKind::Kallsyms, paths, path.clone(), &e))?;
    let set = parse_kallsyms(&text);
    if set.len() == 0 {
        return Err(SourceProblem {
            source: SourceKind::Kallsyms,
            path: path.clone(),
            reason: "no text symbols listed".into(),
        });
    }
    Ok(set)
}

fn load_btf(paths: &CatalogPaths) -> Result<BtfIndex, SourceProblem> {
    BtfIndex::load(&paths.btf).map_err(|e| match e {
        CatalogError::Io { path, source } => io_problem(SourceKind::Btf, paths, path, &source),
        CatalogError::Btf { path, reason } => SourceProblem {
            source: SourceKind::Btf,
            path,
            reason,
        },
        other => SourceProblem {
            source: SourceKind::Btf,
            path: paths.btf.clone(),
            reason: other.to_string(),
        },
    })
}

impl Catalog {
    /// Prepares a catalog of the kernel described at `paths`, reading nothing yet: each source
    /// is read on its first use (see [`Catalog`]). Only opens the three source files (tens of
    /// microseconds), so that a source that cannot even be opened (tracefs not mounted, no BTF,
    /// not root) is known as unavailable from the start. Missing sources are not fatal: they
    /// are listed by [`Catalog::unavailable_sources`], and answers that need them come back
    /// empty with a warning. Fails only when none of the three sources can be opened; a source
    /// that opens but turns out unusable when read (empty, malformed) is reported then, so
    /// use [`Catalog::load_all`] to fail as well when all three are unusable.
    /// Tracepoint fields are read per event on first use and cached.
    pub fn load(paths: &CatalogPaths) -> Result<Catalog, CatalogError> {
        let cat = Catalog {
            paths: paths.clone(),
            tracefs: OnceLock::new(),
            ksyms: OnceLock::new(),
            btf: OnceLock::new(),
            problems: OnceLock::new(),
            empty: NameSet::default(),
            software: static_set(SOFTWARE),
            hardware: static_set(HARDWARE),
            profile: NameSet::from_names(PROFILE_UNITS.iter().copied()),
            interval: NameSet::from_names(INTERVAL_UNITS.iter().copied()),
            begin_end: NameSet::from_names([""]),
            fields_cache: Mutex::new(HashMap::new()),
            elf_cache: Mutex::new(HashMap::new()),
            scanned_categories: std::sync::atomic::AtomicBool::new(false),
        };
        let mut unopenable = Vec::new();
        for kind in SourceKind::ALL {
            let path = cat.source_path(kind);
            if let Err(e) = std::fs::File::open(&path) {
                let problem = io_problem(kind, paths, path, &e);
                unopenable.push(problem.to_string());
                match kind {
                    SourceKind::Tracefs => {
                        let _ = cat.tracefs.set(Err(problem));
                    }
                    SourceKind::Kallsyms => {
                        let _ = cat.ksyms.set(Err(problem));
                    }
                    SourceKind::Btf => {
                        let _ = cat.btf.set(Err(problem));
                    }
                }
            }
        }
        if unopenable.len() == SourceKind::ALL.len() {
            return Err(CatalogError::NoSources(unopenable.join("; ")));
        }
        Ok(cat)
    }

    /// [`Catalog::load`], then reads every source at once ([`Catalog::preload`]): the eager
    /// loading of old, for long-lived users that would rather pay up front (~50-100 ms, mostly
    /// kallsyms). Fails when none of the three sources could be read.
    pub fn load_all(paths: &CatalogPaths) -> Result<Catalog, CatalogError> {
        let cat = Catalog::load(paths)?;
        let problems = cat.unavailable_sources();
        if problems.len() == SourceKind::ALL.len() {
            let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            return Err(CatalogError::NoSources(all.join("; ")));
        }
        Ok(cat)
    }

    /// Reads every source not read yet: BTF on a second thread while tracefs and kallsyms are
    /// read on this one. Returns when all are loaded (or known unavailable); sources already
    /// loaded are not read again, and concurrent queries wait for the source they need rather
    /// than reading it twice. Meant for a background thread of a long-lived process.
    pub fn preload(&self) {
        std::thread::scope(|s| {
            let handle = if self.btf.get().is_none() {
                std::thread::Builder::new()
                    .name("kgent-btf".into())
                    .spawn_scoped(s, || {
                        self.btf_funcs();
                    })
                    .ok()
            } else {
                None
            };
            self.tracefs_names();
            self.kernel_symbols();
            if let Some(h) = handle {
                if h.join().is_err() {
                    // Record the panic as the problem; a second attempt would only panic again.
                    let _ = self.btf.set(Err(SourceProblem {
                        source: SourceKind::Btf,
                        path: self.paths.btf.clone(),
                        reason: "BTF loader thread panicked".into(),
                    }));
                }
            }
            // No thread to be had, or it panicked before setting anything: do it here.
            self.btf_funcs();
        });
    }

    /// The sources read so far (successfully or not), including those that could not even be
    /// opened by [`Catalog::load`], in the order tracefs, kallsyms, BTF. Reads nothing.
    pub fn loaded_sources(&self) -> Vec<SourceKind> {
        SourceKind::ALL
            .into_iter()
            .filter(|k| match k {
                SourceKind::Tracefs => self.tracefs.get().is_some(),
                SourceKind::Kallsyms => self.ksyms.get().is_some(),
                SourceKind::Btf => self.btf.get().is_some(),
            })
            .collect()
    }

    /// The file a source is read from.
    fn source_path(&self, kind: SourceKind) -> PathBuf {
        match kind {
            SourceKind::Tracefs => self.paths.tracefs.join("available_events"),
            SourceKind::Kallsyms => self.paths.kallsyms.clone(),
            SourceKind::Btf => self.paths.btf.clone(),
        }
    }

    /// Tracepoint names, read on first use; `None` when tracefs is unavailable.
    fn tracefs_names(&self) -> Option<&TracefsNames> {
        self.tracefs
            .get_or_init(|| load_tracepoints(&self.paths))
            .as_ref()
            .ok()
    }

    /// Kernel text symbols, read on first use; empty when kallsyms is unavailable.
    fn kernel_symbols(&self) -> &NameSet {
        self.ksyms
            .get_or_init(|| load_kallsyms(&self.paths))
            .as_ref()
            .unwrap_or(&self.empty)
    }

    /// Kernel BTF, read on first use; `None` when unavailable.
    fn btf_index(&self) -> Option<&BtfIndex> {
        self.btf.get_or_init(|| load_btf(&self.paths)).as_ref().ok()
    }

    /// Sources that could not be read, and why (e.g. tracefs not mounted), in the order
    /// tracefs, kallsyms, BTF. Reads every source not read yet (as [`Catalog::preload`]):
    /// only reading a source tells whether it is usable. Answers that needed a missing source
    /// also carry its problem as a warning ([`SearchResult::warnings`]), without this.
    pub fn unavailable_sources(&self) -> &[SourceProblem] {
        self.problems.get_or_init(|| {
            self.preload();
            SourceKind::ALL
                .into_iter()
                .filter_map(|k| self.problem_for(k).cloned())
                .collect()
        })
    }

    /// Where this catalog was read from.
    pub fn paths(&self) -> &CatalogPaths {
        &self.paths
    }

    /// The kernel's BTF types (structs, typedefs, function signatures), when BTF could be read.
    /// Reads BTF on first use (~3-10 ms).
    pub fn btf_types(&self) -> Option<&BtfTypes> {
        self.btf_index().map(|b| &b.types)
    }

    /// How many names each source contributed. Reads every source not read yet.
    pub fn counts(&self) -> CatalogCounts {
        self.preload();
        CatalogCounts {
            tracepoints: self.tracefs_names().map_or(0, |t| t.tracepoints.len()),
            kernel_symbols: self.kernel_symbols().len(),
            btf_functions: self.btf_index().map_or(0, |b| b.funcs().len()),
        }
    }

    /// Why a source is unavailable, reading it first if needed; `None` when it is usable.
    fn problem_for(&self, kind: SourceKind) -> Option<&SourceProblem> {
        match kind {
            SourceKind::Tracefs => {
                self.tracefs_names();
                self.tracefs.get()?.as_ref().err()
            }
            SourceKind::Kallsyms => {
                self.kernel_symbols();
                self.ksyms.get()?.as_ref().err()
            }
            SourceKind::Btf => {
                self.btf_index();
                self.btf.get()?.as_ref().err()
            }
        }
    }

    /// Kernel function names from BTF (reading BTF and indexing them on first use).
    fn btf_funcs(&self) -> &NameSet {
        self.btf_index().map_or(&self.empty, |b| b.funcs())
    }

    /// The kernel-wide name group of a probe type (`None` for uprobe/usdt, which need a file).
    /// Reads the source behind it on first use.
    fn kernel_group(&self, pt: ProbeType) -> Option<Group<'_>> {
        let (names, suffix) = match pt {
            ProbeType::Tracepoint => (
                self.tracefs_names().map_or(&self.empty, |t| &t.tracepoints),
                "",
            ),
            ProbeType::Rawtracepoint => (
                self.tracefs_names()
                    .map_or(&self.empty, |t| t.raw_tracepoints()),
                "",
            ),
            ProbeType::Kprobe | ProbeType::Kretprobe => (self.kernel_symbols(), ""),
            ProbeType::Kfunc | ProbeType::Kretfunc => (self.btf_funcs(), ""),
            ProbeType::Software => (&self.software, ":"),
            ProbeType::Hardware => (&self.hardware, ":"),
            ProbeType::Profile => (&self.profile, ":"),
            ProbeType::Interval => (&self.interval, ":"),
            ProbeType::Begin | ProbeType::End => {
                return Some(Group {
                    prefix: pt.name().to_string(),
                    suffix: "",
                    names: &self.begin_end,
                })
            }
            ProbeType::Uprobe | ProbeType::Uretprobe | ProbeType::Usdt => return None,
        };
        Some(Group {
            prefix: format!("{}:", pt.name()),
            suffix,
            names,
        })
    }

    /// A warning when the source behind `pt` could not be read (reading it if needed).
    fn source_warning(&self, pt: ProbeType) -> Option<String> {
        let kind = match pt {
            ProbeType::Tracepoint | ProbeType::Rawtracepoint => SourceKind::Tracefs,
            ProbeType::Kprobe | ProbeType::Kretprobe => SourceKind::Kallsyms,
            ProbeType::Kfunc | ProbeType::Kretfunc => SourceKind::Btf,
            _ => return None,
        };
        self.problem_for(kind).map(|p| p.to_string())
    }

    /// Parsed ELF probes of `path`, cached while the file is unchanged.
    fn elf(&self, path: &Path) -> Result<Arc<ElfProbes>, CatalogError> {
        let meta = std::fs::metadata(path).map_err(|source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let stamp = FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        if let Some((s, e)) = lock(&self.elf_cache).get(path) {
            if *s == stamp {
                return Ok(Arc::clone(e));
            }
        }
        let probes = Arc::new(ElfProbes::read(path)?);
        let mut cache = lock(&self.elf_cache);
        if cache.len() >= ELF_CACHE_MAX {
            cache.clear();
        }
        cache.insert(path.to_path_buf(), (stamp, Arc::clone(&probes)));
        Ok(probes)
    }

    /// Resolves a uprobe/usdt target and reads it; the error is a user-facing warning.
    fn elf_target(&self, target: &str) -> Result<(PathBuf, Arc<ElfProbes>), String> {
        if has_wildcard(target) {
            return Err(format!(
                "wildcards in uprobe/usdt paths are not supported: {target}"
            ));
        }
        let path = resolve_target(target)
            .ok_or_else(|| format!("uprobe/usdt target not found: {target}"))?;
        let probes = self.elf(&path).map_err(|e| e.to_string())?;
        Ok((path, probes))
    }

    /// Finds probes matching a bpftrace-style pattern: `tracepoint:syscalls:sys_enter_open*`,
    /// `t:sched:*`, `kprobe:tcp_*`, `kfunc:vfs_*`, `uprobe:/bin/bash:read*`,
    /// `usdt:/usr/bin/python3.11:*`, `software:*`, or a bare word such as `*openat*`, which is
    /// matched against the full names of tracepoints, kprobes, kfuncs, software, hardware,
    /// profile, interval, BEGIN and END (a bare word without wildcards matches as a substring;
    /// an unknown provider such as `sched:sched_switch` is matched the same way).
    /// Returns full names as `bpftrace -l` prints them, sorted, at most `limit`.
    pub fn search(&self, pattern: &str, limit: usize) -> SearchResult {
        let pattern = pattern.trim();
        let mut warnings = Vec::new();
        // Keeps the ELF listing alive while groups borrow from it.
        let elf_holder: Arc<ElfProbes>;
        let mut groups: Vec<Group<'_>> = Vec::new();
        let matcher;

        let split = split_provider(pattern);
        let known = split.and_then(|(p, rest)| {
            if has_wildcard(p) {
                return None;
            }
            ProbeType::from_provider(p).map(|pt| (pt, rest))
        });
        if let Some((ProbeType::Tracepoint, rest)) = known {
            if let Some(r) = self
                .exact_tracepoint(rest, limit)
                .or_else(|| self.tracepoints_from_directories(rest, limit))
            {
                return r;
            }
        }
        let mut unknown_provider = None;
        match known {
            None => {
                // A bare word, a wildcard provider, or an unknown provider such as
                // "sched:sched_switch" (a tracepoint without its provider): match full names.
                let (full, types) = match split {
                    None if has_wildcard(pattern) => (pattern.to_string(), BARE_PROVIDERS),
                    None => (format!("*{pattern}*"), BARE_PROVIDERS),
                    Some((p, _)) if has_wildcard(p) => (pattern.to_string(), COMPLETION_PROVIDERS),
                    Some((p, _)) => {
                        unknown_provider = Some(p);
                        let tail = if has_wildcard(pattern) { "" } else { "*" };
                        (format!("*{pattern}{tail}"), BARE_PROVIDERS)
                    }
                };
                // Every kernel source is needed: read those not read yet in parallel.
                self.preload();
                groups.extend(types.iter().filter_map(|pt| self.kernel_group(*pt)));
                matcher = Matcher::new(&full, true);
                for pt in [ProbeType::Tracepoint, ProbeType::Kprobe, ProbeType::Kfunc] {
                    warnings.extend(self.source_warning(pt));
                }
            }
            Some((pt, rest)) => {
                let rest = if rest.is_empty() { "*" } else { rest };
                match pt {
                    ProbeType::Uprobe | ProbeType::Uretprobe | ProbeType::Usdt => {
                        let (target, func) = split_target(rest);
                        match self.elf_target(target) {
                            Ok((path, probes)) => {
                                elf_holder = probes;
                                let usdt = pt == ProbeType::Usdt;
                                let names = if usdt {
                                    &elf_holder.usdt
                                } else {
                                    &elf_holder.funcs
                                };
                                groups.push(Group {
                                    prefix: format!("{}:{}:", pt.name(), path.display()),
                                    suffix: "",
                                    names,
                                });
                                let func = func.filter(|f| !f.is_empty()).unwrap_or("*");
                                // `usdt:PATH:name` leaves the provider out; match any provider.
                                let func = if usdt && !func.contains(':') {
                                    format!("*:{func}")
                                } else {
                                    func.to_string()
                                };
                                matcher = Matcher::new(&func, false);
                            }
                            Err(w) => {
                                warnings.push(w);
                                matcher = Matcher::new("", false);
                            }
                        }
                    }
                    ProbeType::Software
                    | ProbeType::Hardware
                    | ProbeType::Profile
                    | ProbeType::Interval => {
                        // `software:cpu-clock:1000000` names the event `cpu-clock`.
                        let event = rest.split(':').next().unwrap_or("*");
                        let event = if event.is_empty() { "*" } else { event };
                        groups.extend(self.kernel_group(pt));
                        matcher = Matcher::new(event, false);
                    }
                    ProbeType::Begin | ProbeType::End => {
                        groups.extend(self.kernel_group(pt));
                        matcher = Matcher::new("*", false);
                    }
                    _ => {
                        groups.extend(self.kernel_group(pt));
                        warnings.extend(self.source_warning(pt));
                        matcher = Matcher::new(rest, false);
                    }
                }
            }
        }

        // Each group is sorted and no group prefix is a prefix of another ("kprobe:" vs
        // "kretprobe:" differ before their colons), so sorting groups by prefix and
        // concatenating gives the fully sorted list without building every string.
        groups.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        let mut total = 0;
        let mut names = Vec::new();
        for g in &groups {
            let hits = matcher.matches(g);
            total += hits.len();
            for n in hits {
                if names.len() >= limit {
                    break;
                }
                names.push(format!("{}{}{}", g.prefix, n, g.suffix));
            }
        }
        if let (Some(p), 0) = (unknown_provider, total) {
            warnings.insert(0, format!("unknown probe type: {p}"));
        }
        SearchResult {
            names,
            total_matches: total,
            warnings,
        }
    }

    /// Completion candidates: full probe names starting with `prefix`. A provider alias is kept
    /// as typed (`t:syscalls:sys_enter_op` -> `t:syscalls:sys_enter_openat`), so every candidate
    /// really starts with `prefix`. A word without a colon completes provider names
    /// (`tra` -> `tracepoint:`); uprobe/usdt complete file paths, then symbols of that file.
    /// Sorted, at most `limit`.
    pub fn complete(&self, prefix: &str, limit: usize) -> Vec<String> {
        let Some((prov, rest)) = split_provider(prefix) else {
            let mut out: Vec<String> = COMPLETION_PROVIDERS
                .iter()
                .map(|pt| match pt {
                    ProbeType::Begin | ProbeType::End => pt.name().to_string(),
                    _ => format!("{}:", pt.name()),
                })
                .filter(|c| c.starts_with(prefix))
                .collect();
            out.sort();
            out.truncate(limit);
            return out;
        };
        let Some(pt) = ProbeType::from_provider(prov) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match pt {
            ProbeType::Uprobe | ProbeType::Uretprobe | ProbeType::Usdt => {
                let (target, func) = split_target(rest);
                match func {
                    None => {
                        for p in complete_path(target, limit) {
                            out.push(format!("{prov}:{p}"));
                        }
                    }
                    Some(func) => {
                        if let Ok((_, probes)) = self.elf_target(target) {
                            let set = if pt == ProbeType::Usdt {
                                &probes.usdt
                            } else {
                                &probes.funcs
                            };
                            for n in set.iter_range(set.prefix_range(func)).take(limit) {
                                out.push(format!("{prov}:{target}:{n}"));
                            }
                        }
                    }
                }
            }
            // BEGIN and END take no colon; the colon-less branch above offers them.
            ProbeType::Begin | ProbeType::End => {}
            _ => {
                if let Some(g) = self.kernel_group(pt) {
                    // Static groups ("software:cpu-clock:") carry a ":" that `rest` may include.
                    let lookup = match g.suffix {
                        "" => rest,
                        sfx => rest.strip_suffix(sfx).unwrap_or(rest),
                    };
                    for n in g.names.iter_range(g.names.prefix_range(lookup)) {
                        let cand = format!("{prov}:{n}{}", g.suffix);
                        if cand.starts_with(prefix) {
                            out.push(cand);
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                }
            }
        }
        out.sort();
        out.truncate(limit);
        out
    }

    /// Typed fields of a tracepoint (from its `format` file, without `common_*` fields), or
    /// the typed parameters and return type of a kernel function from BTF for
    /// kfunc/kretfunc/kprobe/kretprobe. Accepts aliases (`t:sched:sched_switch`). `None` for
    /// unknown probes, wildcards, and probe types without typed arguments.
    pub fn fields(&self, probe: &str) -> Option<ProbeFields> {
        let (prov, rest) = split_provider(probe.trim())?;
        let pt = ProbeType::from_provider(prov)?;
        if has_wildcard(rest) || rest.is_empty() {
            return None;
        }
        let key = format!("{}:{}", pt.name(), rest);
        if let Some(hit) = lock(&self.fields_cache).get(&key) {
            return hit.clone();
        }
        let value = match pt {
            ProbeType::Tracepoint => self.tracepoint_fields(rest).map(|fields| ProbeFields {
                probe: key.clone(),
                fields,
                ret: None,
            }),
            ProbeType::Kfunc | ProbeType::Kretfunc | ProbeType::Kprobe | ProbeType::Kretprobe => {
                self.btf_index()
                    .and_then(|b| b.signature(rest))
                    .map(|(fields, ret)| ProbeFields {
                        probe: key.clone(),
                        fields,
                        ret: Some(ret),
                    })
            }
            _ => None,
        };
        lock(&self.fields_cache).insert(key, value.clone());
        value
    }

    /// The `format` file of tracepoint `category:event`; `None` for names that are not a
    /// plain category and event.
    fn format_path(&self, rest: &str) -> Option<PathBuf> {
        let (cat, event) = rest.split_once(':')?;
        let safe =
            |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0', ':']);
        if !safe(cat) || !safe(event) {
            return None;
        }
        Some(
            self.paths
                .tracefs
                .join("events")
                .join(cat)
                .join(event)
                .join("format"),
        )
    }

    fn tracepoint_fields(&self, rest: &str) -> Option<Vec<Field>> {
        let text = read_text(&self.format_path(rest)?).ok()?;
        Some(tracefs::parse_format(&text))
    }

    /// The answer to a search for one exact tracepoint (`tracepoint:sched:sched_switch`)
    /// while `available_events` is not loaded yet: its `format` file exists, so it is
    /// listed. Every event directory with a `format` file is listed in `available_events`
    /// except the ftrace-internal ones (`ftrace:function`...), which are left to the full
    /// list, as is everything this cannot confirm. Saves reading and indexing
    /// `available_events` (~1.4 ms) when checking a program that names its tracepoints.
    fn exact_tracepoint(&self, rest: &str, limit: usize) -> Option<SearchResult> {
        if self.tracefs.get().is_some() || has_wildcard(rest) || rest.starts_with("ftrace:") {
            return None;
        }
        let is_file = std::fs::metadata(self.format_path(rest)?).is_ok_and(|m| m.is_file());
        if !is_file {
            return None;
        }
        let names = if limit == 0 {
            Vec::new()
        } else {
            vec![format!("{}:{rest}", ProbeType::Tracepoint.name())]
        };
        Some(SearchResult {
            names,
            total_matches: 1,
            warnings: Vec::new(),
        })
    }

    /// The answer to a tracepoint search of two common shapes, from the event directories,
    /// while `available_events` is not loaded yet: one category with an event pattern
    /// (`syscalls:sys_enter_exec*`: that category's directory is listed) and an exact event
    /// in any category (`*:tcp_set_state`, what checking a kprobe asks for alternatives: the
    /// event's `format` file is looked up in every category). Matches count as listed under
    /// the rule of [`Catalog::exact_tracepoint`]; names are tested against the pattern as
    /// the full list would be. Takes ~0.1-0.5 ms where reading and indexing the list takes
    /// ~1-1.4 ms. `None` for other shapes, the ftrace category, anything unreadable, more
    /// matches in one category than [`DIRECTORY_MATCHES_MAX`], and an exact event in any
    /// category once that was looked up before (several of those cost more than the list).
    fn tracepoints_from_directories(&self, rest: &str, limit: usize) -> Option<SearchResult> {
        use std::os::unix::ffi::OsStrExt;
        if self.tracefs.get().is_some() {
            return None;
        }
        let (cat, event) = rest.split_once(':')?;
        let plain =
            |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0', ':']);
        let events = self.paths.tracefs.join("events");
        // Only a mounted tracefs is known to have a directory per listed event; a saved
        // copy of a kernel's description may hold a few of them (test fixtures do).
        let dir = std::fs::File::open(&events).ok()?;
        if !is_tracefs(&dir) {
            return None;
        }
        let wild = WildMatch::new(rest);
        // "category:event" names matching the pattern whose directory exists, to be
        // confirmed below.
        let mut found: Vec<(String, usize)> = Vec::new();
        let mut consider = |c: &str, e: &str| {
            let name = format!("{c}:{e}");
            if tracefs::is_event_name(&name) && wild.matches(&name) {
                found.push((name, c.len()));
            }
        };
        let one_category =
            plain(cat) && !has_wildcard(cat) && has_wildcard(event) && !event.contains(':');
        if one_category {
            if cat == "ftrace" {
                return None;
            }
            for e in std::fs::read_dir(events.join(cat)).ok()? {
                let e = e.ok()?;
                if e.file_type().ok()?.is_dir() {
                    consider(cat, e.file_name().to_str()?);
                }
            }
        } else if cat == "*" && plain(event) && !has_wildcard(event) {
            // Looking in every category costs about half of reading the list: worth it for
            // one such search (a program with one kprobe), not for several.
            if self
                .scanned_categories
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                return None;
            }
            for e in std::fs::read_dir(&events).ok()? {
                let e = e.ok()?;
                let name = e.file_name();
                if name.as_bytes() != b"ftrace" && e.file_type().ok()?.is_dir() {
                    consider(name.to_str()?, event);
                }
            }
        } else {
            return None;
        }
        // Every category is looked at for an exact event (~100 lookups); a category's
        // matches are each confirmed, which costs more than the list beyond a few dozen.
        if one_category && found.len() > DIRECTORY_MATCHES_MAX {
            return None;
        }
        // Paths relative to the events directory, looked up from an open descriptor of it.
        let mut names: Vec<String> = Vec::new();
        for (name, cat_len) in found {
            let (c, e) = (&name[..cat_len], &name[cat_len + 1..]);
            if is_file_at(&dir, &format!("{c}/{e}/format"))? {
                names.push(format!("{}:{name}", ProbeType::Tracepoint.name()));
            }
        }
        names.sort();
        let total_matches = names.len();
        names.truncate(limit);
        Some(SearchResult {
            names,
            total_matches,
            warnings: Vec::new(),
        })
    }
}

/// Whether `file` lives on tracefs (`TRACEFS_MAGIC` in `linux/magic.h`).
fn is_tracefs(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    const TRACEFS_MAGIC: i64 = 0x7472_6163;
    // SAFETY: statfs is plain data, for which all-zero bytes are a valid value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a valid out-pointer.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
        return false;
    }
    // `f_type` is i64 on x86-64 glibc, narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    let fs_type = i64::from(fs.f_type);
    fs_type == TRACEFS_MAGIC
}

/// Whether `rel` names a regular file below the directory `dir`; `None` when that cannot be
/// told (an error other than the file or a directory on its way not existing).
fn is_file_at(dir: &std::fs::File, rel: &str) -> Option<bool> {
    use std::os::fd::AsRawFd;
    let c = std::ffi::CString::new(rel).ok()?;
    // SAFETY: stat is plain data, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, a NUL-terminated path and a valid out-pointer.
    if unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), &mut st, 0) } == 0 {
        return Some(st.st_mode & libc::S_IFMT == libc::S_IFREG);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Some(false),
        _ => None,
    }
}

/// File-path completion for uprobe/usdt targets: directories get a trailing `/`, files a
/// trailing `:` (ready for the function name). Hidden entries only when asked for.
fn complete_path(partial: &str, limit: usize) -> Vec<String> {
    let Some(slash) = partial.rfind('/') else {
        return Vec::new();
    };
    let (dir, stem) = partial.split_at(slash + 1);
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "/" } else { dir }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(stem) || (name.starts_with('.') && !stem.starts_with('.')) {
            continue;
        }
        // Follow symlinks: /lib -> usr/lib is the usual way to reach libraries.
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() {
            out.push(format!("{dir}{name}/"));
        } else if meta.is_file() {
            out.push(format!("{dir}{name}:"));
        }
    }
    out.sort();
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_keeps_text_and_drops_padding() {
        let t = "ffff T vfs_read\nffff t __pfx_vfs_read\nffff D jiffies\n0 t tcp_v4_rcv\t[ipv4]\n\
                 garbage\nffff T vfs_read\nffff t __cfi_x\nffff t tcp_x.cold\nffff t a.isra.0\n";
        let s = parse_kallsyms(t);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            ["a.isra.0", "tcp_v4_rcv", "vfs_read"]
        );
    }

    #[test]
    fn matcher_full_narrows_by_prefix() {
        let set = NameSet::from_names(["vfs_read", "vfs_write", "tcp_connect"]);
        let g = Group {
            prefix: "kprobe:".into(),
            suffix: "",
            names: &set,
        };
        assert_eq!(Matcher::new("kprobe:vfs_*", true).matches(&g).len(), 2);
        assert_eq!(Matcher::new("kfunc:*", true).matches(&g).len(), 0);
        assert_eq!(Matcher::new("*conn*", true).matches(&g), ["tcp_connect"]);
        assert_eq!(Matcher::new("k*", true).matches(&g).len(), 3);
        assert_eq!(Matcher::new("vfs_?ead", false).matches(&g), ["vfs_read"]);
        // Exact names, and literal tails after the last wildcard.
        assert_eq!(Matcher::new("vfs_read", false).matches(&g), ["vfs_read"]);
        assert_eq!(Matcher::new("vfs_rea", false).matches(&g).len(), 0);
        assert_eq!(Matcher::new("*_write", false).matches(&g), ["vfs_write"]);
        assert_eq!(Matcher::new("*c*t", false).matches(&g), ["tcp_connect"]);
        assert_eq!(
            Matcher::new("*:tcp_connect", true).matches(&g),
            ["tcp_connect"]
        );
        assert_eq!(Matcher::new("*conn?", true).matches(&g).len(), 0);
    }

    #[test]
    fn catalog_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Catalog>();
    }
}
