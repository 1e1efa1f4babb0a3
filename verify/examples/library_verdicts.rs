//! The library's verdicts through the real `kgent-verifier`, as the kernel
//! gets them: every example annotated for its own request (contracts'
//! assumes, rules' asserts) and verified against the running kernel's
//! catalog.
//!
//! `cargo run --release -p kgent-verify --example library_verdicts [-- --verifier PATH]`
//!
//! Prints the number of programs, the annotations by origin, the assertions
//! proved / refuted / unknown (by reason) / vacuous, and the time per
//! program (p50/p95/max) both as the client measures the round trip and as
//! the verifier reports it (`report.elapsed_ms`). Examples do not get the
//! package's binaries built for them, so unless `--verifier` (or
//! `$KGENT_VERIFIER`) names one, this builds `kgent-verifier` with the same
//! profile and target directory first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kgent_agent::setup::shipped_library;
use kgent_agent::verifier::{
    AnnotationKindData, OriginData, UnknownReasonData, VerdictData, Verifier, VerifierRequest,
    VERIFIER_BINARY, VERIFIER_ENV,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut verifier_path = std::env::var_os(VERIFIER_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--verifier" => verifier_path = Some(args.next().expect("--verifier PATH").into()),
            other => panic!("unknown argument {other}"),
        }
    }
    let verifier_path = verifier_path.unwrap_or_else(build_verifier);
    let library = shipped_library().expect("the shipped library loads");
    let verifier = Verifier::at(&verifier_path)
        .with_deadline(Duration::from_secs(60))
        .with_startup_grace(Duration::from_secs(120));

    // The first request pays for loading the catalog and probing bpftrace;
    // a trivial one first keeps that out of the per-program figures.
    let started = Instant::now();
    let warm = verifier
        .verify(VerifierRequest::new("BEGIN { exit(); }"))
        .await
        .expect("the verifier answers");
    println!(
        "verifier {}: first answer after {:.0} ms (loads the kernel catalog)",
        verifier_path.display(),
        ms(started.elapsed())
    );
    for note in &warm.notes {
        println!("  note: {note}");
    }

    let mut spec_assumes = 0;
    let mut rule_asserts: BTreeMap<String, usize> = BTreeMap::new();
    let mut own = 0;
    let (mut proved, mut vacuous, mut refuted) = (0, 0, 0);
    let mut unknown: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut round_trips = Vec::new();
    let mut reported = Vec::new();
    let mut failed = Vec::new();
    for example in library.examples() {
        let request =
            VerifierRequest::annotated(example.program.clone(), Some(example.request.clone()));
        let started = Instant::now();
        let response = verifier.verify(request).await;
        let round_trip = ms(started.elapsed());
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                failed.push(format!("{}: {e}", example.id));
                continue;
            }
        };
        let Some(report) = &response.report else {
            failed.push(format!(
                "{}: {}",
                example.id,
                response.error.as_deref().unwrap_or("no report")
            ));
            continue;
        };
        round_trips.push((round_trip, example.id.clone()));
        reported.push((report.elapsed_ms, example.id.clone()));
        for a in &response.annotations {
            match (&a.kind, &a.origin) {
                (AnnotationKindData::Assume, OriginData::Spec { .. }) => spec_assumes += 1,
                (AnnotationKindData::Assert, OriginData::Rule { name }) => {
                    *rule_asserts.entry(name.clone()).or_default() += 1;
                }
                (_, OriginData::Request) => own += 1,
                _ => {}
            }
        }
        for a in &report.assertions {
            let at = format!("{}:{} {}", example.id, a.line, a.text);
            match &a.verdict {
                VerdictData::Proved => {
                    proved += 1;
                    if a.vacuous {
                        vacuous += 1;
                        println!("  vacuous: {at}");
                    }
                }
                VerdictData::Refuted { counterexample } => {
                    refuted += 1;
                    println!("  REFUTED: {at}: {counterexample}");
                }
                VerdictData::Unknown { reason } => {
                    unknown
                        .entry(reason_kind(reason))
                        .or_default()
                        .push(format!("{at}: {reason}"));
                }
            }
        }
    }
    verifier.shutdown().await;

    println!("programs: {}", library.len());
    if !failed.is_empty() {
        println!("without a report: {}", failed.len());
        for f in &failed {
            println!("  {f}");
        }
    }
    let asserts: usize = rule_asserts.values().sum();
    println!("annotations: {spec_assumes} spec assumes, {asserts} rule asserts, {own} written in the examples");
    for (rule, n) in &rule_asserts {
        println!("  rule {rule}: {n}");
    }
    let unknowns: usize = unknown.values().map(Vec::len).sum();
    println!(
        "assertions: {} proved ({vacuous} of them vacuous), {refuted} refuted, {unknowns} unknown",
        proved
    );
    for (kind, list) in &unknown {
        println!("  unknown, {kind}: {}", list.len());
        for u in list {
            println!("    {u}");
        }
    }
    print_times("client round trip", &mut round_trips);
    print_times("verifier's report.elapsed_ms", &mut reported);
}

/// Builds `kgent-verifier` with the profile and target directory this
/// example was built with, and returns its path.
fn build_verifier() -> PathBuf {
    // target/<profile>/examples/library_verdicts
    let exe = std::env::current_exe().expect("own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("run from a cargo target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => "release",
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let target_dir = profile_dir.parent().expect("target directory");
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "kgent-verify",
            "--bin",
            VERIFIER_BINARY,
        ])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {VERIFIER_BINARY} failed");
    profile_dir.join(VERIFIER_BINARY)
}

/// Groups unknown verdicts: the kind of reason, and for an unsupported
/// construct which one (line numbers differ per program).
fn reason_kind(reason: &UnknownReasonData) -> String {
    match reason {
        UnknownReasonData::Timeout { limit_ms } => format!("timeout ({limit_ms} ms)"),
        UnknownReasonData::Unsupported { construct, .. } => format!("unsupported {construct}"),
        UnknownReasonData::LoopBound { .. } => "loop bound".into(),
        UnknownReasonData::Solver { .. } => "solver".into(),
        UnknownReasonData::Other => "other".into(),
    }
}

fn print_times(what: &str, times: &mut [(f64, String)]) {
    if times.is_empty() {
        return;
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].0;
    let (max, slowest) = &times[times.len() - 1];
    println!(
        "{what} per program: p50 {:.2} ms, p95 {:.2} ms, max {max:.2} ms ({slowest})",
        at(0.5),
        at(0.95)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
