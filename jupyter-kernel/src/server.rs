//! The kernel process: one task per socket, cells run one at a time on their own task.
//!
//! Heartbeat, control and IOPub stay responsive while a cell runs: the shell reader only
//! queues execute requests, a single executor runs them, and all IOPub traffic goes
//! through one writer fed by a channel.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use jupyter_protocol::{
    CodeMirrorMode, CommInfoReply, CompleteReply, ConnectionInfo, ErrorOutput, ExecuteInput,
    ExecuteReply, ExecutionCount, HelpLink, HistoryReply, InspectReply, InterruptReply,
    IoPubWelcome, IsCompleteReply, IsCompleteReplyStatus, JupyterMessage, JupyterMessageContent,
    KernelInfoReply, LanguageInfo, ReplyError, ReplyStatus, ShutdownReply, ShutdownRequest, Status,
};
use jupyter_zmq_client::{
    create_kernel_control_connection, create_kernel_heartbeat_connection,
    create_kernel_iopub_xpub_connection, create_kernel_shell_connection,
    create_kernel_stdin_connection, KernelIoPubXPubConnection, RouterSendConnection,
    SubscriptionEvent,
};
use tokio::sync::{mpsc, watch};

use crate::execute::{execute_cell, CellOutcome};
use crate::history::History;
use crate::knowledge::Knowledge;
use crate::wire::{read_message, WireError};

/// Shared state of a running kernel.
pub struct Kernel {
    pub iopub: mpsc::Sender<JupyterMessage>,
    shell_out: tokio::sync::Mutex<RouterSendConnection>,
    pub history: Mutex<History>,
    pub knowledge: Knowledge,
    /// Natural-language cells: retriever, LLM choice, offered cells.
    pub assistant: Arc<crate::assistant::Assistant>,
    /// Bumped on every interrupt; a running cell watches it.
    pub interrupt: watch::Sender<u64>,
    cell_running: AtomicBool,
    execution_count: AtomicUsize,
    rejected_messages: AtomicU64,
}

impl Kernel {
    /// Publishes on IOPub. Waits when the writer is behind, which slows a flooding
    /// cell instead of growing memory.
    pub async fn publish(&self, msg: JupyterMessage) {
        // A closed channel means we are shutting down; nothing to report to.
        let _ = self.iopub.send(msg).await;
    }

    async fn reply(&self, msg: JupyterMessage) {
        let mut shell = self.shell_out.lock().await;
        if let Err(e) = shell.send(msg).await {
            eprintln!("kgent: cannot send shell reply: {e}");
        }
    }

    fn log_rejected(&self, channel: &str, why: &str) {
        let n = self.rejected_messages.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!("kgent: rejected a message on {channel} ({why}); {n} rejected so far");
    }
}

pub fn kernel_info() -> KernelInfoReply {
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: "5.3".to_string(),
        implementation: "kgent".to_string(),
        implementation_version: env!("CARGO_PKG_VERSION").to_string(),
        language_info: LanguageInfo {
            name: "bpftrace".to_string(),
            version: "0.17".to_string(),
            mimetype: Some("text/x-bpftrace".to_string()),
            file_extension: Some(".bt".to_string()),
            // No bpftrace lexer exists for Pygments or CodeMirror; C is the closest.
            pygments_lexer: Some("c".to_string()),
            codemirror_mode: Some(CodeMirrorMode::Simple("text/x-csrc".to_string())),
            nbconvert_exporter: None,
        },
        banner:
            "Kgent: trace and extend the Linux kernel with bpftrace, in plain English or in code.\n\
                 %%bpftrace runs a program; %probes lists attach points; %help explains the rest."
                .to_string(),
        help_links: vec![HelpLink {
            text: "bpftrace reference".to_string(),
            url: "https://github.com/bpftrace/bpftrace/blob/master/man/adoc/bpftrace.adoc"
                .to_string(),
        }],
        debugger: false,
        error: None,
    }
}

/// Runs the kernel until a shutdown request (or a fatal socket error).
pub async fn run(connection_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(connection_file)
        .with_context(|| format!("cannot read connection file {}", connection_file.display()))?;
    let info: ConnectionInfo = serde_json::from_str(&text)
        .with_context(|| format!("bad connection file {}", connection_file.display()))?;
    if !info.key.is_empty() && info.signature_scheme != "hmac-sha256" {
        anyhow::bail!("unsupported signature scheme {}", info.signature_scheme);
    }
    let session_id = uuid::Uuid::new_v4().to_string();

    let mut heartbeat = create_kernel_heartbeat_connection(&info).await?;
    let (shell_out, mut shell_in) = create_kernel_shell_connection(&info, &session_id)
        .await?
        .split();
    let mut control = create_kernel_control_connection(&info, &session_id).await?;
    // Bound so clients can connect; this kernel never asks for input.
    let _stdin = create_kernel_stdin_connection(&info, &session_id).await?;
    let iopub = create_kernel_iopub_xpub_connection(&info, &session_id).await?;

    let (iopub_tx, iopub_rx) = mpsc::channel(1024);
    let (interrupt, _) = watch::channel(0u64);
    let kernel = Arc::new(Kernel {
        iopub: iopub_tx,
        shell_out: tokio::sync::Mutex::new(shell_out),
        history: Mutex::new(History::default()),
        knowledge: Knowledge::new(),
        assistant: Default::default(),
        interrupt,
        cell_running: AtomicBool::new(false),
        execution_count: AtomicUsize::new(0),
        rejected_messages: AtomicU64::new(0),
    });
    kernel.knowledge.warm_up();
    kernel.assistant.warm_up();
    tokio::task::spawn_blocking(crate::trace_cell::prune_run_logs);

    tokio::spawn(iopub_writer(iopub, iopub_rx, session_id.clone()));
    tokio::spawn(async move { while heartbeat.single_heartbeat().await.is_ok() {} });

    let (exec_tx, exec_rx) = mpsc::unbounded_channel::<JupyterMessage>();
    tokio::spawn(executor(kernel.clone(), exec_rx));

    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    {
        let kernel = kernel.clone();
        let shutdown_tx = shutdown_tx.clone();
        tokio::spawn(async move {
            loop {
                match read_message(&mut shell_in).await {
                    Ok(msg) => {
                        if let JupyterMessageContent::ExecuteRequest(_) = msg.content {
                            let _ = exec_tx.send(msg);
                        } else {
                            handle_shell(&kernel, msg, &shutdown_tx).await;
                        }
                    }
                    Err(WireError::Rejected(why)) => kernel.log_rejected("shell", &why),
                    Err(WireError::Socket(e)) => {
                        eprintln!("kgent: shell socket failed: {e}");
                        let _ = shutdown_tx.send(true);
                        return;
                    }
                }
            }
        });
    }
    {
        let kernel = kernel.clone();
        tokio::spawn(async move {
            loop {
                match read_message(&mut control).await {
                    Ok(msg) => {
                        let reply = handle_control(&kernel, &msg, &shutdown_tx).await;
                        if let Some(reply) = reply {
                            if let Err(e) = control.send(reply).await {
                                eprintln!("kgent: cannot send control reply: {e}");
                            }
                        }
                    }
                    Err(WireError::Rejected(why)) => kernel.log_rejected("control", &why),
                    Err(WireError::Socket(e)) => {
                        eprintln!("kgent: control socket failed: {e}");
                        let _ = shutdown_tx.send(true);
                        return;
                    }
                }
            }
        });
    }
    spawn_signal_handlers(kernel.clone());

    let _ = shutdown_rx.wait_for(|s| *s).await;
    kgent_agent::runner::kill_all_runs();
    // Let the IOPub writer deliver the last messages (e.g. shutdown status).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(())
}

fn spawn_signal_handlers(kernel: Arc<Kernel>) {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGINT interrupts the running cell, like a message interrupt.
    if let Ok(mut sigint) = signal(SignalKind::interrupt()) {
        let kernel = kernel.clone();
        tokio::spawn(async move {
            while sigint.recv().await.is_some() {
                kernel.interrupt.send_modify(|n| *n += 1);
            }
        });
    }
    // SIGTERM/SIGHUP end the kernel; no probe may stay attached.
    for kind in [SignalKind::terminate(), SignalKind::hangup()] {
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    kgent_agent::runner::kill_all_runs();
                    std::process::exit(0);
                }
            });
        }
    }
}

async fn iopub_writer(
    mut iopub: KernelIoPubXPubConnection,
    mut rx: mpsc::Receiver<JupyterMessage>,
    session_id: String,
) {
    // Clients may subscribe before the first message; JEP 65 says welcome them.
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(mut msg) = msg else { return };
                let topic = format!("kernel.{session_id}.{}", msg.header.msg_type);
                msg.zmq_identities = vec![Bytes::from(topic)];
                if let Err(e) = iopub.send(msg).await {
                    eprintln!("kgent: cannot publish on IOPub: {e}");
                }
            }
            sub = iopub.recv_subscription() => {
                if let Ok(SubscriptionEvent::Subscribe(topic)) = sub {
                    let mut welcome: JupyterMessage = IoPubWelcome::new(topic).into();
                    welcome.zmq_identities = vec![];
                    let _ = iopub.send(welcome).await;
                }
            }
        }
    }
}

/// Detaches every probe, then signals the main task to exit after the reply is sent.
fn shut_down(
    req: &ShutdownRequest,
    msg: &JupyterMessage,
    shutdown: &watch::Sender<bool>,
) -> JupyterMessage {
    kgent_agent::runner::kill_all_runs();
    let _ = shutdown.send(true);
    ShutdownReply {
        restart: req.restart,
        status: ReplyStatus::Ok,
        error: None,
    }
    .as_child_of(msg)
}

async fn handle_control(
    kernel: &Kernel,
    msg: &JupyterMessage,
    shutdown: &watch::Sender<bool>,
) -> Option<JupyterMessage> {
    match &msg.content {
        JupyterMessageContent::KernelInfoRequest(_) => Some(kernel_info().as_child_of(msg)),
        JupyterMessageContent::InterruptRequest(_) => {
            kernel.interrupt.send_modify(|n| *n += 1);
            Some(InterruptReply::new().as_child_of(msg))
        }
        JupyterMessageContent::ShutdownRequest(req) => Some(shut_down(req, msg, shutdown)),
        _ => None,
    }
}

async fn handle_shell(kernel: &Kernel, msg: JupyterMessage, shutdown: &watch::Sender<bool>) {
    // While a cell runs, these replies come without busy/idle, so frontends keep showing
    // the kernel as busy with the cell.
    let announce = !kernel.cell_running.load(Ordering::SeqCst);
    if announce {
        kernel.publish(Status::busy().as_child_of(&msg)).await;
    }
    let reply = match &msg.content {
        JupyterMessageContent::KernelInfoRequest(_) => Some(kernel_info().as_child_of(&msg)),
        JupyterMessageContent::IsCompleteRequest(req) => {
            let reply = match kgent_magics::is_complete(&req.code) {
                kgent_magics::Completeness::Complete => IsCompleteReply::complete(),
                kgent_magics::Completeness::Incomplete { indent } => {
                    IsCompleteReply::incomplete(indent)
                }
                kgent_magics::Completeness::Invalid => IsCompleteReply::invalid(),
            };
            debug_assert!(reply.status != IsCompleteReplyStatus::Unknown);
            Some(reply.as_child_of(&msg))
        }
        JupyterMessageContent::CompleteRequest(req) => {
            let c = crate::introspect::complete(&kernel.knowledge, &req.code, req.cursor_pos).await;
            Some(
                CompleteReply {
                    matches: c.matches,
                    cursor_start: c.cursor_start,
                    cursor_end: c.cursor_end,
                    metadata: Default::default(),
                    status: ReplyStatus::Ok,
                    error: None,
                }
                .as_child_of(&msg),
            )
        }
        JupyterMessageContent::InspectRequest(req) => {
            let found =
                crate::introspect::inspect(&kernel.knowledge, &req.code, req.cursor_pos).await;
            Some(
                InspectReply {
                    found: found.is_some(),
                    data: found.unwrap_or_default(),
                    metadata: Default::default(),
                    status: ReplyStatus::Ok,
                    error: None,
                }
                .as_child_of(&msg),
            )
        }
        JupyterMessageContent::HistoryRequest(req) => {
            let history = kernel
                .history
                .lock()
                .map(|h| h.answer(req))
                .unwrap_or_default();
            Some(HistoryReply::new(history).as_child_of(&msg))
        }
        JupyterMessageContent::CommInfoRequest(_) => Some(
            CommInfoReply {
                status: ReplyStatus::Ok,
                comms: Default::default(),
                error: None,
            }
            .as_child_of(&msg),
        ),
        // Old clients send shutdown on shell.
        JupyterMessageContent::ShutdownRequest(req) => Some(shut_down(req, &msg, shutdown)),
        _ => None,
    };
    if let Some(reply) = reply {
        kernel.reply(reply).await;
    }
    if announce {
        kernel.publish(Status::idle().as_child_of(&msg)).await;
    }
}

async fn executor(kernel: Arc<Kernel>, mut rx: mpsc::UnboundedReceiver<JupyterMessage>) {
    while let Some(msg) = rx.recv().await {
        let JupyterMessageContent::ExecuteRequest(req) = &msg.content else {
            continue;
        };
        let req = req.clone();
        kernel.cell_running.store(true, Ordering::SeqCst);
        kernel.publish(Status::busy().as_child_of(&msg)).await;
        let count = if req.store_history && !req.silent {
            kernel.execution_count.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            kernel.execution_count.load(Ordering::SeqCst)
        };
        let count = ExecutionCount::new(count);
        if !req.silent {
            kernel
                .publish(
                    ExecuteInput {
                        code: req.code.clone(),
                        execution_count: count,
                    }
                    .as_child_of(&msg),
                )
                .await;
        }
        // Subscribed before anything runs, so an interrupt during the checks before
        // attaching is not lost, and one sent between cells does not stop the next.
        let interrupts = kernel.interrupt.subscribe();
        // A panic in one cell must not take the kernel down: run it as its own task.
        let task = {
            let kernel = kernel.clone();
            let msg = msg.clone();
            tokio::spawn(async move { execute_cell(&kernel, &msg, count, interrupts).await })
        };
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) => CellOutcome::error(
                "KernelError",
                &format!("the kernel failed while running this cell: {e}"),
                vec!["This is a bug in Kgent; the kernel itself is still running.".to_string()],
            ),
        };
        let reply = match &outcome {
            CellOutcome::Ok { payload, .. } => ExecuteReply {
                status: ReplyStatus::Ok,
                execution_count: count,
                payload: payload.clone(),
                user_expressions: Some(Default::default()),
                error: None,
            },
            CellOutcome::Error {
                ename,
                evalue,
                traceback,
            } => {
                kernel
                    .publish(
                        ErrorOutput {
                            ename: ename.clone(),
                            evalue: evalue.clone(),
                            traceback: traceback.clone(),
                        }
                        .as_child_of(&msg),
                    )
                    .await;
                ExecuteReply {
                    status: ReplyStatus::Error,
                    execution_count: count,
                    payload: vec![],
                    user_expressions: Some(Default::default()),
                    error: Some(Box::new(ReplyError {
                        ename: ename.clone(),
                        evalue: evalue.clone(),
                        traceback: traceback.clone(),
                    })),
                }
            }
        };
        if req.store_history && !req.silent {
            if let Ok(mut h) = kernel.history.lock() {
                h.record(count.0, &req.code, outcome.text_summary());
            }
        }
        kernel.reply(reply.as_child_of(&msg)).await;
        kernel.publish(Status::idle().as_child_of(&msg)).await;
        kernel.cell_running.store(false, Ordering::SeqCst);

        // After an error, requests already queued are aborted, as in IPython.
        if matches!(outcome, CellOutcome::Error { .. }) && req.stop_on_error {
            while let Ok(queued) = rx.try_recv() {
                kernel.publish(Status::busy().as_child_of(&queued)).await;
                let aborted = ExecuteReply {
                    status: ReplyStatus::Aborted,
                    execution_count: ExecutionCount::new(
                        kernel.execution_count.load(Ordering::SeqCst),
                    ),
                    payload: vec![],
                    user_expressions: Some(Default::default()),
                    error: None,
                };
                kernel.reply(aborted.as_child_of(&queued)).await;
                kernel.publish(Status::idle().as_child_of(&queued)).await;
            }
        }
    }
}
