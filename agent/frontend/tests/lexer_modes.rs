//! The lexer's modes and the context-dependent cases: `/` as division or
//! predicate delimiter, attach points with paths, casts versus parentheses,
//! map and variable forms, number and string literals.

use expect_test::{expect, Expect};
use kgent_frontend::ast::{self, ExprKind, ItemKind, StmtKind};
use kgent_frontend::lexer::{lex_attach_point, tokenize, TokenKind};
use kgent_frontend::parse;

fn tokens(src: &str) -> String {
    tokenize(src)
        .iter()
        .map(|t| format!("{:?}({})", t.kind, t.span.text(src)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_tokens(src: &str, expected: Expect) {
    expected.assert_eq(&tokens(src));
}

/// The tree of a program that must parse without errors.
fn tree(src: &str) -> String {
    let parsed = parse(src);
    assert!(!parsed.has_errors(), "{src}: {:#?}", parsed.diagnostics);
    ast::dump(&parsed.program)
}

/// The tree of the first statement of `BEGIN { <stmt> }`.
fn stmt_tree(stmt: &str) -> String {
    let full = tree(&format!("BEGIN {{ {stmt} }}"));
    // Program, Probe, AttachPoint, Block: the statement is at depth 3.
    let lines: Vec<&str> = full.lines().skip(4).map(|l| &l[6..]).collect();
    lines.join("\n")
}

fn attach(src: &str) -> String {
    let raw = lex_attach_point(src, 0);
    raw.parts
        .iter()
        .map(|p| {
            format!(
                "{}{}",
                p.span.text(src),
                if p.quoted { "(quoted)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
        + &format!(" ; rest `{}`", &src[raw.span.end as usize..])
}

#[test]
fn operators_lex_longest_first() {
    check_tokens(
        "<<= >>= << >> <= >= -> .. . ++ -- += -= && || != == ! ~ ? :",
        expect![[
            r#"ShlAssign(<<=) ShrAssign(>>=) Shl(<<) Shr(>>) Le(<=) Ge(>=) Arrow(->) DotDot(..) Dot(.) PlusPlus(++) MinusMinus(--) PlusAssign(+=) MinusAssign(-=) AndAnd(&&) OrOr(||) NotEq(!=) EqEq(==) Bang(!) Tilde(~) Question(?) Colon(:) Eof()"#
        ]],
    );
}

#[test]
fn sigils_distinguish_variables_positionals_and_maps() {
    check_tokens(
        "$x $1 $10 $# @ @m @[ $",
        expect![[
            r#"Var($x) Positional($1) Positional($10) PositionalCount($#) Map(@) Map(@m) Map(@) LBracket([) Unknown($) Eof()"#
        ]],
    );
}

#[test]
fn comments_are_trivia_but_not_inside_strings() {
    check_tokens(
        "a // line\n/* block\n */ b \"// not /* a comment\"",
        expect![[r#"Ident(a) Ident(b) Str("// not /* a comment") Eof()"#]],
    );
    let t = tokenize("\"open");
    assert_eq!(t[0].kind, TokenKind::Str);
    assert!(t[0].unterminated);
}

#[test]
fn division_in_a_block_is_left_associative() {
    expect![[r#"
              Assign = 8..25
                Var $x 8..10
                Binary / 13..25
                  Binary / 13..20
                    Var $a 13..15
                    Var $b 18..20
                  Var $c 23..25"#]]
    .assert_eq(&stmt_tree("$x = $a / $b / $c;"));
}

#[test]
fn slash_before_brace_closes_a_predicate() {
    let src = "kprobe:f /pid == 1/ { @x = $a / $b; }";
    let parsed = parse(src);
    assert!(!parsed.has_errors());
    let ItemKind::Probe(probe) = &parsed.program.items[0].kind else {
        panic!("probe expected")
    };
    let pred = probe.predicate.as_ref().expect("predicate");
    assert_eq!(pred.span.text(src), "pid == 1");
    // A division inside a predicate stays a division.
    let src = "kprobe:f / $1 / 2 > 1 / { }";
    let parsed = parse(src);
    assert!(!parsed.has_errors());
    let ItemKind::Probe(probe) = &parsed.program.items[0].kind else {
        panic!("probe expected")
    };
    assert_eq!(
        probe.predicate.as_ref().unwrap().span.text(src),
        "$1 / 2 > 1"
    );
}

#[test]
fn attach_points_with_paths_and_a_predicate() {
    let src = "uprobe:/bin/bash:readline /pid == 1/ {\n}";
    expect![[r#"
        Program 0..40
          Probe 0..40
            AttachPoint "uprobe:/bin/bash:readline" provider=uprobe normalized=uprobe 0..25
              Part "/bin/bash" 7..16
              Part "readline" 17..25
            Predicate 27..35
              Binary == 27..35
                Builtin pid 27..30
                Int 1 (1) 34..35
            Block 37..40
    "#]]
    .assert_eq(&tree(src));
}

#[test]
fn attach_point_mode_splits_parts() {
    expect![[r#"uprobe | /bin/bash | readline ; rest ` /pid == 1/ {`"#]]
        .assert_eq(&attach("uprobe:/bin/bash:readline /pid == 1/ {"));
    expect![[r#"uprobe | "/a b/c"(quoted) | fn ; rest ` {`"#]]
        .assert_eq(&attach("uprobe:\"/a b/c\":fn {"));
    expect![[r#"kprobe | tcp_sendmsg+16 ; rest `,kprobe:x`"#]]
        .assert_eq(&attach("kprobe:tcp_sendmsg+16,kprobe:x"));
    expect![[r#"hardware | cache-misses | 1e6 ; rest `{`"#]]
        .assert_eq(&attach("hardware:cache-misses:1e6{"));
    expect![[r#"watchpoint | 0x10000000 | 8 | rw ; rest ``"#]]
        .assert_eq(&attach("watchpoint:0x10000000:8:rw"));
    // Before the first `:` a `/` ends the provider; after it, `/` is a path character.
    expect![[r#"BEGIN ; rest `/1/{`"#]].assert_eq(&attach("BEGIN/1/{"));
    expect![[r#"kprobe | f/arg0/ ; rest `{`"#]].assert_eq(&attach("kprobe:f/arg0/{"));
}

#[test]
fn providers_are_normalized() {
    let src = "t:sched:*, k:f, kr:f, u:/b:f, ur:/b:f, U:/b:p, p:hz:99, i:s:1, s:cpu-clock, h:cycles, kfunc:f, f:g, kretfunc:f, fr:f, rt:x, it:task, w:0x1:8:r { }";
    let parsed = parse(src);
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    let probe = parsed.program.probes().next().unwrap();
    let normalized: Vec<&str> = probe
        .attach_points
        .iter()
        .map(|a| a.normalized_provider())
        .collect();
    assert_eq!(
        normalized,
        [
            "tracepoint",
            "kprobe",
            "kretprobe",
            "uprobe",
            "uretprobe",
            "usdt",
            "profile",
            "interval",
            "software",
            "hardware",
            "fentry",
            "fentry",
            "fexit",
            "fexit",
            "rawtracepoint",
            "iter",
            "watchpoint"
        ]
    );
    assert!(probe.attach_points[0].wildcard);
    assert!(!probe.attach_points[1].wildcard);
}

#[test]
fn casts_need_a_type_name_after_the_parenthesis() {
    let s = stmt_tree("$a = (int8)x;");
    assert!(s.contains("Cast"), "{s}");
    let s = stmt_tree("$a = (x);");
    assert!(!s.contains("Cast"), "{s}");
    let s = stmt_tree("$a = (x) - 1;");
    assert!(s.contains("Binary -") && !s.contains("Cast"), "{s}");
    expect![[r#"
              Assign = 8..32
                Var $a 8..10
                Cast 13..32
                  Pointer 14..27
                    Type struct sock 14..25
                  Builtin arg0 28..32"#]]
    .assert_eq(&stmt_tree("$a = (struct sock *)arg0;"));
    expect![[r#"
              Assign = 8..25
                Var $a 8..10
                Cast 13..25
                  Array [4] 14..22
                    Type uint8 14..19
                  Var $x 23..25"#]]
    .assert_eq(&stmt_tree("$a = (uint8[4])$x;"));
}

#[test]
fn anonymous_and_keyed_maps() {
    expect![[r#"
              Assign = 8..19
                Map @ 8..9
                Call count 12..19"#]]
    .assert_eq(&stmt_tree("@ = count();"));
    expect![[r#"
              Assign = 8..29
                Map @ 8..19
                  Builtin comm 10..14
                  Builtin pid 15..18
                Call count 22..29"#]]
    .assert_eq(&stmt_tree("@[comm,pid] = count();"));
}

#[test]
fn positional_parameters_versus_variables() {
    expect![[r#"
              ExprStmt 8..24
                Call f 8..24
                  Positional $1 10..12
                  Var $x 14..16
                  PositionalCount 18..20
                  Var $_ 21..23"#]]
    .assert_eq(&stmt_tree("f($1, $x, $#,$_);"));
}

fn int_value(literal: &str) -> u64 {
    let parsed = parse(&format!("BEGIN {{ $x = {literal}; }}"));
    assert!(!parsed.has_errors(), "{literal}: {:#?}", parsed.diagnostics);
    let probe = parsed.program.probes().next().unwrap();
    match &probe.body.stmts[0].kind {
        StmtKind::Assign { value, .. } => match &value.kind {
            ExprKind::Int(i) => i.value,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn integer_literal_forms() {
    assert_eq!(int_value("1_000_000"), 1_000_000);
    assert_eq!(int_value("0xff"), 255);
    assert_eq!(int_value("0XFF"), 255);
    assert_eq!(int_value("1e6"), 1_000_000);
    assert_eq!(int_value("2e3"), 2_000);
    assert_eq!(int_value("0777"), 0o777);
    assert_eq!(int_value("0"), 0);
    assert_eq!(int_value("10UL"), 10);
    assert_eq!(int_value("18446744073709551615"), u64::MAX);
    for bad in [
        "1ms",
        "0x",
        "09",
        "1_",
        "1e",
        "0x1_0",
        "18446744073709551616",
        "1e20",
    ] {
        let parsed = parse(&format!("BEGIN {{ $x = {bad}; }}"));
        assert!(parsed.has_errors(), "{bad} should be rejected");
    }
}

fn string_value(literal: &str) -> Vec<u8> {
    let parsed = parse(&format!("BEGIN {{ $x = {literal}; }}"));
    assert!(!parsed.has_errors(), "{literal}: {:#?}", parsed.diagnostics);
    let probe = parsed.program.probes().next().unwrap();
    match &probe.body.stmts[0].kind {
        StmtKind::Assign { value, .. } => match &value.kind {
            ExprKind::Str(s) => s.value.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn string_escapes_decode() {
    assert_eq!(string_value(r#""\x41\x4a""#), b"AJ");
    assert_eq!(string_value(r#""\x7""#), b"\x07");
    assert_eq!(string_value(r#""\101\0""#), b"A\0");
    assert_eq!(string_value(r#""a\n\t\r\"\\""#), b"a\n\t\r\"\\");
    assert_eq!(string_value(r#""\xff""#), [0xff]);
    assert_eq!(string_value("\"é\""), "é".as_bytes());
    for bad in [r#""\q""#, r#""\xZZ""#, r#""\777""#] {
        assert!(
            parse(&format!("BEGIN {{ $x = {bad}; }}")).has_errors(),
            "{bad}"
        );
    }
}

#[test]
fn unary_and_binary_minus() {
    expect![[r#"
        Assign = 8..21
          Var $x 8..10
          Binary - 13..21
            Var $a 13..15
            Unary - 18..21
              Var $b 19..21"#]]
    .assert_eq(&stmt_tree("$x = $a - -$b;"));
}
