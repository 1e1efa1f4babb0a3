//! Checker rules that depend on the bpftrace version or on what the program
//! itself declares, each shown on a minimal program against the fixture
//! kernel.

use kgent_frontend::{check, parse, CheckOptions, Diagnostic, StaticFacts};

fn fixture() -> StaticFacts {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/checker/kernel.json");
    StaticFacts::from_json(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture parses")
}

fn codes(source: &str, version: (u32, u32)) -> Vec<&'static str> {
    let parsed = parse(source);
    assert!(!parsed.has_errors(), "{source}: {:?}", parsed.diagnostics);
    let options = CheckOptions {
        version,
        ..CheckOptions::default()
    };
    check(&parsed.program, source, &fixture(), &options)
        .iter()
        .map(|d: &Diagnostic| d.code)
        .collect()
}

#[test]
fn variables_follow_each_versions_scoping() {
    let p = r#"BEGIN { if (pid) { $x = 1; } printf("%d\n", $x); }"#;
    // 0.17 to 0.21: one scope per probe, in source order.
    assert!(codes(p, (0, 17)).is_empty());
    // 0.22: block scoping.
    assert_eq!(codes(p, (0, 22)), ["undefined-variable"]);
    // 0.23: reading an unassigned variable is allowed.
    assert!(codes(p, (0, 23)).is_empty());
    assert_eq!(
        codes(r#"BEGIN { printf("%d\n", $y); $y = 1; }"#, (0, 17)),
        ["undefined-variable"]
    );
}

#[test]
fn builtins_follow_the_version() {
    let hist2 = "tracepoint:syscalls:sys_enter_read { @h = hist(args->count, 2); }";
    assert_eq!(codes(hist2, (0, 17)), ["wrong-arity"]);
    assert!(codes(hist2, (0, 20)).is_empty());
    let strcontains = r#"tracepoint:syscalls:sys_enter_openat /strcontains(str(args->filename), "etc")/ { @ = count(); }"#;
    // bpftrace 0.17 has strcontains() (and bswap()); 0.16 did not.
    assert!(codes(strcontains, (0, 17)).is_empty());
    assert_eq!(codes(strcontains, (0, 16)), ["unknown-function"]);
    let exit_code = "BEGIN { exit(1); }";
    assert_eq!(codes(exit_code, (0, 17)), ["wrong-arity"]);
    assert!(codes(exit_code, (0, 21)).is_empty());
    let call_style = "BEGIN { printf(\"%s\\n\", comm()); }";
    assert_eq!(codes(call_style, (0, 17)), ["unknown-function"]);
    assert!(codes(call_style, (0, 24)).is_empty());
    let sarg = "uprobe:/bin/bash:readline { @ = sarg0; }";
    assert!(codes(sarg, (0, 17)).is_empty());
    assert_eq!(codes(sarg, (0, 25)), ["unknown-identifier"]);
}

#[test]
fn args_is_a_pointer_before_0_19() {
    let p = r#"tracepoint:syscalls:sys_enter_openat { printf("%s\n", str(args.filename)); }"#;
    assert_eq!(codes(p, (0, 17)), ["member-operator"]);
    assert!(codes(p, (0, 19)).is_empty());
}

#[test]
fn what_the_program_declares_is_not_second_guessed() {
    // Headers may define any macro; a lowercase near-builtin is still a typo.
    let p = "#include <linux/fs.h>\nBEGIN { printf(\"%d %d\\n\", FMODE_READ, pidd); }";
    assert_eq!(codes(p, (0, 17)), ["unknown-identifier"]);
    // #define and C definitions count as declarations.
    let p = "#define LIMIT 10\nenum color { RED };\nBEGIN { printf(\"%d %d\\n\", LIMIT, RED); }";
    assert!(codes(p, (0, 17)).is_empty());
    // Kernel enum values come from BTF.
    assert!(codes(r#"BEGIN { printf("%d\n", TCP_ESTABLISHED); }"#, (0, 17)).is_empty());
    // Structs the program defines are not looked up in BTF.
    let p = "struct mine { int a; };\nuprobe:/bin/bash:readline { $m = (struct mine *)arg0; @ = $m->a; }";
    assert!(codes(p, (0, 17)).is_empty());
    // Unknown structs are fine when headers might declare them.
    let p =
        "#include <linux/foo.h>\nuprobe:/bin/bash:readline { $m = (struct foo *)arg0; @ = $m->a; }";
    assert!(codes(p, (0, 17)).is_empty());
}

#[test]
fn user_functions_are_known_calls() {
    let p = "fn twice($x: int64): int64 { return $x * 2; }\nBEGIN { @ = twice(2); }";
    assert!(codes(p, (0, 20)).is_empty());
}

#[test]
fn empty_and_broken_programs_check_quietly() {
    assert!(codes("", (0, 17)).is_empty());
    let source = "BEGIN { $x = ; } tracepoint:syscalls:sys_enter_opn { @[";
    let broken = parse(source);
    assert!(broken.has_errors());
    let d = check(
        &broken.program,
        source,
        &fixture(),
        &CheckOptions::default(),
    );
    assert!(d.iter().all(|d| d.code == "unknown-probe"), "{d:?}");
}
