//! Live capability detection: really runs bpftrace against this kernel (a few seconds).
//! Skipped where bpftrace is missing or we are not root. One test per file because it sets
//! `XDG_CACHE_HOME` for the process.

use kgent_catalog::{
    capabilities, detect, doctor_lines, find_bpftrace, mount_tracefs, tracefs_state, Privileges,
    ProbeType, Support, TracefsState,
};

#[test]
fn live_detection_matches_this_machine() {
    let Some(bpftrace) = find_bpftrace() else {
        eprintln!("skipped: bpftrace not found");
        return;
    };
    if Privileges::current().euid != 0 {
        eprintln!("skipped: not root");
        return;
    }
    assert!(bpftrace.major_minor >= (0, 17), "{bpftrace:?}");
    assert!(matches!(tracefs_state(), TracefsState::Mounted(_)));
    // Already mounted: mount_tracefs reports where, without mounting again.
    assert_eq!(
        mount_tracefs().unwrap(),
        std::path::PathBuf::from("/sys/kernel/tracing")
    );

    let started = std::time::Instant::now();
    let probes = detect(&bpftrace);
    eprintln!("detect took {:?}", started.elapsed());
    for (pt, s) in &probes {
        eprintln!("{pt:>13}: {s:?}");
    }
    assert_eq!(probes.len(), ProbeType::ALL.len());
    for pt in [
        ProbeType::Tracepoint,
        ProbeType::Uprobe,
        ProbeType::Uretprobe,
        ProbeType::Profile,
        ProbeType::Interval,
        ProbeType::Software,
        ProbeType::Begin,
        ProbeType::End,
    ] {
        assert_eq!(probes[&pt], Support::Works, "{pt}");
    }
    // This kernel has CONFIG_KPROBES off: kprobes must fail, with a reason saying so.
    if !std::path::Path::new("/sys/kernel/tracing/kprobe_events").exists() {
        match &probes[&ProbeType::Kprobe] {
            Support::Fails { reason } => assert!(reason.contains("kprobe"), "{reason}"),
            other => panic!("kprobe: {other:?}"),
        }
    }

    // capabilities(): first call detects and writes the cache, second reads it.
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_CACHE_HOME", cache.path());
    let first = capabilities(true);
    let file = cache.path().join("kgent/capabilities.json");
    assert!(file.exists());
    let started = std::time::Instant::now();
    let second = capabilities(false);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "cache not used"
    );
    assert_eq!(first, second);
    assert_eq!(second.probes[&ProbeType::Tracepoint], Support::Works);
    for l in doctor_lines(&second) {
        eprintln!("{l}");
    }
}
