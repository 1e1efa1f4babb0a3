//! `kgent check` as a user runs it: exit codes, human and JSON output, the load check.

mod common;
use common::live;
use std::process::Output;

fn kgent(args: &[&str], stdin: &str) -> Output {
    common::run_kgent(args, stdin, &[])
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_clean_program_exits_zero() {
    if !live() {
        return;
    }
    let out = kgent(
        &["check", "-"],
        "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->filename)); }",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no problems found"));
}

#[test]
fn errors_exit_one_with_codes_and_positions() {
    if !live() {
        return;
    }
    let out = kgent(
        &["check", "--json", "-"],
        "tracepoint:syscalls:sys_enter_openat\n{\n    printf(\"%s\\n\", str(args->fname));\n}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert!(codes(&v).contains(&"no-such-field".to_string()), "{v}");
    let d = &v["diagnostics"][0];
    assert_eq!(d["line"], 3);
    assert!(d["suggestion"].to_string().contains("filename"), "{d}");
}

#[test]
fn syntax_errors_are_reported_without_a_kernel() {
    let out = kgent(
        &["check", "--json", "-"],
        "BEGIN { printf(\"hi\\n\") exit(); }",
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert!(!codes(&v).is_empty());
    assert!(v["diagnostics"][0]["message"]
        .as_str()
        .unwrap()
        .contains("expected"));
}

#[test]
fn usage_errors_exit_two() {
    let out = kgent(&["check", "/nonexistent/prog.bt"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = kgent(&["check", "--frobnicate", "-"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_load_check_runs_the_verifier() {
    if !live() || !std::path::Path::new("/usr/bin/bpftrace").exists() {
        eprintln!("SKIP: needs bpftrace");
        return;
    }
    let out = kgent(
        &["check", "--json", "--load", "-"],
        "BEGIN { $i = 0; while ($i < 10) { @[$i] = 1; } }",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json(&out);
    assert_eq!(v["loaded"], true);
    assert!(codes(&v).contains(&"verifier-rejected".to_string()), "{v}");
    let out = kgent(
        &["check", "--load", "-"],
        "interval:ms:100 { @ticks = count(); }",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("loaded in the kernel"));
}
