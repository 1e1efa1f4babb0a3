//! Deterministic catalog tests against the saved kernel description in `tests/fixtures/kernel`
//! and a tiny hand-built BTF blob.

use std::path::{Path, PathBuf};

use kgent_catalog::{Catalog, CatalogError, CatalogPaths, SourceKind};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernel")
}

fn fixture() -> Catalog {
    Catalog::load(&CatalogPaths::from_dir(fixture_dir())).expect("fixture loads")
}

/// The fixture with a BTF file next to it, in a temporary copy.
fn fixture_with_btf(btf: &[u8]) -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let paths = CatalogPaths {
        tracefs: fixture_dir(),
        kallsyms: fixture_dir().join("kallsyms"),
        btf: dir.path().join("vmlinux"),
    };
    std::fs::write(&paths.btf, btf).unwrap();
    let cat = Catalog::load(&paths).expect("loads");
    (dir, cat)
}

// BTF kinds and encodings (include/uapi/linux/btf.h).
const INT: u32 = 1;
const PTR: u32 = 2;
const STRUCT: u32 = 4;
const TYPEDEF: u32 = 8;
const CONST: u32 = 10;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const SIGNED: u32 = 1;

/// Builds a raw BTF blob with a handful of types:
///  1 int, 2 char, 3 const char, 4 const char *, 5 struct file, 6 struct file *,
///  7 size_t -> 8 long unsigned int, 9 long int, 10 ssize_t -> 9, 11 proto, 12 long int *,
///  13 FUNC vfs_read(struct file *file, const char *buf, size_t count, long int *pos) -> ssize_t,
///  14 proto void (struct file *t), 15 FUNC do_nanosleep, 16 proto int (int),
///  17 int (*)(int), 18 proto void (cb, ...), 19 FUNC register_cb.
fn tiny_btf() -> Vec<u8> {
    let mut strings: Vec<u8> = vec![0];
    let mut s = |name: &str| -> u32 {
        let off = strings.len() as u32;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        off
    };
    let mut types: Vec<u32> = Vec::new();
    let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
    let int = |types: &mut Vec<u32>, name: u32, size: u32, signed: bool| {
        let enc = if signed { SIGNED } else { 0 };
        types.extend([name, info(INT, 0), size, (enc << 24) | (size * 8)]);
    };

    let n_int = s("int");
    let n_char = s("char");
    let n_file = s("file");
    let n_size_t = s("size_t");
    let n_ulong = s("long unsigned int");
    let n_long = s("long int");
    let n_ssize_t = s("ssize_t");
    let n_vfs_read = s("vfs_read");
    let n_buf = s("buf");
    let n_count = s("count");
    let n_pos = s("pos");
    let n_t = s("t");
    let n_nanosleep = s("do_nanosleep");
    let n_cb = s("cb");
    let n_register = s("register_cb");
    let n_file_param = s("file");

    int(&mut types, n_int, 4, true); // 1
    int(&mut types, n_char, 1, true); // 2
    types.extend([0, info(CONST, 0), 2]); // 3
    types.extend([0, info(PTR, 0), 3]); // 4
    types.extend([n_file, info(STRUCT, 0), 8]); // 5
    types.extend([0, info(PTR, 0), 5]); // 6
    types.extend([n_size_t, info(TYPEDEF, 0), 8]); // 7
    int(&mut types, n_ulong, 8, false); // 8
    int(&mut types, n_long, 8, true); // 9
    types.extend([n_ssize_t, info(TYPEDEF, 0), 9]); // 10
    types.extend([0, info(FUNC_PROTO, 4), 10]); // 11
    types.extend([n_file_param, 6, n_buf, 4, n_count, 7, n_pos, 12]);
    types.extend([0, info(PTR, 0), 9]); // 12
    types.extend([n_vfs_read, info(FUNC, 1), 11]); // 13
    types.extend([0, info(FUNC_PROTO, 1), 0]); // 14
    types.extend([n_t, 6]);
    types.extend([n_nanosleep, info(FUNC, 1), 14]); // 15
    types.extend([0, info(FUNC_PROTO, 1), 1]); // 16
    types.extend([0, 1]);
    types.extend([0, info(PTR, 0), 16]); // 17
    types.extend([0, info(FUNC_PROTO, 2), 0]); // 18
    types.extend([n_cb, 17, 0, 0]); // second parameter: variadic
    types.extend([n_register, info(FUNC, 1), 18]); // 19

    let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut out = Vec::new();
    out.extend(0xeb9fu16.to_le_bytes());
    out.push(1); // version
    out.push(0); // flags
    for w in [
        24u32,
        0,
        type_bytes.len() as u32,
        type_bytes.len() as u32,
        strings.len() as u32,
    ] {
        out.extend(w.to_le_bytes());
    }
    out.extend(type_bytes);
    out.extend(strings);
    out
}

#[test]
fn loads_fixture_and_reports_missing_btf() {
    let cat = fixture();
    let counts = cat.counts();
    assert_eq!(counts.tracepoints, 19);
    assert_eq!(
        counts.kernel_symbols, 192,
        "t/T symbols without __pfx_, __cfi_, .cold"
    );
    assert_eq!(counts.btf_functions, 0);
    let problems = cat.unavailable_sources();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].source, SourceKind::Btf);
    assert!(problems[0].reason.contains("CONFIG_DEBUG_INFO_BTF"));
}

#[test]
fn nothing_readable_is_an_error() {
    let err = Catalog::load(&CatalogPaths::from_dir("/nonexistent/kgent")).unwrap_err();
    assert!(matches!(err, CatalogError::NoSources(_)), "{err}");
}

#[test]
fn missing_tracefs_says_how_to_mount() {
    let paths = CatalogPaths {
        tracefs: PathBuf::from("/nonexistent/tracing"),
        ..CatalogPaths::from_dir(fixture_dir())
    };
    let cat = Catalog::load(&paths).unwrap();
    let p = cat
        .unavailable_sources()
        .iter()
        .find(|p| p.source == SourceKind::Tracefs)
        .expect("tracefs problem");
    assert!(p.reason.contains("mount -t tracefs"), "{}", p.reason);
    let r = cat.search("t:*", 10);
    assert_eq!(r.total_matches, 0);
    assert!(r.warnings.iter().any(|w| w.contains("tracepoint")));
}

#[test]
fn tracepoint_search_with_aliases() {
    let cat = fixture();
    let r = cat.search("tracepoint:syscalls:sys_enter_open*", 100);
    assert_eq!(
        r.names,
        [
            "tracepoint:syscalls:sys_enter_openat",
            "tracepoint:syscalls:sys_enter_openat2"
        ]
    );
    assert_eq!(r.total_matches, 2);
    assert!(r.warnings.is_empty());

    let r = cat.search("t:sched:*", 100);
    assert_eq!(
        r.names,
        [
            "tracepoint:sched:sched_process_exec",
            "tracepoint:sched:sched_process_exit",
            "tracepoint:sched:sched_process_fork",
            "tracepoint:sched:sched_switch",
        ]
    );
    assert_eq!(cat.search("t:sched*", 100).total_matches, 4);
    assert_eq!(cat.search("tracepoint:", 100).total_matches, 19);
    assert_eq!(
        cat.search("rawtracepoint:sched_*", 100).names,
        [
            "rawtracepoint:sched_process_exec",
            "rawtracepoint:sched_process_exit",
            "rawtracepoint:sched_process_fork",
            "rawtracepoint:sched_switch",
        ]
    );
}

#[test]
fn kprobe_search_limit_and_total() {
    let cat = fixture();
    let all = cat.search("kprobe:vfs_r*", 100);
    assert_eq!(
        all.names,
        [
            "kprobe:vfs_read",
            "kprobe:vfs_readlink",
            "kprobe:vfs_readv",
            "kprobe:vfs_remove_acl",
            "kprobe:vfs_removexattr",
            "kprobe:vfs_rename",
            "kprobe:vfs_rmdir",
        ]
    );
    let capped = cat.search("k:vfs_r*", 3);
    assert_eq!(capped.names, all.names[..3]);
    assert_eq!(capped.total_matches, 7);
    assert_eq!(cat.search("kprobe:vfs_*", 1000).total_matches, 80);
    assert_eq!(
        cat.search("kretprobe:vfs_read", 10).names,
        ["kretprobe:vfs_read"]
    );
    assert_eq!(cat.search("kprobe:__pfx_*", 10).total_matches, 0);
    assert_eq!(
        cat.search("kprobe:nft_do_chain", 10).names,
        ["kprobe:nft_do_chain"]
    );
    assert_eq!(
        cat.search("kprobe:jiffies", 10).total_matches,
        0,
        "data symbol"
    );
    // kfunc needs BTF, which the fixture lacks: no names, and a warning saying why.
    let kf = cat.search("kfunc:vfs_*", 10);
    assert_eq!(kf.total_matches, 0);
    assert!(kf.warnings.iter().any(|w| w.contains("BTF")), "{kf:?}");
}

#[test]
fn bare_word_searches_every_provider_sorted() {
    let cat = fixture();
    let r = cat.search("*openat*", 100);
    assert_eq!(
        r.names,
        [
            "kprobe:__x64_sys_openat",
            "kprobe:do_sys_openat2",
            "tracepoint:syscalls:sys_enter_openat",
            "tracepoint:syscalls:sys_enter_openat2",
            "tracepoint:syscalls:sys_exit_openat",
            "tracepoint:syscalls:sys_exit_openat2",
        ]
    );
    // Without wildcards a bare word is a substring search.
    assert_eq!(cat.search("openat", 100).names, r.names);
    let clock = cat.search("*clock*", 100);
    assert_eq!(
        clock.names,
        ["software:cpu-clock:", "software:task-clock:"],
        "{clock:?}"
    );
    assert_eq!(cat.search("BEGIN", 10).names, ["BEGIN"]);
    // A tracepoint written without its provider is still found.
    let nop = cat.search("sched:sched_switch", 10);
    assert_eq!(nop.names, ["tracepoint:sched:sched_switch"]);
    assert!(nop.warnings.iter().all(|w| !w.contains("unknown")));
    assert_eq!(cat.search("syscalls:sys_enter_open*", 10).total_matches, 2);
    let mut sorted = cat.search("*", 100_000).names;
    let n = sorted.len();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "bare results are sorted and unique");
    // A wildcard provider matches full names too, return probes included.
    assert_eq!(
        cat.search("k*:vfs_read", 10).names,
        ["kprobe:vfs_read", "kretprobe:vfs_read"]
    );
}

#[test]
fn static_providers() {
    let cat = fixture();
    let sw = cat.search("software:*", 100).names;
    assert!(sw.contains(&"software:cpu-clock:".to_string()));
    assert!(sw.contains(&"software:cpu:".to_string()), "aliases listed");
    assert_eq!(sw.len(), 14);
    assert_eq!(
        cat.search("s:cpu-clock:1000000", 10).names,
        ["software:cpu-clock:"]
    );
    assert_eq!(cat.search("h:cycles", 10).names, ["hardware:cycles:"]);
    assert_eq!(
        cat.search("profile:", 10).names,
        ["profile:hz:", "profile:ms:", "profile:s:", "profile:us:"]
    );
    assert_eq!(cat.search("i:s:1", 10).names, ["interval:s:"]);
    assert_eq!(cat.search("END", 10).names, ["END"]);
}

#[test]
fn odd_patterns_do_not_panic() {
    let cat = fixture();
    let long = "x".repeat(100_000);
    let odd = [
        "",
        ":",
        "::::",
        "*",
        "**",
        "?",
        "t:",
        "t::",
        "uprobe:",
        "uprobe::",
        "usdt:",
        "usdt:::",
        "k:[",
        "\0",
        "🦀:*",
        "t:🦀*",
        "uprobe:/nonexistent:*",
        "uprobe:/etc/passwd:*",
        "uprobe:/:*",
        "uprobe:/bin/*:x",
        "usdt:/dev/null",
        "bogus:x",
        "kprobe:*+0x10",
        long.as_str(),
    ];
    for p in odd {
        let _ = cat.search(p, 5);
        let _ = cat.complete(p, 5);
        let _ = cat.fields(p);
    }
    let bogus = cat.search("bogus:x", 5);
    assert_eq!(bogus.warnings[0], "unknown probe type: bogus");
    let missing = cat.search("uprobe:/nonexistent/bin:*", 5);
    assert!(missing.warnings[0].contains("not found"), "{missing:?}");
    let not_elf = cat.search("uprobe:/etc/passwd:*", 5);
    assert!(not_elf.warnings[0].contains("ELF"), "{not_elf:?}");
    assert_eq!(cat.search("anything", 0).names.len(), 0);
}

#[test]
fn tracepoint_fields_from_format_files() {
    let cat = fixture();
    let f = cat
        .fields("tracepoint:syscalls:sys_enter_openat")
        .expect("format file present");
    assert_eq!(f.probe, "tracepoint:syscalls:sys_enter_openat");
    assert_eq!(f.ret, None);
    let names: Vec<&str> = f.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["__syscall_nr", "dfd", "filename", "flags", "mode"]);
    let filename = &f.fields[2];
    assert_eq!(
        (
            filename.c_type.as_str(),
            filename.offset,
            filename.size,
            filename.signed
        ),
        ("const char *", 24, 8, false)
    );
    // Cached: same answer, also through the alias.
    assert_eq!(cat.fields("t:syscalls:sys_enter_openat"), Some(f));

    let sock = cat.fields("t:sock:inet_sock_set_state").unwrap();
    let find = |n: &str| sock.fields.iter().find(|f| f.name == n).unwrap().clone();
    assert_eq!(find("sport").c_type, "__u16");
    assert_eq!(find("saddr").c_type, "__u8[4]");
    assert_eq!(find("saddr_v6").size, 16);
    assert!(find("oldstate").signed);

    let exec = cat.fields("tracepoint:sched:sched_process_exec").unwrap();
    assert_eq!(exec.fields[0].name, "filename");
    assert!(exec.fields[0].c_type.starts_with("__data_loc char"));

    // Listed but without a saved format file; wildcards; escapes; other probe types.
    assert_eq!(cat.fields("tracepoint:syscalls:sys_enter_getpid"), None);
    assert_eq!(cat.fields("tracepoint:syscalls:*"), None);
    assert_eq!(cat.fields("tracepoint:..:events"), None);
    assert_eq!(cat.fields("tracepoint:../../..:kallsyms"), None);
    assert_eq!(cat.fields("kfunc:vfs_read"), None, "no BTF in the fixture");
    assert_eq!(cat.fields("software:cpu-clock:"), None);
}

#[test]
fn completion() {
    let cat = fixture();
    assert_eq!(cat.complete("tra", 10), ["tracepoint:"]);
    assert_eq!(
        cat.complete("k", 10),
        ["kfunc:", "kprobe:", "kretfunc:", "kretprobe:"]
    );
    assert_eq!(cat.complete("", 100).len(), 15);
    assert_eq!(
        cat.complete("t:syscalls:sys_enter_op", 10),
        [
            "t:syscalls:sys_enter_openat",
            "t:syscalls:sys_enter_openat2"
        ]
    );
    let sys = cat.complete("tracepoint:sys", 100);
    assert_eq!(sys.len(), 7);
    assert!(sys.iter().all(|s| s.starts_with("tracepoint:syscalls:")));
    assert_eq!(cat.complete("tracepoint:sys", 2).len(), 2);
    assert_eq!(
        cat.complete("kprobe:vfs_rea", 10),
        ["kprobe:vfs_read", "kprobe:vfs_readlink", "kprobe:vfs_readv"]
    );
    assert_eq!(
        cat.complete("s:cpu", 10),
        ["s:cpu-clock:", "s:cpu-migrations:", "s:cpu:"]
    );
    assert_eq!(
        cat.complete("software:cpu-clock:", 10),
        ["software:cpu-clock:"]
    );
    assert_eq!(cat.complete("BEGIN:", 10), Vec::<String>::new());
    assert_eq!(cat.complete("nope:x", 10), Vec::<String>::new());
}

#[test]
fn uprobe_path_completion_and_elf_symbols() {
    let cat = fixture();
    // The test binary itself is an ELF with a symbol table.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().display().to_string();
    let file = exe.file_name().unwrap().to_str().unwrap().to_string();
    let partial = format!("uprobe:{dir}/{}", &file[..file.len() - 2]);
    let done = cat.complete(&partial, 1000);
    assert!(
        done.contains(&format!("uprobe:{dir}/{file}:")),
        "{partial} -> {done:?}"
    );
    let r = cat.search(&format!("uprobe:{}:*tiny_btf*", exe.display()), 10);
    assert!(r.total_matches >= 1, "{r:?}");
    assert!(r.names[0].starts_with(&format!("uprobe:{}:", exe.display())));
}

#[test]
fn kfunc_names_and_signatures_from_btf() {
    let (_dir, cat) = fixture_with_btf(&tiny_btf());
    assert!(
        cat.unavailable_sources().is_empty(),
        "{:?}",
        cat.unavailable_sources()
    );
    assert_eq!(cat.counts().btf_functions, 3);
    assert_eq!(
        cat.search("kfunc:*", 10).names,
        ["kfunc:do_nanosleep", "kfunc:register_cb", "kfunc:vfs_read"]
    );
    assert_eq!(
        cat.search("*nanosleep*", 10).names,
        ["kfunc:do_nanosleep", "kprobe:do_nanosleep"]
    );
    assert_eq!(cat.complete("f:vfs", 10), ["f:vfs_read"]);

    let f = cat.fields("kfunc:vfs_read").unwrap();
    assert_eq!(f.ret.as_deref(), Some("ssize_t"));
    let got: Vec<(&str, &str, usize, usize, bool)> = f
        .fields
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.c_type.as_str(),
                f.offset,
                f.size,
                f.signed,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("file", "struct file *", 0, 8, false),
            ("buf", "const char *", 8, 8, false),
            ("count", "size_t", 16, 8, false),
            ("pos", "long int *", 24, 8, false),
        ]
    );
    // kprobe and the return variants use the same BTF signature.
    assert_eq!(cat.fields("kprobe:vfs_read").unwrap().fields, f.fields);
    assert_eq!(
        cat.fields("fr:vfs_read").unwrap().probe,
        "kretfunc:vfs_read"
    );

    let n = cat.fields("kfunc:do_nanosleep").unwrap();
    assert_eq!(n.ret.as_deref(), Some("void"));
    assert_eq!(n.fields[0].name, "t");

    let cb = cat.fields("kfunc:register_cb").unwrap();
    assert_eq!(cb.fields[0].c_type, "int (*)(int)");
    assert_eq!(cb.fields[1].name, "...");
    assert_eq!(cat.fields("kfunc:nonexistent"), None);
}

#[test]
fn malformed_btf_is_a_problem_not_a_panic() {
    let good = tiny_btf();
    let mut bad_version = good.clone();
    bad_version[2] = 9;
    let mut bad_lengths = good.clone();
    bad_lengths[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut bad_ref = good.clone();
    // Point vfs_read's FUNC at a type id that does not exist.
    // Types 1..=12 take 48 words (INT 4, PTR/CONST/STRUCT/TYPEDEF 3, the 4-param proto 11).
    let func13 = 24 + 4 * 48;
    bad_ref[func13 + 8..func13 + 12].copy_from_slice(&999u32.to_le_bytes());
    let blobs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not btf at all".to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..30].to_vec(),
        bad_version,
        bad_lengths,
        bad_ref,
    ];
    for (i, blob) in blobs.iter().enumerate() {
        let (_dir, cat) = fixture_with_btf(blob);
        let _ = cat.fields("kfunc:vfs_read");
        let _ = cat.search("kfunc:*", 10);
        if i < 6 {
            let p = cat.unavailable_sources();
            assert!(
                p.iter().any(|p| p.source == SourceKind::Btf),
                "blob {i}: {p:?}"
            );
        }
    }
}

#[test]
fn load_reads_nothing_and_each_query_reads_only_its_source() {
    let (_dir, cat) = fixture_with_btf(&tiny_btf());
    assert_eq!(cat.loaded_sources(), [], "load must read nothing");

    // Tracepoint fields come from the event's format file alone.
    let f = cat.fields("tracepoint:syscalls:sys_enter_openat").unwrap();
    assert!(f.fields.iter().any(|f| f.name == "filename"));
    assert_eq!(cat.loaded_sources(), []);

    // One exact tracepoint is confirmed by its format file alone.
    let r = cat.search("t:syscalls:sys_enter_openat", 10);
    assert_eq!(r.names, ["tracepoint:syscalls:sys_enter_openat"]);
    assert_eq!(cat.loaded_sources(), []);

    // Tracepoint names, completion and static providers need tracefs only.
    let r = cat.search("t:syscalls:sys_enter_open*", 10);
    assert_eq!(r.total_matches, 2);
    assert_eq!(
        cat.complete("t:sched:sched_sw", 10),
        ["t:sched:sched_switch"]
    );
    assert_eq!(
        cat.search("rawtracepoint:sched_switch", 10).total_matches,
        1
    );
    assert_eq!(cat.search("software:*", 100).total_matches, 14);
    assert_eq!(cat.search("hardware:cpu-cycles:1000", 100).total_matches, 1);
    assert_eq!(cat.complete("tra", 10), ["tracepoint:"]);
    assert_eq!(cat.complete("BE", 10), ["BEGIN"]);
    assert_eq!(cat.loaded_sources(), [SourceKind::Tracefs]);

    // kprobe names read kallsyms, and nothing else.
    assert!(cat.search("kprobe:vfs_r*", 10).total_matches > 0);
    assert_eq!(
        cat.loaded_sources(),
        [SourceKind::Tracefs, SourceKind::Kallsyms]
    );

    // Types read BTF.
    assert!(cat.btf_types().is_some());
    assert_eq!(cat.loaded_sources(), SourceKind::ALL);
    assert!(cat.unavailable_sources().is_empty());
}

#[test]
fn kernel_function_queries_read_btf_only() {
    let (_dir, cat) = fixture_with_btf(&tiny_btf());
    assert_eq!(cat.fields("kfunc:vfs_read").unwrap().fields.len(), 4);
    assert_eq!(cat.loaded_sources(), [SourceKind::Btf]);
    assert_eq!(cat.complete("f:vfs", 10), ["f:vfs_read"]);
    assert_eq!(cat.loaded_sources(), [SourceKind::Btf]);
    // BTF signatures serve kprobes too, without kallsyms.
    assert!(cat.fields("kprobe:vfs_read").is_some());
    assert_eq!(cat.loaded_sources(), [SourceKind::Btf]);
}

#[test]
fn whole_catalog_queries_read_everything() {
    type Query = fn(&Catalog);
    let queries: [(&str, Query); 4] = [
        ("bare search", |c| {
            c.search("*nanosleep*", 10);
        }),
        ("counts", |c| {
            c.counts();
        }),
        ("unavailable_sources", |c| {
            c.unavailable_sources();
        }),
        ("preload", Catalog::preload),
    ];
    for (what, query) in queries {
        let (_dir, cat) = fixture_with_btf(&tiny_btf());
        query(&cat);
        assert_eq!(cat.loaded_sources(), SourceKind::ALL, "{what}");
    }
    let paths = CatalogPaths {
        btf: PathBuf::from("/nonexistent/vmlinux"),
        ..CatalogPaths::from_dir(fixture_dir())
    };
    let cat = Catalog::load_all(&paths).unwrap();
    assert_eq!(cat.loaded_sources(), SourceKind::ALL);
    assert_eq!(cat.counts().kernel_symbols, 192);
}

#[test]
fn unopenable_sources_are_known_at_load() {
    // The fixture has no vmlinux: BTF is known to be missing without reading anything.
    let cat = fixture();
    assert_eq!(cat.loaded_sources(), [SourceKind::Btf]);
    assert_eq!(cat.search("kfunc:*", 10).total_matches, 0);
    assert_eq!(cat.loaded_sources(), [SourceKind::Btf]);
}

/// A fixture copy whose kallsyms and BTF are files given here, for sources that fail only
/// when read.
fn fixture_with(kallsyms: &[u8], btf: &[u8]) -> (tempfile::TempDir, CatalogPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = CatalogPaths {
        tracefs: fixture_dir(),
        kallsyms: dir.path().join("kallsyms"),
        btf: dir.path().join("vmlinux"),
    };
    std::fs::write(&paths.kallsyms, kallsyms).unwrap();
    std::fs::write(&paths.btf, btf).unwrap();
    (dir, paths)
}

#[test]
fn sources_failing_when_read_degrade_as_at_load() {
    // kallsyms without text symbols, BTF that is not BTF: both open, both fail when read.
    let (_dir, paths) = fixture_with(b"0000 D jiffies\n", b"not btf");
    let lazy = Catalog::load(&paths).unwrap();
    assert_eq!(lazy.loaded_sources(), []);
    let eager = Catalog::load_all(&paths).unwrap();
    for pattern in [
        "kprobe:vfs_*",
        "kfunc:*",
        "*open*",
        "t:syscalls:sys_enter_open*",
    ] {
        let fresh = Catalog::load(&paths).unwrap();
        let r = fresh.search(pattern, 100);
        assert_eq!(r, eager.search(pattern, 100), "{pattern}");
        assert_eq!(r, lazy.search(pattern, 100), "{pattern}");
    }
    let r = lazy.search("kprobe:vfs_*", 10);
    assert_eq!(r.total_matches, 0);
    assert_eq!(r.warnings.len(), 1, "{r:?}");
    assert!(r.warnings[0].contains("no text symbols listed"), "{r:?}");
    assert!(lazy.search("kfunc:*", 10).warnings[0].contains("kfunc names"));
    assert_eq!(lazy.fields("kfunc:vfs_read"), None);
    assert!(lazy.btf_types().is_none());
    assert_eq!(lazy.unavailable_sources(), eager.unavailable_sources());
    let kinds: Vec<SourceKind> = lazy
        .unavailable_sources()
        .iter()
        .map(|p| p.source)
        .collect();
    assert_eq!(kinds, [SourceKind::Kallsyms, SourceKind::Btf]);
    assert_eq!(lazy.counts(), eager.counts());
}

#[test]
fn a_source_removed_after_load_is_a_problem_when_used() {
    let (_dir, paths) = fixture_with(b"0 T vfs_read\n", &tiny_btf());
    let cat = Catalog::load(&paths).unwrap();
    std::fs::remove_file(&paths.kallsyms).unwrap();
    let r = cat.search("kprobe:*", 10);
    assert_eq!(r.total_matches, 0);
    assert!(
        r.warnings[0].contains("kprobe function names unavailable"),
        "{r:?}"
    );
    let p = cat.unavailable_sources();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].source, SourceKind::Kallsyms);
    // Loading is not retried: the answer stays the same.
    std::fs::write(&paths.kallsyms, "0 T vfs_read\n").unwrap();
    assert_eq!(cat.search("kprobe:*", 10), r);
}

#[test]
fn all_sources_unusable() {
    // Nothing opens: `load` fails at once.
    let err = Catalog::load(&CatalogPaths::from_dir("/nonexistent/kgent")).unwrap_err();
    assert!(matches!(err, CatalogError::NoSources(_)), "{err}");
    // Everything opens but nothing is usable: `load` finds out on use, `load_all` at once.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("available_events"), "").unwrap();
    std::fs::write(dir.path().join("kallsyms"), "").unwrap();
    std::fs::write(dir.path().join("vmlinux"), "").unwrap();
    let paths = CatalogPaths::from_dir(dir.path());
    let cat = Catalog::load(&paths).unwrap();
    assert_eq!(cat.unavailable_sources().len(), 3);
    let err = Catalog::load_all(&paths).unwrap_err();
    assert!(matches!(err, CatalogError::NoSources(_)), "{err}");
    assert!(err.to_string().contains("no tracepoints listed"), "{err}");
}

#[test]
fn concurrent_first_use_loads_once_and_agrees() {
    let (_dir, cat) = fixture_with_btf(&tiny_btf());
    let cat = std::sync::Arc::new(cat);
    let expected = (
        cat_search_counts(&Catalog::load_all(cat.paths()).unwrap()),
        3usize,
    );
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let cat = std::sync::Arc::clone(&cat);
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    cat.preload();
                }
                (
                    cat_search_counts(&cat),
                    cat.fields("kfunc:vfs_read").unwrap().fields.len() - 1,
                )
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
    assert_eq!(cat.loaded_sources(), SourceKind::ALL);
}

fn cat_search_counts(cat: &Catalog) -> [usize; 4] {
    [
        cat.search("tracepoint:*", 1000).total_matches,
        cat.search("kprobe:*", 1000).total_matches,
        cat.search("kfunc:*", 1000).total_matches,
        cat.search("*", 1000).total_matches,
    ]
}

#[test]
fn exact_tracepoint_search_answers_as_the_full_list() {
    let eager = Catalog::load_all(&CatalogPaths::from_dir(fixture_dir())).unwrap();
    for (pattern, limit, reads_list) in [
        // Has a format file: answered without the list.
        ("tracepoint:syscalls:sys_enter_openat", 10, false),
        ("t:sock:inet_sock_set_state", 10, false),
        ("tracepoint:sched:sched_process_exec", 0, false),
        // Listed, but the fixture has no format file: the list answers.
        ("tracepoint:sched:sched_switch", 10, true),
        // Not there at all, or not a plain name: the list answers.
        ("tracepoint:sched:nonexistent", 10, true),
        ("tracepoint:syscalls:sys_enter_openat:x", 10, true),
        ("tracepoint:syscalls", 10, true),
        ("tracepoint:../events:x", 10, true),
    ] {
        let cat = fixture();
        let r = cat.search(pattern, limit);
        assert_eq!(r, eager.search(pattern, limit), "{pattern}");
        assert_eq!(
            cat.loaded_sources().contains(&SourceKind::Tracefs),
            reads_list,
            "{pattern}"
        );
    }

    // ftrace's own events have format files but are not listed: the list decides.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("available_events"), "sched:sched_switch\n").unwrap();
    for event in ["ftrace/function", "sched/sched_switch"] {
        let d = dir.path().join("events").join(event);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("format"), "name: x\n").unwrap();
    }
    let cat = Catalog::load(&CatalogPaths::from_dir(dir.path())).unwrap();
    assert_eq!(
        cat.search("tracepoint:ftrace:function", 10).total_matches,
        0
    );
    assert_eq!(
        cat.search("tracepoint:sched:sched_switch", 10)
            .total_matches,
        1
    );
}
