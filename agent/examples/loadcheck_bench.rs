//! Load-check wall time per program (the real verifier, attach, detach), over the
//! example library's programs whose probe types exist here. Prints figures; asserts nothing.
//!
//! cargo run --release -p kgent-agent --example loadcheck_bench [-- LIMIT]

use std::path::Path;
use std::time::Duration;

use kgent_agent::loadcheck::load_check;

/// Probe types that attach on this machine; others cannot be load-checked here.
const LOADABLE: &[&str] = &[
    "tracepoint",
    "uprobe",
    "uretprobe",
    "usdt",
    "profile",
    "interval",
    "software",
    "BEGIN",
    "END",
];

fn probe_types(toml: &str) -> Vec<String> {
    toml.lines()
        .find(|l| l.trim_start().starts_with("probe_types"))
        .map(|l| {
            l.split('"')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn program(toml: &str) -> Option<String> {
    let start = toml.find("program = '''")? + "program = '''".len();
    let end = toml[start..].find("'''")? + start;
    Some(toml[start..end].trim_start_matches('\n').to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let limit: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let bpftrace = Path::new("/usr/bin/bpftrace");
    let mut files: Vec<_> = std::fs::read_dir("specs/examples")
        .expect("run from the repository root")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut times: Vec<(Duration, u64, String)> = Vec::new();
    let mut failed = 0;
    for path in files {
        if times.len() >= limit {
            break;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if !probe_types(&text)
            .iter()
            .all(|t| LOADABLE.contains(&t.as_str()))
        {
            continue;
        }
        let Some(src) = program(&text) else { continue };
        let parsed = kgent_frontend::parse(&src);
        let result = load_check(bpftrace, &src, &parsed.program, false).await;
        if !result.passed() {
            failed += 1;
            eprintln!(
                "FAILED {}: {:?}",
                path.display(),
                result.diagnostics.first().map(|d| &d.message)
            );
        }
        times.push((
            result.elapsed,
            result.probes,
            path.file_stem().unwrap().to_string_lossy().into(),
        ));
    }
    let mut sorted: Vec<Duration> = times.iter().map(|t| t.0).collect();
    sorted.sort();
    let pct = |p: usize| sorted[(sorted.len() * p / 100).min(sorted.len() - 1)];
    let probes: u64 = times.iter().map(|t| t.1).sum();
    println!(
        "load check over {} example programs ({failed} failed): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; {:.1} probes per program on average",
        sorted.len(),
        pct(50).as_secs_f64() * 1e3,
        pct(95).as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3,
        probes as f64 / times.len() as f64
    );
}
