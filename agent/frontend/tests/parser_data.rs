//! Data-driven parser tests. Every `test_data/parser/ok/*.bt` must parse with
//! no error and match the tree dump in the `.ast` file beside it; every
//! `test_data/parser/err/*.bt` must produce at least one error and match the
//! rendered diagnostics in the `.txt` file beside it.
//!
//! Regenerate the expected files with `UPDATE_EXPECT=1 cargo test -p kgent-frontend`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use expect_test::expect_file;
use kgent_frontend::{ast, parse, render_human};

/// Runs `check` on every file and fails once at the end, naming every file
/// that failed, rather than stopping at the first.
fn for_each_file(kind: &str, check: impl Fn(&std::path::Path, &str)) {
    let files = common::corpus(kind);
    assert!(!files.is_empty(), "no test files in {kind}/");
    let mut failed = Vec::new();
    for (path, text) in &files {
        if catch_unwind(AssertUnwindSafe(|| check(path, text))).is_err() {
            failed.push(common::file_name(path));
        }
    }
    assert!(
        failed.is_empty(),
        "{} {kind} file(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
}

#[test]
fn ok_files_parse_without_errors_and_match_their_trees() {
    for_each_file("ok", |path, text| {
        let name = common::file_name(path);
        let parsed = parse(text);
        assert!(
            !parsed.has_errors(),
            "{name} should parse without errors:\n{}",
            render_human(text, &name, &parsed.diagnostics, false)
        );
        expect_file![path.with_extension("ast")].assert_eq(&ast::dump(&parsed.program));
    });
}

#[test]
fn err_files_produce_errors_and_match_their_diagnostics() {
    for_each_file("err", |path, text| {
        let name = common::file_name(path);
        let parsed = parse(text);
        assert!(
            parsed.has_errors(),
            "{name} should produce at least one error"
        );
        let rendered = render_human(text, &name, &parsed.diagnostics, false);
        expect_file![path.with_extension("txt")].assert_eq(&rendered);
    });
}

#[test]
fn corpus_is_large_enough() {
    assert!(common::corpus("ok").len() >= 40);
    assert!(common::corpus("err").len() >= 20);
}
