//! Capability tests that need no kernel: doctor lines and alternatives for made-up machines.

use std::collections::BTreeMap;

use kgent_catalog::{
    alternatives, doctor_lines, BpftraceInfo, Capabilities, Privileges, ProbeType, Support,
    TracefsState,
};

fn fails(reason: &str) -> Support {
    Support::Fails {
        reason: reason.into(),
    }
}

/// A machine like the development VM: no kprobes, no kfunc, no PMU.
fn like_dev_vm() -> Capabilities {
    let mut probes = BTreeMap::new();
    for pt in ProbeType::ALL {
        probes.insert(pt, Support::Works);
    }
    for pt in [ProbeType::Kprobe, ProbeType::Kretprobe] {
        probes.insert(pt, fails("kernel has no kprobes (CONFIG_KPROBES off)"));
    }
    for pt in [ProbeType::Kfunc, ProbeType::Kretfunc] {
        probes.insert(
            pt,
            fails("rejected by bpftrace: kfunc/kretfunc not available"),
        );
    }
    probes.insert(
        ProbeType::Hardware,
        fails("attach failed: perf_event_open failed"),
    );
    probes.insert(ProbeType::Rawtracepoint, fails("bpftrace aborted"));
    Capabilities {
        kernel_release: "6.18.0".into(),
        bpftrace: Some(BpftraceInfo {
            path: "/usr/bin/bpftrace".into(),
            version: "0.17.0".into(),
            major_minor: (0, 17),
        }),
        tracefs: TracefsState::Mounted("/sys/kernel/tracing".into()),
        privileges: Privileges::from_raw(0, u64::MAX),
        btf: true,
        probes,
    }
}

fn line<'a>(lines: &'a [kgent_catalog::DoctorLine], check: &str) -> &'a kgent_catalog::DoctorLine {
    lines
        .iter()
        .find(|l| l.check == check)
        .unwrap_or_else(|| panic!("no {check} line in {lines:?}"))
}

#[test]
fn doctor_without_bpftrace_tracefs_or_privileges() {
    let caps = Capabilities {
        bpftrace: None,
        tracefs: TracefsState::NotMounted,
        privileges: Privileges::from_raw(1000, 0),
        btf: false,
        probes: ProbeType::ALL
            .iter()
            .map(|pt| {
                (
                    *pt,
                    Support::NotTested {
                        reason: "bpftrace not found".into(),
                    },
                )
            })
            .collect(),
        ..like_dev_vm()
    };
    let lines = doctor_lines(&caps);
    let b = line(&lines, "bpftrace");
    assert!(!b.ok);
    assert!(b
        .fix
        .as_deref()
        .unwrap()
        .contains("apt-get install bpftrace"));
    let t = line(&lines, "tracefs");
    assert!(!t.ok);
    assert_eq!(
        t.fix.as_deref(),
        Some("mount -t tracefs nodev /sys/kernel/tracing")
    );
    let p = line(&lines, "privileges");
    assert!(!p.ok);
    assert!(p
        .fix
        .as_deref()
        .unwrap()
        .contains("run as root or grant CAP_BPF,CAP_PERFMON"));
    assert!(!line(&lines, "BTF").ok);
    let k = line(&lines, "probe kprobe");
    assert!(!k.ok && k.detail.contains("not tested"));
    assert!(line(&lines, "kernel").ok);
    for l in &lines {
        let text = l.to_string();
        assert!(text.contains(&l.check), "{text}");
    }
}

#[test]
fn doctor_on_a_healthy_machine_with_failing_kprobes() {
    let caps = like_dev_vm();
    let lines = doctor_lines(&caps);
    for check in [
        "kernel",
        "bpftrace",
        "tracefs",
        "privileges",
        "BTF",
        "probe tracepoint",
    ] {
        assert!(line(&lines, check).ok, "{check}");
    }
    let k = line(&lines, "probe kprobe");
    assert!(!k.ok);
    assert!(k.detail.contains("CONFIG_KPROBES"));
    let fix = k.fix.as_deref().unwrap();
    assert!(fix.contains("tracepoint:sock:inet_sock_set_state"), "{fix}");
    assert!(!fix.contains("kfunc"), "kfunc fails here too: {fix}");
    assert_eq!(lines.len(), 5 + ProbeType::ALL.len());
}

#[test]
fn bpftrace_017_needs_root_even_with_caps() {
    let caps = Capabilities {
        privileges: Privileges::from_raw(1000, (1 << 38) | (1 << 39)),
        ..like_dev_vm()
    };
    let p = line(&doctor_lines(&caps), "privileges").clone();
    assert!(!p.ok && p.detail.contains("root"), "{p:?}");
}

#[test]
fn alternatives_skip_failing_types() {
    let caps = like_dev_vm();
    let kp = alternatives(ProbeType::Kprobe, &caps);
    assert_eq!(kp.len(), 1, "{kp:?}");
    assert!(kp[0].starts_with("tracepoint"));
    assert!(kp[0].contains("syscalls:sys_enter_*"));
    let hw = alternatives(ProbeType::Hardware, &caps);
    assert!(hw[0].starts_with("software:cpu-clock"));
    assert!(hw[1].starts_with("profile:hz"));
    let kf = alternatives(ProbeType::Kfunc, &caps);
    assert!(kf.iter().all(|a| !a.starts_with("kprobe")), "{kf:?}");
    let raw = alternatives(ProbeType::Rawtracepoint, &caps);
    assert!(raw[0].starts_with("tracepoint:"));
    assert!(alternatives(ProbeType::Begin, &caps).is_empty());

    // Where kfunc works it is the first suggestion for kprobe.
    let mut with_kfunc = like_dev_vm();
    with_kfunc.probes.insert(ProbeType::Kfunc, Support::Works);
    assert!(alternatives(ProbeType::Kprobe, &with_kfunc)[0].starts_with("kfunc:"));
}

#[test]
fn capabilities_serialise() {
    let caps = like_dev_vm();
    let json = serde_json::to_string(&caps).unwrap();
    let back: Capabilities = serde_json::from_str(&json).unwrap();
    assert_eq!(back, caps);
}
