//! Conformance: the 38 bpftrace tools Debian installs (read from `/usr/sbin`
//! at test time, never copied here) and the `ok` corpus parse with no errors;
//! printing and re-parsing gives an equal tree; printing is idempotent; and
//! stripping annotations leaves a program that parses to the same tree minus
//! the annotations.

mod common;

use kgent_frontend::ast::{Block, ElseBranch, Item, ItemKind, Program, Stmt, StmtKind};
use kgent_frontend::{parse, print_program, render_human, strip_annotations};

/// Parses, prints, re-parses; returns a description of the first problem.
fn round_trip(name: &str, text: &str) -> Result<(), String> {
    let first = parse(text);
    if first.has_errors() {
        return Err(format!(
            "{name} has parse errors:\n{}",
            render_human(text, name, &first.diagnostics, false)
        ));
    }
    let printed = print_program(&first.program);
    let second = parse(&printed);
    if second.has_errors() {
        return Err(format!(
            "{name}: the printed program has errors:\n{}\n{printed}",
            render_human(&printed, name, &second.diagnostics, false)
        ));
    }
    if !first.program.eq_ignoring_spans(&second.program) {
        return Err(format!(
            "{name}: printing then parsing changed the tree:\n{printed}"
        ));
    }
    let reprinted = print_program(&second.program);
    if reprinted != printed {
        return Err(format!("{name}: printing is not idempotent"));
    }
    Ok(())
}

#[test]
fn bpftrace_tools_parse_and_round_trip() {
    let (tools, missing) = common::installed_tools();
    common::report_missing("bpftrace_tools_parse_and_round_trip", &missing);
    let failures: Vec<String> = tools
        .iter()
        .filter_map(|(name, text)| round_trip(name, text).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    if !tools.is_empty() {
        eprintln!(
            "{} of {} bpftrace tools round-tripped",
            tools.len(),
            common::TOOLS.len()
        );
    }
}

#[test]
fn ok_corpus_round_trips() {
    let files = common::corpus("ok");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|(path, text)| round_trip(&common::file_name(path), text).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The tree with every `assume`/`assert` statement removed.
fn without_annotations(program: &Program) -> Program {
    fn block(b: &Block) -> Block {
        Block {
            stmts: b.stmts.iter().filter_map(stmt).collect(),
            span: b.span,
        }
    }
    fn if_stmt(i: &kgent_frontend::ast::IfStmt) -> kgent_frontend::ast::IfStmt {
        kgent_frontend::ast::IfStmt {
            cond: i.cond.clone(),
            then_block: block(&i.then_block),
            else_branch: i.else_branch.as_ref().map(|e| match e {
                ElseBranch::Block(b) => ElseBranch::Block(block(b)),
                ElseBranch::If(nested) => ElseBranch::If(Box::new(if_stmt(nested))),
            }),
            span: i.span,
        }
    }
    fn stmt(s: &Stmt) -> Option<Stmt> {
        let kind = match &s.kind {
            StmtKind::Assume(_) | StmtKind::Assert { .. } => return None,
            StmtKind::If(i) => StmtKind::If(if_stmt(i)),
            StmtKind::Block(b) => StmtKind::Block(block(b)),
            StmtKind::While { cond, body } => StmtKind::While {
                cond: cond.clone(),
                body: block(body),
            },
            StmtKind::Unroll { count, body } => StmtKind::Unroll {
                count: count.clone(),
                body: block(body),
            },
            StmtKind::For { var, iter, body } => StmtKind::For {
                var: var.clone(),
                iter: iter.clone(),
                body: block(body),
            },
            other => other.clone(),
        };
        Some(Stmt { kind, span: s.span })
    }
    let items = program
        .items
        .iter()
        .map(|item| {
            let kind = match &item.kind {
                ItemKind::Probe(p) => {
                    let mut p = p.clone();
                    p.body = block(&p.body);
                    ItemKind::Probe(p)
                }
                ItemKind::Function(f) => {
                    let mut f = f.clone();
                    f.body = block(&f.body);
                    ItemKind::Function(f)
                }
                ItemKind::Macro(m) => {
                    let mut m = m.clone();
                    m.body = block(&m.body);
                    ItemKind::Macro(m)
                }
                other => other.clone(),
            };
            Item {
                kind,
                span: item.span,
            }
        })
        .collect();
    Program {
        items,
        span: program.span,
    }
}

#[test]
fn stripping_annotations_keeps_the_rest_of_the_program() {
    for (path, text) in common::corpus("ok") {
        let name = common::file_name(&path);
        let parsed = parse(&text);
        let stripped = strip_annotations(&text, &parsed.program);
        let reparsed = parse(&stripped);
        assert!(
            !reparsed.has_errors(),
            "{name}: stripped program has errors:\n{stripped}"
        );
        assert!(
            reparsed
                .program
                .eq_ignoring_spans(&without_annotations(&parsed.program)),
            "{name}: stripping changed more than the annotations:\n{stripped}"
        );
        if !text.contains("assume(") && !text.contains("assert(") {
            assert_eq!(
                stripped, text,
                "{name}: nothing to strip, text must be unchanged"
            );
        }
    }
}

#[test]
fn stripping_removes_whole_lines_and_keeps_other_bytes() {
    let text = "kprobe:vfs_read\n{\n\tassume(arg2 < 10);\n\t$x = arg2; assert($x < 10, \"small\");\n\t// kept comment\n\tif ($x) { assert($x) }\n}\n";
    let parsed = parse(text);
    assert!(!parsed.has_errors());
    let stripped = strip_annotations(text, &parsed.program);
    assert_eq!(
        stripped,
        "kprobe:vfs_read\n{\n\t$x = arg2; \n\t// kept comment\n\tif ($x) {  }\n}\n"
    );
}
