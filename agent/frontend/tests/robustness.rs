//! Robustness: arbitrary text and mutated real programs (byte flips,
//! truncations, token deletions, duplications and swaps) never panic the
//! parser, printer, dumper, renderers, annotation stripping or the checker
//! (against the fixture kernel, with default and permissive options), and
//! always return; pathological nesting cannot overflow the stack.
//!
//! Inputs are bounded in size (a few KiB) so each case is fast; there are no
//! timing assertions.

mod common;

use std::sync::OnceLock;

use kgent_frontend::visit::{self, Visitor};
use kgent_frontend::{
    ast, check, lexer, parse, print_program, render_human, strip_annotations, to_json,
    CheckOptions, StaticFacts,
};
use proptest::prelude::*;

/// The checker's fixture kernel, loaded once.
fn facts() -> &'static StaticFacts {
    static FACTS: OnceLock<StaticFacts> = OnceLock::new();
    FACTS.get_or_init(|| {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/checker/kernel.json");
        StaticFacts::from_json(&std::fs::read_to_string(path).expect("fixture"))
            .expect("fixture parses")
    })
}

/// Everything a later stage might do with a parse, for its side effect of not panicking.
fn exercise(text: &str) {
    let parsed = parse(text);
    for d in &parsed.diagnostics {
        assert!(d.span.start <= d.span.end, "inverted span {:?}", d.span);
        assert!(
            d.span.end as usize <= text.len(),
            "span past the end: {:?}",
            d.span
        );
    }
    let printed = print_program(&parsed.program);
    let _ = parse(&printed);
    let _ = ast::dump(&parsed.program);
    let _ = render_human(text, "fuzz.bt", &parsed.diagnostics, false);
    let _ = render_human(text, "fuzz.bt", &parsed.diagnostics, true);
    let _ = to_json(text, &parsed.diagnostics);
    let _ = strip_annotations(text, &parsed.program);
    assert!(parsed.program.eq_ignoring_spans(&parsed.program));
    struct CountAll(usize);
    impl Visitor for CountAll {
        fn visit_expr(&mut self, e: &ast::Expr) {
            self.0 += 1;
            visit::walk_expr(self, e);
        }
    }
    CountAll(0).visit_program(&parsed.program);
    for options in [
        CheckOptions::default(),
        CheckOptions {
            allow_unsafe: true,
            max_probes: 1,
            version: (0, 24),
            ..CheckOptions::default()
        },
    ] {
        let checked = check(&parsed.program, text, facts(), &options);
        for d in &checked {
            assert!(d.span.start <= d.span.end, "inverted span {:?}", d.span);
            assert!(
                d.span.end as usize <= text.len(),
                "checker span past the end: {d:?}"
            );
            if let Some(s) = &d.suggestion {
                assert!(
                    text.get(s.span.range()).is_some(),
                    "suggestion span not on character boundaries: {d:?}"
                );
            }
        }
        let _ = render_human(text, "fuzz.bt", &checked, false);
        let _ = to_json(text, &checked);
    }
}

/// Real programs to mutate: the `ok` corpus plus the installed tools.
fn seeds() -> Vec<String> {
    let mut seeds: Vec<String> = common::corpus("ok").into_iter().map(|(_, t)| t).collect();
    // The checker's corpus: programs the checks have most to say about.
    for kind in ["ok", "warn", "err"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("test_data/checker")
            .join(kind);
        for entry in std::fs::read_dir(dir).expect("checker corpus").flatten() {
            if entry.path().extension().is_some_and(|e| e == "bt") {
                seeds.push(std::fs::read_to_string(entry.path()).expect("corpus file"));
            }
        }
    }
    seeds.extend(common::installed_tools().0.into_iter().map(|(_, t)| t));
    // Keep each case small: mutate at most the first 4 KiB of a seed.
    for s in &mut seeds {
        if s.len() > 4096 {
            let mut cut = 4096;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
    }
    seeds
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipByte { at: usize, value: u8 },
    Truncate { at: usize },
    DeleteToken { at: usize },
    DuplicateToken { at: usize },
    SwapTokens { a: usize, b: usize },
    InsertText { at: usize, text: &'static str },
}

const SNIPPETS: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "/",
    ";",
    ",",
    ":",
    "\"",
    "/*",
    "*/",
    "//",
    "$",
    "@",
    "#",
    "->",
    ".",
    "..",
    "?",
    "=",
    "==",
    "++",
    "(int8)",
    "(struct x *)",
    "if",
    "else",
    "for",
    "while",
    "unroll",
    "assert(",
    "assume(",
    "kprobe:",
    "BEGIN",
    "\n",
    "\\",
    "0x",
    "1e",
    "é",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::FlipByte { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        any::<usize>().prop_map(|at| Mutation::DeleteToken { at }),
        any::<usize>().prop_map(|at| Mutation::DuplicateToken { at }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapTokens { a, b }),
        (any::<usize>(), proptest::sample::select(SNIPPETS))
            .prop_map(|(at, text)| Mutation::InsertText { at, text }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let tokens: Vec<_> = lexer::tokenize(text)
        .into_iter()
        .filter(|t| t.kind != lexer::TokenKind::Eof)
        .collect();
    let boundary = |at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match m {
        Mutation::FlipByte { at, value } => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = *value;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::Truncate { at } => text[..boundary(*at)].to_string(),
        Mutation::InsertText { at, text: snippet } => {
            let at = boundary(*at);
            format!("{}{snippet}{}", &text[..at], &text[at..])
        }
        _ if tokens.is_empty() => text.to_string(),
        Mutation::DeleteToken { at } => {
            let t = tokens[at % tokens.len()].span;
            format!("{}{}", &text[..t.start as usize], &text[t.end as usize..])
        }
        Mutation::DuplicateToken { at } => {
            let t = tokens[at % tokens.len()].span;
            let tok = t.text(text);
            format!(
                "{}{tok} {tok}{}",
                &text[..t.start as usize],
                &text[t.end as usize..]
            )
        }
        Mutation::SwapTokens { a, b } => {
            let (mut x, mut y) = (tokens[a % tokens.len()].span, tokens[b % tokens.len()].span);
            if x.start > y.start {
                std::mem::swap(&mut x, &mut y);
            }
            if x == y || x.end > y.start {
                return text.to_string();
            }
            format!(
                "{}{}{}{}{}",
                &text[..x.start as usize],
                y.text(text),
                &text[x.end as usize..y.start as usize],
                x.text(text),
                &text[y.end as usize..]
            )
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    // PROPTEST_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        exercise(&text);
    }

    #[test]
    fn bpftrace_flavoured_text_never_panics(
        parts in proptest::collection::vec(proptest::sample::select(SNIPPETS), 0..120)
    ) {
        exercise(&parts.join(" "));
        exercise(&parts.concat());
    }

    #[test]
    fn mutated_programs_never_panic(
        seed in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        exercise(&text);
    }
}

/// Runs `f` on a thread with a 2 MiB stack: the default for spawned threads,
/// and what a later pass can count on.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no stack overflow or panic");
}

fn deep_case(text: String) {
    on_small_stack(move || {
        let parsed = parse(&text);
        assert!(
            parsed
                .diagnostics
                .iter()
                .any(|d| d.code == "nesting-too-deep"),
            "expected a nesting-too-deep diagnostic"
        );
        exercise(&text);
        drop(parsed);
    });
}

#[test]
fn ten_thousand_open_parens_do_not_overflow() {
    deep_case(format!("BEGIN {{ $x = {}1; }}", "(".repeat(10_000)));
    deep_case(format!(
        "BEGIN {{ $x = {}1{}; }}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    ));
}

#[test]
fn deep_blocks_and_statements_do_not_overflow() {
    deep_case(format!("BEGIN {}", "{".repeat(10_000)));
    deep_case(format!("BEGIN {{ {} }}", "if (1) {".repeat(5_000)));
    let chain: String = (0..5_000).map(|_| "if (1) { } else ").collect();
    deep_case(format!("BEGIN {{ {chain} {{ }} }}"));
}

#[test]
fn long_operator_chains_do_not_overflow() {
    deep_case(format!("BEGIN {{ $x = 1{}; }}", " + 1".repeat(100_000)));
    deep_case(format!("BEGIN {{ $x = {}1; }}", "-".repeat(10_000)));
    deep_case(format!("BEGIN {{ $x = {}1; }}", "!".repeat(10_000)));
    deep_case(format!("BEGIN {{ $x = {}1; }}", "(int8)".repeat(10_000)));
    deep_case(format!("BEGIN {{ $x = 1{}; }}", " ? 1 : 1".repeat(10_000)));
    deep_case(format!("BEGIN {{ $x = $y{}; }}", ".a".repeat(10_000)));
    deep_case(format!("BEGIN {{ $x = $y{}; }}", "[0]".repeat(10_000)));
    deep_case(format!("BEGIN {{ @x = {}1; }}", "@m[".repeat(10_000)));
}

#[test]
fn realistic_nesting_is_accepted() {
    // Deep for a person, far below the limit.
    let text = format!("BEGIN {{ $x = {}1{}; }}", "(".repeat(100), ")".repeat(100));
    let parsed = parse(&text);
    assert!(!parsed.has_errors());
    let chain = format!("BEGIN {{ $x = 1{}; }}", " || $y".repeat(200));
    assert!(!parse(&chain).has_errors());
}

#[test]
fn huge_error_counts_are_capped() {
    let text = "BEGIN { ".to_string() + &"$x = ; ".repeat(5_000) + "}";
    let parsed = parse(&text);
    let errors = parsed.errors().count();
    assert!(errors <= 100, "{errors} errors reported");
    assert!(parsed
        .diagnostics
        .iter()
        .any(|d| d.code == "too-many-errors"));
}
