//! `capabilities(false)` on a cache hit runs nothing: bpftrace is a script here that records
//! every run. One test per file because it sets `KGENT_BPFTRACE` and `XDG_CACHE_HOME` for
//! the process. As root the first call detects probe support with the script (every probe
//! "works"); otherwise it only asks for the version.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kgent_catalog::{capabilities, locate_bpftrace, Privileges};

fn runs(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l != "warm-up")
        .map(str::to_string)
        .collect()
}

#[test]
fn cache_hit_does_not_run_bpftrace() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bpftrace");
    let log = dir.path().join("runs.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho 'bpftrace v0.17.0'\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Until it runs once, a fork elsewhere may still hold it open for writing (ETXTBSY).
    let ran = (0..100).any(|_| {
        let ok = Command::new(&script)
            .arg("warm-up")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ok
    });
    assert!(ran, "the fake bpftrace does not run");
    std::env::set_var("KGENT_BPFTRACE", &script);
    std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache"));
    assert_eq!(locate_bpftrace().as_deref(), Some(script.as_path()));

    let first = capabilities(false);
    let after_first = runs(&log);
    assert_eq!(
        after_first.iter().filter(|l| *l == "--version").count(),
        1,
        "{after_first:?}"
    );
    if Privileges::current().can_trace() {
        assert!(
            after_first.iter().any(|l| l.starts_with("-e ")),
            "{after_first:?}"
        );
    }
    assert!(dir.path().join("cache/kgent/capabilities.json").exists());

    let second = capabilities(false);
    assert_eq!(runs(&log), after_first, "a cache hit ran bpftrace");
    assert_eq!(second, first);
    let info = second.bpftrace.expect("version from the cache");
    assert_eq!(
        (info.version.as_str(), info.major_minor),
        ("0.17.0", (0, 17))
    );
    assert_eq!(info.path, script);

    // refresh asks bpftrace again.
    capabilities(true);
    let after_refresh = runs(&log);
    assert_eq!(
        after_refresh.iter().filter(|l| *l == "--version").count(),
        2,
        "{after_refresh:?}"
    );
}
