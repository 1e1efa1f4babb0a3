//! `kgent verify` as a user runs it: verdicts, origins, counterexamples, exit codes.
//!
//! The verifier is the `kgent-verifier` binary of the `kgent-verify` crate, which
//! `cargo test` does not build for this crate's tests: `cargo test --workspace` (or
//! `cargo build --workspace` first, as `scripts/test.sh` does) puts it next to `kgent`.
//! Tests that need it are skipped, saying so, when it is missing.

mod common;
use common::live;
use std::path::Path;
use std::process::Output;

const REFUTED: &str = include_str!("../../verify/test_data/refuted/inverted_filter.bt");
const FIXED: &str = include_str!("../../verify/test_data/proved/inverted_filter.bt");
const IPV4_ONLY: &str = "tracepoint:sock:inet_sock_set_state\n\
                         /args->family == 2/\n\
                         {\n    \
                             printf(\"%d -> %d\\n\", args->oldstate, args->newstate);\n\
                         }\n";

use common::verifier;

fn kgent(args: &[&str], stdin: &str, verifier: &Path) -> Output {
    common::run_kgent(args, stdin, &[("KGENT_VERIFIER", verifier)])
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn program_file(dir: &tempfile::TempDir, name: &str, source: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, source).unwrap();
    path.display().to_string()
}

#[test]
fn a_wrong_program_is_refuted_with_its_counterexample() {
    let Some(v) = verifier() else { return };
    if !live() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = program_file(&dir, "wrong.bt", REFUTED);
    let out = kgent(&["verify", "--request", "failed reads", &file], "", &v);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The program's own assert, with its origin, verdict and counterexample.
    assert!(stdout.contains("= assert, from request: REFUTED"), "{all}");
    assert!(
        stdout.contains("counterexample in tracepoint:syscalls:sys_exit_read: args->ret = "),
        "{all}"
    );
    assert!(stdout.contains("prints: \"read failed: "), "{all}");
    // The contract's assumption, with line numbers.
    assert!(stdout.contains("= assume, from spec"), "{all}");
    assert!(stdout.contains("1 refuted"), "{all}");
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("1 | ")),
        "{all}"
    );
}

#[test]
fn its_fixed_version_is_proved() {
    let Some(v) = verifier() else { return };
    if !live() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = program_file(&dir, "fixed.bt", FIXED);
    let out = kgent(&["verify", "--request", "failed reads", &file], "", &v);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("= assert, from request: proved"), "{all}");
    assert!(stdout.contains(": PROVED: "), "{all}");
}

#[test]
fn a_rule_asserts_what_the_request_asks_for_from_stdin() {
    let Some(v) = verifier() else { return };
    if !live() {
        return;
    }
    let out = kgent(
        &[
            "verify",
            "--request",
            "TCP state changes, IPv4 and IPv6",
            "-",
        ],
        IPV4_ONLY,
        &v,
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("= assert, from rule address-family: REFUTED"),
        "{all}"
    );
    assert!(stdout.contains("<stdin>: REFUTED"), "{all}");

    // The same as JSON: the response, the rule's assert refuted.
    let out = kgent(
        &[
            "verify",
            "--json",
            "--request",
            "TCP state changes, IPv4 and IPv6",
            "-",
        ],
        IPV4_ONLY,
        &v,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = json["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["origin"]["from"] == "rule" && a["expr"] == "10 == 2")
        .unwrap_or_else(|| panic!("no rule annotation: {json:#}"));
    assert_eq!(rule["kind"], "assert");
    assert_eq!(rule["origin"]["name"], "address-family");
    let assertion = json["report"]["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["line"] == rule["line"])
        .unwrap();
    assert_eq!(assertion["verdict"]["verdict"], "refuted", "{json:#}");
    let cex = &assertion["verdict"]["counterexample"];
    assert_eq!(
        cex["probe"], "tracepoint:sock:inet_sock_set_state",
        "{json:#}"
    );
    assert_eq!(json["error"], serde_json::Value::Null);

    // Without the request the rule has nothing to compare: nothing to refute.
    let out = kgent(&["verify", "-"], IPV4_ONLY, &v);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn without_annotation_only_the_programs_asserts_count() {
    let Some(v) = verifier() else { return };
    if !live() {
        return;
    }
    let out = kgent(
        &[
            "verify",
            "--no-annotate",
            "--request",
            "TCP state changes, IPv4 and IPv6",
            "-",
        ],
        IPV4_ONLY,
        &v,
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 assertions"),
        "{all}"
    );
}

#[test]
fn a_program_that_does_not_parse_exits_one() {
    let Some(v) = verifier() else { return };
    let out = kgent(&["verify", "-"], "kprobe:vfs_read { printf(", &v);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("does not parse"),
        "{all}"
    );
}

#[test]
fn a_missing_file_is_a_usage_error() {
    // Needs no verifier: the file is read first.
    let out = kgent(
        &["verify", "/nonexistent/prog.bt"],
        "",
        Path::new("/nonexistent/kgent-verifier"),
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/prog.bt"),
        "{all}"
    );
}

#[test]
fn a_missing_verifier_is_a_usage_error_that_says_how_to_build_it() {
    let out = kgent(
        &["verify", "-"],
        FIXED,
        Path::new("/nonexistent/kgent-verifier"),
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/kgent-verifier"), "{all}");
    assert!(stderr.contains("cargo build"), "{all}");
}
