//! Classification of bpftrace's failures from its exit status and stderr, as typed data.
//!
//! bpftrace 0.17 reports everything on stderr in a handful of shapes (see
//! `shared/brief/environment.md`); people and the LLM feedback loop both need to know
//! *which* stage failed and where, not a raw dump.

use serde::Serialize;

/// The stage at which bpftrace gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The program does not parse.
    Parse,
    /// It parses but is wrong: unknown tracepoint, field, map, type mismatch...
    Semantic,
    /// LLVM refused to compile it (e.g. the 512-byte BPF stack).
    Codegen,
    /// The kernel's eBPF verifier rejected it.
    Verifier,
    /// A probe could not be attached.
    Attach,
    /// bpftrace itself crashed or aborted.
    Internal,
    /// No probe matched (e.g. a uprobe on a missing function).
    NoProbes,
    /// Not allowed to load BPF programs.
    Privileges,
    /// Anything else that ended with a non-zero exit.
    Other,
}

impl FailureKind {
    /// Stable kebab-case code, used in JSON and in the feedback to the LLM.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::Parse => "parse-error",
            FailureKind::Semantic => "semantic-error",
            FailureKind::Codegen => "codegen-error",
            FailureKind::Verifier => "verifier-rejected",
            FailureKind::Attach => "attach-failed",
            FailureKind::Internal => "bpftrace-internal-error",
            FailureKind::NoProbes => "no-probes-matched",
            FailureKind::Privileges => "no-privileges",
            FailureKind::Other => "bpftrace-failed",
        }
    }

    /// A short title for people.
    pub fn title(self) -> &'static str {
        match self {
            FailureKind::Parse => "Syntax error",
            FailureKind::Semantic => "The program is not valid for this kernel",
            FailureKind::Codegen => "bpftrace could not compile the program",
            FailureKind::Verifier => "The kernel's eBPF verifier rejected the program",
            FailureKind::Attach => "A probe could not be attached",
            FailureKind::Internal => "bpftrace crashed",
            FailureKind::NoProbes => "No probe matched",
            FailureKind::Privileges => "Not allowed to trace",
            FailureKind::Other => "bpftrace failed",
        }
    }
}

/// A span in the program, 1-based lines and columns as bpftrace prints them.
/// Columns are 0 when bpftrace gave only lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub line: usize,
    pub col_start: usize,
    pub col_end: usize,
}

impl Location {
    pub fn has_columns(&self) -> bool {
        self.col_start > 0
    }
}

/// One message bpftrace printed, with its location when it had one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub message: String,
    pub location: Option<Location>,
    /// The program line the location points at, as bpftrace echoed it.
    pub source_line: Option<String>,
    pub is_warning: bool,
}

/// A classified failure of one bpftrace run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The errors, most relevant first.
    pub diagnostics: Vec<Diagnostic>,
    /// Supporting text: the verifier log, or lines that were not diagnostics.
    pub log: Vec<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// A concrete next step, where one is known.
    pub hint: Option<String>,
}

impl Failure {
    /// The first error message, for one-line summaries.
    pub fn headline(&self) -> String {
        self.diagnostics
            .iter()
            .find(|d| !d.is_warning)
            .or(self.diagnostics.first())
            .map(|d| d.message.clone())
            .unwrap_or_else(|| self.kind.title().to_string())
    }
}

/// True for stderr lines that bpftrace prints on every run here and that mean nothing
/// (the locked-memory limit cannot be raised in our VMs, yet loading works).
pub fn is_harmless_stderr(line: &str) -> bool {
    line.contains("couldn't set RLIMIT_MEMLOCK")
}

/// Parses bpftrace's stderr into diagnostics: `stdin:L:C-C: ERROR: msg` followed by the
/// echoed source line and a `~~~` marker line; or bare `ERROR:`/`WARNING:` lines.
pub fn parse_diagnostics(stderr: &[String]) -> (Vec<Diagnostic>, Vec<String>) {
    let mut diagnostics = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < stderr.len() {
        let line = &stderr[i];
        i += 1;
        if is_harmless_stderr(line) {
            continue;
        }
        if let Some((location, is_warning, message)) = parse_located(line) {
            let mut source_line = None;
            // The echoed source line and its marker follow a located message.
            if i + 1 < stderr.len() && is_marker(&stderr[i + 1]) {
                source_line = Some(stderr[i].clone());
                i += 2;
            }
            diagnostics.push(Diagnostic {
                message,
                location: Some(location),
                source_line,
                is_warning,
            });
        } else if let Some(msg) = line.strip_prefix("ERROR: ") {
            diagnostics.push(Diagnostic {
                message: msg.trim().to_string(),
                location: None,
                source_line: None,
                is_warning: false,
            });
        } else if let Some(msg) = line.strip_prefix("WARNING: ") {
            diagnostics.push(Diagnostic {
                message: msg.trim().to_string(),
                location: None,
                source_line: None,
                is_warning: true,
            });
        } else if let Some(msg) = line.strip_prefix("FATAL: ") {
            diagnostics.push(Diagnostic {
                message: msg.trim().to_string(),
                location: None,
                source_line: None,
                is_warning: false,
            });
        } else if !line.trim().is_empty() {
            rest.push(line.clone());
        }
    }
    (diagnostics, rest)
}

fn is_marker(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.chars().all(|c| c == '~' || c == '^')
}

/// `stdin:3:5-12: ERROR: message` (also `stdin:2-4:...` for multi-line spans).
fn parse_located(line: &str) -> Option<(Location, bool, String)> {
    let rest = line.strip_prefix("stdin:")?;
    let (pos, after) = rest.split_once(": ")?;
    let (is_warning, message) = if let Some(m) = after.strip_prefix("ERROR: ") {
        (false, m)
    } else if let Some(m) = after.strip_prefix("WARNING: ") {
        (true, m)
    } else {
        return None;
    };
    let mut parts = pos.split(':');
    let lines = parts.next()?;
    let mut line_range = lines.split('-');
    let first_line: usize = line_range.next()?.parse().ok()?;
    let last_line: Option<usize> = line_range.next().and_then(|l| l.parse().ok());
    let (line_no, col_start, col_end) = match parts.next() {
        Some(cols) => {
            let mut col_it = cols.split('-');
            let col_start: usize = col_it.next()?.parse().ok()?;
            let col_end = col_it
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(col_start + 1);
            (first_line, col_start, col_end)
        }
        // `stdin:1-2:` (a probe's span starts after the previous block): the attach point
        // is on the last line.
        None => (last_line.unwrap_or(first_line), 0, 0),
    };
    Some((
        Location {
            line: line_no,
            col_start,
            col_end,
        },
        is_warning,
        message.trim().to_string(),
    ))
}

/// Classifies a finished run. `None` means it did not fail (exit 0, or ended by our own
/// signal after it was running).
pub fn classify(
    exit_code: Option<i32>,
    signal: Option<i32>,
    stderr: &[String],
    stdout_text: &[String],
) -> Option<Failure> {
    if exit_code == Some(0) {
        return None;
    }
    let (diagnostics, rest) = parse_diagnostics(stderr);
    let all_text = |needle: &str| stderr.iter().chain(stdout_text).any(|l| l.contains(needle));
    let first_error = diagnostics
        .iter()
        .find(|d| !d.is_warning)
        .map(|d| d.message.as_str())
        .unwrap_or("");

    let (kind, hint) = if all_text("only supports running as the root user")
        || all_text("Operation not permitted") && !all_text("Error attaching probe")
    {
        (
            FailureKind::Privileges,
            Some("run the kernel as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN".into()),
        )
    } else if exit_code == Some(134) || signal.is_some() || all_text("FATAL:") {
        (FailureKind::Internal, None)
    } else if stderr
        .iter()
        .any(|l| l.contains("BPF stack limit") || l.starts_with("error: <unknown>"))
    {
        (
            FailureKind::Codegen,
            Some(
                "keep large strings and buffers in maps rather than on the 512-byte BPF stack"
                    .into(),
            ),
        )
    } else if all_text("Error loading program") {
        (FailureKind::Verifier, None)
    } else if all_text("Error attaching probe") {
        (FailureKind::Attach, attach_hint(stderr))
    } else if all_text("No probes to attach") {
        (
            FailureKind::NoProbes,
            Some("check the attach point with %probes; for uprobes, list the binary's functions with %probes uprobe:/path/to/binary:*".into()),
        )
    } else if first_error.starts_with("syntax error") {
        (FailureKind::Parse, None)
    } else if !diagnostics.is_empty() {
        (FailureKind::Semantic, semantic_hint(first_error))
    } else {
        (FailureKind::Other, None)
    };

    let log = if kind == FailureKind::Verifier {
        verifier_log(stderr)
    } else {
        rest
    };
    let diagnostics = if diagnostics.is_empty() && kind == FailureKind::NoProbes {
        vec![Diagnostic {
            message: "No probes to attach".into(),
            location: None,
            source_line: None,
            is_warning: false,
        }]
    } else {
        diagnostics
    };
    Some(Failure {
        kind,
        diagnostics,
        log,
        exit_code,
        signal,
        hint,
    })
}

fn attach_hint(stderr: &[String]) -> Option<String> {
    let joined = stderr.join("\n");
    if joined.contains("kprobe_events") {
        Some("this kernel has no kprobes (CONFIG_KPROBES is off); use a tracepoint instead, e.g. %probes t:syscalls:* or t:sock:*".into())
    } else if joined.contains("perf_event_open failed") {
        Some("this machine has no such perf event (e.g. no hardware PMU in a VM); software:cpu-clock or profile:hz:99 work instead".into())
    } else {
        None
    }
}

fn semantic_hint(message: &str) -> Option<String> {
    if message.starts_with("tracepoint not found") || message.starts_with("tracepoints not found") {
        Some("list the tracepoints that exist with %probes t:CATEGORY:*".into())
    } else if message.contains("does not contain a field named") {
        Some("show the probe's fields with %probes -v PROBE".into())
    } else if message.contains("unsafe function") {
        Some("add --unsafe to the %%bpftrace line if you really mean it".into())
    } else if message.contains("kfunc/kretfunc not available") {
        Some("kfunc probes need BTF and fentry support; use a tracepoint instead".into())
    } else {
        None
    }
}

/// The verifier's own lines from a `-v` run: between `Error log:` and the `ERROR:` line.
fn verifier_log(stderr: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in stderr {
        if line.starts_with("Error log:") {
            inside = true;
            continue;
        }
        if inside {
            if line.starts_with("ERROR:") {
                break;
            }
            if !line.trim().is_empty() {
                out.push(line.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    const RLIMIT: &str = "ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace. If your program is not loading, you can try \"ulimit -l 8192\" to fix the problem";

    #[test]
    fn success_with_rlimit_noise_is_not_a_failure() {
        assert_eq!(classify(Some(0), None, &lines(RLIMIT), &[]), None);
        let (d, rest) = parse_diagnostics(&lines(RLIMIT));
        assert!(d.is_empty() && rest.is_empty());
    }

    #[test]
    fn syntax_error_with_location() {
        let err = format!(
            "{RLIMIT}\nstdin:1:20-21: ERROR: syntax error, unexpected }}, expecting ) or \",\"\nBEGIN {{ printf(\"x\" }}\n                   ~\n"
        );
        let f = classify(Some(1), None, &lines(&err), &[]).unwrap();
        assert_eq!(f.kind, FailureKind::Parse);
        assert_eq!(f.diagnostics.len(), 1);
        let d = &f.diagnostics[0];
        assert_eq!(
            d.location,
            Some(Location {
                line: 1,
                col_start: 20,
                col_end: 21
            })
        );
        assert_eq!(d.source_line.as_deref(), Some("BEGIN { printf(\"x\" }"));
        assert!(d.message.starts_with("syntax error"));
    }

    #[test]
    fn line_ranges_without_columns_point_at_the_last_line() {
        let f = classify(
            Some(1),
            None,
            &lines("stdin:1-2: ERROR: tracepoint not found: syscalls:sys_enter_nosuch"),
            &[],
        )
        .unwrap();
        let loc = f.diagnostics[0].location.unwrap();
        assert_eq!((loc.line, loc.has_columns()), (2, false));
    }

    #[test]
    fn several_semantic_errors_are_all_kept() {
        let err = "stdin:1:55-72: ERROR: Struct/union of type 'struct _tracepoint_syscalls_sys_enter_openat' does not contain a field named 'nofield'\nx\n  ~~~~\nstdin:1:55-73: ERROR: str() expects an integer or a pointer type as first argument (none provided)\nx\n  ~~~~~";
        let f = classify(Some(1), None, &lines(err), &[]).unwrap();
        assert_eq!(f.kind, FailureKind::Semantic);
        assert_eq!(f.diagnostics.len(), 2);
        assert!(f.hint.unwrap().contains("%probes -v"));
    }

    #[test]
    fn kprobe_attach_failure_on_a_kernel_without_kprobes() {
        let err = "stdin:1:1-16: WARNING: vfs_read is not traceable (either non-existing, inlined, or marked as \"notrace\"); attaching to it will likely fail\nkprobe:vfs_read { }\n~~~~~~~~~~~~~~~\ncreate_probe_event: open(/sys/kernel/tracing/kprobe_events): No such file or directory\nERROR: Error attaching probe: 'kprobe:vfs_read'";
        let f = classify(Some(255), None, &lines(err), &[]).unwrap();
        assert_eq!(f.kind, FailureKind::Attach);
        assert_eq!(f.headline(), "Error attaching probe: 'kprobe:vfs_read'");
        assert!(f.hint.unwrap().contains("CONFIG_KPROBES"));
    }

    #[test]
    fn verifier_rejection_keeps_the_log() {
        let err = "INFO: node count: 16\n\nError log: \n0: R1=ctx() R10=fp0\n12: (05) goto pc-11\ninfinite loop detected at insn 2\n\nERROR: Error loading program: BEGIN";
        let f = classify(Some(255), None, &lines(err), &[]).unwrap();
        assert_eq!(f.kind, FailureKind::Verifier);
        assert!(f.log.iter().any(|l| l.contains("infinite loop detected")));
        assert!(!f.log.iter().any(|l| l.starts_with("ERROR")));
    }

    #[test]
    fn other_classes() {
        let f = classify(
            Some(134),
            None,
            &lines("FATAL: Invalid probe type made it to attachpoint parser"),
            &[],
        )
        .unwrap();
        assert_eq!(f.kind, FailureKind::Internal);
        let f = classify(Some(1), None, &[], &lines("No probes to attach")).unwrap();
        assert_eq!(f.kind, FailureKind::NoProbes);
        let f = classify(
            Some(1),
            None,
            &lines("ERROR: bpftrace currently only supports running as the root user."),
            &[],
        )
        .unwrap();
        assert_eq!(f.kind, FailureKind::Privileges);
        let f = classify(Some(1), None, &lines("error: <unknown>:0:0: in function BEGIN i64 (i8*): Looks like the BPF stack limit of 512 bytes is exceeded. Please move large on stack variables into BPF per-cpu array map."), &[]).unwrap();
        assert_eq!(f.kind, FailureKind::Codegen);
        let f = classify(Some(1), None, &lines("stdin:1:9-21: ERROR: system() is an unsafe function being used in safe mode\nBEGIN { system(\"ls\"); }\n        ~~~~~~~~~~~~"), &[]).unwrap();
        assert_eq!(f.kind, FailureKind::Semantic);
        assert!(f.hint.unwrap().contains("--unsafe"));
    }
}
