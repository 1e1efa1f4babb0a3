//! Parser throughput over the bpftrace tools in `/usr/sbin/*.bt`: MB/s for all
//! of them concatenated into one program, and the median time per file.
//!
//! `cargo run --release -p kgent-frontend --example parse_bench [DIR]`

use std::time::{Duration, Instant};

use kgent_frontend::parse;

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
    let all: String = files
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");

    // Warm up, then time whole passes over the concatenation for at least 2 s.
    for _ in 0..10 {
        std::hint::black_box(parse(&all));
    }
    let start = Instant::now();
    let mut passes = 0u32;
    while start.elapsed() < Duration::from_secs(2) {
        std::hint::black_box(parse(std::hint::black_box(&all)));
        passes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mb = all.len() as f64 * f64::from(passes) / 1e6;
    println!(
        "{} files, {} bytes concatenated: {:.1} MB/s ({} passes, {:.1} us per pass)",
        files.len(),
        all.len(),
        mb / elapsed,
        passes,
        elapsed * 1e6 / f64::from(passes)
    );

    // Per file: the best of 50 runs each (least disturbed), then the median file.
    let mut per_file: Vec<(Duration, &str, usize)> = files
        .iter()
        .map(|(name, text)| {
            let best = (0..50)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(parse(std::hint::black_box(text)));
                    t.elapsed()
                })
                .min()
                .unwrap_or_default();
            (best, name.as_str(), text.len())
        })
        .collect();
    per_file.sort();
    let (median, name, len) = per_file[per_file.len() / 2];
    let (slowest, slow_name, slow_len) = per_file[per_file.len() - 1];
    println!(
        "median file: {name} ({len} bytes) in {:.1} us",
        median.as_secs_f64() * 1e6
    );
    println!(
        "slowest file: {slow_name} ({slow_len} bytes) in {:.1} us",
        slowest.as_secs_f64() * 1e6
    );
}
