//! Helpers shared by the integration tests: corpus locations and the tool list.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The 38 tools Debian's bpftrace package installs as `/usr/sbin/*.bt`.
pub const TOOLS: &[&str] = &[
    "bashreadline",
    "biolatency",
    "biosnoop",
    "biostacks",
    "bitesize",
    "capable",
    "cpuwalk",
    "dcsnoop",
    "execsnoop",
    "gethostlatency",
    "killsnoop",
    "loads",
    "mdflush",
    "naptime",
    "oomkill",
    "opensnoop",
    "pidpersec",
    "runqlat",
    "runqlen",
    "setuids",
    "ssllatency",
    "sslsnoop",
    "statsnoop",
    "swapin",
    "syncsnoop",
    "syscount",
    "tcpaccept",
    "tcpconnect",
    "tcpdrop",
    "tcplife",
    "tcpretrans",
    "tcpsynbl",
    "threadsnoop",
    "undump",
    "vfscount",
    "vfsstat",
    "writeback",
    "xfsdist",
];

pub const TOOLS_DIR: &str = "/usr/sbin";

/// The installed tools as (name, source), and the names that are missing.
pub fn installed_tools() -> (Vec<(String, String)>, Vec<&'static str>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in TOOLS {
        let path = Path::new(TOOLS_DIR).join(format!("{name}.bt"));
        match std::fs::read_to_string(&path) {
            Ok(text) => found.push((format!("{name}.bt"), text)),
            Err(_) => missing.push(*name),
        }
    }
    (found, missing)
}

/// Says which tools are missing, and why that makes a test skip them.
pub fn report_missing(test: &str, missing: &[&str]) {
    if missing.len() == TOOLS.len() {
        eprintln!(
            "{test}: skipping the bpftrace tools: none of the {} `{TOOLS_DIR}/*.bt` files is installed (install Debian's `bpftrace` package)",
            TOOLS.len()
        );
    } else if !missing.is_empty() {
        eprintln!(
            "{test}: {} bpftrace tools not installed, skipped: {}",
            missing.len(),
            missing.join(", ")
        );
    }
}

pub fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/parser")
        .join(kind)
}

/// The `.bt` files of `test_data/parser/{kind}` as (path, source), sorted.
pub fn corpus(kind: &str) -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(kind))
        .expect("corpus directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("corpus file");
            (p, text)
        })
        .collect()
}

pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
