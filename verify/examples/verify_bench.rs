//! Verification time per program over the example library.
//!
//! `cargo run --release -p kgent-verify --example verify_bench [-- [--facts FILE] [--dir DIR] [--verbose]]`
//!
//! Parses every `program` of `specs/examples/*.toml` and verifies it twice:
//! as written (the examples carry no annotations, so this times path
//! exploration), and with an assertion synthesised after every `printf`
//! (`assert(<first argument> != 12345)`) so that every program also solves.
//! Prints p50/p95/max of `verify()`'s time per program (the median of three
//! runs each) for both, the verdicts, and the slowest programs. Kernel
//! facts: the front end's checker fixture unless `--facts` names another
//! `StaticFacts` JSON file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kgent_frontend::ast::{Block, ElseBranch, Expr, ExprKind, IfStmt, Stmt, StmtKind};
use kgent_frontend::{parse, StaticFacts};
use kgent_verify::{verify, VerdictData, VerifyOptions};

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dir = manifest.join("../specs/examples");
    let mut facts_path = manifest.join("../agent/frontend/test_data/checker/kernel.json");
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(args.next().expect("--dir DIR")),
            "--facts" => facts_path = PathBuf::from(args.next().expect("--facts FILE")),
            "--verbose" => verbose = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let facts = StaticFacts::from_json(&std::fs::read_to_string(&facts_path).expect("facts file"))
        .expect("facts JSON");
    let mut programs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let value: toml::Table = text.parse().ok()?;
            let program = value.get("program")?.as_str()?.to_string();
            Some((p.file_stem()?.to_string_lossy().into_owned(), program))
        })
        .collect();
    programs.sort();
    println!("{} programs from {}", programs.len(), dir.display());
    let options = VerifyOptions::default();

    // Z3's first contexts pay for its global initialisation, and the first
    // few hundred calls for the allocator's growth (10-30 ms each instead of
    // 1): one untimed pass first, so that the figures are a warm process's.
    let mut cold = None;
    for (_, program) in &programs {
        let source = with_printf_asserts(program);
        let started = Instant::now();
        verify(&source, &parse(&source).program, &facts, &options);
        cold.get_or_insert(started.elapsed());
    }
    if let Some(cold) = cold {
        println!("first call of the process: {:.1} ms", ms(cold));
    }

    for synthesise in [false, true] {
        let mut times: Vec<(Duration, String)> = Vec::new();
        let (mut proved, mut refuted, mut unknown, mut queries, mut notes) = (0, 0, 0, 0, 0);
        for (name, program) in &programs {
            let source = if synthesise {
                with_printf_asserts(program)
            } else {
                program.clone()
            };
            let parsed = parse(&source);
            // The median of three runs: the machine may be busy.
            let mut runs = Vec::new();
            let mut report = None;
            for _ in 0..3 {
                let started = Instant::now();
                report = Some(verify(&source, &parsed.program, &facts, &options));
                runs.push(started.elapsed());
            }
            runs.sort();
            times.push((runs[1], name.clone()));
            let report = report.expect("ran three times");
            queries += report.queries;
            notes += report.notes.len();
            for a in &report.assertions {
                match &a.verdict {
                    VerdictData::Proved => proved += 1,
                    VerdictData::Refuted { .. } => refuted += 1,
                    VerdictData::Unknown { reason } => {
                        unknown += 1;
                        if verbose {
                            println!("  {name}: unknown: {reason}");
                        }
                    }
                }
            }
        }
        times.sort();
        let pct = |p: f64| {
            let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
            times[i].0
        };
        println!();
        println!(
            "{}:",
            if synthesise {
                "with an assertion after every printf"
            } else {
                "as written (path exploration only)"
            }
        );
        println!(
            "  per program: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({})",
            ms(pct(0.50)),
            ms(pct(0.95)),
            ms(times.last().unwrap().0),
            times.last().unwrap().1
        );
        println!(
            "  assertions: {proved} proved, {refuted} refuted, {unknown} unknown; {queries} solver queries; {notes} notes"
        );
        println!(
            "  slowest: {}",
            times
                .iter()
                .rev()
                .take(5)
                .map(|(t, n)| format!("{n} {:.1} ms", ms(*t)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `source` with `; assert((ARG) != 12345)` after every `printf` statement
/// that has an argument that may be an integer.
fn with_printf_asserts(source: &str) -> String {
    let parsed = parse(source);
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for probe in parsed.program.probes() {
        collect(&probe.body, source, &mut inserts);
    }
    let mut out = source.to_string();
    inserts.sort_by_key(|i| std::cmp::Reverse(i.0));
    for (at, text) in inserts {
        out.insert_str(at, &text);
    }
    out
}

fn collect(block: &Block, source: &str, out: &mut Vec<(usize, String)>) {
    for stmt in &block.stmts {
        visit_stmt(stmt, source, out);
    }
}

fn visit_stmt(stmt: &Stmt, source: &str, out: &mut Vec<(usize, String)>) {
    match &stmt.kind {
        StmtKind::Expr(Expr {
            kind: ExprKind::Call { name, args },
            ..
        }) if name.name == "printf" => {
            let arg = args[1..].iter().find(|a| maybe_integer(a));
            let cond = match arg {
                Some(a) => format!("({}) != 12345", &source[a.span.range()]),
                None => "pid != 12345".to_string(),
            };
            out.push((stmt.span.end as usize, format!("; assert({cond})")));
        }
        StmtKind::If(i) => visit_if(i, source, out),
        StmtKind::Unroll { body, .. }
        | StmtKind::While { body, .. }
        | StmtKind::For { body, .. }
        | StmtKind::Block(body) => collect(body, source, out),
        _ => {}
    }
}

fn visit_if(i: &IfStmt, source: &str, out: &mut Vec<(usize, String)>) {
    collect(&i.then_block, source, out);
    match &i.else_branch {
        Some(ElseBranch::Block(b)) => collect(b, source, out),
        Some(ElseBranch::If(e)) => visit_if(e, source, out),
        None => {}
    }
}

/// Whether `e` is not obviously a string (a literal, `comm`, `str()`, ...).
fn maybe_integer(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Str(_) => false,
        ExprKind::Builtin(b) => !matches!(
            b.as_str(),
            "comm" | "func" | "probe" | "kstack" | "ustack" | "username"
        ),
        ExprKind::Call { name, .. } => !matches!(
            name.name.as_str(),
            "str"
                | "ksym"
                | "usym"
                | "ntop"
                | "strftime"
                | "path"
                | "kstack"
                | "ustack"
                | "buf"
                | "macaddr"
                | "strerror"
        ),
        ExprKind::Field { field, .. } => {
            !field.name.contains("comm") && !field.name.contains("name")
        }
        _ => true,
    }
}
