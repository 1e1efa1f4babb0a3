//! A `%%bpftrace` cell: checks before attaching, the live run with coalesced streaming
//! and in-place map displays, stopping on interrupt or timeout, and the final results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jupyter_protocol::{
    ClearOutput, ExecuteResult, ExecutionCount, JupyterMessage, Media, MediaType, StreamContent,
    Transient, UpdateDisplayData,
};
use kgent_agent::runner::{verifier_log, BpftraceRun, RunError, RunEvent, RunSpec};
use kgent_agent::{attach_points, Failure, FailureKind};
use kgent_catalog::{Privileges, ProbeType, Support, TracefsState};
use kgent_magics::BpftraceOptions;
use kgent_output::{render_map, render_maps, MapDump, MapValue, OutputEvent, RenderOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::coalesce::{Carries, Coalescer, Suppression};
use crate::execute::{display, CellOutcome, RED, RESET};
use crate::introspect::escape_html;
use crate::server::Kernel;

/// How often text is flushed: at most 20 stream messages a second per cell.
const TICK: Duration = Duration::from_millis(50);
/// Least time between two updates of one map display.
const MAP_UPDATE_INTERVAL: Duration = Duration::from_millis(250);
/// How long bpftrace may take to detach and print its maps after SIGINT.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Extra grace per attached probe: this kernel needs ~75 ms to remove each one, and
/// bpftrace prints its maps only after removing them all.
const DETACH_PER_PROBE: Duration = Duration::from_millis(100);
/// Runtime error lines shown per cell; the rest go to the log.
const MAX_ERROR_LINES: u64 = 200;
/// The log of one run stops growing here; a flood must not fill the disk.
const LOG_CAP_BYTES: u64 = 256 * 1024 * 1024;

/// Why the program stopped, when it was not by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Interrupted,
    Timeout,
}

/// One `%%bpftrace` cell being executed.
pub struct TraceCell<'a> {
    pub kernel: &'a Kernel,
    pub parent: &'a JupyterMessage,
    pub count: ExecutionCount,
    pub options: &'a BpftraceOptions,
    pub program: &'a str,
    /// Cell line of the program's first line, for messages.
    pub first_line: usize,
    /// A silent request gets no execute_result (outputs still stream).
    pub silent: bool,
}

pub async fn run(cell: TraceCell<'_>, interrupts: watch::Receiver<u64>) -> CellOutcome {
    let TraceCell {
        kernel,
        count,
        options,
        program,
        first_line,
        ..
    } = cell;
    if program.trim().is_empty() {
        return CellOutcome::error(
            "UsageError",
            "the %%bpftrace cell has no program",
            vec![format!("{RED}UsageError{RESET}: write the bpftrace program below the %%bpftrace line, e.g.\n    BEGIN {{ printf(\"hello\\n\"); exit(); }}")],
        );
    }
    let bpftrace = match preflight(kernel, options, program, first_line).await {
        Ok(path) => path,
        Err(outcome) => return outcome,
    };
    // The front end's checks take milliseconds; bpftrace's own take a second and say less.
    let findings =
        crate::check::check_source(program, &kernel.knowledge, options.allow_unsafe, false).await;
    if findings.has_errors() && !options.force {
        return check_outcome(&findings.diagnostics, program, first_line);
    }
    // A long attach is explained at once; other notes wait until the program is seen to
    // run (then as stderr) or to fail (then inside the one error output).
    let (now, later): (Vec<_>, Vec<_>) = findings
        .diagnostics
        .iter()
        .cloned()
        .partition(|d| d.code == "too-many-probes");
    if !now.is_empty() {
        let mut text = crate::diagnostics_view::render_lines(&now, program, first_line).join("\n");
        text.push('\n');
        kernel
            .publish(StreamContent::stderr(&text).as_child_of(cell.parent))
            .await;
    }
    let notes = crate::diagnostics_view::render_lines(&later, program, first_line);
    // bpftrace does not know assume()/assert(); blanking them keeps its positions right.
    let runnable = kgent_frontend::blank_annotations(program, &findings.program);
    let script = match &options.command {
        Some(command) => match write_command_script(command, count.0).await {
            Ok(path) => Some(path),
            Err(e) => {
                return CellOutcome::error(
                    "CommandError",
                    &format!("cannot prepare the -c command: {e}"),
                    vec![format!("{RED}cannot prepare the -c command{RESET}: {e}")],
                )
            }
        },
        None => None,
    };
    let spec = RunSpec {
        bpftrace,
        program: runnable,
        args: options.args.clone(),
        allow_unsafe: options.allow_unsafe,
        verbose: false,
        command: script.as_ref().map(|p| format!("/bin/sh {}", p.display())),
    };
    let outcome = run_spec(&cell, &spec, interrupts, notes).await;
    if let Some(path) = script {
        let _ = tokio::fs::remove_file(path).await;
    }
    outcome
}

/// bpftrace splits `-c` on spaces with no quoting, so a shell command goes through a
/// script file whose path has no spaces.
async fn write_command_script(command: &str, count: usize) -> std::io::Result<PathBuf> {
    let mut dir = run_dir();
    if dir.to_string_lossy().contains(char::is_whitespace) {
        dir = std::env::temp_dir();
    }
    tokio::fs::create_dir_all(&dir).await?;
    let path = dir.join(format!(
        "cmd-{}-cell{count}-{}.sh",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    tokio::fs::write(&path, format!("{command}\n")).await?;
    Ok(path)
}

async fn run_spec(
    cell: &TraceCell<'_>,
    spec: &RunSpec,
    interrupts: watch::Receiver<u64>,
    notes: Vec<String>,
) -> CellOutcome {
    if interrupts.has_changed().unwrap_or(false) {
        return CellOutcome::ok("interrupted before it started");
    }
    let run = match BpftraceRun::spawn(spec) {
        Ok(run) => run,
        Err(e @ RunError::NotFound { .. }) => return missing_bpftrace(&e.to_string()),
        Err(e) => {
            return CellOutcome::error(
                "SpawnError",
                &e.to_string(),
                vec![format!("{RED}{e}{RESET}")],
            )
        }
    };
    let mut live = LiveRun::new(cell.kernel, cell.parent, cell.count, cell.options).await;
    live.silent = cell.silent;
    live.held_stderr
        .extend(notes.iter().map(|line| format!("{line}\n")));
    let (exit, stop) = live.drive(run, interrupts).await;

    if let Some(mut failure) = exit.failure.clone() {
        if failure.kind == FailureKind::Verifier && failure.log.is_empty() {
            failure.log = verifier_log(spec).await;
        }
        live.flush_text().await;
        let mut outcome = failure_outcome(&failure, cell.program, cell.first_line);
        if let (CellOutcome::Error { traceback, .. }, false) = (&mut outcome, notes.is_empty()) {
            traceback.push("Kgent's checks before running had said:".to_string());
            traceback.extend(notes);
        }
        return outcome;
    }
    live.finish(stop, &exit).await
}

/// Refuses early, with a fix, what would certainly fail: no bpftrace, no privileges, no
/// tracefs, probe types this kernel lacks. Returns the bpftrace to use.
async fn preflight(
    kernel: &Kernel,
    options: &BpftraceOptions,
    program: &str,
    first_line: usize,
) -> Result<PathBuf, CellOutcome> {
    let found = tokio::task::spawn_blocking(kgent_catalog::find_bpftrace)
        .await
        .ok()
        .flatten();
    let Some(info) = found else {
        return Err(missing_bpftrace("bpftrace was not found on PATH"));
    };
    let privileges = Privileges::current();
    if !privileges.can_trace() {
        return Err(CellOutcome::error(
            "NoPrivileges",
            "this kernel process may not load BPF programs",
            vec![
                format!("{RED}Not allowed to trace{RESET}: the Jupyter kernel runs as uid {} without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN.", privileges.euid),
                "Start Jupyter as root (e.g. sudo -E jupyter lab), or grant the capabilities to the kgent binary:".to_string(),
                "    sudo setcap cap_bpf,cap_perfmon,cap_sys_admin,cap_dac_read_search+ep $(which kgent)".to_string(),
            ],
        ));
    }
    let points = attach_points(program);
    let needs_tracefs = points.iter().any(|p| {
        matches!(
            p.provider.as_str(),
            "tracepoint" | "t" | "kprobe" | "k" | "kretprobe" | "kr"
        )
    });
    if needs_tracefs {
        let state = tokio::task::spawn_blocking(crate::knowledge::ensure_tracefs)
            .await
            .unwrap_or(TracefsState::NotMounted);
        if !matches!(state, TracefsState::Mounted(_)) {
            return Err(CellOutcome::error(
                "TracefsMissing",
                "tracefs is not mounted, so tracepoints cannot be used",
                vec![
                    format!(
                        "{RED}tracefs is not mounted{RESET} and could not be mounted from here."
                    ),
                    "As root: mount -t tracefs nodev /sys/kernel/tracing".to_string(),
                ],
            ));
        }
    }
    if !options.force {
        if let Some(caps) = kernel.knowledge.caps_if_ready() {
            for point in &points {
                let Some(pt) = ProbeType::from_provider(&point.provider) else {
                    continue;
                };
                if let Some(Support::Fails { reason }) = caps.probes.get(&pt) {
                    let alternatives = kgent_catalog::alternatives(pt, &caps);
                    let line = first_line + point.line - 1;
                    let mut tb = vec![
                        format!(
                            "{RED}{} probes do not work on this kernel{RESET}: {reason}",
                            pt.name()
                        ),
                        format!("  cell line {line}: {}", point.text),
                    ];
                    if !alternatives.is_empty() {
                        tb.push("Use instead:".to_string());
                        tb.extend(alternatives.iter().map(|a| format!("  {a}")));
                    }
                    tb.push("(--force on the %%bpftrace line attempts it anyway)".to_string());
                    return Err(CellOutcome::error(
                        "ProbeTypeUnavailable",
                        &format!("{} probes do not work on this kernel: {reason}", pt.name()),
                        tb,
                    ));
                }
            }
        }
    }
    Ok(info.path)
}

/// The front end found errors: one `error` output that reads like a compiler's.
fn check_outcome(
    diagnostics: &[kgent_frontend::Diagnostic],
    program: &str,
    first_line: usize,
) -> CellOutcome {
    let errors: Vec<&kgent_frontend::Diagnostic> =
        diagnostics.iter().filter(|d| d.is_error()).collect();
    let headline = errors
        .first()
        .map(|d| d.message.clone())
        .unwrap_or_else(|| "the program has errors".to_string());
    let mut tb = crate::diagnostics_view::render_lines(diagnostics, program, first_line);
    tb.push(format!(
        "{} {} found before attaching anything. Fix {}, or add --force to the %%bpftrace line to let bpftrace decide.",
        errors.len(),
        if errors.len() == 1 { "error" } else { "errors" },
        if errors.len() == 1 { "it" } else { "them" }
    ));
    CellOutcome::error("CheckError", &headline, tb)
}

fn missing_bpftrace(detail: &str) -> CellOutcome {
    CellOutcome::error(
        "BpftraceMissing",
        "bpftrace is not installed",
        vec![
            format!("{RED}bpftrace is not installed{RESET} ({detail})."),
            "Install it with: apt-get install bpftrace (or dnf install bpftrace), or set KGENT_BPFTRACE to its path.".to_string(),
        ],
    )
}

/// Renders a classified failure as one `error` output, pointing at cell lines.
fn failure_outcome(failure: &Failure, program: &str, first_line: usize) -> CellOutcome {
    let program_lines: Vec<&str> = program.lines().collect();
    let mut tb = vec![format!(
        "{RED}{}{RESET} [{}]",
        failure.kind.title(),
        failure.kind.code()
    )];
    for d in &failure.diagnostics {
        let label = if d.is_warning { "warning" } else { "error" };
        match d.location {
            Some(loc) => {
                let cell_line = first_line + loc.line - 1;
                tb.push(format!("{label}: {}", d.message));
                let source = program_lines
                    .get(loc.line.saturating_sub(1))
                    .map(|s| s.to_string())
                    .or_else(|| d.source_line.clone())
                    .unwrap_or_default();
                let gutter = format!("{cell_line:>4} | ");
                tb.push(format!("{gutter}{source}"));
                // Without columns, underline the line's text.
                let (start, width) = if loc.has_columns() {
                    (
                        loc.col_start - 1,
                        loc.col_end.saturating_sub(loc.col_start).max(1),
                    )
                } else {
                    let indent = source.len() - source.trim_start().len();
                    (indent, source.trim().chars().count().max(1))
                };
                tb.push(format!(
                    "{}{}{RED}{}{RESET}",
                    " ".repeat(gutter.len()),
                    " ".repeat(start),
                    "^".repeat(width)
                ));
            }
            None => tb.push(format!("{label}: {}", d.message)),
        }
    }
    if let Some(hint) = &failure.hint {
        tb.push(format!("hint: {hint}"));
    }
    if !failure.log.is_empty() {
        let label = if failure.kind == FailureKind::Verifier {
            "verifier log"
        } else {
            "bpftrace said"
        };
        // The end of a verifier log says why; the start is the program.
        let skip = failure.log.len().saturating_sub(40);
        tb.push(format!(
            "{label}{}:",
            if skip > 0 {
                format!(" (last 40 of {} lines)", failure.log.len())
            } else {
                String::new()
            }
        ));
        tb.extend(failure.log[skip..].iter().map(|l| format!("  {l}")));
    }
    let evalue = format!("{}: {}", failure.kind.title(), failure.headline());
    CellOutcome::error("BpftraceError", &evalue, tb)
}

/// State of a program that is running and streaming into a cell.
struct LiveRun<'a> {
    kernel: &'a Kernel,
    parent: &'a JupyterMessage,
    count: ExecutionCount,
    watch: bool,
    silent: bool,
    timeout: Option<Duration>,
    text: Coalescer,
    stderr: Coalescer,
    /// stderr held back until the program is known to run: a failure to start is shown
    /// as one error, not as a stream followed by an error.
    held_stderr: Vec<String>,
    held_dropped: u64,
    running_confirmed: bool,
    grace: Duration,
    log: Option<tokio::io::BufWriter<tokio::fs::File>>,
    log_path: Option<PathBuf>,
    log_bytes: u64,
    events: u64,
    lost_events: u64,
    probes: u64,
    maps: MapDisplays,
    final_maps: Vec<MapDump>,
    dumping: bool,
    started: Instant,
}

impl<'a> LiveRun<'a> {
    async fn new(
        kernel: &'a Kernel,
        parent: &'a JupyterMessage,
        count: ExecutionCount,
        options: &BpftraceOptions,
    ) -> LiveRun<'a> {
        let now = Instant::now();
        let (log, log_path) = open_log(count.0).await;
        LiveRun {
            kernel,
            parent,
            count,
            watch: options.watch,
            silent: false,
            timeout: options.timeout,
            text: Coalescer::new(Carries::Output, options.max_lines.map(|n| n as u64), now),
            stderr: Coalescer::new(Carries::Errors, Some(MAX_ERROR_LINES), now),
            held_stderr: Vec::new(),
            held_dropped: 0,
            running_confirmed: false,
            grace: STOP_GRACE,
            log,
            log_path,
            log_bytes: 0,
            events: 0,
            lost_events: 0,
            probes: 0,
            maps: MapDisplays::new(count.0),
            final_maps: Vec::new(),
            dumping: false,
            started: now,
        }
    }

    fn log_display(&self) -> String {
        self.log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(no log file could be written)".to_string())
    }

    /// Runs until bpftrace exits; stops it on interrupt or timeout.
    async fn drive(
        &mut self,
        mut run: BpftraceRun,
        mut interrupts: watch::Receiver<u64>,
    ) -> (kgent_agent::ExitInfo, Option<Stop>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timeout = tokio::time::sleep(self.timeout_or_forever());
        tokio::pin!(timeout);
        let kill_at = tokio::time::sleep(Duration::from_secs(u32::MAX as u64));
        tokio::pin!(kill_at);
        let mut stop: Option<Stop> = None;
        let mut killed = false;
        loop {
            tokio::select! {
                biased;
                changed = interrupts.changed(), if stop.is_none() => {
                    if changed.is_ok() {
                        stop = Some(Stop::Interrupted);
                        run.interrupt();
                        kill_at.as_mut().reset(tokio::time::Instant::now() + self.stop_grace().await);
                    }
                }
                _ = &mut timeout, if stop.is_none() => {
                    stop = Some(Stop::Timeout);
                    run.interrupt();
                    kill_at.as_mut().reset(tokio::time::Instant::now() + self.stop_grace().await);
                }
                _ = &mut kill_at, if stop.is_some() && !killed => {
                    // Still attaching (it ignores SIGINT then) or stuck: no waiting forever.
                    killed = true;
                    run.kill();
                }
                _ = tick.tick() => self.on_tick().await,
                ev = run.next_event() => {
                    if let RunEvent::Exited(exit) = ev {
                        return (exit, stop);
                    }
                    self.on_event(ev).await;
                    while let Some(ev) = run.try_next_event() {
                        self.on_event(ev).await;
                    }
                }
            }
        }
    }

    /// How long to wait for bpftrace to detach; says so when that will take a while.
    async fn stop_grace(&mut self) -> Duration {
        let grace = STOP_GRACE + DETACH_PER_PROBE * self.probes as u32;
        self.grace = grace;
        if self.probes > 20 {
            let notice = format!(
                "[kgent] detaching {} probes; the kernel removes them one by one, which can take up to {} s\n",
                self.probes,
                grace.as_secs()
            );
            self.kernel
                .publish(StreamContent::stderr(&notice).as_child_of(self.parent))
                .await;
        }
        grace
    }

    fn timeout_or_forever(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(u32::MAX as u64))
    }

    async fn on_event(&mut self, ev: RunEvent) {
        let now = Instant::now();
        match ev {
            RunEvent::Output(OutputEvent::AttachedProbes(n)) => self.probes = n,
            RunEvent::Output(OutputEvent::Map(dump)) => {
                self.confirm_running().await;
                self.events += 1;
                if self.dumping {
                    self.final_maps.push(dump);
                } else {
                    self.maps.offer(self.kernel, self.parent, dump, now).await;
                }
            }
            RunEvent::Output(OutputEvent::Time(t)) => {
                self.confirm_running().await;
                self.events += 1;
                if self.watch {
                    self.flush_text().await;
                    self.kernel
                        .publish(ClearOutput { wait: true }.as_child_of(self.parent))
                        .await;
                    self.maps.forget();
                }
                self.text_out(&t, now).await;
            }
            RunEvent::Output(OutputEvent::LostEvents(n)) => {
                self.lost_events += n;
            }
            RunEvent::Output(ev) => {
                self.confirm_running().await;
                self.events += 1;
                let text = match ev {
                    OutputEvent::Printf(s) | OutputEvent::Cat(s) | OutputEvent::Join(s) => s,
                    OutputEvent::Value(v) => format!("{v}\n"),
                    OutputEvent::Unknown { data, .. } => format!("{data}\n"),
                    _ => String::new(),
                };
                self.text_out(&text, now).await;
            }
            RunEvent::Text(line) => {
                self.text_out(&format!("{line}\n"), now).await;
            }
            RunEvent::ExitDumpStarts => {
                self.dumping = true;
            }
            RunEvent::Stderr(line) => {
                let line = format!("{line}\n");
                self.write_log(&format!("[stderr] {line}")).await;
                if self.running_confirmed {
                    self.stderr.push(&line, now);
                } else if self.held_stderr.len() < MAX_ERROR_LINES as usize {
                    self.held_stderr.push(line);
                } else {
                    self.held_dropped += 1;
                }
            }
            RunEvent::Exited(_) => {}
        }
    }

    async fn confirm_running(&mut self) {
        if self.running_confirmed {
            return;
        }
        self.running_confirmed = true;
        let now = Instant::now();
        for line in std::mem::take(&mut self.held_stderr) {
            self.stderr.push(&line, now);
        }
        self.stderr.count_hidden(
            std::mem::take(&mut self.held_dropped),
            Suppression::MaxLines,
        );
    }

    async fn text_out(&mut self, text: &str, now: Instant) {
        if text.is_empty() {
            return;
        }
        self.write_log(text).await;
        self.text.push(text, now);
    }

    async fn write_log(&mut self, text: &str) {
        if self.log_bytes >= LOG_CAP_BYTES {
            return;
        }
        let Some(log) = &mut self.log else { return };
        self.log_bytes += text.len() as u64;
        let mut ok = log.write_all(text.as_bytes()).await.is_ok();
        if ok && self.log_bytes >= LOG_CAP_BYTES {
            ok = log
                .write_all(b"\n[kgent] log truncated at 256 MiB\n")
                .await
                .is_ok();
        }
        if !ok {
            // A full disk must not stop the trace; the notebook still shows output.
            self.log = None;
        }
    }

    async fn on_tick(&mut self) {
        self.flush_text().await;
        self.maps
            .flush_due(self.kernel, self.parent, Instant::now())
            .await;
    }

    async fn flush_text(&mut self) {
        let log = self.log_display();
        if let Some(notice) = self.text.take_notice(&log) {
            self.stderr.push(&notice, Instant::now());
        }
        if let Some(text) = self.text.take() {
            self.kernel
                .publish(StreamContent::stdout(&text).as_child_of(self.parent))
                .await;
        }
        let notice = self.stderr.take_notice(&log);
        let text = self.stderr.take();
        let stderr_text = match (text, notice) {
            (Some(t), Some(n)) => Some(t + &n),
            (t, n) => t.or(n),
        };
        if let Some(text) = stderr_text {
            self.kernel
                .publish(StreamContent::stderr(&text).as_child_of(self.parent))
                .await;
        }
    }

    /// After a run that did not fail: final maps, summary line.
    async fn finish(mut self, stop: Option<Stop>, exit: &kgent_agent::ExitInfo) -> CellOutcome {
        self.confirm_running().await;
        self.flush_text().await;
        if let Some(log) = &mut self.log {
            let _ = log.flush().await;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let final_maps = std::mem::take(&mut self.final_maps);
        let mut results = Vec::new();
        for dump in final_maps {
            if !self
                .maps
                .update_final(self.kernel, self.parent, &dump)
                .await
            {
                results.push(dump);
            }
        }
        self.maps.flush_all(self.kernel, self.parent).await;
        let opts = RenderOptions::default();
        let (charts, tables): (Vec<MapDump>, Vec<MapDump>) = results
            .into_iter()
            .partition(|d| matches!(d.value, MapValue::Hist(_) | MapValue::KeyedHist(_)));
        for chart in &charts {
            display(self.kernel, self.parent, chart_media(chart, &opts), None).await;
        }
        if !tables.is_empty() {
            let b = render_maps(&tables, &opts);
            let data = Media::new(vec![
                MediaType::Html(b.html),
                MediaType::Markdown(b.markdown),
                MediaType::Plain(b.plain),
            ]);
            // A silent request has no result, but the maps are still worth showing.
            if self.silent {
                display(self.kernel, self.parent, data, None).await;
            } else {
                let result = ExecuteResult {
                    execution_count: self.count,
                    data,
                    metadata: Default::default(),
                    transient: Some(Transient::default()),
                };
                self.kernel.publish(result.as_child_of(self.parent)).await;
            }
        }

        let how = match (stop, exit.signal) {
            (_, Some(_)) => format!(
                "killed after it did not stop within {} s",
                self.grace.as_secs()
            ),
            (Some(Stop::Interrupted), _) => "detached on interrupt".to_string(),
            (Some(Stop::Timeout), _) => "detached at the timeout".to_string(),
            (None, _) => "finished".to_string(),
        };
        let mut parts = vec![
            format!("{how} after {elapsed:.1} s"),
            format!(
                "{} {}",
                group_thousands(self.events),
                if self.events == 1 { "event" } else { "events" }
            ),
        ];
        if self.probes > 0 {
            parts.push(format!(
                "{} {}",
                self.probes,
                if self.probes == 1 { "probe" } else { "probes" }
            ));
        }
        let hidden = self.text.hidden_lines();
        if hidden > 0 {
            parts.push(format!("{} lines not shown", group_thousands(hidden)));
        }
        let hidden_errors = self.stderr.hidden_lines();
        if hidden_errors > 0 {
            parts.push(format!(
                "{} error lines not shown",
                group_thousands(hidden_errors)
            ));
        }
        if self.lost_events > 0 {
            parts.push(format!(
                "{} events lost by the kernel buffer",
                group_thousands(self.lost_events)
            ));
        }
        let summary = parts.join(" · ");
        let log = self.log_display();
        let plain = format!("{summary}\nfull output: {log}");
        let html = format!(
            "<p><small>{} · full output: <code>{}</code></small></p>",
            escape_html(&summary),
            escape_html(&log)
        );
        let md = format!("*{}* · full output: `{}`", summary, log);
        display(
            self.kernel,
            self.parent,
            Media::new(vec![
                MediaType::Html(html),
                MediaType::Markdown(md),
                MediaType::Plain(plain),
            ]),
            None,
        )
        .await;
        CellOutcome::ok(summary)
    }
}

fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where full outputs of runs are kept: `$KGENT_RUN_DIR`, else the XDG state directory.
fn run_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KGENT_RUN_DIR") {
        return PathBuf::from(d);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("kgent/runs")
}

/// Run logs kept; older ones are removed when a kernel starts.
const KEPT_RUN_LOGS: usize = 200;

/// Removes all but the newest run logs, so a long-lived machine does not fill up.
pub fn prune_run_logs() {
    let Ok(entries) = std::fs::read_dir(run_dir()) else {
        return;
    };
    let mut logs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("run-") && name.ends_with(".log")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if logs.len() <= KEPT_RUN_LOGS {
        return;
    }
    logs.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in logs.into_iter().skip(KEPT_RUN_LOGS) {
        let _ = std::fs::remove_file(path);
    }
}

async fn open_log(
    count: usize,
) -> (
    Option<tokio::io::BufWriter<tokio::fs::File>>,
    Option<PathBuf>,
) {
    let dir = run_dir();
    if tokio::fs::create_dir_all(&dir).await.is_err() {
        return (None, None);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let path = dir.join(format!(
        "run-{stamp}-{}-cell{count}.log",
        std::process::id()
    ));
    match tokio::fs::File::create(&path).await {
        Ok(f) => (
            Some(tokio::io::BufWriter::with_capacity(256 * 1024, f)),
            Some(path),
        ),
        Err(_) => (None, None),
    }
}

fn chart_media(dump: &MapDump, opts: &RenderOptions) -> Media {
    let b = render_map(dump, opts);
    match b.svg {
        // JupyterLab prefers HTML and Markdown over SVG; a chart bundle offers only the
        // picture and its text fallback so the picture is what people see.
        Some(svg) => Media::new(vec![MediaType::Svg(svg), MediaType::Plain(b.plain)]),
        None => Media::new(vec![
            MediaType::Html(b.html),
            MediaType::Markdown(b.markdown),
            MediaType::Plain(b.plain),
        ]),
    }
}

/// Histograms as charts, everything else as tables.
fn map_media(dump: &MapDump, opts: &RenderOptions) -> Media {
    if matches!(dump.value, MapValue::Hist(_) | MapValue::KeyedHist(_)) {
        return chart_media(dump, opts);
    }
    let b = render_map(dump, opts);
    Media::new(vec![
        MediaType::Html(b.html),
        MediaType::Markdown(b.markdown),
        MediaType::Plain(b.plain),
    ])
}

/// Maps printed while the program runs: one display per map, updated in place and at
/// most a few times a second.
struct MapDisplays {
    prefix: String,
    shown: HashMap<String, Shown>,
    opts: RenderOptions,
}

struct Shown {
    display_id: String,
    last_sent: Instant,
    pending: Option<MapDump>,
}

impl MapDisplays {
    fn new(count: usize) -> Self {
        MapDisplays {
            prefix: format!("kgent-{}-{count}", uuid::Uuid::new_v4().simple()),
            shown: HashMap::new(),
            opts: RenderOptions::default(),
        }
    }

    async fn offer(
        &mut self,
        kernel: &Kernel,
        parent: &JupyterMessage,
        dump: MapDump,
        now: Instant,
    ) {
        match self.shown.get_mut(&dump.name) {
            Some(shown) => shown.pending = Some(dump),
            None => {
                let display_id = format!("{}-{}", self.prefix, self.shown.len());
                display(
                    kernel,
                    parent,
                    map_media(&dump, &self.opts),
                    Some(display_id.clone()),
                )
                .await;
                self.shown.insert(
                    dump.name.clone(),
                    Shown {
                        display_id,
                        last_sent: now,
                        pending: None,
                    },
                );
            }
        }
    }

    async fn flush_due(&mut self, kernel: &Kernel, parent: &JupyterMessage, now: Instant) {
        for shown in self.shown.values_mut() {
            if now.duration_since(shown.last_sent) < MAP_UPDATE_INTERVAL {
                continue;
            }
            if let Some(dump) = shown.pending.take() {
                let update =
                    UpdateDisplayData::new(map_media(&dump, &self.opts), &shown.display_id);
                kernel.publish(update.as_child_of(parent)).await;
                shown.last_sent = now;
            }
        }
    }

    async fn flush_all(&mut self, kernel: &Kernel, parent: &JupyterMessage) {
        for shown in self.shown.values_mut() {
            if let Some(dump) = shown.pending.take() {
                let update =
                    UpdateDisplayData::new(map_media(&dump, &self.opts), &shown.display_id);
                kernel.publish(update.as_child_of(parent)).await;
            }
        }
    }

    /// Shows a map of the exit dump in its live display; false if it has none.
    async fn update_final(
        &mut self,
        kernel: &Kernel,
        parent: &JupyterMessage,
        dump: &MapDump,
    ) -> bool {
        let Some(shown) = self.shown.get_mut(&dump.name) else {
            return false;
        };
        shown.pending = None;
        let update = UpdateDisplayData::new(map_media(dump, &self.opts), &shown.display_id);
        kernel.publish(update.as_child_of(parent)).await;
        true
    }

    /// After a clear_output, old displays are gone: the next print makes a new one.
    fn forget(&mut self) {
        self.shown.clear();
    }
}
