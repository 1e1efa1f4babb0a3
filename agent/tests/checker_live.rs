//! The checker against this machine's kernel (`CatalogFacts` over the live
//! catalog and the measured probe-type support): the 38 bpftrace tools
//! Debian installs raise no false alarms, each check flags a wrong program
//! and passes its corrected form, and the fixture the frontend's data tests
//! use can be regenerated from here.
//!
//! Skips, naming the reason, without tracefs, BTF or the tools.

#[macro_use]
mod common;

use std::path::Path;

use kgent_frontend::ast::ProbeKind;
use kgent_frontend::{
    check, parse, render_human, CheckOptions, Diagnostic, KernelFacts, ProbeSupport, Severity,
};

/// The 38 tools Debian's bpftrace package installs as `/usr/sbin/*.bt`.
const TOOLS: &[&str] = &[
    "bashreadline",
    "biolatency",
    "biosnoop",
    "biostacks",
    "bitesize",
    "capable",
    "cpuwalk",
    "dcsnoop",
    "execsnoop",
    "gethostlatency",
    "killsnoop",
    "loads",
    "mdflush",
    "naptime",
    "oomkill",
    "opensnoop",
    "pidpersec",
    "runqlat",
    "runqlen",
    "setuids",
    "ssllatency",
    "sslsnoop",
    "statsnoop",
    "swapin",
    "syncsnoop",
    "syscount",
    "tcpaccept",
    "tcpconnect",
    "tcpdrop",
    "tcplife",
    "tcpretrans",
    "tcpsynbl",
    "threadsnoop",
    "undump",
    "vfscount",
    "vfsstat",
    "writeback",
    "xfsdist",
];

fn run(facts: &dyn KernelFacts, source: &str) -> Vec<Diagnostic> {
    let parsed = parse(source);
    assert!(
        !parsed.has_errors(),
        "parse errors:\n{}",
        render_human(source, "test.bt", &parsed.diagnostics, false)
    );
    check(&parsed.program, source, facts, &CheckOptions::default())
}

fn tools() -> Vec<(String, String)> {
    TOOLS
        .iter()
        .filter_map(|t| {
            let text =
                std::fs::read_to_string(Path::new("/usr/sbin").join(format!("{t}.bt"))).ok()?;
            Some((t.to_string(), text))
        })
        .collect()
}

/// Codes allowed as warnings on the tools, each reviewed: `unknown-probe` for
/// uprobe attach points this machine's libraries lack (bpftrace skips them
/// silently: the libcrypto internals sslsnoop lists, pthread_create, which
/// glibc 2.34 moved from libpthread to libc).
const REVIEWED_WARNINGS: &[&str] = &["unknown-probe"];

#[test]
fn the_38_tools_raise_no_false_alarms() {
    let facts = live_facts!("the_38_tools_raise_no_false_alarms");
    let tools = tools();
    if tools.is_empty() {
        eprintln!("the_38_tools_raise_no_false_alarms: skipped: /usr/sbin/*.bt not installed (Debian's bpftrace package)");
        return;
    }
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for (name, text) in &tools {
        let diags = run(facts, text);
        let rendered = render_human(text, &format!("{name}.bt"), &diags, false);
        let uses_kprobes = parse(text).program.probes().any(|p| {
            p.attach_points
                .iter()
                .any(|ap| matches!(ap.kind, Some(ProbeKind::Kprobe | ProbeKind::Kretprobe)))
        });
        for d in &diags {
            match (d.severity, d.code) {
                (Severity::Error, "unsupported-probe-type") if uses_kprobes => {
                    // It must name a probe that exists here.
                    let named = d.message.split('`').nth(1).unwrap_or_default();
                    if named.is_empty() || facts.matching_probes(named, 1).total == 0 {
                        problems.push(format!(
                            "{name}: no existing alternative named: {}",
                            d.message
                        ));
                    }
                }
                (Severity::Error, _) => problems.push(format!("{name}: error\n{rendered}")),
                (Severity::Warning, code) if REVIEWED_WARNINGS.contains(&code) => {
                    // Only for attach points of uprobes.
                    let at = d.span.text(text);
                    if !at.starts_with("uprobe:") && !at.starts_with("uretprobe:") {
                        problems.push(format!("{name}: unreviewed warning\n{rendered}"));
                    }
                }
                _ => problems.push(format!("{name}: unreviewed diagnostic\n{rendered}")),
            }
        }
        let codes: Vec<String> = diags
            .iter()
            .map(|d| match d.code {
                "unsupported-probe-type" => format!(
                    "{} {} (-> {})",
                    d.severity.as_str(),
                    d.code,
                    d.message.split('`').nth(1).unwrap_or("none")
                ),
                _ => format!("{} {}", d.severity.as_str(), d.code),
            })
            .collect();
        summary.push(format!(
            "{name}: {}",
            if codes.is_empty() {
                "clean".to_string()
            } else {
                codes.join(", ")
            }
        ));
    }
    eprintln!("{} tools checked:\n{}", tools.len(), summary.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// For each check: a program it must flag (with that code) and the corrected
/// program, which must check clean.
struct Case {
    code: &'static str,
    wrong: &'static str,
    right: &'static str,
    /// bpftrace 0.17 itself rejects `wrong` (the checker only says it sooner).
    bpftrace_rejects: bool,
}

const CASES: &[Case] = &[
    Case {
        code: "unknown-probe",
        wrong: "tracepoint:syscalls:sys_enter_opn { @[comm] = count(); }",
        right: "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "unknown-probe",
        wrong: "uretprobe:/bin/bash:readlin { printf(\"%s\\n\", str(retval)); }",
        right: "uretprobe:/bin/bash:readline { printf(\"%s\\n\", str(retval)); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "unsupported-probe-type",
        wrong: "kprobe:tcp_connect { @[comm] = count(); }",
        right: "tracepoint:sock:inet_sock_set_state /args->newstate == 2/ { @[comm] = count(); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "too-many-probes",
        wrong: "tracepoint:syscalls:sys_enter_* { @[probe] = count(); }",
        right: "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }",
        bpftrace_rejects: false,
    },
    Case {
        code: "no-such-field",
        wrong: "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->fname)); }",
        right: "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->filename)); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "no-such-field",
        wrong: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; @[$sk->sk_dport] = count(); }",
        right: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; @[bswap($sk->__sk_common.skc_dport)] = count(); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "unknown-type",
        wrong: "tracepoint:sock:inet_sock_set_state { $sk = (struct sockk *)args->skaddr; @[comm] = count(); }",
        right: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; @[comm] = count(); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "member-operator",
        wrong: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; @[$sk.__sk_common.skc_family] = count(); }",
        right: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; @[$sk->__sk_common.skc_family] = count(); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "builtin-unavailable",
        wrong: "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(arg1)); }",
        right: "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->filename)); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "builtin-unavailable",
        wrong: "BEGIN { printf(\"%d\\n\", args->pid); }",
        right: "BEGIN { printf(\"%d\\n\", pid); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "unknown-function",
        wrong: "BEGIN { prinf(\"hello\\n\"); }",
        right: "BEGIN { printf(\"hello\\n\"); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "unknown-identifier",
        wrong: "BEGIN { printf(\"%d\\n\", pidd); }",
        right: "BEGIN { printf(\"%d\\n\", pid); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "wrong-arity",
        wrong: "tracepoint:syscalls:sys_enter_read { @s = lhist(args->count, 0, 4096); }",
        right: "tracepoint:syscalls:sys_enter_read { @s = lhist(args->count, 0, 4096, 512); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "printf-format",
        wrong: "tracepoint:syscalls:sys_enter_openat { printf(\"%d %s\\n\", comm, args->filename); }",
        right: "tracepoint:syscalls:sys_enter_openat { printf(\"%s %s\\n\", comm, str(args->filename)); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "undefined-variable",
        wrong: "tracepoint:syscalls:sys_enter_read { printf(\"%d\\n\", $n); $n = args->count; }",
        right: "tracepoint:syscalls:sys_enter_read { $n = args->count; printf(\"%d\\n\", $n); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "map-never-written",
        wrong: "tracepoint:syscalls:sys_enter_read { @start[tid] = nsecs; } tracepoint:syscalls:sys_exit_read /@strat[tid]/ { delete(@start[tid]); }",
        right: "tracepoint:syscalls:sys_enter_read { @start[tid] = nsecs; } tracepoint:syscalls:sys_exit_read /@start[tid]/ { delete(@start[tid]); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "map-type-conflict",
        wrong: "tracepoint:syscalls:sys_enter_read { @r[comm] = count(); } tracepoint:syscalls:sys_enter_write { @r[comm] = hist(args->count); }",
        right: "tracepoint:syscalls:sys_enter_read { @r[comm] = count(); } tracepoint:syscalls:sys_enter_write { @w[comm] = hist(args->count); }",
        bpftrace_rejects: true,
    },
    Case {
        code: "str-on-non-pointer",
        wrong: "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->flags)); }",
        right: "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->filename)); }",
        bpftrace_rejects: false,
    },
    Case {
        code: "network-byte-order",
        wrong: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; printf(\"%d\\n\", $sk->__sk_common.skc_dport); }",
        right: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; printf(\"%d\\n\", bswap($sk->__sk_common.skc_dport)); }",
        bpftrace_rejects: false,
    },
    Case {
        code: "network-byte-order",
        wrong: "tracepoint:sock:inet_sock_set_state { $sk = (struct sock *)args->skaddr; if ($sk->__sk_common.skc_dport == 22) { @ssh = count(); } }",
        right: "tracepoint:sock:inet_sock_set_state /args->dport == 22/ { @ssh = count(); }",
        bpftrace_rejects: false,
    },
    Case {
        code: "unsafe-builtin",
        wrong: "tracepoint:syscalls:sys_enter_kill { system(\"logger %d\", args->pid); }",
        right: "tracepoint:syscalls:sys_enter_kill { printf(\"%d\\n\", args->pid); }",
        bpftrace_rejects: true,
    },
];

#[test]
fn each_check_flags_the_wrong_program_and_passes_the_right_one() {
    let facts = live_facts!("each_check_flags_the_wrong_program_and_passes_the_right_one");
    let kprobes_work = facts.probe_support(ProbeKind::Kprobe) == ProbeSupport::Works;
    let mut failures = Vec::new();
    for case in CASES {
        if case.code == "unsupported-probe-type" && kprobes_work {
            eprintln!("unsupported-probe-type: skipped: kprobes attach on this kernel");
            continue;
        }
        let wrong = run(facts, case.wrong);
        if !wrong.iter().any(|d| d.code == case.code) {
            failures.push(format!(
                "[{}] not flagged in:\n{}\n{}",
                case.code,
                case.wrong,
                render_human(case.wrong, "wrong.bt", &wrong, false)
            ));
        }
        let right = run(facts, case.right);
        if !right.is_empty() {
            failures.push(format!(
                "[{}] the corrected program is flagged:\n{}",
                case.code,
                render_human(case.right, "right.bt", &right, false)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// bpftrace 0.17 itself agrees: on each program (with an interval probe
/// added so that it stops), the checker reports an error exactly when
/// bpftrace refuses to run it. Wrong programs bpftrace runs anyway
/// (`bpftrace_rejects: false`) are left out.
#[test]
fn bpftrace_agrees_with_the_verdicts() {
    let facts = live_facts!("bpftrace_agrees_with_the_verdicts");
    let bpftrace = std::env::var("KGENT_BPFTRACE").unwrap_or_else(|_| "/usr/bin/bpftrace".into());
    if !Path::new(&bpftrace).exists() || unsafe { libc::geteuid() } != 0 {
        eprintln!("bpftrace_agrees_with_the_verdicts: skipped: needs {bpftrace} and root");
        return;
    }
    let mut failures = Vec::new();
    for case in CASES {
        for (program, wrong) in [(case.right, false), (case.wrong, true)] {
            if (wrong && !case.bpftrace_rejects) || program.contains("sys_enter_*") {
                continue; // not an error for bpftrace; or 360 probes, ~25 s to attach
            }
            let text = format!("{program}\ninterval:ms:200 {{ exit(); }}");
            let checker_rejects = run(facts, &text).iter().any(Diagnostic::is_error);
            let out = std::process::Command::new(&bpftrace)
                .args(["-e", &text])
                .output()
                .expect("bpftrace runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let bpftrace_rejects = !out.status.success() || stdout.contains("No probes to attach");
            if checker_rejects != bpftrace_rejects {
                failures.push(format!(
                    "[{}] checker {} but bpftrace {} `{text}`:\n{}",
                    case.code,
                    if checker_rejects {
                        "rejects"
                    } else {
                        "accepts"
                    },
                    if bpftrace_rejects {
                        "rejects"
                    } else {
                        "accepts"
                    },
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Writes `agent/frontend/test_data/checker/kernel.json`, the kernel the
/// frontend's data-driven checker tests run against, from this machine.
/// Run on purpose only: `cargo test -p kgent-agent --test checker_live -- --ignored write_checker_fixture`.
#[test]
#[ignore = "regenerates a checked-in fixture"]
fn write_checker_fixture() {
    use kgent_frontend::facts::{CaptureSpec, StaticFacts};
    use kgent_frontend::{RecordKind, RecordRef};

    let facts = live_facts!("write_checker_fixture");
    let tracepoints = [
        "tracepoint:syscalls:sys_enter_openat",
        "tracepoint:syscalls:sys_exit_openat",
        "tracepoint:syscalls:sys_enter_open",
        "tracepoint:syscalls:sys_enter_read",
        "tracepoint:syscalls:sys_exit_read",
        "tracepoint:syscalls:sys_enter_write",
        "tracepoint:syscalls:sys_enter_execve",
        "tracepoint:syscalls:sys_enter_execveat",
        "tracepoint:syscalls:sys_enter_connect",
        "tracepoint:syscalls:sys_enter_kill",
        "tracepoint:syscalls:sys_exit_kill",
        "tracepoint:raw_syscalls:sys_enter",
        "tracepoint:raw_syscalls:sys_exit",
        "tracepoint:sched:sched_process_exec",
        "tracepoint:sched:sched_process_exit",
        "tracepoint:sched:sched_process_fork",
        "tracepoint:sched:sched_switch",
        "tracepoint:sched:sched_wakeup",
        "tracepoint:sock:inet_sock_set_state",
        "tracepoint:tcp:tcp_retransmit_skb",
        "tracepoint:tcp:tcp_send_reset",
        "tracepoint:tcp:tcp_probe",
        "tracepoint:block:block_rq_issue",
        "tracepoint:block:block_rq_complete",
        "tracepoint:net:netif_rx",
        "tracepoint:skb:kfree_skb",
    ];
    let mut fields_of: Vec<&str> = tracepoints.to_vec();
    fields_of.extend([
        "kfunc:vfs_read",
        "kfunc:tcp_connect",
        "kfunc:do_sys_openat2",
    ]);
    let records: Vec<RecordRef> = [
        "sock",
        "sock_common",
        "sk_buff",
        "task_struct",
        "inet_sock",
        "sockaddr_in",
        "sockaddr",
        "in_addr",
        "in6_addr",
        "file",
        "path",
        "dentry",
        "qstr",
    ]
    .iter()
    .map(|n| RecordRef::new(RecordKind::Struct, *n))
    .collect();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let spec = CaptureSpec {
        description: format!(
            "Captured from Linux {} by agent/tests/checker_live.rs (write_checker_fixture)",
            release.trim()
        ),
        probe_patterns: &[
            "tracepoint:syscalls:*",
            "tracepoint:raw_syscalls:*",
            "tracepoint:sched:*",
            "tracepoint:sock:*",
            "tracepoint:tcp:*",
            "tracepoint:block:*",
            "tracepoint:net:*",
            "tracepoint:skb:*",
            "tracepoint:capability:*",
            "tracepoint:oom:*",
            "tracepoint:signal:*",
            "kprobe:vfs_*",
            "kprobe:tcp_connect",
            "kprobe:tcp_v4_connect",
            "kprobe:tcp_set_state",
            "kprobe:tcp_retransmit_skb",
            "kprobe:do_sys_openat2",
            "kprobe:blk_mq_start_request",
            "kprobe:cap_capable",
            "kprobe:__x64_sys_openat",
            "kfunc:vfs_read",
            "kfunc:vfs_write",
            "kfunc:tcp_connect",
            "kfunc:do_sys_openat2",
            "uprobe:/bin/bash:read*",
            "uprobe:/bin/bash:*line*",
            "uprobe:libc:malloc",
            "uprobe:libc:free",
            "uprobe:libc:pthread_create",
            "uprobe:libc:getaddrinfo",
        ],
        fields_of: &fields_of,
        targets: &["/bin/bash", "libc", "libpthread"],
        records: &records,
        typedefs: &[
            "__be16", "__be32", "__u16", "__u32", "size_t", "umode_t", "pid_t",
        ],
        enums: &[
            "TCP_ESTABLISHED",
            "TCP_SYN_SENT",
            "TCP_CLOSE",
            "TCP_LISTEN",
            "SKB_DROP_REASON_NOT_SPECIFIED",
        ],
    };
    let captured = StaticFacts::capture(facts, &spec);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend/test_data/checker/kernel.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, captured.to_json() + "\n").unwrap();
    eprintln!(
        "wrote {} ({} probes, {} field lists, {} records)",
        path.display(),
        captured.probes.len(),
        captured.probe_fields.len(),
        captured.records.len()
    );
}

/// The programs of `specs/examples/*.toml`.
fn example_programs() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/examples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let start = text.find("program = '''")? + "program = '''".len();
            let len = text[start..].find("'''")?;
            let program = text[start..start + len]
                .trim_start_matches('\n')
                .to_string();
            Some((e.file_name().to_string_lossy().into_owned(), program))
        })
        .collect();
    out.sort();
    out
}

/// The project's example library (`specs/examples/*.toml`: every program
/// loads on this kernel, or passes bpftrace's dry run where the probe type
/// cannot attach) raises nothing but `unsupported-probe-type`, and that only
/// for probe types that really fail here.
#[test]
fn the_example_library_raises_no_false_alarms() {
    let facts = live_facts!("the_example_library_raises_no_false_alarms");
    let examples = example_programs();
    if examples.is_empty() {
        eprintln!("the_example_library_raises_no_false_alarms: skipped: no specs/examples/*.toml");
        return;
    }
    let mut problems = Vec::new();
    let mut unsupported = 0;
    for (name, text) in &examples {
        let parsed = parse(text);
        if parsed.has_errors() {
            continue; // the parser's tests own syntax
        }
        for d in check(&parsed.program, text, facts, &CheckOptions::default()) {
            let kind = ProbeKind::from_provider(d.span.text(text).split(':').next().unwrap_or(""));
            let failing_type = kind.is_some_and(|k| {
                matches!(facts.probe_support(k), ProbeSupport::Unsupported { .. })
            });
            if d.code == "unsupported-probe-type" && failing_type {
                unsupported += 1;
            } else {
                problems.push(format!(
                    "{name}:\n{}",
                    render_human(text, name, &[d], false)
                ));
            }
        }
    }
    eprintln!(
        "{} example programs checked, {unsupported} unsupported-probe-type reports",
        examples.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
