//! Throughput of `parse_line` on typical printf, map and hist lines.
//!
//! `cargo run --release -p kgent-output --example json_parse_bench`

use std::hint::black_box;
use std::time::Instant;

use kgent_output::parse_line;

/// Parses every line `rounds` times; returns lines per second.
fn lines_per_sec(lines: &[String], rounds: usize) -> f64 {
    let start = Instant::now();
    let mut events = 0usize;
    for _ in 0..rounds {
        for line in lines {
            if let Ok(ev) = parse_line(black_box(line)) {
                events += ev.len();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    black_box(events);
    (lines.len() * rounds) as f64 / secs
}

fn main() {
    let printf: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"type": "printf", "data": "openat pid={} comm=bash path=/usr/lib/x86_64-linux-gnu/libc.so.6 ret={}\n"}}"#,
                1000 + i,
                i % 7
            )
        })
        .collect();
    let printf_utf8: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"type": "printf", "data": "caf\uffffffc3\uffffffa9 {i}\n"}}"#))
        .collect();
    let map: Vec<String> = (0..1_000)
        .map(|i| {
            let members: Vec<String> = (0..20)
                .map(|k| format!(r#""comm{k}": {}"#, i * k))
                .collect();
            format!(
                r#"{{"type": "map", "data": {{"@c": {{{}}}}}}}"#,
                members.join(", ")
            )
        })
        .collect();
    let hist: Vec<String> = (0..1_000)
        .map(|i| {
            let buckets: Vec<String> = (0..20)
                .map(|p| {
                    format!(
                        r#"{{"min": {}, "max": {}, "count": {}}}"#,
                        1u64 << p,
                        (2u64 << p) - 1,
                        i + p
                    )
                })
                .collect();
            format!(
                r#"{{"type": "hist", "data": {{"@h": [{}]}}}}"#,
                buckets.join(", ")
            )
        })
        .collect();

    // Warm up caches and the allocator.
    lines_per_sec(&printf, 5);
    println!(
        "printf lines (~100 B):          {:>12.0} lines/s",
        lines_per_sec(&printf, 50)
    );
    println!(
        "printf lines, escaped UTF-8:    {:>12.0} lines/s",
        lines_per_sec(&printf_utf8, 50)
    );
    println!(
        "map lines (20 keys, ~300 B):    {:>12.0} lines/s",
        lines_per_sec(&map, 100)
    );
    println!(
        "hist lines (20 buckets, ~900 B): {:>11.0} lines/s",
        lines_per_sec(&hist, 100)
    );
}
