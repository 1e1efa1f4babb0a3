//! The verifier client against the real `kgent-verifier` (when built) and against
//! stand-ins that crash, hang or answer, to check it never panics and recovers.
//!
//! `kgent-verifier` belongs to the `kgent-verify` crate: `cargo test --workspace` (or
//! `cargo build --workspace` first) builds it; without it those tests are skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kgent_agent::verifier::{VerdictData, Verifier, VerifierError, VerifierRequest};

/// `target/<profile>/kgent-verifier`, next to this test's `deps` directory.
fn real_verifier() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("kgent-verifier");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIP: {} is missing; build it with `cargo build --release --workspace`",
            path.display()
        );
        None
    }
}

const WRONG: &str =
    "kretprobe:vfs_read { if (retval > 0) { printf(\"read %ld bytes\\n\", retval); \
                     assert((int64)retval > 0, \"only successful reads\"); } }";

fn dead(pid: u32) -> bool {
    // Gone, or a zombie not reaped yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_dead(pid: u32) {
    for _ in 0..200 {
        if dead(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {pid} is still alive");
}

#[tokio::test]
async fn the_client_survives_a_killed_verifier() {
    let Some(path) = real_verifier() else { return };
    let verifier = Verifier::at(&path);

    let first = verifier
        .verify(VerifierRequest::new(WRONG))
        .await
        .expect("first answer");
    assert_eq!(first.error, None);
    let report = first.report.expect("a report");
    assert!(
        matches!(report.assertions[0].verdict, VerdictData::Refuted { .. }),
        "{report:?}"
    );
    let pid = verifier.pid().await.expect("running");

    // The process serves further requests...
    let again = verifier.verify(VerifierRequest::new(WRONG)).await.unwrap();
    assert_eq!(verifier.pid().await, Some(pid));
    assert!(again.id > first.id);

    // ...and, killed between two requests, is restarted by the next one.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_dead(pid).await;
    let after = verifier
        .verify(VerifierRequest::new(WRONG))
        .await
        .unwrap_or_else(|e| panic!("no answer after the restart: {e}"));
    assert_eq!(after.error, None);
    assert!(after.report.unwrap().any_refuted());
    let new_pid = verifier.pid().await.expect("running again");
    assert_ne!(new_pid, pid);
    verifier.shutdown().await;
    wait_dead(new_pid).await;
}

/// A stand-in verifier: a shell script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Answers each line with an empty response carrying the request's id.
const ANSWER: &str = r#"id=$(printf '%s' "$line" | sed 's/.*"id":\([0-9]*\).*/\1/')
echo "{\"id\":$id,\"annotated_source\":\"ok\"}""#;

#[tokio::test]
async fn crashes_and_hangs_are_errors_and_the_next_request_restarts() {
    let dir = tempfile::tempdir().unwrap();

    // Crashes on its first request (a marker file says it already did), then answers.
    let marker = dir.path().join("crashed-once");
    let crashing = script(
        dir.path(),
        "crashing",
        &format!(
            "while read -r line; do\n\
             if [ ! -e {m} ]; then touch {m}; echo 'Z3 went wrong' >&2; kill -SEGV $$; fi\n\
             {ANSWER}\n\
             done",
            m = marker.display()
        ),
    );
    let verifier = Verifier::at(&crashing);
    match verifier.verify(VerifierRequest::new("BEGIN {}")).await {
        Err(VerifierError::Crashed { status, stderr }) => {
            assert!(status.contains("SIGSEGV"), "{status}");
            assert!(stderr.contains("Z3 went wrong"), "{stderr}");
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    assert_eq!(verifier.pid().await, None);
    let r = verifier
        .verify(VerifierRequest::new("BEGIN {}"))
        .await
        .expect("restarted");
    assert_eq!(r.annotated_source, "ok");
    let r2 = verifier
        .verify(VerifierRequest::new("BEGIN {}"))
        .await
        .unwrap();
    assert_eq!(r2.id, r.id + 1);

    // Hangs: the deadline kills it, the next request starts a new one.
    let hanging = script(dir.path(), "hanging", "read -r line\nexec sleep 30");
    let verifier = Verifier::at(&hanging)
        .with_deadline(Duration::from_millis(300))
        .with_startup_grace(Duration::ZERO);
    let started = std::time::Instant::now();
    let pid = {
        let err = verifier
            .verify(VerifierRequest::new("BEGIN {}"))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifierError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        verifier.pid().await
    };
    assert_eq!(pid, None, "the hung process is dropped");
    let err = verifier
        .verify(VerifierRequest::new("BEGIN {}"))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifierError::Timeout { .. }), "{err}");

    // Nonsense on stdout is a protocol error, not a panic.
    let talking = script(dir.path(), "talking", "read -r line\necho '{not json'");
    let err = Verifier::at(&talking)
        .verify(VerifierRequest::new("BEGIN {}"))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifierError::Protocol(_)), "{err}");

    // A binary that is not there cannot start.
    let err = Verifier::at(dir.path().join("absent"))
        .verify(VerifierRequest::new("BEGIN {}"))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifierError::Spawn { .. }), "{err}");
}

#[tokio::test]
async fn a_request_given_up_half_way_leaves_no_answer_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Slow: each answer comes half a second after its request.
    let slow = script(
        dir.path(),
        "slow",
        &format!("while read -r line; do\nsleep 0.5\n{ANSWER}\ndone"),
    );
    let verifier = Verifier::at(&slow);
    // The caller stops waiting (a notebook interrupt drops the synthesis task).
    let given_up = tokio::time::timeout(
        Duration::from_millis(100),
        verifier.verify(VerifierRequest::new("BEGIN {}")),
    )
    .await;
    assert!(
        given_up.is_err(),
        "the first request should still be running"
    );
    // The process that was working on it is gone with it ...
    assert_eq!(verifier.pid().await, None);
    // ... so the next request is answered, not mistaken for the old one's answer.
    let r = verifier
        .verify(VerifierRequest::new("BEGIN {}"))
        .await
        .expect("answered");
    assert_eq!(r.id, 2);
    verifier.shutdown().await;
}
