//! Cross-check with tree-sitter-bpftrace 0.5: over the installed bpftrace tools
//! and the ok/err corpus, both parsers must accept or reject the same
//! programs, except where the table below says why they differ.

mod common;

use kgent_frontend::parse;

/// Files on which the two parsers knowingly disagree, and why. "ours" is what
/// this crate does; tree-sitter-bpftrace 0.5 follows bpftrace 0.24+ in places
/// and lacks some 0.17 forms in others.
const EXCEPTIONS: &[(&str, &str)] = &[
    // tree-sitter-bpftrace lacks forms that bpftrace accepts.
    (
        "ok/c_definitions.bt",
        "its preamble takes `struct` and `enum` definitions but not `union`",
    ),
    (
        "ok/casts.bt",
        "its cast types have `struct X *` but not `union X *`",
    ),
    (
        "ok/functions.bt",
        "it has no rule for `fn` functions (bpftrace 0.20+)",
    ),
    (
        "ok/kprobes.bt",
        "it has no `kprobe:FUNCTION+OFFSET` (a TODO in its grammar)",
    ),
    (
        "ok/offsetof.bt",
        "its `offsetof` takes a type name, not an expression such as `*curtask` (bpftrace 0.23)",
    ),
    (
        "ok/self_probe.bt",
        "it has no `self` probe provider (bpftrace 0.22)",
    ),
    (
        "ok/string_escapes.bt",
        "it lexes `//` inside a string literal as the start of a comment",
    ),
    (
        "ok/uprobe_cpp.bt",
        "its uprobe rule has no language part (`uprobe:BIN:cpp:\"ns::f\"`)",
    ),
    (
        "ok/uprobe_quoted_path.bt",
        "its uprobe binary cannot be a quoted path with spaces",
    ),
    (
        "ok/watchpoint_iter.bt",
        "its watchpoint mode is one letter (no `rw`) and it has no `asyncwatchpoint`",
    ),
    // Forms that are ours, or newer than bpftrace 0.23.
    (
        "ok/nested_blocks.bt",
        "it reads a bare `{ }` as a block expression that must end in an expression",
    ),
    (
        "ok/typedef_definitions.bt",
        "top-level `typedef` is our extension (kept verbatim); bpftrace has none",
    ),
    // tree-sitter-bpftrace accepts what bpftrace 0.17 to 0.23 reject.
    (
        "err/define_continuation.bt",
        "it accepts `\\` continuations in `#define`; bpftrace reads one line",
    ),
    (
        "err/if_without_parens.bt",
        "it follows bpftrace 0.24+, where `if` needs no parentheses",
    ),
    (
        "err/invalid_escape.bt",
        "it accepts any `\\x` escape; bpftrace rejects unknown escapes",
    ),
    (
        "err/positional_zero.bt",
        "it accepts `$0`; bpftrace rejects it (parameters start at `$1`)",
    ),
    (
        "err/predicate_needs_space.bt",
        "it ends the attach point at `/`; bpftrace (like us) reads `/pid` as part of it",
    ),
    (
        "err/deep_nesting.bt",
        "300 nested parentheses exceed our stack-safety limit of 256 levels",
    ),
];

fn tree_sitter_accepts(text: &str) -> bool {
    first_tree_sitter_error(text).is_none()
}

/// Where tree-sitter's first error or missing node is, as `line:column `text``.
fn first_tree_sitter_error(text: &str) -> Option<String> {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_bpftrace::LANGUAGE.into())
        .expect("load the bpftrace grammar");
    let tree = parser
        .parse(text, None)
        .expect("tree-sitter returns a tree");
    if !tree.root_node().has_error() {
        return None;
    }
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            let p = node.start_position();
            let snippet: String = text[node.byte_range()].chars().take(40).collect();
            return Some(format!("{}:{} `{snippet}`", p.row + 1, p.column + 1));
        }
        let children: Vec<_> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    Some("somewhere".to_string())
}

#[test]
fn both_parsers_agree_except_where_documented() {
    let mut cases: Vec<(String, String)> = Vec::new();
    let (tools, missing) = common::installed_tools();
    common::report_missing("both_parsers_agree_except_where_documented", &missing);
    cases.extend(
        tools
            .into_iter()
            .map(|(name, text)| (format!("tools/{name}"), text)),
    );
    for kind in ["ok", "err"] {
        for (path, text) in common::corpus(kind) {
            cases.push((format!("{kind}/{}", common::file_name(&path)), text));
        }
    }

    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    for (name, text) in &cases {
        let ours = !parse(text).has_errors();
        let theirs = tree_sitter_accepts(text);
        let excepted = EXCEPTIONS.iter().any(|(n, _)| n == name);
        match (ours == theirs, excepted) {
            (false, false) => unexpected.push(format!(
                "{name}: ours {}, tree-sitter {} (its first error: {})",
                verdict(ours),
                verdict(theirs),
                first_tree_sitter_error(text).unwrap_or_default()
            )),
            (true, true) => stale.push(name.clone()),
            _ => {}
        }
    }
    assert!(
        unexpected.is_empty(),
        "undocumented disagreements:\n{}",
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "exceptions that no longer disagree (remove them): {}",
        stale.join(", ")
    );
    for (name, _) in EXCEPTIONS {
        assert!(
            cases.iter().any(|(n, _)| n == name) || name.starts_with("tools/"),
            "exception for unknown file {name}"
        );
    }
}

fn verdict(accepts: bool) -> &'static str {
    if accepts {
        "accepts"
    } else {
        "rejects"
    }
}
