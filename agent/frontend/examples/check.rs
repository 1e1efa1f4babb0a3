//! Parses bpftrace files and prints their diagnostics; with `--ast` the tree,
//! with `--print` the pretty-printed program, with `--json` diagnostics as JSON.
//!
//! `cargo run -p kgent-frontend --example check -- [--ast|--print|--json] FILE...`

use kgent_frontend::{ast, parse, print_program, render_human, to_json};

fn main() {
    let mut mode = "";
    let mut failed = false;
    for arg in std::env::args().skip(1) {
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
        let parsed = parse(&source);
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
