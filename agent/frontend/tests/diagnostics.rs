//! Diagnostics as data and their two renderings: JSON with line:column for
//! tools and the LLM loop, ariadne text for people (plain or coloured).

use expect_test::expect;
use kgent_frontend::diagnostic::codes;
use kgent_frontend::visit::{self, Visitor};
use kgent_frontend::{ast, parse, render_human, to_json, Diagnostic, LineIndex, Severity, Span};

#[test]
fn json_has_positions_help_and_suggestion() {
    let source = "BEGIN\n{\n\t$x = 1\n\t$y = 2;\n}\n";
    let parsed = parse(source);
    let json = to_json(source, &parsed.diagnostics);
    expect![[r#"
        [
          {
            "code": "missing-semicolon",
            "column": 8,
            "end_column": 8,
            "end_line": 3,
            "help": null,
            "labels": [],
            "line": 3,
            "message": "expected `;` or `}` after statement, found variable `$y`",
            "severity": "error",
            "span": {
              "end": 15,
              "start": 15
            },
            "suggestion": {
              "replacement": ";",
              "span": {
                "end": 15,
                "start": 15
              }
            }
          }
        ]"#]]
    .assert_eq(&serde_json::to_string_pretty(&json).unwrap());
}

#[test]
fn plain_rendering_has_no_ansi_and_colour_rendering_has() {
    let source = "kprob:vfs_read { }";
    let parsed = parse(source);
    let plain = render_human(source, "cell.bt", &parsed.diagnostics, false);
    assert!(!plain.contains('\u{1b}'), "{plain}");
    assert!(plain.contains("[unknown-probe]"));
    assert!(plain.contains("cell.bt:1:1"));
    assert!(plain.contains("did you mean `kprobe`?"));
    let coloured = render_human(source, "cell.bt", &parsed.diagnostics, true);
    assert!(coloured.contains('\u{1b}'));
}

#[test]
fn rendering_survives_spans_outside_or_inside_characters() {
    let source = "é\n";
    let diagnostics = vec![
        Diagnostic::error(codes::EXPECTED_TOKEN, "inside a character", Span::new(1, 2)),
        Diagnostic::warning(codes::EXPECTED_TOKEN, "past the end", Span::new(50, 60))
            .with_label(Span::new(70, 80), "also past the end")
            .with_suggestion(Span::new(90, 95), "x"),
        Diagnostic::new(
            Severity::Note,
            codes::EXPECTED_TOKEN,
            "empty source",
            Span::empty(0),
        ),
    ];
    let text = render_human(source, "x.bt", &diagnostics, false);
    assert!(text.contains("inside a character") && text.contains("past the end"));
    let json = to_json(source, &diagnostics);
    assert_eq!(json[1]["line"], 2);
    let empty = render_human("", "empty.bt", &diagnostics[2..], false);
    assert!(empty.contains("empty source"));
}

#[test]
fn line_index_maps_offsets_when_asked() {
    let index = LineIndex::new("a\nbc\n");
    let lc = index.line_col(3);
    assert_eq!((lc.line, lc.column), (2, 2));
}

#[test]
fn every_syntax_error_says_what_it_expected_or_found() {
    for source in [
        "BEGIN { $x = ; }",
        "BEGIN { f(1 2); }",
        "BEGIN { @m[1 = 2; }",
        "kprobe:f /pid == 1 { }",
        "BEGIN { if (1) { } else 3; }",
    ] {
        let parsed = parse(source);
        let first = parsed
            .errors()
            .next()
            .unwrap_or_else(|| panic!("{source}: no error"));
        assert!(
            first.message.contains("expected") || first.message.contains("found"),
            "{source}: {}",
            first.message
        );
    }
}

#[test]
fn visitor_reaches_every_expression() {
    #[derive(Default)]
    struct Names(Vec<String>);
    impl Visitor for Names {
        fn visit_expr(&mut self, e: &ast::Expr) {
            if let ast::ExprKind::Var(name) | ast::ExprKind::Builtin(name) = &e.kind {
                self.0.push(name.clone());
            }
            visit::walk_expr(self, e);
        }
    }
    let parsed = parse(
        "kprobe:f /pid/ { if ($a) { $b = (int8)$c ? $d : $e[$f]; } else if ($g) { for ($h : @m[$i]) { assert($j, \"m\"); } } }\nfn f($p: int64): int64 { return $k->x; }",
    );
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    let mut names = Names::default();
    names.visit_program(&parsed.program);
    assert_eq!(
        names.0,
        ["pid", "a", "b", "c", "d", "e", "f", "g", "i", "j", "k"]
    );
}

/// Applies every suggestion (last first, skipping overlaps) to `source`.
fn apply_suggestions(source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut suggestions: Vec<_> = diagnostics
        .iter()
        .filter_map(|d| d.suggestion.clone())
        .collect();
    suggestions.sort_by_key(|s| std::cmp::Reverse((s.span.start, s.span.end)));
    let mut text = source.to_string();
    let mut limit = usize::MAX;
    for s in suggestions {
        let range = s.span.range();
        if range.end > limit {
            continue;
        }
        text.replace_range(range.clone(), &s.replacement);
        limit = range.start;
    }
    text
}

#[test]
fn suggestions_are_machine_applicable() {
    for source in [
        "BEGIN\n{\n\t$x = 1\n\t$y = 2;\n}\n",
        "kprob:vfs_read { @x = count(); }",
        "begin { exit(); }",
        "kprobe:f\n/pid = 1/\n{ }",
        "kprobe:f\n/pid == 1\n{ }",
        "BEGIN { printf \"%d\\n\", pid; }",
        "BEGIN { if pid == 1 { exit(); } }",
        "BEGIN { if (pid) { exit(); }; }",
        "BEGIN { exit();; }",
        "kprobe:a\nkprobe:b\n{ }",
        "BEGIN {\n\t@x = 1;\n",
        "BEGIN { printf(\"x\"; }",
        "interval:sec:1 { }",
        "kprobe:f/pid == 1/ { }",
        "BEGIN { exit(); } }",
    ] {
        let parsed = parse(source);
        assert!(parsed.has_errors(), "{source:?} should have errors");
        let fixed = apply_suggestions(source, &parsed.diagnostics);
        let reparsed = parse(&fixed);
        assert!(
            !reparsed.has_errors(),
            "{source:?} -> {fixed:?} still has errors: {:#?}",
            reparsed.diagnostics
        );
    }
}
