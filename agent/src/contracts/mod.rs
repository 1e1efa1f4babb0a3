//! Contracts of attach points, and rule-based comprehension of a candidate
//! program.
//!
//! A [`Contract`] says what holds whenever one attach point fires: the typed
//! fields or arguments it offers (width, signedness, byte order, units,
//! nullability, what a negative value means) and preconditions written as
//! bpftrace boolean expressions over the probe's context, ready to become
//! `assume(...)` statements. Contracts come from two places:
//!
//! - hand-written TOML in `specs/contracts/` (format in its README), compiled
//!   into the binary and schema-checked when loaded ([`ContractSet`]);
//! - [`derive`]: what tracefs and BTF say mechanically (widths, signedness,
//!   `__be*` byte order), so every tracepoint has at least those.
//!
//! [`ContractSet::contract_for`] merges both for one attach point. [`annotate`]
//! then inserts the contracts' preconditions into a program as `assume(...)`
//! and adds `assert(...)` statements from a few documented rules (`rules`)
//! that compare the program with the request, each annotation recording
//! where it came from. No LLM is involved; the symbolic executor decides the
//! asserts.
//!
//! Code map: `schema` (the TOML format, validation), `error`, `derive`,
//! `expr` (expression helpers: context atoms, substitution), `annotate`
//! (placing annotations in the text), `rules/` (one file per rule).

mod annotate;
mod derive;
mod error;
mod expr;
mod rules;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};
use kgent_frontend::ast::{AttachPoint, ProbeKind, Program};
use kgent_frontend::facts::wildcard_match;
use kgent_frontend::KernelFacts;
use serde::{Deserialize, Serialize};

pub use annotate::{annotate, Annotated, Annotation, AnnotationKind, Origin};
pub use derive::derive;
pub use error::ContractError;
pub use rules::{Rule, RULES};

/// `specs/contracts/*.toml` at build time.
static SHIPPED_CONTRACTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../specs/contracts");

/// What holds whenever one attach point (or, with `*`, every attach point of a
/// family) fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contract {
    /// Canonical spelling (`tracepoint:sock:inet_sock_set_state`,
    /// `kprobe:vfs_read`, `uprobe:libc:malloc`); a `*` makes it a family
    /// contract that applies to every attach point it matches.
    pub attach: String,
    /// What firing means, in one or two sentences.
    pub summary: String,
    /// Where the semantics come from (kernel source file, man page).
    pub source: String,
    /// Why this contract cannot be checked against the kernel the tests run on
    /// (e.g. kprobes are off); `None` when it can.
    pub unchecked: Option<String>,
    pub fields: Vec<FieldSpec>,
    /// Preconditions: each holds whenever the attach point fires.
    pub pre: Vec<Condition>,
    pub origin: ContractOrigin,
}

impl Contract {
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether this is a family contract (its attach point has a `*`).
    pub fn is_pattern(&self) -> bool {
        self.attach.contains('*')
    }

    /// A compact text for people and prompts: the summary, each field with
    /// its type, order, unit and meaning, and the preconditions.
    pub fn describe(&self) -> String {
        let mut out = format!("{}: {}", self.attach, self.summary);
        if let Some(why) = &self.unchecked {
            out.push_str(&format!(" (not checkable here: {why})"));
        }
        for f in self.fields.iter().filter(|f| !f.meaning.is_empty()) {
            let name = if f.name == "retval" || (f.name.starts_with("arg") && f.c_name.is_some()) {
                f.name.clone()
            } else {
                format!("args->{}", f.name)
            };
            let mut traits = vec![f.c_type.clone()];
            match f.byte_order {
                FieldOrder::Host => {}
                FieldOrder::Network => traits.push("network byte order".to_string()),
                FieldOrder::Bytes => traits.push("wire bytes".to_string()),
            }
            if let Some(u) = f.unit {
                traits.push(u.as_str().to_string());
            }
            if f.errno {
                traits.push("negative = -errno".to_string());
            }
            if f.nullable == Some(true) {
                traits.push("may be NULL".to_string());
            }
            out.push_str(&format!(
                "\n  {name} ({}): {}",
                traits.join(", "),
                f.meaning
            ));
            if !f.values.is_empty() {
                let values: Vec<String> =
                    f.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!(" [{}]", values.join(", ")));
            }
        }
        for p in &self.pre {
            out.push_str(&format!("\n  always: {}  ({})", p.expr, p.why));
        }
        out
    }

    /// Whether this contract applies to `attach` (canonical spelling).
    pub fn applies_to(&self, attach: &str) -> bool {
        if self.is_pattern() {
            wildcard_match(&self.attach, attach)
        } else {
            self.attach == attach
        }
    }
}

/// Where a contract came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractOrigin {
    /// A `[[contract]]` table of a file in `specs/contracts/`.
    File { path: String, line: u32 },
    /// [`derive`]: from tracefs and BTF.
    Derived,
    /// [`ContractSet::contract_for`]: derived facts and the hand-written
    /// contracts that apply, merged.
    Merged,
}

/// One field of a tracepoint or kfunc (`args->NAME`), or one argument of a
/// kprobe, uprobe or USDT probe (`arg0`...) or its return value (`retval`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldSpec {
    /// As the program names it: `family` (read as `args->family`), `arg1`, `retval`.
    pub name: String,
    /// The C parameter behind `argN` (`count` for `vfs_read`'s `arg2`).
    pub c_name: Option<String>,
    /// As tracefs or the kernel source spells it (`__u16`, `const char *`, `__u8[4]`).
    pub c_type: String,
    /// Bytes, as tracefs reports them (a system call argument is 8 whatever its C type).
    pub size: u64,
    pub signed: bool,
    pub pointer: bool,
    pub byte_order: FieldOrder,
    /// Pointers only: whether it can be NULL when the probe fires (`None`: not said).
    pub nullable: Option<bool>,
    pub unit: Option<Unit>,
    /// A negative value is `-errno` (a failed call), not a count.
    pub errno: bool,
    /// Named values (`AF_INET = 2`), for people and for rules.
    pub values: BTreeMap<String, i64>,
    pub meaning: String,
    /// From tracefs/BTF by [`derive`], not written by hand.
    pub derived: bool,
}

/// The byte order of a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldOrder {
    /// An integer in the CPU's order: arithmetic and `%d` are right.
    Host,
    /// A `__be16`/`__be32`/`__be64` integer: convert with `bswap()` before
    /// arithmetic or `%d`.
    Network,
    /// An array of bytes laid out as on the wire (an IPv4/IPv6 address, a raw
    /// `sockaddr`): print addresses with `ntop()`; multi-byte numbers inside are
    /// in network order.
    Bytes,
}

/// The unit of a numeric field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Ns,
    Us,
    Ms,
    S,
    Bytes,
    Kib,
    /// Pages of `PAGE_SIZE` bytes (4096 on x86_64).
    Pages,
    /// 512-byte sectors, whatever the device's block size.
    Sectors,
    Jiffies,
    /// `clock_t` ticks (`USER_HZ`, 100 per second on Linux).
    ClockTicks,
    Count,
}

impl Unit {
    /// Nanoseconds per unit, for durations.
    pub fn scale_ns(self) -> Option<u64> {
        Some(match self {
            Unit::Ns => 1,
            Unit::Us => 1_000,
            Unit::Ms => 1_000_000,
            Unit::S => 1_000_000_000,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "us",
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::Bytes => "bytes",
            Unit::Kib => "kib",
            Unit::Pages => "pages",
            Unit::Sectors => "sectors",
            Unit::Jiffies => "jiffies",
            Unit::ClockTicks => "clock_ticks",
            Unit::Count => "count",
        }
    }
}

/// One precondition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// A bpftrace boolean expression over the probe's context
    /// (`args->family == 2 || args->family == 10`).
    pub expr: String,
    pub why: String,
    /// The contract it belongs to (a family contract's pattern, or the attach point).
    pub attach: String,
    pub origin: ConditionOrigin,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionOrigin {
    /// Written by hand at this place.
    File { path: String, line: u32 },
    /// From a field's type (width, signedness).
    Derived,
}

/// The hand-written contracts, loaded and checked.
#[derive(Clone, Debug, Default)]
pub struct ContractSet {
    contracts: Vec<Contract>,
    /// Exact (non-pattern) attach point -> index.
    exact: BTreeMap<String, usize>,
}

impl ContractSet {
    /// The contracts compiled into this binary (`specs/contracts/*.toml`).
    pub fn shipped() -> Result<ContractSet, ContractError> {
        let files = SHIPPED_CONTRACTS.files().filter_map(|f| {
            let path = f.path();
            if path.extension().is_none_or(|x| x != "toml") {
                return None;
            }
            let text = f.contents_utf8().unwrap_or_default().to_string();
            Some((Path::new("specs/contracts").join(path), text))
        });
        ContractSet::from_files(files)
    }

    /// Every `*.toml` file of `dir`.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<ContractSet, ContractError> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|e| ContractError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| ContractError::Io {
                path: path.clone(),
                message: e.to_string(),
            })?;
            files.push((path, text));
        }
        ContractSet::from_files(files)
    }

    /// Parses and checks `(path, text)` pairs. Every problem of every file is
    /// reported, each with its file and line.
    pub fn from_files(
        files: impl IntoIterator<Item = (PathBuf, String)>,
    ) -> Result<ContractSet, ContractError> {
        let mut files: Vec<(PathBuf, String)> = files.into_iter().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut set = ContractSet::default();
        let mut errors = Vec::new();
        let mut seen: BTreeMap<String, (String, u32)> = BTreeMap::new();
        for (path, text) in &files {
            let display = path.display().to_string();
            match schema::parse_file(&display, text) {
                Ok(contracts) => {
                    for c in contracts {
                        let (cpath, cline) = match &c.origin {
                            ContractOrigin::File { path, line } => (path.clone(), *line),
                            _ => (display.clone(), 0),
                        };
                        if let Some((p, l)) = seen.get(&c.attach) {
                            errors.push(ContractError::Invalid {
                                file: cpath,
                                line: cline,
                                message: format!(
                                    "`{}` already has a contract at {p}:{l}",
                                    c.attach
                                ),
                            });
                            continue;
                        }
                        seen.insert(c.attach.clone(), (cpath, cline));
                        if !c.is_pattern() {
                            set.exact.insert(c.attach.clone(), set.contracts.len());
                        }
                        set.contracts.push(c);
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        match errors.len() {
            0 => Ok(set),
            1 => Err(errors.remove(0)),
            _ => Err(ContractError::Several(errors)),
        }
    }

    /// Every hand-written contract, family contracts included, in file order.
    pub fn contracts(&self) -> &[Contract] {
        &self.contracts
    }

    pub fn len(&self) -> usize {
        self.contracts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.contracts.is_empty()
    }

    /// The hand-written contract of exactly this attach point (canonical spelling).
    pub fn exact(&self, attach: &str) -> Option<&Contract> {
        self.exact.get(attach).map(|&i| &self.contracts[i])
    }

    /// The hand-written contracts that apply to `attach`: family contracts
    /// first (in file order), the exact one last.
    pub fn applying(&self, attach: &str) -> Vec<&Contract> {
        let mut out: Vec<&Contract> = self
            .contracts
            .iter()
            .filter(|c| c.is_pattern() && c.applies_to(attach))
            .collect();
        out.extend(self.exact(attach));
        out
    }

    /// Everything known about one concrete attach point (canonical spelling):
    /// what [`derive`] finds in tracefs/BTF, overlaid with the hand-written
    /// contracts that apply. A hand-written field replaces the derived field of
    /// that name; derived width conditions on a field the hand-written
    /// conditions already speak about are dropped as redundant.
    pub fn contract_for(&self, attach: &str, facts: &dyn KernelFacts) -> Contract {
        derive::merge(derive(attach, facts), &self.applying(attach))
    }

    /// [`Contract::describe`] for every attach point `program` uses, once
    /// each: what the model is shown when it annotates the program. A
    /// wildcard gets the hand-written contracts that apply to it.
    pub fn describe_program(&self, program: &Program, facts: &dyn KernelFacts) -> String {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for ap in program.probes().flat_map(|p| &p.attach_points) {
            let canonical = canonical_attach(ap);
            if !seen.insert(canonical.clone()) {
                continue;
            }
            if ap.wildcard {
                out.extend(self.applying(&canonical).iter().map(|c| c.describe()));
            } else {
                out.push(self.contract_for(&canonical, facts).describe());
            }
        }
        out.join("\n")
    }
}

/// Whether the condition `text` reads nothing (no field, builtin, variable
/// or map): a rule's substituted condition such as `10 == 2`. Its verdict
/// is the same for every event, so a counterexample's inputs say nothing.
pub fn is_constant_condition(text: &str) -> bool {
    expr::parse_expr(text).is_some_and(|e| {
        let mut read = std::collections::BTreeSet::new();
        expr::atoms(&e, &mut read);
        read.is_empty() && !expr::reads_state(&e)
    })
}

/// The canonical spelling of an attach point as contracts name it: the
/// provider's full name as bpftrace 0.17 spells it (`t` -> `tracepoint`,
/// `kfunc`, `kretfunc`), quotes removed, and a shared library given by path
/// shortened to its name (`/lib/x86_64-linux-gnu/libc.so.6` -> `libc`), so
/// `uprobe:libc:malloc` and its full-path spelling share a contract.
pub fn canonical_attach(ap: &AttachPoint) -> String {
    let provider = match ap.kind {
        Some(kind) => canonical_provider(kind),
        None => ap.provider.as_str(),
    };
    let mut parts: Vec<String> = ap.parts.iter().map(|p| p.value.clone()).collect();
    if matches!(
        ap.kind,
        Some(ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Usdt)
    ) {
        if let Some(target) = parts.first_mut() {
            *target = library_name(target);
        }
    }
    if parts.is_empty() {
        provider.to_string()
    } else {
        format!("{provider}:{}", parts.join(":"))
    }
}

/// [`canonical_attach`] of an attach point given as text; `None` when it
/// does not parse as one attach point.
pub fn canonical_attach_text(text: &str) -> Option<String> {
    let parsed = kgent_frontend::parse(&format!("{text} {{ }}"));
    if parsed.has_errors() {
        return None;
    }
    let probe = parsed.program.probes().next()?;
    match probe.attach_points.as_slice() {
        [ap] => Some(canonical_attach(ap)),
        _ => None,
    }
}

/// bpftrace 0.17's name for a provider (`fentry` is spelled `kfunc` there).
fn canonical_provider(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Fentry => "kfunc",
        ProbeKind::Fexit => "kretfunc",
        other => other.as_str(),
    }
}

/// `libc` for `/lib/x86_64-linux-gnu/libc.so.6`; anything else unchanged.
fn library_name(target: &str) -> String {
    let file = target.rsplit('/').next().unwrap_or(target);
    match file.find(".so") {
        Some(i) if target.contains('/') && file.starts_with("lib") && i > 3 => {
            file[..i].to_string()
        }
        _ => target.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_points_have_one_spelling() {
        let c = |t: &str| canonical_attach_text(t).unwrap();
        assert_eq!(
            c("t:sock:inet_sock_set_state"),
            "tracepoint:sock:inet_sock_set_state"
        );
        assert_eq!(
            c("uprobe:/lib/x86_64-linux-gnu/libc.so.6:malloc"),
            "uprobe:libc:malloc"
        );
        assert_eq!(
            c("uretprobe:/bin/bash:readline"),
            "uretprobe:/bin/bash:readline"
        );
        assert_eq!(
            c("usdt:\"/lib/x86_64-linux-gnu/libstdc++.so.6\":libstdcxx:throw"),
            "usdt:libstdc++:libstdcxx:throw"
        );
        assert_eq!(c("fentry:vfs_open"), "kfunc:vfs_open");
        assert_eq!(c("kretfunc:tcp_recvmsg"), "kretfunc:tcp_recvmsg");
        assert_eq!(c("BEGIN"), "BEGIN");
        assert_eq!(c("i:s:1"), "interval:s:1");
        assert_eq!(canonical_attach_text("BEGIN, END"), None);
    }

    #[test]
    fn the_shipped_contracts_load() {
        let set = ContractSet::shipped().unwrap_or_else(|e| panic!("{e}"));
        assert!(set.len() >= 150, "{} contracts", set.len());
        let c = set.exact("tracepoint:sock:inet_sock_set_state").unwrap();
        assert_eq!(c.field("sport").unwrap().byte_order, FieldOrder::Host);
        assert!(c
            .pre
            .iter()
            .any(|p| p.expr == "args->family == 2 || args->family == 10"));
        // A family contract applies to its members, with the exact one last.
        let applying = set.applying("tracepoint:syscalls:sys_exit_read");
        assert!(applying.len() >= 2);
        assert!(applying[0].is_pattern());
        assert_eq!(
            applying.last().unwrap().attach,
            "tracepoint:syscalls:sys_exit_read"
        );
    }

    #[test]
    fn a_contract_describes_itself_for_prompts() {
        let set = ContractSet::shipped().unwrap();
        let text = set
            .contract_for(
                "tracepoint:syscalls:sys_exit_read",
                &kgent_frontend::StaticFacts::default(),
            )
            .describe();
        assert!(
            text.starts_with("tracepoint:syscalls:sys_exit_read: read(2) returns."),
            "{text}"
        );
        assert!(
            text.contains("args->ret (long, bytes, negative = -errno):"),
            "{text}"
        );
        assert!(
            text.contains("always: args->ret >= -4095 && args->ret <= 2147479552"),
            "{text}"
        );
        assert!(text.contains("always: pid > 0"), "{text}");
    }

    #[test]
    fn a_program_s_contracts_are_described_once_each() {
        let set = ContractSet::shipped().unwrap();
        let src = "tracepoint:syscalls:sys_exit_read, tracepoint:syscalls:sys_exit_read { }\n\
                   tracepoint:syscalls:sys_enter_openat { }";
        let parsed = kgent_frontend::parse(src);
        let text = set.describe_program(&parsed.program, &kgent_frontend::StaticFacts::default());
        assert_eq!(
            text.matches("tracepoint:syscalls:sys_exit_read:").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("tracepoint:syscalls:sys_enter_openat:"),
            "{text}"
        );
    }

    #[test]
    fn constant_conditions_read_nothing() {
        assert!(is_constant_condition("10 == 2"));
        assert!(is_constant_condition("10 == 2 || !(10 == 2)"));
        assert!(!is_constant_condition("args->family == 2"));
        assert!(!is_constant_condition("$ms > 0"));
        assert!(!is_constant_condition("pid > 0"));
        assert!(!is_constant_condition("not an expression =="));
    }

    #[test]
    fn the_compiled_contracts_are_the_ones_in_specs() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/contracts");
        let from_dir = ContractSet::load_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        let shipped = ContractSet::shipped().unwrap();
        let attach = |s: &ContractSet| -> Vec<String> {
            s.contracts().iter().map(|c| c.attach.clone()).collect()
        };
        assert_eq!(attach(&from_dir), attach(&shipped));
    }
}
