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
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::failure::{classify, is_harmless_stderr, Failure};

/// Most stderr lines kept for classification; a verifier log can be long, a flood of
/// runtime warnings can be endless.
const STDERR_KEEP_LINES: usize = 4000;

/// Process groups of every bpftrace this process started that has not been reaped, so
/// shutdown paths can kill them all without knowing who owns which run.
static LIVE_GROUPS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

fn register_group(pid: i32) {
    if let Ok(mut g) = LIVE_GROUPS.lock() {
        g.push(pid);
    }
}

fn forget_group(pid: i32) {
    if let Ok(mut g) = LIVE_GROUPS.lock() {
        g.retain(|p| *p != pid);
    }
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
    stdout: Option<LineReader<BufReader<ChildStdout>>>,
    stderr: Option<LineReader<BufReader<ChildStderr>>>,
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
        let stdout = child
            .stdout
            .take()
            .map(|s| LineReader::new(BufReader::with_capacity(64 * 1024, s)));
        let stderr = child.stderr.take().map(|s| LineReader::new(BufReader::new(s)));
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

    fn on_stdout(&mut self, line: Option<String>) {
        let Some(line) = line else {
            self.stdout = None;
            return;
        };
        if line.trim().is_empty() {
            if !self.dump_started {
                self.dump_started = true;
                self.queue.push_back(RunEvent::ExitDumpStarts);
            }
            return;
        }
        match parse_line(&line) {
            Ok(events) => self
                .queue
                .extend(events.into_iter().map(RunEvent::Output)),
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

/// Reads lines as bytes, so invalid UTF-8 in traced data is shown lossily instead of
/// ending the stream. Cancel-safe: a partial line stays in `buf` between calls.
struct LineReader<R> {
    reader: R,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    fn new(reader: R) -> Self {
        LineReader {
            reader,
            buf: Vec::new(),
        }
    }

    async fn next_line(&mut self) -> Option<String> {
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(b) => b,
                Err(_) => return self.take_rest(),
            };
            if available.is_empty() {
                return self.take_rest();
            }
            if let Some(i) = available.iter().position(|b| *b == b'\n') {
                self.buf.extend_from_slice(&available[..i]);
                self.reader.consume(i + 1);
                return Some(self.take_line());
            }
            let n = available.len();
            self.buf.extend_from_slice(available);
            self.reader.consume(n);
            if self.buf.len() >= MAX_LINE_BYTES {
                return Some(self.take_line());
            }
        }
    }

    fn take_line(&mut self) -> String {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        line
    }

    fn take_rest(&mut self) -> Option<String> {
        (!self.buf.is_empty()).then(|| self.take_line())
    }
}

async fn next_line<R: AsyncBufRead + Unpin>(lines: &mut Option<LineReader<R>>) -> Option<String> {
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
