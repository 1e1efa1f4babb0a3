//! The runner against the real bpftrace and kernel: events, failures, signals.

use std::path::PathBuf;
use std::time::Duration;

use kgent_agent::runner::{BpftraceRun, RunEvent, RunSpec};
use kgent_agent::FailureKind;
use kgent_output::OutputEvent;

/// The bpftrace to test with, or None with the reason printed (the test then checks nothing).
fn bpftrace() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("KGENT_BPFTRACE").unwrap_or_else(|_| "/usr/bin/bpftrace".into()),
    );
    if !path.exists() {
        eprintln!("SKIP: bpftrace is not installed at {}", path.display());
        return None;
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: bpftrace needs root");
        return None;
    }
    Some(path)
}

fn printfs(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Output(OutputEvent::Printf(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn prints_and_exits() {
    let Some(bt) = bpftrace() else { return };
    let run = BpftraceRun::spawn(&RunSpec::new(
        bt,
        r#"BEGIN { printf("hello %d\n", 42); @n["x"] = count(); exit(); }"#,
    ))
    .unwrap();
    let (events, exit) = run.collect(Duration::from_secs(30)).await;
    assert_eq!(exit.code, Some(0));
    assert!(exit.failure.is_none(), "{:?}", exit.failure);
    assert_eq!(printfs(&events), vec!["hello 42\n"]);
    assert!(events.contains(&RunEvent::ExitDumpStarts));
    assert!(events
        .iter()
        .any(|e| matches!(e, RunEvent::Output(OutputEvent::Map(m)) if m.name == "@n")));
    // The harmless RLIMIT_MEMLOCK line never reaches the caller.
    assert!(!events
        .iter()
        .any(|e| matches!(e, RunEvent::Stderr(l) if l.contains("RLIMIT"))));
}

#[tokio::test]
async fn classifies_a_semantic_error_with_its_location() {
    let Some(bt) = bpftrace() else { return };
    let run = BpftraceRun::spawn(&RunSpec::new(
        bt,
        "BEGIN { exit(); }\ntracepoint:syscalls:sys_enter_nosuch { }",
    ))
    .unwrap();
    let (_, exit) = run.collect(Duration::from_secs(30)).await;
    let failure = exit.failure.expect("must fail");
    assert_eq!(failure.kind, FailureKind::Semantic);
    let loc = failure.diagnostics[0].location.expect("located");
    assert_eq!(loc.line, 2);
    assert!(failure.headline().contains("tracepoint not found"));
}

#[tokio::test]
async fn verifier_rejection_has_a_log() {
    let Some(bt) = bpftrace() else { return };
    let spec = RunSpec::new(
        bt,
        "BEGIN { $i = 0; while ($i < 10) { @[$i] = 1; } exit(); }",
    );
    let (_, exit) = BpftraceRun::spawn(&spec)
        .unwrap()
        .collect(Duration::from_secs(30))
        .await;
    let failure = exit.failure.expect("must fail");
    assert_eq!(failure.kind, FailureKind::Verifier);
    let log = kgent_agent::runner::verifier_log(&spec).await;
    assert!(log.iter().any(|l| l.contains("infinite loop")), "{log:?}");
}

#[tokio::test]
async fn interrupt_detaches_and_prints_maps() {
    let Some(bt) = bpftrace() else { return };
    let mut run = BpftraceRun::spawn(&RunSpec::new(
        bt,
        r#"interval:ms:20 { @ticks = count(); printf("tick\n"); }"#,
    ))
    .unwrap();
    let mut ticks = 0;
    while ticks < 3 {
        match run.next_event().await {
            RunEvent::Output(OutputEvent::Printf(_)) => ticks += 1,
            RunEvent::Exited(e) => panic!("exited early: {e:?}"),
            _ => {}
        }
    }
    run.interrupt();
    let (events, exit) = run.collect(Duration::from_secs(10)).await;
    assert_eq!(exit.code, Some(0), "{exit:?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, RunEvent::Output(OutputEvent::Map(m)) if m.name == "@ticks")));
}

#[tokio::test]
async fn flood_is_read_completely() {
    let Some(bt) = bpftrace() else { return };
    let mut spec = RunSpec::new(
        bt,
        r#"BEGIN { $i = 0; unroll(100) { printf("line %d\n", $i); $i++; } exit(); }"#,
    );
    spec.args = vec![];
    let (events, exit) = BpftraceRun::spawn(&spec)
        .unwrap()
        .collect(Duration::from_secs(30))
        .await;
    assert!(exit.failure.is_none());
    let lines = printfs(&events);
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[99], "line 99\n");
}
