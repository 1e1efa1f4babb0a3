//! Parses bpftrace files and prints their diagnostics; with `--ast` the tree,
//! with `--print` the pretty-printed program, with `--json` diagnostics as JSON;
//! with `--facts=KERNEL.json` (a `StaticFacts` fixture such as
//! `test_data/checker/kernel.json`) the checker's diagnostics too.
//!
//! `cargo run -p kgent-frontend --example check -- [--ast|--print|--json] [--facts=FILE] FILE...`

use kgent_frontend::{
    ast, check, parse, print_program, render_human, to_json, CheckOptions, StaticFacts,
};

fn main() {
    let mut mode = "";
    let mut failed = false;
    let mut facts: Option<StaticFacts> = None;
    for arg in std::env::args().skip(1) {
        if let Some(path) = arg.strip_prefix("--facts=") {
            let loaded = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| StaticFacts::from_json(&t).map_err(|e| e.to_string()));
            match loaded {
                Ok(f) => facts = Some(f),
                Err(e) => {
                    eprintln!("{path}: {e}");
                    std::process::exit(2);
                }
            }
            continue;
        }
        if arg.starts_with("--") {
            mode = if arg == "--ast" || arg == "--print" || arg == "--json" {
                Box::leak(arg.into_boxed_str())
            } else {
                eprintln!("unknown option {arg}");
                std::process::exit(2);
            };
            continue;
        }
        let source = match std::fs::read_to_string(&arg) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{arg}: {e}");
                failed = true;
                continue;
            }
        };
        let mut parsed = parse(&source);
        if let Some(facts) = &facts {
            let checked = check(&parsed.program, &source, facts, &CheckOptions::default());
            parsed.diagnostics.extend(checked);
        }
        failed |= parsed.has_errors();
        match mode {
            "--ast" => print!("{}", ast::dump(&parsed.program)),
            "--print" => print!("{}", print_program(&parsed.program)),
            "--json" => println!("{:#}", to_json(&source, &parsed.diagnostics)),
            _ => {}
        }
        if mode != "--json" {
            eprint!(
                "{}",
                render_human(&source, &arg, &parsed.diagnostics, false)
            );
        }
    }
    std::process::exit(i32::from(failed));
}
