//! Catalog timing, in the order a short-lived `kgent check` pays for it: construction, the first
//! tracepoint queries, the first kprobe search (kallsyms), the first kfunc/struct queries (BTF),
//! and `capabilities(false)` on a cache hit; then warm search/complete/fields latencies.
//!
//! `cargo run --release -p kgent-catalog --example catalog_bench [FIXTURE_DIR]`
//! Extra arguments after `--` are searched and printed (`-- 'uprobe:libc:mall*'`).
//!
//! Each "first" step is timed on a fresh catalog: once as the very first in this process (cold)
//! and as the median of 7 more fresh catalogs (the kernel files are in the page cache by then,
//! but kallsyms and tracefs are generated anew on every read anyway).

use std::time::{Duration, Instant};

use kgent_catalog::btf::Kind;
use kgent_catalog::{capabilities, Catalog, CatalogPaths};

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Median of `n` runs of `f`.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[n / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// The steps of one fresh catalog's life, in order.
const STEPS: [&str; 8] = [
    "construction (Catalog::load)",
    "first fields(tracepoint:syscalls:sys_enter_openat)",
    "first search(tracepoint:syscalls:sys_enter_openat)",
    "first search(t:syscalls:sys_enter_open*)",
    "first search(kprobe:tcp_*)          [kallsyms]",
    "first btf_types() typedef umode_t   [BTF parse]",
    "first fields(kfunc:vfs_read)        [func index]",
    "first btf struct sock lookup",
];

/// Runs every step on a fresh catalog; returns each step's time and the summary lines.
fn fresh_run(paths: &CatalogPaths) -> Result<([Duration; STEPS.len()], Vec<String>), String> {
    let mut t = [Duration::ZERO; STEPS.len()];
    let mut notes = Vec::new();
    let (cat, d) = timed(|| Catalog::load(paths));
    t[0] = d;
    let cat = cat.map_err(|e| e.to_string())?;
    notes.push(format!("after load: read {:?}", cat.loaded_sources()));
    let (f, d) = timed(|| cat.fields("tracepoint:syscalls:sys_enter_openat"));
    t[1] = d;
    notes.push(format!(
        "sys_enter_openat: {} fields",
        f.map_or(0, |f| f.fields.len())
    ));
    let (r, d) = timed(|| cat.search("tracepoint:syscalls:sys_enter_openat", 100));
    t[2] = d;
    notes.push(format!(
        "tracepoint:syscalls:sys_enter_openat: {} matches, read {:?}",
        r.total_matches,
        cat.loaded_sources()
    ));
    let (r, d) = timed(|| cat.search("t:syscalls:sys_enter_open*", 100));
    t[3] = d;
    notes.push(format!(
        "t:syscalls:sys_enter_open*: {} matches",
        r.total_matches
    ));
    notes.push(format!(
        "after tracepoint queries: read {:?}",
        cat.loaded_sources()
    ));
    let (r, d) = timed(|| cat.search("kprobe:tcp_*", 100));
    t[4] = d;
    notes.push(format!(
        "kprobe:tcp_*: {} matches, read {:?}",
        r.total_matches,
        cat.loaded_sources()
    ));
    let (td, d) = timed(|| {
        cat.btf_types()
            .and_then(|b| b.find_by_name(Kind::Typedef, "umode_t"))
    });
    t[5] = d;
    notes.push(format!("typedef umode_t: {td:?}"));
    let (f, d) = timed(|| cat.fields("kfunc:vfs_read"));
    t[6] = d;
    notes.push(format!(
        "kfunc:vfs_read: {} params",
        f.map_or(0, |f| f.fields.len())
    ));
    let (s, d) = timed(|| {
        cat.btf_types()
            .and_then(|b| b.find_by_name(Kind::Struct, "sock"))
    });
    t[7] = d;
    notes.push(format!("struct sock: {s:?}"));
    notes.push(format!("counts: {:?}", cat.counts()));
    for p in cat.unavailable_sources() {
        notes.push(format!("unavailable: {p}"));
    }
    Ok((t, notes))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (paths, queries, fixture) = match args.first() {
        Some(dir) if std::path::Path::new(dir).is_dir() => {
            (CatalogPaths::from_dir(dir), args[1..].to_vec(), true)
        }
        _ => (CatalogPaths::detect(), args.clone(), false),
    };
    if !queries.is_empty() {
        let cat = Catalog::load(&paths).expect("load");
        for q in &queries {
            for n in cat.search(q, usize::MAX).names {
                println!("{n}");
            }
        }
        return;
    }
    println!("paths: {paths:?}");

    // The first fresh catalog of the process is the cold one.
    let (cold, notes) = match fresh_run(&paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load failed: {e}");
            std::process::exit(1);
        }
    };
    for n in &notes {
        println!("  {n}");
    }
    let mut runs: Vec<[Duration; STEPS.len()]> = (0..7)
        .filter_map(|_| fresh_run(&paths).ok().map(|(t, _)| t))
        .collect();
    println!(
        "\n{:<52} {:>10} {:>12}",
        "step (fresh catalog)", "cold", "median of 7"
    );
    let mut cum_cold = Duration::ZERO;
    let mut cum_med = Duration::ZERO;
    for (i, step) in STEPS.iter().enumerate() {
        runs.sort_by_key(|r| r[i]);
        let med = runs.get(runs.len() / 2).map_or(Duration::ZERO, |r| r[i]);
        cum_cold += cold[i];
        cum_med += med;
        println!("{step:<52} {:>10} {:>12}", ms(cold[i]), ms(med));
        if i == 3 {
            println!(
                "{:<52} {:>10} {:>12}",
                "  = tracepoint-only check so far",
                ms(cum_cold),
                ms(cum_med)
            );
        }
    }
    println!(
        "{:<52} {:>10} {:>12}",
        "  = everything loaded",
        ms(cum_cold),
        ms(cum_med)
    );

    if !fixture {
        // The first call may detect (seconds) or run `bpftrace --version`; later ones hit the
        // on-disk cache.
        let (caps, first) = timed(|| capabilities(false));
        let hit = median(7, || {
            let _ = capabilities(false);
        });
        println!(
            "{:<52} {:>10} {:>12}",
            "capabilities(false) (first / cache hit)",
            ms(first),
            ms(hit)
        );
        println!(
            "  bpftrace: {:?}",
            caps.bpftrace.as_ref().map(|b| b.version.as_str())
        );
    }

    println!("\nwarm (everything loaded):");
    let (cat, d) = timed(|| Catalog::load_all(&paths).expect("load"));
    println!("Catalog::load_all (preload, in parallel): {}", ms(d));
    for pattern in [
        "tracepoint:syscalls:sys_enter_open*",
        "t:sched:*",
        "kprobe:tcp_*",
        "kfunc:vfs_*",
        "*openat*",
        "*",
        "uprobe:/lib/x86_64-linux-gnu/libc.so.6:mall*",
        "usdt:/usr/bin/python3.11:*",
    ] {
        let first = Instant::now();
        let r = cat.search(pattern, 100);
        let first = first.elapsed();
        let med = median(11, || {
            let _ = cat.search(pattern, 100);
        });
        println!(
            "search {pattern:<46} {:>7} matches  first {:>9}  median {:>9}",
            r.total_matches,
            ms(first),
            ms(med)
        );
    }
    for prefix in ["t:syscalls:sys_enter_op", "kprobe:vfs_r", "tra"] {
        let med = median(11, || {
            let _ = cat.complete(prefix, 50);
        });
        println!("complete {prefix:<44} median {:>9}", ms(med));
    }
    for probe in [
        "tracepoint:syscalls:sys_enter_openat",
        "tracepoint:sock:inet_sock_set_state",
        "kfunc:vfs_read",
        "kfunc:tcp_sendmsg",
    ] {
        let t = Instant::now();
        let f = cat.fields(probe);
        let first = t.elapsed();
        let cached = median(11, || {
            let _ = cat.fields(probe);
        });
        println!(
            "fields {probe:<40} {:>2} fields  first {:>9}  cached {:>9}",
            f.as_ref().map_or(0, |f| f.fields.len()),
            ms(first),
            ms(cached)
        );
    }
}
