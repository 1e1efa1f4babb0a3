//! A forked watchdog that kills our bpftrace process groups if this process dies
//! without cleaning up (e.g. `kill -9`).
//!
//! `PR_SET_PDEATHSIG` kills bpftrace itself, but not what bpftrace started (`-c`
//! workloads, `system()` commands): those are re-parented to init and live on. The
//! watchdog holds the read end of a pipe whose write end only we hold; when we die the
//! kernel closes it, the watchdog reads EOF and kills every group we registered.

use std::os::fd::RawFd;
use std::sync::OnceLock;

/// Groups the watchdog can track at once; more are still killed by PDEATHSIG.
const MAX_GROUPS: usize = 4096;

static WRITE_END: OnceLock<Option<RawFd>> = OnceLock::new();

/// Starts the watchdog once; None when fork or pipe failed (PDEATHSIG still applies).
fn write_end() -> Option<RawFd> {
    *WRITE_END.get_or_init(start)
}

/// Starts the watchdog if it is not running yet. Call before spawning children, so the
/// fork copies as few descriptors as possible.
pub fn ensure_started() {
    let _ = write_end();
}

/// Tells the watchdog about a new process group.
pub fn watch_group(pgid: i32) {
    send(pgid);
}

/// Tells the watchdog a group is gone (reaped), so its id may be reused safely.
pub fn unwatch_group(pgid: i32) {
    send(-pgid);
}

fn send(value: i32) {
    let Some(fd) = write_end() else { return };
    let bytes = value.to_ne_bytes();
    // SAFETY: writing 4 bytes from a local buffer to our pipe. Writes of at most
    // PIPE_BUF bytes are atomic, so concurrent senders never interleave a value. A
    // dead watchdog gives EPIPE (Rust ignores SIGPIPE), which is harmless.
    unsafe {
        libc::write(fd, bytes.as_ptr().cast(), bytes.len());
    }
}

fn start() -> Option<RawFd> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the array. O_CLOEXEC keeps the write end out of bpftrace and
    // its children, so only this process holds it.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let [read_end, write_end] = fds;
    // SAFETY: the child runs only async-signal-safe calls (setpgid, signal, close, read,
    // kill, _exit) and touches no allocator or lock, as required after fork in a
    // multi-threaded process.
    match unsafe { libc::fork() } {
        -1 => {
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
            None
        }
        0 => unsafe { watchdog_main(read_end, write_end) },
        _ => {
            unsafe {
                libc::close(read_end);
            }
            Some(write_end)
        }
    }
}

/// The watchdog process. Never returns.
///
/// # Safety
/// Must only be called in a freshly forked child.
unsafe fn watchdog_main(read_end: RawFd, write_end: RawFd) -> ! {
    // Its own group: signals sent to the notebook kernel's group must not end it first.
    libc::setpgid(0, 0);
    libc::signal(libc::SIGINT, libc::SIG_IGN);
    libc::signal(libc::SIGTERM, libc::SIG_IGN);
    libc::signal(libc::SIGHUP, libc::SIG_IGN);
    // Keep no other descriptor alive (sockets, other pipes) on the parent's behalf.
    for fd in 0..1024 {
        if fd != read_end {
            libc::close(fd);
        }
    }
    let _ = write_end;
    let mut groups = [0i32; MAX_GROUPS];
    let mut count = 0usize;
    let mut buf = [0u8; 4];
    loop {
        let mut got = 0usize;
        while got < 4 {
            let n = libc::read(read_end, buf.as_mut_ptr().add(got).cast(), 4 - got);
            if n == 0 {
                // EOF: the parent is gone.
                for &g in &groups[..count] {
                    libc::kill(-g, libc::SIGKILL);
                }
                libc::_exit(0);
            }
            if n < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(1);
            }
            got += n as usize;
        }
        let value = i32::from_ne_bytes(buf);
        if value > 0 {
            if count < MAX_GROUPS {
                groups[count] = value;
                count += 1;
            }
        } else if let Some(i) = groups[..count].iter().position(|&g| g == -value) {
            groups[i] = groups[count - 1];
            count -= 1;
        }
    }
}
