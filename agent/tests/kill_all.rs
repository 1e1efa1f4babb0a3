//! `kill_all_runs` against real bpftrace processes; its own test binary because it kills
//! every run of the process, including other tests' runs.

use std::path::PathBuf;
use std::time::Duration;

use kgent_agent::runner::{kill_all_runs, BpftraceRun, RunEvent, RunSpec};
use kgent_output::OutputEvent;

fn bpftrace() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/bpftrace");
    if !path.exists() || unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs /usr/bin/bpftrace and root");
        return None;
    }
    Some(path)
}

#[tokio::test]
async fn kill_all_runs_ends_every_run() {
    let Some(bt) = bpftrace() else { return };
    let mut run =
        BpftraceRun::spawn(&RunSpec::new(bt, r#"interval:ms:50 { printf("x\n"); }"#)).unwrap();
    loop {
        if let RunEvent::Output(OutputEvent::Printf(_)) = run.next_event().await {
            break;
        }
    }
    kill_all_runs();
    let exit = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let RunEvent::Exited(e) = run.next_event().await {
                return e;
            }
        }
    })
    .await
    .expect("killed within 5 s");
    assert_eq!(exit.signal, Some(libc::SIGKILL));
}
