//! Checker timing over the bpftrace tools in `/usr/sbin/*.bt`: per program,
//! the first check against a fresh live catalog (`CatalogFacts`: cold caches,
//! ELF and BTF indexes built on demand), then the best of many warm checks
//! with `CatalogFacts` and with the `StaticFacts` fixture. Parsing is not
//! included.
//!
//! `cargo run --release -p kgent-frontend --example check_bench [DIR]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use kgent_agent::facts::CatalogFacts;
use kgent_catalog::{capabilities, Catalog, CatalogPaths};
use kgent_frontend::{check, parse, CheckOptions, KernelFacts, Program, StaticFacts};

const WARM_RUNS: u32 = 200;

fn time_check(program: &Program, text: &str, facts: &dyn KernelFacts) -> Duration {
    let options = CheckOptions::default();
    let t = Instant::now();
    std::hint::black_box(check(program, text, facts, &options));
    t.elapsed()
}

fn best(program: &Program, text: &str, facts: &dyn KernelFacts) -> Duration {
    (0..WARM_RUNS)
        .map(|_| time_check(program, text, facts))
        .min()
        .unwrap_or_default()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "{label}: median {:.0} us, max {:.0} us, mean {:.0} us",
        us(times[times.len() / 2]),
        us(times[times.len() - 1]),
        us(total) / times.len() as f64
    );
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/usr/sbin".to_string());
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bt"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.file_name()?.to_string_lossy().into_owned(), text))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("no .bt files in {dir} (install Debian's bpftrace package)");
        std::process::exit(1);
    }
    let parsed: Vec<(String, String, Program)> = files
        .into_iter()
        .map(|(name, text)| {
            let program = parse(&text).program;
            (name, text, program)
        })
        .collect();

    let t = Instant::now();
    let catalog = match Catalog::load(&CatalogPaths::detect()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("cannot load the kernel catalog: {e}");
            std::process::exit(1);
        }
    };
    let caps = Arc::new(capabilities(false));
    println!(
        "catalog and capabilities loaded in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let live = CatalogFacts::new(Arc::clone(&catalog), Some(Arc::clone(&caps)));
    let fixture_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/checker/kernel.json");
    let fixture = StaticFacts::from_json(&std::fs::read_to_string(fixture_path).expect("fixture"))
        .expect("fixture parses");

    println!(
        "{:<20} {:>6} {:>12} {:>12} {:>12} {:>6}",
        "program", "bytes", "cold live", "warm live", "warm static", "diags"
    );
    let (mut cold, mut warm, mut fixed) = (Vec::new(), Vec::new(), Vec::new());
    for (name, text, program) in &parsed {
        // Cold: a fresh CatalogFacts per program, so each pays for its own lookups.
        let fresh = CatalogFacts::new(Arc::clone(&catalog), Some(Arc::clone(&caps)));
        let c = time_check(program, text, &fresh);
        let _ = time_check(program, text, &live);
        let w = best(program, text, &live);
        let s = best(program, text, &fixture);
        let n = check(program, text, &live, &CheckOptions::default()).len();
        println!(
            "{name:<20} {:>6} {:>9.0} us {:>9.0} us {:>9.0} us {n:>6}",
            text.len(),
            us(c),
            us(w),
            us(s)
        );
        cold.push(c);
        warm.push(w);
        fixed.push(s);
    }
    println!();
    summary("cold CatalogFacts (first check)", cold);
    summary("warm CatalogFacts (best of 200)", warm);
    summary("StaticFacts fixture (best of 200)", fixed);
}
