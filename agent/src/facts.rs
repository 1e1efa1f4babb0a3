//! The checker's kernel facts from the live catalog: [`CatalogFacts`]
//! answers `kgent_frontend::KernelFacts` from tracefs, kallsyms, BTF and ELF
//! files (through `kgent_catalog::Catalog`) and from the measured probe-type
//! support (`kgent_catalog::Capabilities`).
//!
//! Answers that cost more than a lookup (field lists, struct members, probe
//! searches, the name lists behind "did you mean") are cached for the life
//! of the value, so build one per kernel session and share it. Uprobe
//! searches are not cached here: the catalog re-reads a binary that changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kgent_catalog::btf::{BtfTypes, Kind, TypeData, TypeId};
use kgent_catalog::{Capabilities, Catalog, ProbeType, Support};
use kgent_frontend::ast::ProbeKind;
use kgent_frontend::facts::similar_names;
use kgent_frontend::{
    suggest, ByteOrder, FieldInfo, KernelFacts, MatchProblem, MemberLookup, ProbeMatches,
    ProbeSupport, RecordKind, RecordRef,
};

/// Typedef names that mark a value as big endian.
const NETWORK_ORDER_TYPEDEFS: &[&str] = &["__be16", "__be32", "__be64", "__sum16"];

/// Chains of typedefs, qualifiers and arrays longer than this are not followed.
const MAX_CHAIN: usize = 32;

/// Records whose member lists are cached at most (each a few KB).
const RECORD_CACHE_MAX: usize = 512;

/// Kernel facts for the checker, from the running kernel's catalog.
pub struct CatalogFacts {
    pub catalog: Arc<Catalog>,
    /// Measured probe-type support; without it every probe type is "unknown".
    pub caps: Option<Arc<Capabilities>>,
    cache: Caches,
}

impl std::fmt::Debug for CatalogFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The caches can hold thousands of names: leave them out.
        f.debug_struct("CatalogFacts")
            .field("catalog", &self.catalog)
            .field("caps", &self.caps.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Caches {
    fields: Mutex<HashMap<String, Option<Vec<FieldInfo>>>>,
    records: Mutex<HashMap<RecordRef, Option<Vec<FieldInfo>>>>,
    matches: Mutex<HashMap<(String, usize), ProbeMatches>>,
    /// Uprobe targets given by name (`libc`) -> the file they resolved to.
    targets: Mutex<HashMap<String, String>>,
    /// All names per provider (`tracepoint`, `kprobe`, `kfunc`), for "did you mean".
    names: Mutex<HashMap<&'static str, Arc<Vec<String>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a cache lock leaves only a cache behind; keep using it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CatalogFacts {
    pub fn new(catalog: Arc<Catalog>, caps: Option<Arc<Capabilities>>) -> CatalogFacts {
        CatalogFacts {
            catalog,
            caps,
            cache: Caches::default(),
        }
    }

    fn btf(&self) -> Option<&BtfTypes> {
        self.catalog.btf_types()
    }

    fn record_id(&self, record: &RecordRef) -> Option<TypeId> {
        let kind = match record.kind {
            RecordKind::Struct => Kind::Struct,
            RecordKind::Union => Kind::Union,
        };
        self.btf()?.find_by_name(kind, &record.name)
    }

    /// Every name of a kernel-wide provider, cached (on the "did you mean" path only).
    fn all_names(&self, provider: &'static str) -> Arc<Vec<String>> {
        if let Some(hit) = lock(&self.cache.names).get(provider) {
            return Arc::clone(hit);
        }
        let found = self
            .catalog
            .search(&format!("{provider}:*"), usize::MAX)
            .names
            .into_iter()
            .filter_map(|n| Some(n.strip_prefix(provider)?.strip_prefix(':')?.to_string()))
            .collect();
        let found = Arc::new(found);
        lock(&self.cache.names).insert(provider, Arc::clone(&found));
        found
    }

    /// A field of C type `c_type` (as tracefs or BTF spell it), with pointer,
    /// record and byte order worked out through BTF typedefs.
    fn field_from_c_type(&self, name: &str, c_type: &str, size: u64, signed: bool) -> FieldInfo {
        let base = c_type.split('[').next().unwrap_or(c_type);
        let mut t = base.trim();
        for q in ["const ", "volatile "] {
            t = t.trim_start_matches(q).trim();
        }
        let stars = t.matches('*').count();
        let bare = t.trim_end_matches(|c: char| c == '*' || c == ' ' || c.is_whitespace());
        let bare = bare.trim_end_matches(" const").trim();
        let mut info = FieldInfo {
            name: name.to_string(),
            c_type: c_type.to_string(),
            size,
            signed,
            pointer: stars > 0,
            byte_order: ByteOrder::Host,
            record: None,
        };
        if let Some(r) = RecordRef::parse(bare) {
            if stars <= 1 {
                info.record = Some(r);
            }
            return info;
        }
        if NETWORK_ORDER_TYPEDEFS.contains(&bare) && stars == 0 {
            info.byte_order = ByteOrder::Network;
        }
        // C's own integer types hide nothing; only typedefs need BTF (and reading BTF
        // costs milliseconds in a short-lived `kgent check`).
        if is_plain_c_type(bare) {
            return info;
        }
        // A typedef may hide a pointer, a record or a network-order type.
        if let Some(btf) = self.btf() {
            if let Some(id) = btf.find_by_name(Kind::Typedef, bare) {
                let inner = self.field_from_type(btf, name, id);
                if stars == 0 {
                    info.pointer |= inner.pointer;
                    info.byte_order = inner.byte_order;
                    info.record = inner.record;
                } else if stars == 1 && !inner.pointer {
                    info.record = inner.record;
                }
            }
        }
        info
    }

    /// A member or parameter of BTF type `ty`.
    fn field_from_type(&self, btf: &BtfTypes, name: &str, ty: TypeId) -> FieldInfo {
        let mut info = FieldInfo {
            name: name.to_string(),
            c_type: btf.type_name(ty),
            size: btf.size_of(ty).unwrap_or(0),
            signed: false,
            pointer: false,
            byte_order: ByteOrder::Host,
            record: None,
        };
        let mut id = ty;
        for _ in 0..MAX_CHAIN {
            let Ok(t) = btf.type_by_id(id) else { break };
            match t.data {
                TypeData::Typedef(next) => {
                    if NETWORK_ORDER_TYPEDEFS.contains(&t.name) {
                        info.byte_order = ByteOrder::Network;
                    }
                    id = next;
                }
                TypeData::Const(next)
                | TypeData::Volatile(next)
                | TypeData::Restrict(next)
                | TypeData::TypeTag(next) => id = next,
                TypeData::Array(a) => id = a.elem,
                TypeData::Ptr(target) => {
                    info.pointer = true;
                    info.record = btf.resolve(target).ok().and_then(|r| record_ref(btf, r));
                    break;
                }
                TypeData::Struct(_) | TypeData::Union(_) => {
                    info.record = record_ref(btf, id);
                    break;
                }
                TypeData::Int(i) => {
                    info.signed = i.signed;
                    break;
                }
                TypeData::Enum(e) | TypeData::Enum64(e) => {
                    info.signed = e.signed;
                    break;
                }
                _ => break,
            }
        }
        info
    }

    fn members_of(&self, btf: &BtfTypes, id: TypeId, depth: usize, out: &mut Vec<FieldInfo>) {
        if depth > MAX_CHAIN {
            return;
        }
        let Ok(id) = btf.resolve(id) else { return };
        let members = match btf.type_by_id(id).map(|t| t.data) {
            Ok(TypeData::Struct(c) | TypeData::Union(c)) => c.members(),
            _ => return,
        };
        for m in members {
            if m.name.is_empty() {
                // Anonymous struct/union: its members are named as if they were ours.
                self.members_of(btf, m.ty, depth + 1, out);
            } else {
                out.push(self.field_from_type(btf, m.name, m.ty));
            }
        }
    }

    /// A uprobe/usdt search with library names (`libc`) resolved once to
    /// their path: the catalog resolves a name by listing the library
    /// directories (~0.4 ms), a path by one `stat`. The catalog still checks
    /// that the file is there and unchanged.
    fn search_user_space(&self, pattern: &str, limit: usize) -> kgent_catalog::SearchResult {
        let Some((provider, rest)) = pattern.split_once(':') else {
            return self.catalog.search(pattern, limit);
        };
        let Some((target, func)) = rest.split_once(':') else {
            return self.catalog.search(pattern, limit);
        };
        if target.contains(['/', '*', '?']) {
            return self.catalog.search(pattern, limit);
        }
        let known = lock(&self.cache.targets).get(target).cloned();
        if let Some(path) = known {
            let r = self
                .catalog
                .search(&format!("{provider}:{path}:{func}"), limit);
            if !r.warnings.iter().any(|w| w.starts_with(TARGET_MISSING)) {
                return r;
            }
            lock(&self.cache.targets).remove(target);
        }
        let r = self.catalog.search(pattern, limit);
        let path = match r.names.first() {
            Some(name) => name
                .strip_prefix(provider)
                .and_then(|n| n.strip_prefix(':'))
                .and_then(|n| n.rsplit_once(':'))
                .map(|(p, _)| p.to_string()),
            // No match: learn the path from any function of the file.
            None if r.warnings.is_empty() => self
                .catalog
                .search(&format!("uprobe:{target}:*"), 1)
                .names
                .first()
                .and_then(|n| n.strip_prefix("uprobe:")?.rsplit_once(':'))
                .map(|(p, _)| p.to_string()),
            None => None,
        };
        if let Some(path) = path {
            let mut targets = lock(&self.cache.targets);
            if targets.len() > 256 {
                targets.clear();
            }
            targets.insert(target.to_string(), path);
        }
        r
    }
}

fn record_ref(btf: &BtfTypes, id: TypeId) -> Option<RecordRef> {
    let t = btf.type_by_id(id).ok()?;
    let kind = match t.data {
        TypeData::Struct(_) => RecordKind::Struct,
        TypeData::Union(_) => RecordKind::Union,
        TypeData::Fwd { is_union } => {
            if is_union {
                RecordKind::Union
            } else {
                RecordKind::Struct
            }
        }
        _ => return None,
    };
    (!t.name.is_empty()).then(|| RecordRef::new(kind, t.name))
}

fn probe_type(kind: ProbeKind) -> Option<ProbeType> {
    Some(match kind {
        ProbeKind::Begin => ProbeType::Begin,
        ProbeKind::End => ProbeType::End,
        ProbeKind::Kprobe => ProbeType::Kprobe,
        ProbeKind::Kretprobe => ProbeType::Kretprobe,
        ProbeKind::Uprobe => ProbeType::Uprobe,
        ProbeKind::Uretprobe => ProbeType::Uretprobe,
        ProbeKind::Usdt => ProbeType::Usdt,
        ProbeKind::Tracepoint => ProbeType::Tracepoint,
        ProbeKind::Rawtracepoint => ProbeType::Rawtracepoint,
        ProbeKind::Profile => ProbeType::Profile,
        ProbeKind::Interval => ProbeType::Interval,
        ProbeKind::Software => ProbeType::Software,
        ProbeKind::Hardware => ProbeType::Hardware,
        ProbeKind::Fentry => ProbeType::Kfunc,
        ProbeKind::Fexit => ProbeType::Kretfunc,
        ProbeKind::Watchpoint
        | ProbeKind::Asyncwatchpoint
        | ProbeKind::Iter
        | ProbeKind::SelfProbe => return None,
    })
}

const TARGET_MISSING: &str = "uprobe/usdt target not found: ";

impl KernelFacts for CatalogFacts {
    fn probe_support(&self, kind: ProbeKind) -> ProbeSupport {
        let (Some(caps), Some(pt)) = (&self.caps, probe_type(kind)) else {
            return ProbeSupport::Unknown;
        };
        match caps.probes.get(&pt) {
            Some(Support::Works) => ProbeSupport::Works,
            Some(Support::Fails { reason }) => ProbeSupport::Unsupported {
                reason: reason.clone(),
                alternatives: kgent_catalog::alternatives(pt, caps),
            },
            Some(Support::NotTested { .. }) | None => ProbeSupport::Unknown,
        }
    }

    fn matching_probes(&self, pattern: &str, limit: usize) -> ProbeMatches {
        let user_space = pattern.starts_with("uprobe:")
            || pattern.starts_with("uretprobe:")
            || pattern.starts_with("usdt:");
        let key = (pattern.to_string(), limit);
        if !user_space {
            if let Some(hit) = lock(&self.cache.matches).get(&key) {
                return hit.clone();
            }
        }
        let r = if user_space {
            self.search_user_space(pattern, limit)
        } else {
            self.catalog.search(pattern, limit)
        };
        let problem = if let Some(t) = r
            .warnings
            .iter()
            .find_map(|w| w.strip_prefix(TARGET_MISSING))
        {
            Some(MatchProblem::TargetMissing(t.to_string()))
        } else if r.total_matches == 0 && !r.warnings.is_empty() {
            Some(MatchProblem::Unknowable(r.warnings.join("; ")))
        } else {
            None
        };
        let m = ProbeMatches {
            names: r.names,
            total: r.total_matches,
            problem,
        };
        if !user_space {
            let mut cache = lock(&self.cache.matches);
            if cache.len() > 4096 {
                cache.clear();
            }
            cache.insert(key, m.clone());
        }
        m
    }

    fn similar_probes(&self, name: &str, limit: usize) -> Vec<String> {
        let Some((provider, rest)) = name.split_once(':') else {
            return Vec::new();
        };
        let set: &'static str = match ProbeKind::from_provider(provider) {
            Some(ProbeKind::Tracepoint) => "tracepoint",
            Some(ProbeKind::Kprobe | ProbeKind::Kretprobe) => "kprobe",
            Some(ProbeKind::Fentry | ProbeKind::Fexit) => "kfunc",
            Some(ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Usdt) => {
                // Functions of that one binary; the target resolves to its path.
                let Some((target, func)) = rest.split_once(':') else {
                    return Vec::new();
                };
                let all = self.search_user_space(&format!("{provider}:{target}:*"), usize::MAX);
                let Some(path) = all
                    .names
                    .first()
                    .and_then(|n| n.strip_prefix(provider)?.strip_prefix(':'))
                    .and_then(|r| r.rsplit_once(':').map(|(p, _)| p.to_string()))
                else {
                    return Vec::new();
                };
                let prefix = format!("{provider}:{path}:");
                let funcs: Vec<&str> = all
                    .names
                    .iter()
                    .filter_map(|n| n.strip_prefix(&prefix))
                    .collect();
                return suggest::nearest(func, funcs, limit)
                    .into_iter()
                    .map(|f| format!("{prefix}{f}"))
                    .collect();
            }
            _ => return Vec::new(),
        };
        let all = self.all_names(set);
        let candidates: Vec<&str> = all.iter().map(String::as_str).collect();
        similar_names(rest, &candidates, limit)
            .into_iter()
            .map(|n| format!("{provider}:{n}"))
            .collect()
    }

    fn probe_fields(&self, probe: &str) -> Option<Vec<FieldInfo>> {
        if let Some(hit) = lock(&self.cache.fields).get(probe) {
            return hit.clone();
        }
        let fields = self.catalog.fields(probe).map(|pf| {
            pf.fields
                .iter()
                .filter(|f| f.name != "...")
                .map(|f| self.field_from_c_type(&f.name, &f.c_type, f.size as u64, f.signed))
                .collect::<Vec<_>>()
        });
        lock(&self.cache.fields).insert(probe.to_string(), fields.clone());
        fields
    }

    fn types_available(&self) -> bool {
        self.btf().is_some()
    }

    fn record_fields(&self, record: &RecordRef) -> Option<Vec<FieldInfo>> {
        if let Some(hit) = lock(&self.cache.records).get(record) {
            return hit.clone();
        }
        let fields = self.btf().and_then(|btf| {
            let id = self.record_id(record)?;
            let mut out = Vec::new();
            self.members_of(btf, id, 0, &mut out);
            Some(out)
        });
        let mut cache = lock(&self.cache.records);
        if cache.len() >= RECORD_CACHE_MAX {
            cache.clear();
        }
        cache.insert(record.clone(), fields.clone());
        fields
    }

    fn member(&self, record: &RecordRef, member: &str) -> MemberLookup {
        let Some(btf) = self.btf() else {
            return MemberLookup::UnknownRecord;
        };
        let Some(id) = self.record_id(record) else {
            return MemberLookup::UnknownRecord;
        };
        match btf.member_by_name(id, member) {
            Ok(Some(m)) => MemberLookup::Found(self.field_from_type(btf, member, m.ty)),
            Ok(None) => MemberLookup::Missing,
            Err(_) => MemberLookup::UnknownRecord,
        }
    }

    fn typedef_target(&self, name: &str) -> Option<String> {
        let btf = self.btf()?;
        let id = btf.find_by_name(Kind::Typedef, name)?;
        match btf.type_by_id(id).ok()?.data {
            TypeData::Typedef(target) => Some(btf.type_name(target)),
            _ => None,
        }
    }

    fn enum_constant(&self, name: &str) -> Option<i128> {
        // An index of enumerator names, not a map of all ~19k values: building that map
        // meant decoding every BTF type (~10 ms) in a short-lived `kgent check`.
        self.btf()?.enum_value(name)
    }
}

/// Built-in C type names (any order of `unsigned`/`signed`/`long`/`short`/`int`/`char`...).
fn is_plain_c_type(name: &str) -> bool {
    !name.is_empty()
        && name.split_whitespace().all(|w| {
            matches!(
                w,
                "unsigned"
                    | "signed"
                    | "char"
                    | "short"
                    | "int"
                    | "long"
                    | "_Bool"
                    | "bool"
                    | "void"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_type_has_a_kind() {
        let mapped: Vec<ProbeType> = ProbeKind::SPELLINGS
            .iter()
            .filter_map(|(_, k)| probe_type(*k))
            .collect();
        for pt in ProbeType::ALL {
            assert!(mapped.contains(&pt), "{pt} has no ProbeKind");
        }
    }
}
