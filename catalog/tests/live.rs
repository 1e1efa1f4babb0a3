//! Catalog tests against the running kernel. Each test is skipped (with a note) where the
//! kernel description is not readable, e.g. tracefs not mounted or not root.

use std::path::Path;

use kgent_catalog::{Catalog, CatalogPaths, SourceKind};

/// The live catalog, or `None` (test skipped) where tracefs is not readable.
fn live() -> Option<Catalog> {
    let paths = CatalogPaths::detect();
    if std::fs::read(paths.tracefs.join("available_events")).is_err() {
        eprintln!("skipped: {} not readable", paths.tracefs.display());
        return None;
    }
    Some(Catalog::load(&paths).expect("live catalog loads"))
}

#[test]
fn live_sources_all_load() {
    let Some(cat) = live() else { return };
    assert!(
        cat.unavailable_sources().is_empty(),
        "{:?}",
        cat.unavailable_sources()
    );
    let c = cat.counts();
    assert!(c.tracepoints > 500, "{c:?}");
    assert!(c.kernel_symbols > 10_000, "{c:?}");
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        assert!(c.btf_functions > 10_000, "{c:?}");
    }
}

#[test]
fn live_openat_fields() {
    let Some(cat) = live() else { return };
    let f = cat
        .fields("tracepoint:syscalls:sys_enter_openat")
        .expect("sys_enter_openat exists");
    let filename = f
        .fields
        .iter()
        .find(|f| f.name == "filename")
        .expect("filename field");
    assert_eq!(filename.c_type, "const char *");
    assert!(f.fields.iter().all(|f| !f.name.starts_with("common_")));
    let exit = cat.fields("t:syscalls:sys_exit_openat").unwrap();
    assert!(exit.fields.iter().any(|f| f.name == "ret" && f.signed));
    let sock = cat.fields("tracepoint:sock:inet_sock_set_state").unwrap();
    let dport = sock.fields.iter().find(|f| f.name == "dport").unwrap();
    assert_eq!((dport.c_type.as_str(), dport.size), ("__u16", 2));
}

#[test]
fn live_kernel_function_signature() {
    let Some(cat) = live() else { return };
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        eprintln!("skipped: no kernel BTF");
        return;
    }
    let f = cat.fields("kfunc:vfs_read").expect("vfs_read in BTF");
    assert_eq!(f.ret.as_deref(), Some("ssize_t"));
    assert_eq!(f.fields[0].name, "file");
    assert_eq!(f.fields[0].c_type, "struct file *");
    assert_eq!(f.fields[2].c_type, "size_t");
    let tcp = cat
        .fields("kprobe:tcp_sendmsg")
        .expect("tcp_sendmsg in BTF");
    assert_eq!(tcp.fields[0].c_type, "struct sock *");
}

#[test]
fn live_searches() {
    let Some(cat) = live() else { return };
    let r = cat.search("*openat*", 1000);
    assert!(r
        .names
        .contains(&"tracepoint:syscalls:sys_enter_openat".to_string()));
    assert!(cat.search("kprobe:vfs_*", 10).total_matches > 20);
    assert!(cat
        .search("t:sched:*", 100)
        .names
        .contains(&"tracepoint:sched:sched_switch".to_string()));
    assert!(cat.search("kfunc:vfs_*", 10).total_matches > 20);
    let c = cat.complete("t:syscalls:sys_enter_op", 10);
    assert!(
        c.contains(&"t:syscalls:sys_enter_openat".to_string()),
        "{c:?}"
    );
}

#[test]
fn live_uprobe_libc_and_bash() {
    let Some(cat) = live() else { return };
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    if Path::new(libc).exists() {
        let r = cat.search(&format!("uprobe:{libc}:mall*"), 100);
        assert!(r.names.contains(&format!("uprobe:{libc}:malloc")), "{r:?}");
        // A bare library name resolves as in bpftrace.
        let short = cat.search("uprobe:libc:malloc", 10);
        assert_eq!(short.names.len(), 1, "{short:?}");
        assert!(short.names[0].ends_with(":malloc"));
        let c = cat.complete(&format!("ur:{libc}:mallo"), 10);
        assert!(c.contains(&format!("ur:{libc}:malloc")), "{c:?}");
    }
    if Path::new("/bin/bash").exists() {
        let r = cat.search("uprobe:/bin/bash:read*", 100);
        assert!(
            r.names.contains(&"uprobe:/bin/bash:readline".to_string()),
            "{r:?}"
        );
    }
}

#[test]
fn live_usdt_python() {
    let Some(cat) = live() else { return };
    let py = "/usr/bin/python3.11";
    if !Path::new(py).exists() {
        eprintln!("skipped: no {py}");
        return;
    }
    let r = cat.search(&format!("usdt:{py}:"), 100);
    // 8 probes, as `bpftrace -l` lists them (readelf shows 8 stapsdt notes).
    assert_eq!(r.total_matches, 8, "{r:?}");
    assert!(r
        .names
        .contains(&format!("usdt:{py}:python:function__entry")));
    // The provider may be left out, as in bpftrace.
    assert_eq!(
        cat.search(&format!("U:{py}:gc__*"), 10).names,
        [
            format!("usdt:{py}:python:gc__done"),
            format!("usdt:{py}:python:gc__start")
        ]
    );
}

#[test]
fn live_sources_load_on_first_use() {
    let paths = CatalogPaths::detect();
    let readable = [
        paths.tracefs.join("available_events"),
        paths.kallsyms.clone(),
        paths.btf.clone(),
    ]
    .iter()
    .all(|p| std::fs::File::open(p).is_ok());
    if !readable {
        eprintln!("skipped: tracefs, kallsyms or BTF not readable");
        return;
    }
    let cat = Catalog::load(&paths).unwrap();
    assert_eq!(cat.loaded_sources(), []);
    // What checking a tracepoint program asks: neither kallsyms nor BTF is read.
    let f = cat.fields("tracepoint:syscalls:sys_enter_openat").unwrap();
    assert!(f.fields.iter().any(|f| f.name == "filename"));
    let exact = cat.search("tracepoint:syscalls:sys_enter_openat", 10);
    assert_eq!(exact.names, ["tracepoint:syscalls:sys_enter_openat"]);
    assert_eq!(cat.loaded_sources(), []);
    // One category's few matches, and an exact event in any category, come from the event
    // directories; a pattern over many categories needs the list.
    let r = cat.search("t:syscalls:sys_enter_open*", 100);
    assert!(r
        .names
        .contains(&"tracepoint:syscalls:sys_enter_openat".to_string()));
    let r = cat.search("tracepoint:*:sys_enter_openat", 100);
    assert_eq!(r.names, ["tracepoint:syscalls:sys_enter_openat"]);
    assert_eq!(cat.loaded_sources(), []);
    let r = cat.search("t:sys*:sys_enter_open*", 100);
    assert!(r
        .names
        .contains(&"tracepoint:syscalls:sys_enter_openat".to_string()));
    assert_eq!(cat.loaded_sources(), [SourceKind::Tracefs]);
    assert!(cat.search("kprobe:vfs_*", 10).total_matches > 20);
    assert_eq!(
        cat.loaded_sources(),
        [SourceKind::Tracefs, SourceKind::Kallsyms]
    );
    assert!(cat.fields("kfunc:vfs_read").is_some());
    assert_eq!(cat.loaded_sources(), SourceKind::ALL);
    assert!(cat.unavailable_sources().is_empty());
}

/// Every event directory with a format file, bar ftrace's own, is in `available_events`:
/// what lets an exact tracepoint search skip reading the list.
#[test]
fn live_event_directories_match_available_events() {
    let paths = CatalogPaths::detect();
    let Ok(list) = std::fs::read_to_string(paths.tracefs.join("available_events")) else {
        eprintln!("skipped: {} not readable", paths.tracefs.display());
        return;
    };
    let mut listed: Vec<String> = list.lines().map(|l| l.trim().to_string()).collect();
    listed.sort();
    let mut dirs = Vec::new();
    for cat in std::fs::read_dir(paths.tracefs.join("events"))
        .unwrap()
        .flatten()
    {
        let cat_name = cat.file_name().to_string_lossy().into_owned();
        if cat_name == "ftrace" || !cat.path().is_dir() {
            continue;
        }
        for ev in std::fs::read_dir(cat.path()).unwrap().flatten() {
            if ev.path().join("format").is_file() {
                dirs.push(format!("{cat_name}:{}", ev.file_name().to_string_lossy()));
            }
        }
    }
    dirs.sort();
    assert_eq!(dirs, listed);
    let cat = Catalog::load(&paths).unwrap();
    for name in listed.iter().step_by(37) {
        let r = cat.search(&format!("tracepoint:{name}"), 10);
        assert_eq!(r.names, [format!("tracepoint:{name}")]);
    }
    assert_eq!(cat.loaded_sources(), []);
}

/// Tracepoint searches answered from the event directories (before `available_events` is
/// read) answer as searches over the full list do.
#[test]
fn live_directory_searches_match_the_full_list() {
    let Some(full) = live() else { return };
    // Reads the full list: a pattern with no category.
    assert!(full.search("tracepoint:*", 1).total_matches > 100);
    let paths = full.paths().clone();
    let mut patterns = vec![
        "*:no_such_event_anywhere".to_string(),
        "*:sched_switch".to_string(),
        "*:function".to_string(),
        "no_such_category:*".to_string(),
        "ftrace:*".to_string(),
        "syscalls:sys_enter_exec*".to_string(),
        "syscalls:*".to_string(),
        "syscalls:sys_?nter_read*".to_string(),
        "sched:*".to_string(),
        "sched:sched_wak*".to_string(),
        "tcp:*".to_string(),
        "sock:*".to_string(),
        "*:*".to_string(),
        "sys*:sys_enter_read".to_string(),
    ];
    let all = full.search("tracepoint:*", usize::MAX).names;
    for name in all.iter().step_by(41) {
        let (_, rest) = name.split_once(':').unwrap();
        let (cat, event) = rest.split_once(':').unwrap();
        patterns.push(format!("*:{event}"));
        patterns.push(format!("{cat}:*"));
        patterns.push(format!("{cat}:{}*", &event[..event.len().min(5)]));
    }
    for p in patterns {
        for limit in [0, 1, 100] {
            let fresh = Catalog::load(&paths).unwrap();
            let pattern = format!("tracepoint:{p}");
            assert_eq!(
                fresh.search(&pattern, limit),
                full.search(&pattern, limit),
                "{pattern} limit {limit}"
            );
        }
    }
}
