//! Runs bpftrace as a child process and turns its output into a stream of typed events.
//!
//! Invariants: the child lives in its own process group and dies with us
//! (`PR_SET_PDEATHSIG`), so no probe outlives the process that started it, even after
//! `kill -9`; dropping a [`BpftraceRun`] kills the group.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kgent_output::{parse_line, OutputEvent};
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::process::{Child, Command};

use crate::failure::{classify, is_harmless_stderr, Failure};

/// Most stderr lines kept for classification; a verifier log can be long, a flood of
/// runtime warnings can be endless.
const STDERR_KEEP_LINES: usize = 4000;

/// Chunks read but not yet parsed; a bound, so a slow consumer pushes back on bpftrace.
const CHUNKS_IN_FLIGHT: usize = 64;
/// Bytes read from a pipe at once.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// A read smaller than this means the pipe was nearly empty: pause to let data gather.
const SMALL_READ_BYTES: usize = 16 * 1024;
/// That pause; it adds at most this much latency to sparse output.
const READ_PAUSE: Duration = Duration::from_millis(1);

/// Size asked for bpftrace's stdout pipe.
const PIPE_BYTES: libc::c_int = 1 << 20;

/// Most lines taken from the read buffer in one go.
const BURST_LINES: usize = 1024;

/// Process groups of every bpftrace this process started that has not been reaped, so
/// shutdown paths can kill them all without knowing who owns which run.
static LIVE_GROUPS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

fn register_group(pid: i32) {
    if let Ok(mut g) = LIVE_GROUPS.lock() {
        g.push(pid);
    }
    crate::watchdog::watch_group(pid);
}

fn forget_group(pid: i32) {
    if let Ok(mut g) = LIVE_GROUPS.lock() {
        g.retain(|p| *p != pid);
    }
    crate::watchdog::unwatch_group(pid);
}

/// Kills every bpftrace started by this process (kernel shutdown, SIGTERM).
pub fn kill_all_runs() {
    if let Ok(groups) = LIVE_GROUPS.lock() {
        for pid in groups.iter() {
            // SAFETY: plain syscall on a process group we created.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub bpftrace: PathBuf,
    pub program: String,
    /// Positional parameters ($1, $2, ...).
    pub args: Vec<String>,
    pub allow_unsafe: bool,
    /// `-v`: bpftrace then prints the verifier log (and more) on stderr.
    pub verbose: bool,
    /// A command bpftrace starts and traces (`-c`); it ends the run when it exits.
    /// bpftrace splits this on spaces, so it must be a plain argv.
    pub command: Option<String>,
}

impl RunSpec {
    pub fn new(bpftrace: impl Into<PathBuf>, program: impl Into<String>) -> Self {
        RunSpec {
            bpftrace: bpftrace.into(),
            program: program.into(),
            args: Vec::new(),
            allow_unsafe: false,
            verbose: false,
            command: None,
        }
    }
}

/// Why bpftrace could not be started at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("bpftrace was not found at {path}: install it (apt-get install bpftrace) or set KGENT_BPFTRACE")]
    NotFound { path: PathBuf },
    #[error("could not start {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How the run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// `None` when the run did not fail.
    pub failure: Option<Failure>,
}

/// One thing that happened during a run, in arrival order per stream.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    Output(OutputEvent),
    /// A stdout line that is not JSON (bpftrace prints e.g. "No probes to attach").
    Text(String),
    /// bpftrace prints blank lines right before it dumps all maps at exit.
    ExitDumpStarts,
    /// A stderr line (the harmless RLIMIT_MEMLOCK line is dropped).
    Stderr(String),
    /// The process ended; always the last event.
    Exited(ExitInfo),
}

/// A running bpftrace process.
pub struct BpftraceRun {
    child: Child,
    pid: Option<i32>,
    stdout: Option<LineReader>,
    stderr: Option<LineReader>,
    queue: VecDeque<RunEvent>,
    stderr_log: Vec<String>,
    stderr_dropped: usize,
    text_log: Vec<String>,
    exit: Option<ExitInfo>,
    dump_started: bool,
    started: Instant,
    killed_by_us: bool,
}

impl BpftraceRun {
    /// Starts bpftrace with JSON output on the program.
    pub fn spawn(spec: &RunSpec) -> Result<BpftraceRun, RunError> {
        crate::watchdog::ensure_started();
        let mut cmd = Command::new(&spec.bpftrace);
        cmd.arg("-f").arg("json");
        if spec.allow_unsafe {
            cmd.arg("--unsafe");
        }
        if spec.verbose {
            cmd.arg("-v");
        }
        if let Some(command) = &spec.command {
            cmd.arg("-c").arg(command);
        }
        cmd.arg("-e").arg(&spec.program);
        cmd.args(&spec.args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                RunError::NotFound {
                    path: spec.bpftrace.clone(),
                }
            } else {
                RunError::Spawn {
                    path: spec.bpftrace.clone(),
                    source,
                }
            }
        })?;
        let stdout = match child.stdout.take() {
            Some(out) => {
                let fd = out.into_owned_fd().map_err(|source| RunError::Spawn {
                    path: spec.bpftrace.clone(),
                    source,
                })?;
                // A larger pipe absorbs bursts while the reader pauses; the kernel caps
                // it (1 MiB unprivileged) and failure is harmless.
                // SAFETY: fcntl on a pipe fd we own.
                unsafe {
                    libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES);
                }
                Some(LineReader::spawn(fd, "stdout"))
            }
            None => None,
        };
        let stderr = child.stderr.take().map(|err| {
            err.into_owned_fd()
                .and_then(|fd| LineReader::spawn(fd, "stderr"))
        });
        let (stdout, stderr) = match (stdout.transpose(), stderr.transpose()) {
            (Ok(out), Ok(err)) => (out, err),
            (Err(source), _) | (_, Err(source)) => {
                return Err(RunError::Spawn {
                    path: spec.bpftrace.clone(),
                    source,
                })
            }
        };
        let pid = child.id().map(|p| p as i32);
        if let Some(pid) = pid {
            register_group(pid);
        }
        Ok(BpftraceRun {
            pid,
            child,
            stdout,
            stderr,
            queue: VecDeque::new(),
            stderr_log: Vec::new(),
            stderr_dropped: 0,
            text_log: Vec::new(),
            exit: None,
            dump_started: false,
            started: Instant::now(),
            killed_by_us: false,
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Time since start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks bpftrace to stop: it detaches and prints its maps, like Ctrl-C in a terminal.
    pub fn interrupt(&self) {
        self.signal_group(libc::SIGINT);
    }

    /// Kills bpftrace and anything it started, at once.
    pub fn kill(&mut self) {
        self.killed_by_us = true;
        self.signal_group(libc::SIGKILL);
    }

    fn signal_group(&self, sig: i32) {
        if self.exit.is_some() {
            return;
        }
        if let Some(pid) = self.pid {
            // SAFETY: plain syscall; the group id is the child's pid (process_group(0)).
            unsafe {
                libc::kill(-pid, sig);
            }
        }
    }

    /// Everything bpftrace wrote on stderr so far (bounded), harmless lines removed.
    pub fn stderr_lines(&self) -> &[String] {
        &self.stderr_log
    }

    /// Waits for the next event. After `Exited`, keeps returning `Exited`.
    pub async fn next_event(&mut self) -> RunEvent {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return ev;
            }
            if let Some(exit) = &self.exit {
                return RunEvent::Exited(exit.clone());
            }
            match (&mut self.stdout, &mut self.stderr) {
                (None, None) => {
                    let exit = self.wait_exit().await;
                    self.exit = Some(exit.clone());
                    return RunEvent::Exited(exit);
                }
                (out, err) => {
                    tokio::select! {
                        line = next_line(out) => self.on_stdout(line),
                        line = next_line(err) => self.on_stderr(line),
                    }
                }
            }
        }
    }

    /// An event already received, without waiting; lets a consumer handle a burst in
    /// one go instead of one wake-up per line.
    pub fn try_next_event(&mut self) -> Option<RunEvent> {
        self.queue.pop_front()
    }

    fn on_stdout(&mut self, line: Option<String>) {
        let Some(line) = line else {
            self.stdout = None;
            return;
        };
        self.on_stdout_line(line);
        // Lines already in the buffer are taken now: one wake-up per burst, not per line.
        for _ in 0..BURST_LINES {
            let Some(line) = self.stdout.as_mut().and_then(|r| r.buffered_line()) else {
                break;
            };
            self.on_stdout_line(line);
        }
    }

    fn on_stdout_line(&mut self, line: String) {
        if line.trim().is_empty() {
            if !self.dump_started {
                self.dump_started = true;
                self.queue.push_back(RunEvent::ExitDumpStarts);
            }
            return;
        }
        match parse_line(&line) {
            Ok(events) => self.queue.extend(events.into_iter().map(RunEvent::Output)),
            Err(_) => {
                if self.text_log.len() < STDERR_KEEP_LINES {
                    self.text_log.push(line.clone());
                }
                self.queue.push_back(RunEvent::Text(line));
            }
        }
    }

    fn on_stderr(&mut self, line: Option<String>) {
        let Some(line) = line else {
            self.stderr = None;
            return;
        };
        if is_harmless_stderr(&line) {
            return;
        }
        if self.stderr_log.len() < STDERR_KEEP_LINES {
            self.stderr_log.push(line.clone());
        } else {
            self.stderr_dropped += 1;
        }
        self.queue.push_back(RunEvent::Stderr(line));
    }

    async fn wait_exit(&mut self) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().await;
        if let Some(pid) = self.pid.take() {
            forget_group(pid);
        }
        let (code, signal) = match status {
            Ok(s) => (s.code(), s.signal()),
            Err(_) => (None, None),
        };
        let failure = if self.killed_by_us {
            None
        } else {
            classify(code, signal, &self.stderr_log, &self.text_log)
        };
        ExitInfo {
            code,
            signal,
            failure,
        }
    }

    /// Runs to completion, collecting everything; for short programs and tests.
    pub async fn collect(mut self, timeout: Duration) -> (Vec<RunEvent>, ExitInfo) {
        let mut events = Vec::new();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut interrupted = false;
        loop {
            tokio::select! {
                ev = self.next_event() => match ev {
                    RunEvent::Exited(exit) => return (events, exit),
                    ev => events.push(ev),
                },
                _ = &mut deadline => {
                    if interrupted {
                        self.kill();
                    } else {
                        self.interrupt();
                        interrupted = true;
                        deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

/// Longest line kept whole; a longer one is split, so memory stays bounded whatever
/// the program prints.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads a pipe on its own thread in large chunks and hands out lines.
///
/// bpftrace writes a line at a time; an async reader would be woken by the reactor for
/// every write (~100k/s in a flood) even while it waits. A blocking thread that pauses
/// after small reads turns that into at most ~1,000 wake-ups a second. Lines are bytes
/// until complete, so invalid UTF-8 in traced data is shown lossily instead of ending
/// the stream. `next_line` is cancel-safe: partial data stays in `self`.
struct LineReader {
    chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    partial: Vec<u8>,
    eof: bool,
}

impl LineReader {
    fn spawn(fd: OwnedFd, name: &str) -> std::io::Result<LineReader> {
        // tokio made the pipe non-blocking; the reader thread wants blocking reads.
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        std::thread::Builder::new()
            .name(format!("kgent-{name}"))
            .spawn(move || read_chunks(std::fs::File::from(fd), tx))?;
        Ok(LineReader {
            chunks: rx,
            chunk: Vec::new(),
            pos: 0,
            partial: Vec::new(),
            eof: false,
        })
    }

    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.buffered_line() {
                return Some(line);
            }
            if self.eof {
                return (!self.partial.is_empty()).then(|| self.take_line());
            }
            match self.chunks.recv().await {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                None => self.eof = true,
            }
        }
    }

    /// A complete line already received, if any; never waits.
    fn buffered_line(&mut self) -> Option<String> {
        let available = &self.chunk[self.pos..];
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                self.partial.extend_from_slice(&available[..i]);
                self.pos += i + 1;
                Some(self.take_line())
            }
            None => {
                self.partial.extend_from_slice(available);
                self.pos = self.chunk.len();
                (self.partial.len() >= MAX_LINE_BYTES).then(|| self.take_line())
            }
        }
    }

    fn take_line(&mut self) -> String {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
    }
}

fn read_chunks(mut pipe: std::fs::File, tx: tokio::sync::mpsc::Sender<Vec<u8>>) {
    use std::io::Read;
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tx.blocking_send(buf[..n].to_vec()).is_err() {
                    return;
                }
                if n < SMALL_READ_BYTES {
                    std::thread::sleep(READ_PAUSE);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

async fn next_line(lines: &mut Option<LineReader>) -> Option<String> {
    match lines {
        Some(l) => l.next_line().await,
        None => std::future::pending().await,
    }
}

impl Drop for BpftraceRun {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.signal_group(libc::SIGKILL);
        }
        if let Some(pid) = self.pid {
            forget_group(pid);
        }
    }
}

/// Runs a failing program again with `-v` to get the kernel verifier's log, which bpftrace
/// prints only in verbose mode.
pub async fn verifier_log(spec: &RunSpec) -> Vec<String> {
    let mut verbose = spec.clone();
    verbose.verbose = true;
    let Ok(run) = BpftraceRun::spawn(&verbose) else {
        return Vec::new();
    };
    let (_, exit) = run.collect(Duration::from_secs(30)).await;
    exit.failure.map(|f| f.log).unwrap_or_default()
}
