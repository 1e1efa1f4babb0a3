//! Reads `bpftrace -f json` lines on stdin and prints every event, and each
//! map's rendering in all formats: a manual check of parsing and rendering.
//!
//! `bpftrace -f json -e 'BEGIN { @h = hist(5); exit(); }' | cargo run -p kgent-output --example render_demo`
//! Set `SVG_DIR=/some/dir` to also write each map's chart to `<dir>/<n>.svg`.

use std::io::BufRead;

use kgent_output::{parse_line, render_map, OutputEvent, RenderOptions};

fn main() {
    let opts = RenderOptions::default();
    let svg_dir = std::env::var_os("SVG_DIR");
    let mut n = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match parse_line(&line) {
            Err(e) => println!("TEXT: {}", e.line()),
            Ok(events) => {
                for ev in events {
                    let OutputEvent::Map(dump) = &ev else {
                        println!("{ev:?}");
                        continue;
                    };
                    let b = render_map(dump, &opts);
                    println!(
                        "--- {} plain\n{}\n--- markdown\n{}\n--- html\n{}",
                        dump.name, b.plain, b.markdown, b.html
                    );
                    if let (Some(svg), Some(dir)) = (&b.svg, &svg_dir) {
                        n += 1;
                        let path = std::path::Path::new(dir).join(format!("{n}.svg"));
                        if let Err(e) = std::fs::write(&path, svg) {
                            eprintln!("{}: {e}", path.display());
                        }
                    }
                }
            }
        }
    }
}
