//! Shared by the CLI tests.

/// Whether the live-kernel tests can run here; says why not when they cannot.
#[allow(dead_code)] // Not every test binary uses it.
pub fn live() -> bool {
    let ok = std::path::Path::new("/sys/kernel/tracing/events/syscalls").exists()
        && unsafe { libc::geteuid() } == 0;
    if !ok {
        eprintln!("SKIP: needs root and a mounted tracefs with syscall tracepoints");
    }
    ok
}

/// Runs `kgent ARGS` with `stdin` and extra environment variables; waits for it.
#[allow(dead_code)] // Not every test binary uses it.
pub fn run_kgent(
    args: &[&str],
    stdin: &str,
    env: &[(&str, &std::path::Path)],
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kgent"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kgent runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `kgent-verifier` next to `kgent`, if it was built; says so when not.
#[allow(dead_code)] // Not every test binary uses it.
pub fn verifier() -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_kgent")).with_file_name("kgent-verifier");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIP: {} is missing; build it with `cargo build --release --workspace` \
             (or run `cargo test --workspace`)",
            path.display()
        );
        None
    }
}
