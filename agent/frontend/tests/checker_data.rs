//! Data-driven checker tests against a fixture kernel
//! (`test_data/checker/kernel.json`, captured from a 6.18 kernel without
//! kprobes). Every `test_data/checker/ok/*.bt` must check clean; every
//! `warn/*.bt` must produce warnings and no error, every `err/*.bt` at least
//! one error, and each of those must match the rendered diagnostics in the
//! `.txt` beside it. Applying any suggestion must remove the diagnostic it
//! came with.
//!
//! A first-line comment `// check: --unsafe --version 0.22 --max-probes 10`
//! sets options. Regenerate the expected files with
//! `UPDATE_EXPECT=1 cargo test -p kgent-frontend --test checker_data`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use expect_test::expect_file;
use kgent_frontend::{check, parse, render_human, CheckOptions, Diagnostic, StaticFacts};

fn fixture() -> StaticFacts {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/checker/kernel.json");
    let text = std::fs::read_to_string(&path).expect("fixture kernel");
    StaticFacts::from_json(&text).expect("fixture kernel parses")
}

fn corpus(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/checker")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("corpus file");
            (p, text)
        })
        .collect()
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Options from a `// check: ...` first line.
fn options(text: &str) -> CheckOptions {
    let mut o = CheckOptions::default();
    let Some(line) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// check:"))
    else {
        return o;
    };
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "--unsafe" => o.allow_unsafe = true,
            "--version" => {
                let v = words.next().expect("--version VALUE");
                let (a, b) = v.split_once('.').expect("MAJOR.MINOR");
                o.version = (a.parse().unwrap(), b.parse().unwrap());
            }
            "--max-probes" => o.max_probes = words.next().unwrap().parse().unwrap(),
            other => panic!("unknown check option {other}"),
        }
    }
    o
}

fn run(facts: &StaticFacts, text: &str) -> Vec<Diagnostic> {
    let parsed = parse(text);
    assert!(
        !parsed.has_errors(),
        "the corpus holds programs that parse:\n{}",
        render_human(text, "corpus.bt", &parsed.diagnostics, false)
    );
    check(&parsed.program, text, facts, &options(text))
}

/// Runs `f` on every file of `kind` and fails once, naming all failures.
fn for_each_file(kind: &str, f: impl Fn(&StaticFacts, &Path, &str)) {
    let facts = fixture();
    let files = corpus(kind);
    assert!(!files.is_empty(), "no files in checker/{kind}/");
    let failed: Vec<String> = files
        .iter()
        .filter(|(path, text)| catch_unwind(AssertUnwindSafe(|| f(&facts, path, text))).is_err())
        .map(|(path, _)| name(path))
        .collect();
    assert!(
        failed.is_empty(),
        "{} {kind} file(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
}

fn expect_rendered(path: &Path, text: &str, diagnostics: &[Diagnostic]) {
    let rendered = render_human(text, &name(path), diagnostics, false);
    expect_file![path.with_extension("txt")].assert_eq(&rendered);
}

#[test]
fn ok_files_check_clean() {
    for_each_file("ok", |facts, path, text| {
        let d = run(facts, text);
        assert!(
            d.is_empty(),
            "{} should check clean:\n{}",
            name(path),
            render_human(text, &name(path), &d, false)
        );
    });
}

#[test]
fn warn_files_warn_without_errors() {
    for_each_file("warn", |facts, path, text| {
        let d = run(facts, text);
        assert!(
            !d.is_empty() && !d.iter().any(Diagnostic::is_error),
            "{} should have warnings and no error:\n{}",
            name(path),
            render_human(text, &name(path), &d, false)
        );
        expect_rendered(path, text, &d);
    });
}

#[test]
fn err_files_produce_errors() {
    for_each_file("err", |facts, path, text| {
        let d = run(facts, text);
        assert!(
            d.iter().any(Diagnostic::is_error),
            "{} should produce at least one error",
            name(path)
        );
        expect_rendered(path, text, &d);
    });
}

/// Every suggestion, applied alone, leaves a program that parses and has
/// fewer diagnostics of that code.
#[test]
fn suggestions_apply_cleanly() {
    let facts = fixture();
    let mut applied = 0;
    let mut failures = Vec::new();
    for kind in ["warn", "err"] {
        for (path, text) in corpus(kind) {
            let before = run(&facts, &text);
            for d in &before {
                let Some(s) = &d.suggestion else { continue };
                let mut fixed = text.clone();
                fixed.replace_range(s.span.range(), &s.replacement);
                let parsed = parse(&fixed);
                if parsed.has_errors() {
                    failures.push(format!(
                        "{}: [{}] suggestion breaks parsing:\n{fixed}",
                        name(&path),
                        d.code
                    ));
                    continue;
                }
                let after = check(&parsed.program, &fixed, &facts, &options(&fixed));
                let count = |ds: &[Diagnostic]| ds.iter().filter(|x| x.code == d.code).count();
                if count(&after) >= count(&before) {
                    failures.push(format!(
                        "{}: [{}] `{}` still reported after applying `{}`:\n{}",
                        name(&path),
                        d.code,
                        d.message,
                        s.replacement,
                        render_human(&fixed, &name(&path), &after, false)
                    ));
                }
                applied += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(applied >= 15, "only {applied} suggestions in the corpus");
}

#[test]
fn corpus_covers_every_check() {
    let facts = fixture();
    let mut codes: Vec<&'static str> = Vec::new();
    for kind in ["warn", "err"] {
        for (_, text) in corpus(kind) {
            codes.extend(run(&facts, &text).iter().map(|d| d.code));
        }
    }
    for code in [
        "unknown-probe",
        "unsupported-probe-type",
        "too-many-probes",
        "no-such-field",
        "unknown-type",
        "member-operator",
        "builtin-unavailable",
        "unknown-function",
        "unknown-identifier",
        "wrong-arity",
        "printf-format",
        "undefined-variable",
        "map-never-written",
        "map-type-conflict",
        "str-on-non-pointer",
        "network-byte-order",
        "unsafe-builtin",
    ] {
        assert!(codes.contains(&code), "no corpus file exercises `{code}`");
    }
}

/// The fixture kernel answers like the machine it came from.
#[test]
fn fixture_is_the_kernel_it_claims() {
    use kgent_frontend::ast::ProbeKind;
    use kgent_frontend::{KernelFacts, ProbeSupport};
    let f = fixture();
    assert!(matches!(
        f.probe_support(ProbeKind::Kprobe),
        ProbeSupport::Unsupported { .. }
    ));
    assert_eq!(f.probe_support(ProbeKind::Tracepoint), ProbeSupport::Works);
    assert!(
        f.matching_probes("tracepoint:syscalls:sys_enter_*", 1)
            .total
            > 300
    );
    assert_eq!(
        f.matching_probes("uretprobe:/bin/bash:readline", 1).total,
        1
    );
    let dport = f.member(
        &kgent_frontend::RecordRef::new(kgent_frontend::RecordKind::Struct, "sock_common"),
        "skc_dport",
    );
    assert!(
        matches!(dport, kgent_frontend::MemberLookup::Found(f) if f.byte_order == kgent_frontend::ByteOrder::Network)
    );
}
