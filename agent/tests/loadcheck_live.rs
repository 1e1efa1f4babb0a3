//! The load check against the real bpftrace and kernel verifier.

use std::path::PathBuf;

use kgent_agent::loadcheck::load_check;

fn bpftrace() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/bpftrace");
    if !path.exists() || unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs /usr/bin/bpftrace and root");
        return None;
    }
    Some(path)
}

async fn check(src: &str) -> kgent_agent::loadcheck::LoadCheck {
    let parsed = kgent_frontend::parse(src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    load_check(&bpftrace().unwrap(), src, &parsed.program, false).await
}

#[tokio::test]
async fn a_good_program_loads_and_detaches() {
    if bpftrace().is_none() {
        return;
    }
    let r = check("BEGIN { printf(\"hi\\n\"); }\ntracepoint:syscalls:sys_enter_openat { assume(pid > 0); @[comm] = count(); }").await;
    assert!(r.passed(), "{:?}", r.diagnostics);
    assert_eq!(r.probes, 2);
    let r = check("interval:ms:100 { @n = count(); }").await;
    assert!(r.passed(), "{:?}", r.diagnostics);
}

#[tokio::test]
async fn the_verifier_rejects_an_endless_loop_with_its_log() {
    if bpftrace().is_none() {
        return;
    }
    let r = check("BEGIN { $i = 0; while ($i < 10) { @[$i] = 1; } }").await;
    assert!(!r.passed());
    assert_eq!(r.diagnostics[0].code, "verifier-rejected");
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.message.contains("infinite loop")),
        "{:?}",
        r.diagnostics
    );
}

#[tokio::test]
async fn semantic_errors_point_into_the_original_source() {
    if bpftrace().is_none() {
        return;
    }
    let src = "BEGIN { @x = 1; }\ntracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->nofield)); }";
    let r = check(src).await;
    assert!(!r.passed());
    let d = &r.diagnostics[0];
    assert_eq!(d.code, "semantic-error");
    assert!(
        d.span.text(src).contains("args->nofield"),
        "{:?} -> {:?}",
        d,
        d.span.text(src)
    );
}
