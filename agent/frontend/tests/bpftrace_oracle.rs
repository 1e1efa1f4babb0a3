//! The installed bpftrace 0.17 as an oracle for the corpus: its parser must
//! accept every `ok` file that needs nothing newer, reject every `ok` file
//! marked `// needs: ...` (so the marks stay truthful), and reject every `err`
//! file unless marked `// bpftrace-0.17-accepts: why`. Files marked
//! `// oracle: skip (why)` are not run.
//!
//! "Accepts" means `bpftrace -d` printed the tree after its parser stage; no
//! program is loaded. Skips, saying why, unless bpftrace 0.17 is installed
//! and usable.

mod common;

use std::process::Command;

fn bpftrace_017() -> Result<(), String> {
    let out = Command::new("bpftrace")
        .arg("--version")
        .output()
        .map_err(|e| format!("bpftrace not runnable: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !version.starts_with("bpftrace v0.17.") {
        return Err(format!(
            "the corpus marks are written for bpftrace 0.17, found `{version}`"
        ));
    }
    // A program any parser accepts: if even this fails, bpftrace cannot run here.
    if !parser_accepts("BEGIN { }") {
        return Err("`bpftrace -d` does not run here (privileges?)".to_string());
    }
    Ok(())
}

fn parser_accepts(text: &str) -> bool {
    Command::new("bpftrace")
        .arg("-d")
        .arg("-e")
        .arg(text)
        .output()
        .map(|out| {
            let all = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&all).contains("AST after: parser")
        })
        .unwrap_or(false)
}

fn mark<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take(3)
        .find_map(|line| line.strip_prefix("// ")?.strip_prefix(key))
}

#[test]
fn corpus_marks_agree_with_bpftrace_017() {
    if let Err(why) = bpftrace_017() {
        eprintln!("corpus_marks_agree_with_bpftrace_017: skipped: {why}");
        return;
    }
    let mut wrong = Vec::new();
    for kind in ["ok", "err"] {
        for (path, text) in common::corpus(kind) {
            if mark(&text, "oracle: skip").is_some() {
                continue;
            }
            let name = format!("{kind}/{}", common::file_name(&path));
            let accepted = parser_accepts(&text);
            let expected = match kind {
                "ok" => mark(&text, "needs:").is_none(),
                _ => mark(&text, "bpftrace-0.17-accepts:").is_some(),
            };
            if accepted != expected {
                wrong.push(format!(
                    "{name}: bpftrace 0.17 {}",
                    if accepted { "accepts" } else { "rejects" }
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "corpus marks disagree with bpftrace:\n{}",
        wrong.join("\n")
    );
}
