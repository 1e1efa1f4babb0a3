//! Shared by the CLI tests.

/// Whether the live-kernel tests can run here; says why not when they cannot.
pub fn live() -> bool {
    let ok = std::path::Path::new("/sys/kernel/tracing/events/syscalls").exists()
        && unsafe { libc::geteuid() } == 0;
    if !ok {
        eprintln!("SKIP: needs root and a mounted tracefs with syscall tracepoints");
    }
    ok
}
