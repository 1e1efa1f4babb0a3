//! Catalog timing: cold and warm load, search latency, fields() first and cached.
//! `cargo run --release -p kgent-catalog --example catalog_bench [FIXTURE_DIR]`
//! Extra arguments after `--` are searched and printed (`-- 'uprobe:libc:mall*'`).

use std::time::{Duration, Instant};

use kgent_catalog::{Catalog, CatalogPaths};

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (paths, queries) = match args.first() {
        Some(dir) if std::path::Path::new(dir).is_dir() => {
            (CatalogPaths::from_dir(dir), args[1..].to_vec())
        }
        _ => (CatalogPaths::detect(), args.clone()),
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

    let t = Instant::now();
    let cat = match Catalog::load(&paths) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("load failed: {e}");
            std::process::exit(1);
        }
    };
    println!("load (first, cold):        {}", ms(t.elapsed()));
    println!("counts: {:?}", cat.counts());
    for p in cat.unavailable_sources() {
        println!("unavailable: {p}");
    }
    drop(cat);
    let warm = median(5, || {
        let _ = Catalog::load(&paths);
    });
    println!("load (files cached, median of 5): {}", ms(warm));

    let cat = Catalog::load(&paths).expect("load");
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
