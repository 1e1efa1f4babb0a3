//! The symbolic verifier as a helper process: a client for `kgent-verifier`
//! (crate `kgent-verify`), and the data it speaks.
//!
//! The verifier runs on Z3, which costs milliseconds to load and can crash on
//! some formulas; neither `kgent` nor the Jupyter kernel links it. They send
//! programs to a long-lived `kgent-verifier` instead, over its stdin and
//! stdout, one JSON object per line:
//!
//! - request: `{"id": 1, "source": "...", "request": "IPv4 and IPv6",
//!   "annotate": true, "timeout_ms": 200}` ([`VerifierRequest`]; `request`,
//!   `annotate` and `timeout_ms` may be left out). With `annotate` the
//!   verifier first inserts `assume`/`assert` annotations from the attach
//!   points' contracts and the rules ([`crate::contracts::annotate`]), then
//!   verifies the annotated program; without it, the program as given.
//!   `timeout_ms` is the time limit of one solver query.
//! - response: `{"id": 1, "annotated_source": "...", "annotations": [...],
//!   "report": {...}, "notes": [...], "error": null}` ([`VerifierResponse`]):
//!   every annotation with its origin, the verdict of every `assert`
//!   ([`Report`]), notes on the verification as a whole (e.g. no kernel
//!   facts), or an error (the program does not parse, the request is not
//!   JSON) with no report.
//!
//! [`Verifier`] starts the process on first use and keeps it for later
//! requests; a request that takes longer than the deadline kills it (the next
//! request starts a new one), and a process that dies is an error, never a
//! panic. The types here are plain serde data, and the only definition of
//! the report: `kgent_verify::verify` returns a [`Report`] (kgent-verify
//! depends on this crate, never the other way, so Z3 stays out of it).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use kgent_frontend::Span;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::contracts;

/// The helper binary's name.
pub const VERIFIER_BINARY: &str = "kgent-verifier";

/// The environment variable naming the helper binary, looked at first.
pub const VERIFIER_ENV: &str = "KGENT_VERIFIER";

/// How long one request may take by default, solving included.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Extra time the first request after a start gets: the process loads the
/// kernel's catalog and probe capabilities before it reads its first line.
pub const DEFAULT_STARTUP_GRACE: Duration = Duration::from_secs(10);

/// How one exchange failed: the process died (worth one retry if it had
/// served before), or anything else.
enum Failure {
    Died(VerifierError),
    Other(VerifierError),
}

/// Bytes of the process's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

// ---------------------------------------------------------------------------
// The protocol's data.

/// One request line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierRequest {
    /// Echoed in the response. [`Verifier::verify`] numbers requests itself.
    #[serde(default)]
    pub id: u64,
    /// The bpftrace program.
    pub source: String,
    /// The English request the program is for (the rules compare the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Insert annotations from contracts and rules before verifying.
    #[serde(default)]
    pub annotate: bool,
    /// Time limit of one solver query (the verifier's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

impl VerifierRequest {
    /// Verify `source` as written: only the annotations it already has.
    pub fn new(source: impl Into<String>) -> VerifierRequest {
        VerifierRequest {
            source: source.into(),
            ..Default::default()
        }
    }

    /// Annotate `source` for `request` (contracts and rules), then verify.
    pub fn annotated(source: impl Into<String>, request: Option<String>) -> VerifierRequest {
        VerifierRequest {
            source: source.into(),
            request,
            annotate: true,
            ..Default::default()
        }
    }
}

/// One response line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifierResponse {
    pub id: u64,
    /// The program that was verified: the source with the annotations
    /// inserted (the source itself without `annotate`).
    pub annotated_source: String,
    /// Every `assume`/`assert` of `annotated_source`, in text order.
    #[serde(default)]
    pub annotations: Vec<AnnotationData>,
    /// The verdicts; `None` when `error` says why there are none.
    #[serde(default)]
    pub report: Option<Report>,
    /// About the verification as a whole (no kernel facts, no contracts).
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl VerifierResponse {
    /// The annotation that produced the assertion at `line` (1-based, in
    /// `annotated_source`), if any.
    pub fn annotation_at(&self, line: u32) -> Option<&AnnotationData> {
        self.annotations
            .iter()
            .find(|a| a.kind == AnnotationKindData::Assert && a.line == line)
    }
}

/// One annotation ([`contracts::Annotation`] as data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotationData {
    pub kind: AnnotationKindData,
    /// The condition, a bpftrace boolean expression.
    pub expr: String,
    pub origin: OriginData,
    /// 1-based line in the annotated source.
    pub line: u32,
    pub why: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationKindData {
    Assume,
    Assert,
}

/// Where an annotation came from ([`contracts::Origin`] as data).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum OriginData {
    /// A precondition of the attach point's contract.
    Spec { attach_point: String },
    /// One of [`contracts::RULES`].
    Rule { name: String },
    /// Written in the program itself.
    Request,
}

impl OriginData {
    /// `spec`, `rule` or `request`.
    pub fn label(&self) -> &'static str {
        match self {
            OriginData::Spec { .. } => "spec",
            OriginData::Rule { .. } => "rule",
            OriginData::Request => "request",
        }
    }
}

impl fmt::Display for OriginData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginData::Spec { attach_point } => write!(f, "spec {attach_point}"),
            OriginData::Rule { name } => write!(f, "rule {name}"),
            OriginData::Request => write!(f, "request"),
        }
    }
}

impl From<&contracts::Annotation> for AnnotationData {
    fn from(a: &contracts::Annotation) -> AnnotationData {
        AnnotationData {
            kind: match a.kind {
                contracts::AnnotationKind::Assume => AnnotationKindData::Assume,
                contracts::AnnotationKind::Assert => AnnotationKindData::Assert,
            },
            expr: a.expr.clone(),
            origin: match &a.origin {
                contracts::Origin::Spec { attach_point } => OriginData::Spec {
                    attach_point: attach_point.clone(),
                },
                contracts::Origin::Rule { name } => OriginData::Rule { name: name.clone() },
                contracts::Origin::Request => OriginData::Request,
            },
            line: a.line,
            why: a.why.clone(),
        }
    }
}

/// The verdicts on one program, as `kgent_verify::verify` returns them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// One per `assert`, in source order.
    pub assertions: Vec<AssertionData>,
    /// What was not modelled exactly, by place: unknown field types, calls
    /// treated as uninterpreted, constructs approximated. Each note once.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Solver queries made.
    #[serde(default)]
    pub queries: u32,
    #[serde(default)]
    pub elapsed_ms: f64,
}

impl Report {
    /// The refuted assertions, in source order.
    pub fn refuted(&self) -> impl Iterator<Item = &AssertionData> {
        self.assertions
            .iter()
            .filter(|a| matches!(a.verdict, VerdictData::Refuted { .. }))
    }

    pub fn any_refuted(&self) -> bool {
        self.refuted().next().is_some()
    }

    pub fn any_unknown(&self) -> bool {
        self.assertions
            .iter()
            .any(|a| matches!(a.verdict, VerdictData::Unknown { .. }))
    }

    pub fn all_proved(&self) -> bool {
        self.assertions
            .iter()
            .all(|a| matches!(a.verdict, VerdictData::Proved))
    }
}

/// The verdict on one `assert`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssertionData {
    /// Byte offsets `[start, end]` in the annotated source.
    pub span: [u32; 2],
    /// 1-based.
    pub line: u32,
    pub column: u32,
    /// The statement as written.
    pub text: String,
    pub message: Option<String>,
    pub verdict: VerdictData,
    /// Proved only because no path reaches it.
    #[serde(default)]
    pub vacuous: bool,
    /// Solver time spent on it.
    #[serde(default)]
    pub elapsed_ms: f64,
}

impl AssertionData {
    /// The `span` field as a [`Span`].
    pub fn span(&self) -> Span {
        Span::new(self.span[0], self.span[1])
    }
}

/// Proved, refuted with a counterexample, or unknown and why. In JSON an
/// object tagged by its own `verdict` field (`{"verdict": "proved"}`,
/// `{"verdict": "refuted", "counterexample": ...}`, `{"verdict": "unknown",
/// "reason": ...}`), as `kgent_verify` writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum VerdictData {
    Proved,
    Refuted { counterexample: CounterexampleData },
    Unknown { reason: UnknownReasonData },
}

/// Inputs for which an assertion fails, and what the probe prints first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CounterexampleData {
    /// The attach point of the probe that fails.
    pub probe: String,
    pub inputs: Vec<InputData>,
    /// The lines the probe prints on that path before the assertion.
    pub printed: Vec<String>,
}

/// One input of a counterexample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputData {
    /// As the program names it (`args->ret`, `pid`, `@start[tid]`).
    pub name: String,
    pub value: InputValueData,
    /// bpftrace's type (`int64`, `string`).
    pub ty: String,
    /// For people (`-1`, `443 (0x1bb)`, `"bash"`).
    pub shown: String,
}

/// An input's value: integers as raw bits (taken modulo the input's
/// width). Also what `kgent_verify`'s concrete evaluator takes as inputs, so
/// that a counterexample replays as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputValueData {
    Int(u64),
    Str(String),
}

/// Why there is no verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnknownReasonData {
    Timeout {
        limit_ms: u32,
    },
    Unsupported {
        construct: String,
        line: u32,
    },
    LoopBound {
        line: u32,
        iterations: u32,
    },
    Solver {
        message: String,
    },
    /// A reason this client does not know (a newer verifier).
    #[serde(other)]
    Other,
}

impl fmt::Display for UnknownReasonData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownReasonData::Timeout { limit_ms } => {
                write!(f, "the solver timed out ({limit_ms} ms per query)")
            }
            UnknownReasonData::Unsupported { construct, line } => write!(
                f,
                "depends on {construct} (line {line}), which is not modelled"
            ),
            UnknownReasonData::LoopBound { line, iterations } => write!(
                f,
                "the loop at line {line} may run more than {iterations} iterations"
            ),
            UnknownReasonData::Solver { message } => write!(f, "solver: {message}"),
            UnknownReasonData::Other => write!(f, "no verdict"),
        }
    }
}

impl fmt::Display for CounterexampleData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|i| format!("{} = {}", i.name, i.shown))
            .collect();
        write!(f, "in {}: {}", self.probe, inputs.join(", "))
    }
}

/// `line:column: text: verdict`, with a refutation's inputs and printed lines.
impl fmt::Display for AssertionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: ", self.line, self.column, self.text)?;
        match &self.verdict {
            VerdictData::Proved if self.vacuous => {
                write!(f, "proved (vacuously: no path reaches it)")
            }
            VerdictData::Proved => write!(f, "proved"),
            VerdictData::Refuted { counterexample: c } => {
                write!(f, "refuted {c}")?;
                if c.printed.is_empty() {
                    return write!(f, "; prints nothing before the assertion");
                }
                let lines: Vec<String> = c
                    .printed
                    .iter()
                    .map(|l| format!("{:?}", l.trim_end_matches('\n')))
                    .collect();
                write!(f, "; prints {}", lines.join(", "))
            }
            VerdictData::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The client.

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// No `kgent-verifier` binary was found.
    #[error(
        "the verifier helper `{VERIFIER_BINARY}` was not found (looked at {}); build it with \
         `cargo build --release -p kgent-verify --bin {VERIFIER_BINARY}` and put it next to \
         kgent or on PATH, or name it in {VERIFIER_ENV}",
        .looked.join(", ")
    )]
    NotFound { looked: Vec<String> },
    #[error("cannot start the verifier {path}: {message}")]
    Spawn { path: PathBuf, message: String },
    /// The process ended (crashed, or was killed) before answering.
    #[error("the verifier stopped before answering ({status}){}", stderr_suffix(.stderr))]
    Crashed { status: String, stderr: String },
    /// No answer within the deadline; the process was killed.
    #[error("the verifier did not answer within {} ms and was stopped", .after.as_millis())]
    Timeout { after: Duration },
    /// The answer was not a response line.
    #[error("the verifier's answer is not understood: {0}")]
    Protocol(String),
    #[error("talking to the verifier: {0}")]
    Io(String),
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// A client of one `kgent-verifier` process, started on first use and
/// restarted after it dies or overruns a deadline. Requests are served one
/// at a time (a second caller waits for the first).
pub struct Verifier {
    path: PathBuf,
    deadline: Duration,
    startup_grace: Duration,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    next_id: u64,
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<StdMutex<String>>,
    /// Whether it has answered a request yet (the first gets the startup grace).
    answered: bool,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("path", &self.path)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A client of the binary at `path` (not started yet).
    pub fn at(path: impl Into<PathBuf>) -> Verifier {
        Verifier {
            path: path.into(),
            deadline: DEFAULT_DEADLINE,
            startup_grace: DEFAULT_STARTUP_GRACE,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Finds `kgent-verifier`: `$KGENT_VERIFIER` when set (and then only
    /// there), else next to the running executable (or one directory up, for
    /// test binaries in `target/*/deps`), else on `PATH`.
    pub fn locate() -> Result<Verifier, VerifierError> {
        locate_binary().map(Verifier::at)
    }

    /// How long one request may take (solving included) before the process
    /// is killed.
    pub fn with_deadline(mut self, deadline: Duration) -> Verifier {
        self.deadline = deadline;
        self
    }

    /// Extra time for the first request after a (re)start.
    pub fn with_startup_grace(mut self, grace: Duration) -> Verifier {
        self.startup_grace = grace;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The running process's id, if one is running.
    pub async fn pid(&self) -> Option<u32> {
        self.state
            .lock()
            .await
            .running
            .as_ref()
            .and_then(|r| r.child.id())
    }

    /// Stops the process now (the next request starts another).
    pub async fn shutdown(&self) {
        if let Some(mut r) = self.state.lock().await.running.take() {
            let _ = r.child.start_kill();
            let _ = r.child.wait().await;
        }
    }

    /// Sends one request and waits for its response. A process that dies
    /// after serving earlier requests (killed while idle, or as it reads
    /// this one) is replaced and the request sent once more; one started for
    /// this request that dies is an error (a crash, e.g. Z3's SIGSEGV), as is
    /// an answer later than the deadline (the process is killed). Either way
    /// the next request starts a new process.
    pub async fn verify(
        &self,
        mut request: VerifierRequest,
    ) -> Result<VerifierResponse, VerifierError> {
        let mut state = self.state.lock().await;
        state.next_id += 1;
        request.id = state.next_id;
        let mut line =
            serde_json::to_string(&request).map_err(|e| VerifierError::Protocol(e.to_string()))?;
        line.push('\n');
        let mut retried = false;
        loop {
            if let Some(r) = state.running.as_mut() {
                if matches!(r.child.try_wait(), Ok(Some(_)) | Err(_)) {
                    state.running = None;
                }
            }
            let fresh = state.running.is_none();
            if fresh {
                state.running = Some(self.spawn()?);
            }
            match self.exchange(&mut state, &line, request.id).await {
                Ok(response) => return Ok(response),
                Err(Failure::Died(_)) if !fresh && !retried => retried = true,
                Err(Failure::Died(e) | Failure::Other(e)) => return Err(e),
            }
        }
    }

    /// Writes `line` to the running process and reads its answer. Whatever
    /// goes wrong leaves no process behind (it is killed on drop).
    async fn exchange(
        &self,
        state: &mut State,
        line: &str,
        id: u64,
    ) -> Result<VerifierResponse, Failure> {
        // Out of `state` while the request is in flight: if the caller gives
        // up (drops this future), the process goes with it, killed on drop,
        // and its late answer cannot be read as the next request's.
        let Some(mut running) = state.running.take() else {
            return Err(Failure::Other(VerifierError::Io("no process".into())));
        };
        let deadline = if running.answered {
            self.deadline
        } else {
            self.deadline + self.startup_grace
        };
        let mut answer = String::new();
        let r = &mut running;
        let work = async {
            r.stdin.write_all(line.as_bytes()).await?;
            r.stdin.flush().await?;
            // Skip anything that is not a JSON object (nothing should be).
            loop {
                answer.clear();
                let n = r.stdout.read_line(&mut answer).await?;
                if n == 0 || answer.trim_start().starts_with('{') {
                    return Ok::<usize, std::io::Error>(n);
                }
            }
        };
        let outcome = tokio::time::timeout(deadline, work).await;
        match outcome {
            // Dropping `running` kills the process.
            Err(_) => Err(Failure::Other(VerifierError::Timeout { after: deadline })),
            Ok(Err(e)) => Err(Failure::Died(running.crashed(&e.to_string()).await)),
            Ok(Ok(0)) => Err(Failure::Died(running.crashed("").await)),
            Ok(Ok(_)) => {
                let response: VerifierResponse =
                    serde_json::from_str(answer.trim_end()).map_err(|e| {
                        // Out of step: start afresh next time.
                        Failure::Other(VerifierError::Protocol(format!(
                            "{e}: {}",
                            answer.trim_end()
                        )))
                    })?;
                if response.id != id {
                    return Err(Failure::Other(VerifierError::Protocol(format!(
                        "answer to request {} while waiting for {id}",
                        response.id
                    ))));
                }
                running.answered = true;
                state.running = Some(running);
                Ok(response)
            }
        }
    }

    fn spawn(&self) -> Result<Running, VerifierError> {
        let mut child = Command::new(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| VerifierError::Spawn {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(VerifierError::Spawn {
                path: self.path.clone(),
                message: "no pipes".into(),
            });
        };
        // Keep the end of stderr for error messages (a panic, Z3's complaints).
        let tail = Arc::new(StdMutex::new(String::new()));
        let keep = Arc::clone(&tail);
        tokio::spawn(async move {
            let mut stderr = stderr;
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
                if t.len() > 2 * STDERR_TAIL {
                    let mut cut = t.len() - STDERR_TAIL;
                    while !t.is_char_boundary(cut) {
                        cut += 1;
                    }
                    t.drain(..cut);
                }
            }
        });
        Ok(Running {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: tail,
            answered: false,
        })
    }
}

impl Running {
    /// The error for a process that stopped answering: its exit status (a
    /// signal for a crash) and the end of its stderr.
    async fn crashed(mut self, io_error: &str) -> VerifierError {
        let status = match tokio::time::timeout(Duration::from_millis(500), self.child.wait()).await
        {
            Ok(Ok(s)) => describe_status(s),
            _ => {
                let _ = self.child.start_kill();
                if io_error.is_empty() {
                    "its output ended".to_string()
                } else {
                    io_error.to_string()
                }
            }
        };
        // Let the stderr reader catch up with what the process wrote last.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stderr = last_chars(&stderr, 600);
        VerifierError::Crashed { status, stderr }
    }
}

fn last_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}

fn describe_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = s.signal() {
        let name = match sig {
            libc::SIGSEGV => "SIGSEGV".to_string(),
            libc::SIGABRT => "SIGABRT".to_string(),
            libc::SIGKILL => "SIGKILL".to_string(),
            libc::SIGBUS => "SIGBUS".to_string(),
            libc::SIGTERM => "SIGTERM".to_string(),
            other => format!("signal {other}"),
        };
        format!("killed by {name}")
    } else {
        match s.code() {
            Some(c) => format!("exit status {c}"),
            None => "ended".to_string(),
        }
    }
}

/// Where [`Verifier::locate`] looks, in order, and what it finds.
fn locate_binary() -> Result<PathBuf, VerifierError> {
    if let Some(p) = std::env::var_os(VERIFIER_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(VerifierError::NotFound {
                looked: vec![format!("{} (from {VERIFIER_ENV})", p.display())],
            })
        };
    }
    let mut looked = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let mut dirs = vec![dir.clone()];
        if dir.file_name().is_some_and(|n| n == "deps") {
            dirs.extend(dir.parent().map(Path::to_path_buf));
        }
        for d in dirs {
            let p = d.join(VERIFIER_BINARY);
            if is_executable(&p) {
                return Ok(p);
            }
            looked.push(p.display().to_string());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join(VERIFIER_BINARY);
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    looked.push("PATH".to_string());
    looked.push(format!("{VERIFIER_ENV} (not set)"));
    Err(VerifierError::NotFound { looked })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_read_the_verifiers_json() {
        let line = r#"{"id":3,"annotated_source":"x","annotations":[
            {"kind":"assert","expr":"10 == 2","origin":{"from":"rule","name":"address-family"},"line":3,"why":"w"},
            {"kind":"assume","expr":"pid > 0","origin":{"from":"spec","attach_point":"tracepoint:syscalls:*"},"line":2,"why":"w"}],
          "report":{"assertions":[
            {"span":[1,2],"line":3,"column":5,"text":"assert(10 == 2, \"m\")","message":"m",
             "verdict":{"verdict":"refuted","counterexample":{"probe":"p","inputs":[
               {"name":"args->ret","value":18446744073709551615,"ty":"int64","shown":"-1"},
               {"name":"comm","value":"bash","ty":"string","shown":"\"bash\""}],"printed":["x\n"]}},
             "vacuous":false,"elapsed_ms":1.5},
            {"span":[1,2],"line":4,"column":5,"text":"t","message":null,"verdict":{"verdict":"unknown",
             "reason":{"kind":"timeout","limit_ms":200}},"vacuous":false,"elapsed_ms":0.0},
            {"span":[1,2],"line":5,"column":5,"text":"t","message":null,"verdict":{"verdict":"unknown",
             "reason":{"kind":"something_new","x":1}},"vacuous":false,"elapsed_ms":0.0}],
           "notes":[],"queries":2,"elapsed_ms":3.0},
          "error":null}"#
            .replace('\n', " ");
        let r: VerifierResponse = serde_json::from_str(&line).unwrap();
        let report = r.report.as_ref().unwrap();
        assert!(report.any_refuted() && report.any_unknown() && !report.all_proved());
        let VerdictData::Refuted { counterexample } = &report.assertions[0].verdict else {
            panic!()
        };
        assert_eq!(
            counterexample.inputs[0].value,
            InputValueData::Int(u64::MAX)
        );
        assert_eq!(
            counterexample.inputs[1].value,
            InputValueData::Str("bash".into())
        );
        assert_eq!(
            report.assertions[2].verdict,
            VerdictData::Unknown {
                reason: UnknownReasonData::Other
            }
        );
        assert_eq!(r.annotation_at(3).unwrap().origin.label(), "rule");
        // And back: the same JSON shape.
        let again: VerifierResponse =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again.report.unwrap().assertions[0], report.assertions[0]);
    }

    #[test]
    fn requests_leave_out_what_is_not_set() {
        let r = VerifierRequest::new("BEGIN { }");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":0,"source":"BEGIN { }","annotate":false}"#
        );
        let back: VerifierRequest = serde_json::from_str(r#"{"id":7,"source":"x"}"#).unwrap();
        assert_eq!(back.id, 7);
        assert!(!back.annotate);
    }
}
