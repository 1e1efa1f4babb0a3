//! What tracing works here: bpftrace, tracefs, privileges, and which probe types really attach
//! (measured by running bpftrace), plus `kgent doctor` lines and alternatives for failing types.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::btf::BtfIndex;
use crate::elf::{resolve_target, ElfProbes};
use crate::error::CatalogError;

/// Where tracefs is mounted on current kernels, and where [`mount_tracefs`] mounts it.
pub const TRACEFS_MOUNT_POINT: &str = "/sys/kernel/tracing";
const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";
/// A probe run is killed after this long; a healthy one takes ~0.5 s.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// `bpftrace --version` is killed after this long.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);
/// Stderr line every bpftrace run prints where the memlock limit cannot be raised; harmless.
const MEMLOCK_NOISE: &str = "couldn't set RLIMIT_MEMLOCK";

/// A bpftrace probe type (the provider before the first colon).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProbeType {
    /// `tracepoint:` / `t:`
    Tracepoint,
    /// `kprobe:` / `k:`
    Kprobe,
    /// `kretprobe:` / `kr:`
    Kretprobe,
    /// `kfunc:` / `f:` (fentry)
    Kfunc,
    /// `kretfunc:` / `fr:` (fexit)
    Kretfunc,
    /// `rawtracepoint:` / `rt:`
    Rawtracepoint,
    /// `uprobe:` / `u:`
    Uprobe,
    /// `uretprobe:` / `ur:`
    Uretprobe,
    /// `usdt:` / `U:`
    Usdt,
    /// `profile:` / `p:`
    Profile,
    /// `interval:` / `i:`
    Interval,
    /// `software:` / `s:`
    Software,
    /// `hardware:` / `h:`
    Hardware,
    /// `BEGIN`
    Begin,
    /// `END`
    End,
}

impl ProbeType {
    /// Every probe type, in declaration order.
    pub const ALL: [ProbeType; 15] = [
        ProbeType::Tracepoint,
        ProbeType::Kprobe,
        ProbeType::Kretprobe,
        ProbeType::Kfunc,
        ProbeType::Kretfunc,
        ProbeType::Rawtracepoint,
        ProbeType::Uprobe,
        ProbeType::Uretprobe,
        ProbeType::Usdt,
        ProbeType::Profile,
        ProbeType::Interval,
        ProbeType::Software,
        ProbeType::Hardware,
        ProbeType::Begin,
        ProbeType::End,
    ];

    /// Parses a provider as bpftrace does, including its short aliases (`t`, `k`, `kr`, `u`,
    /// `ur`, `f`, `fr`, `p`, `i`, `s`, `h`, `U`, `rt`) and the newer `fentry`/`fexit` spellings.
    pub fn from_provider(s: &str) -> Option<ProbeType> {
        Some(match s {
            "tracepoint" | "t" => ProbeType::Tracepoint,
            "kprobe" | "k" => ProbeType::Kprobe,
            "kretprobe" | "kr" => ProbeType::Kretprobe,
            "kfunc" | "f" | "fentry" => ProbeType::Kfunc,
            "kretfunc" | "fr" | "fexit" => ProbeType::Kretfunc,
            "rawtracepoint" | "rt" => ProbeType::Rawtracepoint,
            "uprobe" | "u" => ProbeType::Uprobe,
            "uretprobe" | "ur" => ProbeType::Uretprobe,
            "usdt" | "U" => ProbeType::Usdt,
            "profile" | "p" => ProbeType::Profile,
            "interval" | "i" => ProbeType::Interval,
            "software" | "s" => ProbeType::Software,
            "hardware" | "h" => ProbeType::Hardware,
            "BEGIN" => ProbeType::Begin,
            "END" => ProbeType::End,
            _ => return None,
        })
    }

    /// The canonical provider name as bpftrace prints it (`tracepoint`, `BEGIN`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            ProbeType::Tracepoint => "tracepoint",
            ProbeType::Kprobe => "kprobe",
            ProbeType::Kretprobe => "kretprobe",
            ProbeType::Kfunc => "kfunc",
            ProbeType::Kretfunc => "kretfunc",
            ProbeType::Rawtracepoint => "rawtracepoint",
            ProbeType::Uprobe => "uprobe",
            ProbeType::Uretprobe => "uretprobe",
            ProbeType::Usdt => "usdt",
            ProbeType::Profile => "profile",
            ProbeType::Interval => "interval",
            ProbeType::Software => "software",
            ProbeType::Hardware => "hardware",
            ProbeType::Begin => "BEGIN",
            ProbeType::End => "END",
        }
    }
}

impl fmt::Display for ProbeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bpftrace binary that answered `--version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpftraceInfo {
    /// The binary.
    pub path: PathBuf,
    /// Version without the `v`, e.g. `0.17.0`.
    pub version: String,
    /// (major, minor), e.g. (0, 17).
    pub major_minor: (u32, u32),
}

/// Where bpftrace is: `$KGENT_BPFTRACE` if set (a path, or a name looked up in `PATH`), else
/// `bpftrace` in `PATH`. Runs nothing (a few `stat` calls); `None` if not found.
pub fn locate_bpftrace() -> Option<PathBuf> {
    let wanted = std::env::var_os("KGENT_BPFTRACE")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "bpftrace".into());
    let wanted = PathBuf::from(wanted);
    if wanted.components().count() > 1 {
        return Some(wanted);
    }
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var)
        .map(|d| d.join(&wanted))
        .find(|p| is_executable(p))
}

/// Finds bpftrace as [`locate_bpftrace`] does, then runs `bpftrace --version` (~10-50 ms).
/// `None` if absent or not answering. [`capabilities`] has the version too, from its cache.
pub fn find_bpftrace() -> Option<BpftraceInfo> {
    bpftrace_info(&locate_bpftrace()?)
}

/// Runs `PATH --version` and parses `bpftrace v0.17.0`.
pub fn bpftrace_info(path: &Path) -> Option<BpftraceInfo> {
    let mut cmd = Command::new(path);
    cmd.arg("--version");
    let out = run_with_timeout(cmd, VERSION_TIMEOUT).ok()?;
    if out.status != Some(0) {
        return None;
    }
    let (version, major_minor) = parse_version(&out.stdout)?;
    Some(BpftraceInfo {
        path: path.to_path_buf(),
        version,
        major_minor,
    })
}

/// `"bpftrace v0.17.0\n"` -> ("0.17.0", (0, 17)); also accepts `v0.21.2-dirty` style suffixes.
fn parse_version(text: &str) -> Option<(String, (u32, u32))> {
    let word = text.split_whitespace().find(|w| {
        w.trim_start_matches('v')
            .starts_with(|c: char| c.is_ascii_digit())
    })?;
    let version = word.trim_start_matches('v').to_string();
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    let major = nums.next()??;
    let minor = nums.next()??;
    Some((version, (major, minor)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether tracefs is mounted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TracefsState {
    /// Mounted here.
    Mounted(PathBuf),
    /// The kernel has tracefs but it is not mounted ([`mount_tracefs`] fixes that as root).
    NotMounted,
    /// No tracefs at all, or the mount table is unreadable; the reason says which.
    Unavailable(String),
}

/// `std::fs::read_to_string` for small procfs files: they report size 0, which makes it read
/// 32 bytes, then 32, 64, 128... (8 calls for the mount table); one large buffer takes one.
pub(crate) fn read_proc(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::with_capacity(16 * 1024);
    std::fs::File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// Reads the mount table for tracefs, preferring `/sys/kernel/tracing` over the debugfs
/// automount at `/sys/kernel/debug/tracing`.
pub fn tracefs_state() -> TracefsState {
    // The usual case without the mount table (~0.1 ms: the kernel formats every mount):
    // tracefs at its own place, as a directory rather than a symlink to somewhere else.
    if is_tracefs_dir(TRACEFS_MOUNT_POINT) {
        return TracefsState::Mounted(PathBuf::from(TRACEFS_MOUNT_POINT));
    }
    tracefs_state_from_mounts()
}

/// [`tracefs_state`] from the mount table alone.
fn tracefs_state_from_mounts() -> TracefsState {
    let mounts = match read_proc("/proc/self/mounts") {
        Ok(m) => m,
        Err(e) => return TracefsState::Unavailable(format!("cannot read /proc/self/mounts: {e}")),
    };
    let points = tracefs_mount_points(&mounts);
    if let Some(p) = points
        .iter()
        .find(|p| p.as_os_str() == TRACEFS_MOUNT_POINT)
        .or_else(|| points.first())
    {
        return TracefsState::Mounted(p.clone());
    }
    match read_proc("/proc/filesystems") {
        Ok(fs) if fs.split_whitespace().any(|w| w == "tracefs") => TracefsState::NotMounted,
        Ok(_) => TracefsState::Unavailable("the kernel has no tracefs (CONFIG_TRACING off)".into()),
        Err(e) => TracefsState::Unavailable(format!("cannot read /proc/filesystems: {e}")),
    }
}

/// Whether `path` is a directory (not a symlink) on tracefs.
fn is_tracefs_dir(path: &str) -> bool {
    /// `TRACEFS_MAGIC` in `linux/magic.h`.
    const TRACEFS_MAGIC: i64 = 0x7472_6163;
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: statfs is plain data, for which all-zero bytes are a valid value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 {
        return false;
    }
    // `f_type` is i64 on x86-64 glibc, narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    let fs_type = i64::from(fs.f_type);
    fs_type == TRACEFS_MAGIC
}

/// Mount points of tracefs in a `/proc/self/mounts` text.
fn tracefs_mount_points(mounts: &str) -> Vec<PathBuf> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, point, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "tracefs").then(|| PathBuf::from(unescape_mount(point)))
        })
        .collect()
}

/// The mount table writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(oct) = b.get(i + 1..i + 4) {
                if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                    let v = oct
                        .iter()
                        .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                    if let Ok(byte) = u8::try_from(v) {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts tracefs on `/sys/kernel/tracing` unless it is mounted already; returns the mount
/// point. Needs root (CAP_SYS_ADMIN).
pub fn mount_tracefs() -> Result<PathBuf, CatalogError> {
    if let TracefsState::Mounted(p) = tracefs_state() {
        return Ok(p);
    }
    let target = PathBuf::from(TRACEFS_MOUNT_POINT);
    // SAFETY: all pointers are NUL-terminated C string literals that outlive the call, and
    // tracefs takes no mount data, so passing null for it is allowed.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(CatalogError::Mount {
            target,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(target)
}

/// Who we are, as far as tracing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privileges {
    /// Effective user id.
    pub euid: u32,
    /// CAP_BPF in the effective set.
    pub cap_bpf: bool,
    /// CAP_PERFMON in the effective set.
    pub cap_perfmon: bool,
    /// CAP_SYS_ADMIN in the effective set.
    pub cap_sys_admin: bool,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

impl Privileges {
    /// Reads the effective uid and `CapEff` of this process from `/proc/self/status`.
    pub fn current() -> Privileges {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let cap_eff = read_proc("/proc/self/status")
            .ok()
            .and_then(|s| parse_cap_eff(&s))
            .unwrap_or(0);
        Privileges::from_raw(euid, cap_eff)
    }

    /// From a uid and a `CapEff` bit mask.
    pub fn from_raw(euid: u32, cap_eff: u64) -> Privileges {
        let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
        Privileges {
            euid,
            cap_bpf: has(CAP_BPF),
            cap_perfmon: has(CAP_PERFMON),
            cap_sys_admin: has(CAP_SYS_ADMIN),
        }
    }

    /// Whether the kernel lets this process load and attach tracing programs: root, or
    /// CAP_SYS_ADMIN, or CAP_BPF together with CAP_PERFMON. (bpftrace 0.17 additionally
    /// insists on euid 0; see [`doctor_lines`].)
    pub fn can_trace(&self) -> bool {
        self.euid == 0 || self.cap_sys_admin || (self.cap_bpf && self.cap_perfmon)
    }
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Whether a probe type attaches here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Support {
    /// A program with this probe type loaded and attached.
    Works,
    /// It did not; the reason comes from bpftrace or from a missing kernel feature.
    Fails {
        /// Why, e.g. `attach failed: ...`.
        reason: String,
    },
    /// It was not tried.
    NotTested {
        /// Why, e.g. no binary with USDT probes was found.
        reason: String,
    },
}

impl Support {
    /// True for [`Support::Works`].
    pub fn works(&self) -> bool {
        matches!(self, Support::Works)
    }
}

/// Everything `kgent doctor` reports and the checker consults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `uname -r`.
    pub kernel_release: String,
    /// The bpftrace found, if any.
    pub bpftrace: Option<BpftraceInfo>,
    /// tracefs mount state.
    pub tracefs: TracefsState,
    /// Our privileges.
    pub privileges: Privileges,
    /// Kernel BTF (`/sys/kernel/btf/vmlinux`) is present.
    pub btf: bool,
    /// Per probe type: does it attach. Every [`ProbeType`] has an entry.
    pub probes: BTreeMap<ProbeType, Support>,
}

/// What one probe-type test will do.
enum Plan {
    Run(String),
    Known(Support),
}

/// Tests every probe type by attaching a tiny program with bpftrace (`PROBE {} BEGIN { exit(); }`),
/// all in parallel, each killed after 10 s. Types whose kernel feature is visibly absent
/// (no kprobe_events and no kprobe PMU, no BTF, tracefs not mounted) fail without a run, with
/// that as the reason; types with nothing to attach to (no binary with USDT notes) are
/// `NotTested`.
pub fn detect(bpftrace: &BpftraceInfo) -> BTreeMap<ProbeType, Support> {
    let plans = plan_probes();
    let mut results = BTreeMap::new();
    let mut running: Vec<(ProbeType, String, Option<JoinHandle<RunOutcome>>)> = Vec::new();
    for (pt, plan) in plans {
        match plan {
            Plan::Known(s) => {
                results.insert(pt, s);
            }
            Plan::Run(program) => {
                let path = bpftrace.path.clone();
                let prog = program.clone();
                // Each thread waits for its child, which matters: PR_SET_PDEATHSIG fires when
                // the *thread* that spawned the child ends.
                let handle = std::thread::Builder::new()
                    .name(format!("kgent-probe-{}", pt.name()))
                    .spawn(move || run_program(&path, &prog))
                    .ok();
                running.push((pt, program, handle));
            }
        }
    }
    for (pt, program, handle) in running {
        let outcome = match handle {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| RunOutcome::failed("probe thread panicked")),
            // Could not start a thread: run it here instead.
            None => run_program(&bpftrace.path, &program),
        };
        results.insert(pt, classify(&outcome, &program));
    }
    results
}

fn run_program(bpftrace: &Path, program: &str) -> RunOutcome {
    let mut cmd = Command::new(bpftrace);
    cmd.arg("-e").arg(program);
    run_with_timeout(cmd, PROBE_TIMEOUT)
        .unwrap_or_else(|e| RunOutcome::failed(&format!("cannot run bpftrace: {e}")))
}

fn plan_probes() -> Vec<(ProbeType, Plan)> {
    let tracefs = match tracefs_state() {
        TracefsState::Mounted(p) => Some(p),
        _ => None,
    };
    let events = tracefs
        .as_ref()
        .and_then(|t| std::fs::read_to_string(t.join("available_events")).ok())
        .unwrap_or_default();
    let has_event = |e: &str| events.lines().any(|l| l.trim() == e);
    let run = |probe: String| Plan::Run(format!("{probe} {{}} BEGIN {{ exit(); }}"));
    let fails = |reason: &str| {
        Plan::Known(Support::Fails {
            reason: reason.to_string(),
        })
    };
    let not_tested = |reason: String| Plan::Known(Support::NotTested { reason });
    let no_tracefs = "tracefs is not mounted (fix: mount -t tracefs nodev /sys/kernel/tracing)";

    let mut plans = Vec::new();

    // Tracepoint: a cheap, always-present event.
    let tp = [
        "syscalls:sys_enter_getpid",
        "sched:sched_process_exec",
        "sched:sched_switch",
    ]
    .into_iter()
    .find(|e| has_event(e))
    .map(str::to_string)
    .or_else(|| events.lines().next().map(|l| l.trim().to_string()));
    plans.push((
        ProbeType::Tracepoint,
        match (&tracefs, tp) {
            (None, _) => fails(no_tracefs),
            (Some(_), Some(e)) => run(format!("tracepoint:{e}")),
            (Some(_), None) => fails("tracefs lists no tracepoints"),
        },
    ));

    // Kprobes need the kprobe PMU or tracefs kprobe_events; without both the kernel has none.
    let kprobe_pmu = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let kprobe_events = tracefs
        .as_ref()
        .is_some_and(|t| t.join("kprobe_events").exists());
    let kfunc_target = ["vfs_read", "do_nanosleep", "ksys_read"];
    let (kp, krp) = if !kprobe_pmu && !kprobe_events && tracefs.is_some() {
        let r = "kernel has no kprobes (CONFIG_KPROBES off: no kprobe_events in tracefs, no kprobe PMU)";
        (fails(r), fails(r))
    } else {
        let syms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let has_sym = |f: &str| {
            syms.lines()
                .any(|l| l.split_ascii_whitespace().nth(2) == Some(f))
        };
        match kfunc_target.into_iter().find(|f| has_sym(f)) {
            Some(f) => (run(format!("kprobe:{f}")), run(format!("kretprobe:{f}"))),
            None => {
                let r = format!("none of {} in /proc/kallsyms", kfunc_target.join(", "));
                (not_tested(r.clone()), not_tested(r))
            }
        }
    };
    plans.push((ProbeType::Kprobe, kp));
    plans.push((ProbeType::Kretprobe, krp));

    // Kfunc: a function that BTF describes.
    let (kf, krf) = match BtfIndex::load(Path::new(BTF_VMLINUX)) {
        Err(_) => {
            let r = "no kernel BTF (/sys/kernel/btf/vmlinux): kernel built without CONFIG_DEBUG_INFO_BTF";
            (fails(r), fails(r))
        }
        Ok(btf) => match kfunc_target
            .into_iter()
            .find(|f| btf.funcs().find(f).is_some())
        {
            Some(f) => (run(format!("kfunc:{f}")), run(format!("kretfunc:{f}"))),
            None => {
                let r = format!("none of {} in BTF", kfunc_target.join(", "));
                (not_tested(r.clone()), not_tested(r))
            }
        },
    };
    plans.push((ProbeType::Kfunc, kf));
    plans.push((ProbeType::Kretfunc, krf));

    plans.push((
        ProbeType::Rawtracepoint,
        match tracefs {
            None => fails(no_tracefs),
            Some(_) if has_event("sched:sched_switch") => run("rawtracepoint:sched_switch".into()),
            Some(_) => not_tested("no sched:sched_switch tracepoint to attach to".into()),
        },
    ));

    // Uprobe: a libc or shell function that the ELF really exports.
    let uprobe_target = [
        ("libc", "malloc"),
        ("/bin/bash", "readline"),
        ("/bin/sh", "main"),
    ]
    .into_iter()
    .find_map(|(t, f)| {
        let path = resolve_target(t)?;
        let elf = ElfProbes::read(&path).ok()?;
        elf.funcs.find(f).map(|_| (path, f))
    });
    let (up, urp) = match uprobe_target {
        Some((p, f)) => (
            run(format!("uprobe:{}:{f}", p.display())),
            run(format!("uretprobe:{}:{f}", p.display())),
        ),
        None => {
            let r = "found neither libc malloc nor /bin/bash readline to attach to".to_string();
            (not_tested(r.clone()), not_tested(r))
        }
    };
    plans.push((ProbeType::Uprobe, up));
    plans.push((ProbeType::Uretprobe, urp));

    plans.push((
        ProbeType::Usdt,
        match find_usdt_probe() {
            Some((path, probe)) => run(format!("usdt:{}:{probe}", path.display())),
            None => not_tested(
                "no binary with USDT probes found (looked at python3*, libstdc++, node, ruby)"
                    .into(),
            ),
        },
    ));
    plans.push((ProbeType::Profile, run("profile:hz:99".into())));
    plans.push((ProbeType::Interval, run("interval:s:1".into())));
    plans.push((
        ProbeType::Software,
        run("software:cpu-clock:1000000".into()),
    ));
    plans.push((
        ProbeType::Hardware,
        run("hardware:cpu-cycles:1000000".into()),
    ));
    plans.push((ProbeType::Begin, Plan::Run("BEGIN { exit(); }".into())));
    plans.push((ProbeType::End, Plan::Run("END {} BEGIN { exit(); }".into())));
    plans
}

/// A binary with `.note.stapsdt` probes and its first probe ("provider:name").
fn find_usdt_probe() -> Option<(PathBuf, String)> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/usr/bin") {
        let mut pythons: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3.") && !n.contains('-'))
            })
            .collect();
        pythons.sort();
        candidates.extend(pythons);
    }
    candidates.extend(
        ["stdc++", "node", "ruby"]
            .iter()
            .filter_map(|t| resolve_target(t)),
    );
    candidates.into_iter().find_map(|p| {
        let elf = ElfProbes::read(&p).ok()?;
        let first = elf.usdt.iter().next()?.to_string();
        Some((p, first))
    })
}

/// What a child process did.
#[derive(Debug)]
struct RunOutcome {
    /// Exit code; `None` when killed by a signal (including our timeout).
    status: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

impl RunOutcome {
    fn failed(why: &str) -> RunOutcome {
        RunOutcome {
            status: None,
            timed_out: false,
            stdout: String::new(),
            stderr: why.to_string(),
        }
    }
}

/// Runs `cmd` with stdin closed, capturing output, killing it after `timeout`. The child gets
/// PR_SET_PDEATHSIG(SIGKILL) so it cannot outlive us.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> std::io::Result<RunOutcome> {
    let parent = std::process::id();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid) without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    // Drain both pipes on their own threads so a chatty child cannot block on a full pipe.
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = wait_until(&mut child, deadline);
    Ok(RunOutcome {
        status,
        timed_out,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_until(child: &mut Child, deadline: Instant) -> (Option<i32>, bool) {
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return (st.code(), false),
            Ok(None) if Instant::now() >= deadline => {
                // bpftrace ignores SIGTERM while attaching; only SIGKILL is sure.
                let _ = child.kill();
                let _ = child.wait();
                return (None, true);
            }
            Ok(None) => {
                // Quick children (`--version`) are noticed within a millisecond or two,
                // long ones (probe runs) polled every 20 ms.
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            Err(_) => {
                let _ = child.kill();
                return (child.wait().ok().and_then(|s| s.code()), false);
            }
        }
    }
}

/// Turns a bpftrace run into [`Support`], naming the failure class and the telling lines.
fn classify(out: &RunOutcome, program: &str) -> Support {
    if out.timed_out {
        return Support::Fails {
            reason: format!("timed out after {} s (killed)", PROBE_TIMEOUT.as_secs()),
        };
    }
    let nothing_matched = out.stdout.contains("No probes to attach");
    if out.status == Some(0) && !nothing_matched {
        return Support::Works;
    }
    let err = &out.stderr;
    let class = if nothing_matched {
        "nothing matched".to_string()
    } else {
        match out.status {
            Some(255) if err.contains("Error attaching probe") => "attach failed".into(),
            Some(255) if err.contains("Error loading program") => {
                "program refused by the kernel".into()
            }
            Some(134) => "bpftrace aborted".into(),
            _ if err.contains("FATAL") => "bpftrace aborted".into(),
            Some(1) if err.contains("not found") => "probe not found".into(),
            Some(1) => "rejected by bpftrace".into(),
            Some(c) => format!("bpftrace exited with {c}"),
            None => "bpftrace was killed by a signal".into(),
        }
    };
    let detail: Vec<&str> = telling_lines(err, program).take(3).collect();
    let reason = if detail.is_empty() {
        class
    } else {
        format!("{class}: {}", detail.join("; "))
    };
    Support::Fails { reason }
}

/// Stderr lines worth showing: not the memlock noise, not warnings, not the echoed program or
/// its `~~~` underline, with the `stdin:1:1-15: ` location prefix removed.
fn telling_lines<'a>(stderr: &'a str, program: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    stderr
        .lines()
        .map(str::trim)
        .filter(move |l| {
            !l.is_empty()
                && !l.contains(MEMLOCK_NOISE)
                && !l.starts_with("Attaching ")
                && !l.contains("WARNING")
                && *l != program.trim()
                && !l.chars().all(|c| c == '~' || c == ' ')
        })
        .map(|l| match l.strip_prefix("stdin:") {
            Some(rest) => rest.split_once(": ").map_or(l, |(_, msg)| msg),
            None => l,
        })
}

/// The capability cache file: `$XDG_CACHE_HOME/kgent/capabilities.json` (or
/// `~/.cache/kgent/capabilities.json`).
pub fn cache_file() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("kgent").join("capabilities.json"))
}

/// What the cached answer depends on; any change means asking bpftrace again. Everything in
/// it is known without running bpftrace: a new bpftrace binary changes its size or mtime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CacheKey {
    kernel_release: String,
    /// The bpftrace binary with symlinks resolved.
    bpftrace_path: PathBuf,
    bpftrace_size: u64,
    /// Modification time: seconds and nanoseconds since the epoch.
    bpftrace_mtime: (u64, u32),
    /// Where tracefs was mounted: mounting it turns tracepoint failures into successes.
    tracefs: Option<PathBuf>,
}

impl CacheKey {
    /// The key for bpftrace at `path`; `None` when the file cannot be examined.
    fn new(path: &Path, kernel_release: &str, tracefs: &TracefsState) -> Option<CacheKey> {
        let resolved = std::fs::canonicalize(path).ok()?;
        let meta = std::fs::metadata(&resolved).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(CacheKey {
            kernel_release: kernel_release.to_string(),
            bpftrace_path: resolved,
            bpftrace_size: meta.len(),
            bpftrace_mtime: (mtime.as_secs(), mtime.subsec_nanos()),
            tracefs: match tracefs {
                TracefsState::Mounted(p) => Some(p.clone()),
                _ => None,
            },
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    key: CacheKey,
    /// What `bpftrace --version` said.
    bpftrace: BpftraceInfo,
    /// Probe results; `None` when written by a process without the privilege to detect them.
    probes: Option<BTreeMap<ProbeType, Support>>,
}

fn read_cache(path: &Path, key: &CacheKey) -> Option<CacheEntry> {
    let text = std::fs::read_to_string(path).ok()?;
    let entry: CacheEntry = serde_json::from_str(&text).ok()?;
    (entry.key == *key).then_some(entry)
}

/// Writes `entry` (best effort: an unwritable cache only costs time).
fn write_cache(path: &Path, entry: &CacheEntry) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string_pretty(entry).map_err(std::io::Error::other)?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn kernel_release() -> String {
    read_proc("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Everything about this machine's tracing support. The bpftrace version and the probe
/// results come from `$XDG_CACHE_HOME/kgent/capabilities.json` when it was made for the same
/// kernel release, tracefs mount and bpftrace binary (resolved path, size and mtime): a cache
/// hit runs nothing and reads a few small files (well under a millisecond). On a miss, or
/// with `refresh` (which ignores and rewrites the cache), it runs `bpftrace --version` and,
/// with the privilege to trace, [`detect`] (seconds). Without bpftrace or privileges no probe
/// is tried and every type is `NotTested`; the version is still cached.
pub fn capabilities(refresh: bool) -> Capabilities {
    capabilities_given(tracefs_state(), refresh)
}

/// [`capabilities`] with the tracefs state already read by the caller ([`tracefs_state`]),
/// which saves reading the mount table a second time.
pub fn capabilities_given(tracefs: TracefsState, refresh: bool) -> Capabilities {
    capabilities_from(
        cache_file().as_deref(),
        locate_bpftrace(),
        Privileges::current(),
        refresh,
        detect,
        tracefs,
    )
}

/// [`capabilities`] with the cache file, the bpftrace binary, the privileges and the probe
/// detector given.
#[cfg(test)]
fn capabilities_with(
    cache: Option<&Path>,
    located: Option<PathBuf>,
    privileges: Privileges,
    refresh: bool,
    detector: impl FnOnce(&BpftraceInfo) -> BTreeMap<ProbeType, Support>,
) -> Capabilities {
    capabilities_from(
        cache,
        located,
        privileges,
        refresh,
        detector,
        tracefs_state(),
    )
}

/// [`capabilities_with`] with the tracefs state given.
fn capabilities_from(
    cache: Option<&Path>,
    located: Option<PathBuf>,
    privileges: Privileges,
    refresh: bool,
    detector: impl FnOnce(&BpftraceInfo) -> BTreeMap<ProbeType, Support>,
    tracefs: TracefsState,
) -> Capabilities {
    let kernel_release = kernel_release();
    let not_tested = |reason: &str| {
        ProbeType::ALL
            .iter()
            .map(|pt| {
                (
                    *pt,
                    Support::NotTested {
                        reason: reason.to_string(),
                    },
                )
            })
            .collect()
    };
    let key = located
        .as_deref()
        .and_then(|p| CacheKey::new(p, &kernel_release, &tracefs));
    // Where the cache may be used: a file to keep it in, and a binary to key it by.
    let store = cache.zip(key);
    let cached = match &store {
        Some((file, key)) if !refresh => read_cache(file, key),
        _ => None,
    };
    let (bpftrace, cached_probes) = match (cached, &located) {
        // The binary is the same: so is its version. Report it where it was found this time.
        (Some(entry), Some(path)) => (
            Some(BpftraceInfo {
                path: path.clone(),
                ..entry.bpftrace
            }),
            entry.probes,
        ),
        _ => (located.as_deref().and_then(bpftrace_info), None),
    };
    let save = |info: &BpftraceInfo, probes: Option<&BTreeMap<ProbeType, Support>>| {
        if let Some((file, key)) = &store {
            // Never replace measured results with an entry that has none.
            if probes.is_none() && read_cache(file, key).is_some() {
                return;
            }
            let _ = write_cache(
                file,
                &CacheEntry {
                    key: key.clone(),
                    bpftrace: info.clone(),
                    probes: probes.cloned(),
                },
            );
        }
    };
    let probes = match &bpftrace {
        None => not_tested("bpftrace not found"),
        Some(b) if !privileges.can_trace() => {
            if cached_probes.is_none() {
                save(b, None);
            }
            not_tested("no privilege to trace (needs root or CAP_BPF+CAP_PERFMON)")
        }
        Some(b) => match cached_probes {
            Some(p) => p,
            None => {
                let p = detector(b);
                save(b, Some(&p));
                p
            }
        },
    };
    Capabilities {
        kernel_release,
        bpftrace,
        tracefs,
        privileges,
        btf: Path::new(BTF_VMLINUX).exists(),
        probes,
    }
}

/// One `kgent doctor` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorLine {
    /// What was checked, e.g. `bpftrace`, `tracefs`, `probe kprobe`.
    pub check: String,
    /// Whether it is fine.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// A concrete command or step when something is missing.
    pub fix: Option<String>,
}

impl DoctorLine {
    fn new(check: &str, ok: bool, detail: impl Into<String>, fix: Option<String>) -> DoctorLine {
        DoctorLine {
            check: check.to_string(),
            ok,
            detail: detail.into(),
            fix,
        }
    }
}

impl fmt::Display for DoctorLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "[{mark}] {}: {}", self.check, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " (fix: {fix})")?;
        }
        Ok(())
    }
}

/// One line per check, with a fix where something is missing: kernel, bpftrace, tracefs,
/// privileges, BTF, then one line per probe type.
pub fn doctor_lines(caps: &Capabilities) -> Vec<DoctorLine> {
    let mut lines = vec![DoctorLine::new(
        "kernel",
        true,
        caps.kernel_release.clone(),
        None,
    )];

    lines.push(match &caps.bpftrace {
        None => DoctorLine::new(
            "bpftrace",
            false,
            "bpftrace not found (looked at $KGENT_BPFTRACE and PATH)",
            Some("apt-get install bpftrace (or set KGENT_BPFTRACE=/path/to/bpftrace)".into()),
        ),
        Some(b) if b.major_minor < (0, 17) => DoctorLine::new(
            "bpftrace",
            false,
            format!(
                "bpftrace {} at {} is older than 0.17",
                b.version,
                b.path.display()
            ),
            Some("install bpftrace 0.17 or newer".into()),
        ),
        Some(b) => DoctorLine::new(
            "bpftrace",
            true,
            format!("bpftrace {} at {}", b.version, b.path.display()),
            None,
        ),
    });

    lines.push(match &caps.tracefs {
        TracefsState::Mounted(p) => {
            DoctorLine::new("tracefs", true, format!("mounted at {}", p.display()), None)
        }
        TracefsState::NotMounted => DoctorLine::new(
            "tracefs",
            false,
            "tracefs is not mounted: no tracepoints",
            Some("mount -t tracefs nodev /sys/kernel/tracing".into()),
        ),
        TracefsState::Unavailable(why) => DoctorLine::new(
            "tracefs",
            false,
            why.clone(),
            Some("use a kernel built with CONFIG_TRACING (tracepoints need tracefs)".into()),
        ),
    });

    let p = &caps.privileges;
    let grant = "run as root or grant CAP_BPF,CAP_PERFMON \
                 (e.g. setcap cap_bpf,cap_perfmon+ep $(which bpftrace))";
    lines.push(if !p.can_trace() {
        DoctorLine::new(
            "privileges",
            false,
            format!(
                "euid {} without CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN",
                p.euid
            ),
            Some(grant.into()),
        )
    } else if p.euid != 0
        && caps
            .bpftrace
            .as_ref()
            .is_some_and(|b| b.major_minor <= (0, 17))
    {
        // Measured: bpftrace 0.17 exits with "only supports running as the root user".
        DoctorLine::new(
            "privileges",
            false,
            format!("euid {}: bpftrace 0.17 refuses to run unless root", p.euid),
            Some("run kgent as root (sudo), or install a newer bpftrace".into()),
        )
    } else {
        let who = if p.euid == 0 {
            "root".to_string()
        } else {
            format!("euid {} with tracing capabilities", p.euid)
        };
        DoctorLine::new("privileges", true, who, None)
    });

    lines.push(if caps.btf {
        DoctorLine::new("BTF", true, format!("kernel BTF at {BTF_VMLINUX}"), None)
    } else {
        DoctorLine::new(
            "BTF",
            false,
            format!("no {BTF_VMLINUX}: no kfunc probes, no typed kernel function arguments"),
            Some("use a kernel built with CONFIG_DEBUG_INFO_BTF=y".into()),
        )
    });

    for (pt, support) in &caps.probes {
        let check = format!("probe {}", pt.name());
        lines.push(match support {
            Support::Works => DoctorLine::new(&check, true, "attaches", None),
            Support::Fails { reason } => {
                let alts = alternatives(*pt, caps);
                let fix = (!alts.is_empty()).then(|| format!("use instead: {}", alts.join("; ")));
                DoctorLine::new(&check, false, reason.clone(), fix)
            }
            Support::NotTested { reason } => {
                DoctorLine::new(&check, false, format!("not tested: {reason}"), None)
            }
        });
    }
    lines
}

/// Where to look instead of kprobes and kfuncs, by subsystem.
const TRACEPOINT_HINT: &str = "tracepoint (tracepoint:syscalls:sys_enter_*/sys_exit_* for \
system calls, tracepoint:sock:inet_sock_set_state and tracepoint:tcp:* for TCP and sockets, \
tracepoint:sched:* for processes and scheduling, tracepoint:block:* for disk I/O)";

/// Supported alternatives for a probe type, most useful first, leaving out types known to fail
/// here. Used in error messages and `kgent doctor` fixes.
pub fn alternatives(pt: ProbeType, caps: &Capabilities) -> Vec<String> {
    use ProbeType as P;
    let candidates: &[(ProbeType, &str)] = match pt {
        P::Kprobe => &[
            (P::Kfunc, "kfunc:FUNCTION (same function, typed args->name)"),
            (P::Tracepoint, TRACEPOINT_HINT),
        ],
        P::Kretprobe => &[
            (
                P::Kretfunc,
                "kretfunc:FUNCTION (same function, retval and typed args)",
            ),
            (
                P::Tracepoint,
                "tracepoint:syscalls:sys_exit_* (args->ret) for system call results",
            ),
            (P::Tracepoint, TRACEPOINT_HINT),
        ],
        P::Kfunc => &[
            (
                P::Kprobe,
                "kprobe:FUNCTION (same function, untyped arg0..argN)",
            ),
            (P::Tracepoint, TRACEPOINT_HINT),
        ],
        P::Kretfunc => &[
            (P::Kretprobe, "kretprobe:FUNCTION (same function, retval)"),
            (
                P::Tracepoint,
                "tracepoint:syscalls:sys_exit_* (args->ret) for system call results",
            ),
            (P::Tracepoint, TRACEPOINT_HINT),
        ],
        P::Rawtracepoint => &[(
            P::Tracepoint,
            "tracepoint:CATEGORY:EVENT (same event, typed args)",
        )],
        P::Tracepoint => &[
            (
                P::Kfunc,
                "kfunc:FUNCTION for the kernel function behind the event",
            ),
            (
                P::Kprobe,
                "kprobe:FUNCTION for the kernel function behind the event",
            ),
        ],
        P::Hardware => &[
            (
                P::Software,
                "software:cpu-clock:N or software:task-clock:N (software counters)",
            ),
            (P::Profile, "profile:hz:99 (timed CPU sampling)"),
        ],
        P::Software => &[(P::Profile, "profile:hz:99 (timed CPU sampling)")],
        P::Profile => &[
            (P::Software, "software:cpu-clock:N (CPU-clock sampling)"),
            (P::Interval, "interval:s:1 (periodic, on one CPU)"),
        ],
        P::Interval => &[(P::Profile, "profile:s:1 (periodic, on every CPU)")],
        P::Uprobe => &[(
            P::Usdt,
            "usdt:BINARY:PROVIDER:NAME if the program has USDT probes",
        )],
        P::Uretprobe => &[(
            P::Uprobe,
            "uprobe:BINARY:FUNCTION at entry, timing in a map",
        )],
        P::Usdt => &[(
            P::Uprobe,
            "uprobe:BINARY:FUNCTION on the function the probe sits in",
        )],
        P::Begin | P::End => &[],
    };
    // Unknown or untested types may work; only types measured to fail are left out.
    let usable = |alt: &ProbeType| !matches!(caps.probes.get(alt), Some(Support::Fails { .. }));
    candidates
        .iter()
        .filter(|(alt, _)| usable(alt))
        .map(|(_, text)| text.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve() {
        let cases = [
            ("t", ProbeType::Tracepoint),
            ("k", ProbeType::Kprobe),
            ("kr", ProbeType::Kretprobe),
            ("u", ProbeType::Uprobe),
            ("ur", ProbeType::Uretprobe),
            ("f", ProbeType::Kfunc),
            ("fr", ProbeType::Kretfunc),
            ("p", ProbeType::Profile),
            ("i", ProbeType::Interval),
            ("s", ProbeType::Software),
            ("h", ProbeType::Hardware),
            ("U", ProbeType::Usdt),
            ("rt", ProbeType::Rawtracepoint),
        ];
        for (alias, pt) in cases {
            assert_eq!(ProbeType::from_provider(alias), Some(pt), "{alias}");
        }
        for pt in ProbeType::ALL {
            assert_eq!(ProbeType::from_provider(pt.name()), Some(pt));
        }
        assert_eq!(ProbeType::from_provider("x"), None);
        assert_eq!(ProbeType::from_provider("T"), None);
        assert_eq!(ProbeType::from_provider(""), None);
    }

    #[test]
    fn version_parsing() {
        assert_eq!(
            parse_version("bpftrace v0.17.0\n"),
            Some(("0.17.0".into(), (0, 17)))
        );
        assert_eq!(
            parse_version("bpftrace v0.21.2-dirty"),
            Some(("0.21.2-dirty".into(), (0, 21)))
        );
        assert_eq!(parse_version("nonsense"), None);
        assert_eq!(parse_version("bpftrace v1"), None);
    }

    /// The shortcut without the mount table gives the mount table's answer, here.
    #[test]
    fn tracefs_state_agrees_with_the_mount_table() {
        assert_eq!(tracefs_state(), tracefs_state_from_mounts());
        assert!(!is_tracefs_dir("/proc"));
        assert!(!is_tracefs_dir("/no/such/dir"));
    }

    #[test]
    fn mounts_and_caps_parse() {
        let m = "sysfs /sys sysfs rw 0 0\nnodev /sys/kernel/tracing tracefs rw 0 0\n\
                 tracefs /mnt/my\\040trace tracefs rw 0 0\nshort\n";
        assert_eq!(
            tracefs_mount_points(m),
            [
                PathBuf::from("/sys/kernel/tracing"),
                PathBuf::from("/mnt/my trace")
            ]
        );
        assert_eq!(unescape_mount("a\\"), "a\\");
        assert_eq!(unescape_mount("a\\04"), "a\\04");
        assert_eq!(unescape_mount("\\999x"), "\\999x");
        let status = "Name:\tx\nCapEff:\t000001fffeffffff\n";
        let p = Privileges::from_raw(1000, parse_cap_eff(status).unwrap());
        assert!(p.cap_bpf && p.cap_perfmon && p.cap_sys_admin && p.can_trace());
        let none = Privileges::from_raw(1000, 0);
        assert!(!none.can_trace());
        assert!(Privileges::from_raw(0, 0).can_trace());
        let bpf_only = Privileges::from_raw(1000, 1 << CAP_BPF);
        assert!(!bpf_only.can_trace());
    }

    #[test]
    fn classify_known_failures() {
        let run = |status, stderr: &str| RunOutcome {
            status,
            timed_out: false,
            stdout: "Attaching 2 probes...\n".into(),
            stderr: stderr.into(),
        };
        let memlock = "ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace. If your program is not loading, you can try \"ulimit -l 8192\" to fix the problem\n";
        assert_eq!(
            classify(&run(Some(0), memlock), "BEGIN { exit(); }"),
            Support::Works
        );

        let prog = "kprobe:vfs_read {} BEGIN { exit(); }";
        let kp = format!("{memlock}stdin:1:1-16: WARNING: vfs_read is not traceable\n{prog}\n~~~~~~~~~~~~~~~\ncreate_probe_event: open(/sys/kernel/tracing/kprobe_events): No such file or directory\nERROR: Error attaching probe: 'kprobe:vfs_read'\n");
        let Support::Fails { reason } = classify(&run(Some(255), &kp), prog) else {
            panic!("kprobe must fail")
        };
        assert!(
            reason.starts_with("attach failed: create_probe_event"),
            "{reason}"
        );
        assert!(
            !reason.contains("RLIMIT") && !reason.contains("WARNING"),
            "{reason}"
        );

        let kf = format!("{memlock}stdin:1:1-15: ERROR: kfunc/kretfunc not available for your kernel version.\nkfunc:vfs_read {{}} BEGIN {{ exit(); }}\n~~~~~~~~~~~~~~\n");
        let Support::Fails { reason } =
            classify(&run(Some(1), &kf), "kfunc:vfs_read {} BEGIN { exit(); }")
        else {
            panic!("kfunc must fail")
        };
        assert_eq!(
            reason,
            "rejected by bpftrace: ERROR: kfunc/kretfunc not available for your kernel version."
        );

        let t = RunOutcome {
            status: None,
            timed_out: true,
            stdout: String::new(),
            stderr: String::new(),
        };
        assert!(
            matches!(classify(&t, ""), Support::Fails { reason } if reason.contains("timed out"))
        );
        let none = RunOutcome {
            status: Some(1),
            timed_out: false,
            stdout: "No probes to attach\n".into(),
            stderr: String::new(),
        };
        assert!(
            matches!(classify(&none, ""), Support::Fails { reason } if reason == "nothing matched")
        );
    }

    /// A fake bpftrace that appends its arguments to `log` and claims `version`. It is
    /// run once here, retrying while another test's fork still holds the file open for
    /// writing (ETXTBSY), so later runs cannot fail that way.
    fn fake_bpftrace(script: &Path, log: &Path, version: &str) {
        let body = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho 'bpftrace v{version}'\n",
            log.display()
        );
        std::fs::write(script, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
        warm_up(script);
    }

    fn warm_up(script: &Path) {
        for _ in 0..100 {
            match Command::new(script).arg("warm-up").output() {
                Ok(o) if o.status.success() => return,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        panic!("{} does not run", script.display());
    }

    /// How often the fake bpftrace was asked for its version.
    fn version_runs(log: &Path) -> usize {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "--version")
            .count()
    }

    fn some_probes() -> BTreeMap<ProbeType, Support> {
        let mut probes = BTreeMap::new();
        probes.insert(ProbeType::Tracepoint, Support::Works);
        probes.insert(
            ProbeType::Kprobe,
            Support::Fails {
                reason: "no kprobes".into(),
            },
        );
        probes.insert(
            ProbeType::Usdt,
            Support::NotTested {
                reason: "none".into(),
            },
        );
        probes
    }

    #[test]
    fn cache_hit_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (script, log) = (dir.path().join("bpftrace"), dir.path().join("runs.log"));
        let file = dir.path().join("cache").join("capabilities.json");
        fake_bpftrace(&script, &log, "0.17.0");
        let root = Privileges::from_raw(0, 0);
        let probes = some_probes();
        let mut detections = 0;
        let caps = |refresh: bool, path: &Path, detections: &mut usize| {
            capabilities_with(
                Some(&file),
                Some(path.to_path_buf()),
                root,
                refresh,
                |b: &BpftraceInfo| {
                    *detections += 1;
                    assert_eq!(b.path, path);
                    probes.clone()
                },
            )
        };

        // Miss: asks bpftrace for its version, detects, writes the cache.
        let first = caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (1, 1));
        assert_eq!(first.bpftrace.as_ref().unwrap().version, "0.17.0");
        assert_eq!(first.bpftrace.as_ref().unwrap().major_minor, (0, 17));
        assert_eq!(first.probes, probes);
        assert!(file.exists());

        // Hit: runs nothing, same answer, version included.
        let second = caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (1, 1), "cache not used");
        assert_eq!(second, first);

        // The same binary through a symlink is a hit, reported where it was found.
        let link = dir.path().join("bpftrace-link");
        std::os::unix::fs::symlink(&script, &link).unwrap();
        let via_link = caps(false, &link, &mut detections);
        assert_eq!((version_runs(&log), detections), (1, 1));
        assert_eq!(via_link.bpftrace.as_ref().unwrap().path, link);
        assert_eq!(via_link.probes, probes);

        // refresh asks again and rewrites the cache.
        caps(true, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (2, 2));
        caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (2, 2));

        // A new bpftrace (other size) is a miss, and its version is the new one.
        fake_bpftrace(&script, &log, "0.21.2");
        let upgraded = caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (3, 3));
        assert_eq!(upgraded.bpftrace.unwrap().major_minor, (0, 21));

        // Same size, other mtime: a miss too.
        let earlier = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&script)
            .unwrap()
            .set_modified(earlier)
            .unwrap();
        warm_up(&script);
        caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (4, 4));
        caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (4, 4));

        // A corrupt cache is a miss, not an error.
        std::fs::write(&file, "{not json").unwrap();
        caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (5, 5));

        // A cache written by the old format (no bpftrace info) is a miss too.
        std::fs::write(
            &file,
            r#"{"key":{"kernel_release":"x","bpftrace_version":"0.17.0",
               "bpftrace_path":"/usr/bin/bpftrace","tracefs":null},"probes":{}}"#,
        )
        .unwrap();
        caps(false, &script, &mut detections);
        assert_eq!((version_runs(&log), detections), (6, 6));
    }

    #[test]
    fn cache_without_privileges_keeps_the_version_only() {
        let dir = tempfile::tempdir().unwrap();
        let (script, log) = (dir.path().join("bpftrace"), dir.path().join("runs.log"));
        let file = dir.path().join("capabilities.json");
        fake_bpftrace(&script, &log, "0.17.0");
        let user = Privileges::from_raw(1000, 0);
        let root = Privileges::from_raw(0, 0);
        let mut detections = 0;
        let caps = |privileges: Privileges, refresh: bool, detections: &mut usize| {
            capabilities_with(
                Some(&file),
                Some(script.clone()),
                privileges,
                refresh,
                |_: &BpftraceInfo| {
                    *detections += 1;
                    some_probes()
                },
            )
        };
        let first = caps(user, false, &mut detections);
        assert_eq!((version_runs(&log), detections), (1, 0));
        assert_eq!(first.bpftrace.as_ref().unwrap().version, "0.17.0");
        assert!(first
            .probes
            .values()
            .all(|s| matches!(s, Support::NotTested { reason } if reason.contains("privilege"))));
        let second = caps(user, false, &mut detections);
        assert_eq!((version_runs(&log), detections), (1, 0), "cache not used");
        assert_eq!(second, first);

        // With privileges the version comes from the cache, the probes are detected once.
        let as_root = caps(root, false, &mut detections);
        assert_eq!((version_runs(&log), detections), (1, 1));
        assert_eq!(as_root.probes, some_probes());
        // A refresh without privileges does not throw the measured results away.
        caps(user, true, &mut detections);
        assert_eq!((version_runs(&log), detections), (2, 1));
        let again = caps(root, false, &mut detections);
        assert_eq!((version_runs(&log), detections), (2, 1));
        assert_eq!(again.probes, some_probes());
    }

    #[test]
    fn missing_bpftrace_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("capabilities.json");
        for located in [None, Some(dir.path().join("no-such-bpftrace"))] {
            let caps = capabilities_with(
                Some(&file),
                located,
                Privileges::from_raw(0, 0),
                false,
                |_: &BpftraceInfo| panic!("nothing to detect with"),
            );
            assert_eq!(caps.bpftrace, None);
            assert!(caps.probes.values().all(
                |s| matches!(s, Support::NotTested { reason } if reason == "bpftrace not found")
            ));
        }
        assert!(!file.exists());
    }

    #[test]
    fn pdeathsig_child_runs_and_times_out() {
        let out = run_with_timeout(
            {
                let mut c = Command::new("sh");
                c.args(["-c", "echo hi; echo err >&2; exit 3"]);
                c
            },
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            (
                out.status,
                out.timed_out,
                out.stdout.as_str(),
                out.stderr.as_str()
            ),
            (Some(3), false, "hi\n", "err\n")
        );
        let started = Instant::now();
        let mut c = Command::new("sleep");
        c.arg("30");
        let out = run_with_timeout(c, Duration::from_millis(200)).unwrap();
        assert!(out.timed_out && out.status.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
