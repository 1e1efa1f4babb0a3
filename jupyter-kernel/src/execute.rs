//! Executes one cell: dispatches on what the cell is and turns the result into outputs.

use jupyter_protocol::{
    DisplayData, ExecutionCount, JupyterMessage, JupyterMessageContent, Media, Payload, Transient,
};
use kgent_magics::{parse_cell, Cell, LineMagic, MagicError};

use crate::introspect;
use crate::server::Kernel;
use crate::trace_cell;

/// How a cell ended.
#[derive(Clone, Debug)]
pub enum CellOutcome {
    Ok {
        payload: Vec<Payload>,
        /// A line for the history's output column.
        summary: String,
    },
    Error {
        ename: String,
        evalue: String,
        traceback: Vec<String>,
    },
}

impl CellOutcome {
    pub fn ok(summary: impl Into<String>) -> Self {
        CellOutcome::Ok {
            payload: Vec::new(),
            summary: summary.into(),
        }
    }

    pub fn error(ename: &str, evalue: &str, traceback: Vec<String>) -> Self {
        CellOutcome::Error {
            ename: ename.to_string(),
            evalue: evalue.to_string(),
            traceback,
        }
    }

    pub fn text_summary(&self) -> String {
        match self {
            CellOutcome::Ok { summary, .. } => summary.clone(),
            CellOutcome::Error { ename, evalue, .. } => format!("{ename}: {evalue}"),
        }
    }
}

/// Red bold, as terminals and Jupyter's traceback renderer show errors.
pub const RED: &str = "\x1b[1;31m";
pub const RESET: &str = "\x1b[0m";

/// Sends a display (with an id when it will be updated later).
pub async fn display(
    kernel: &Kernel,
    parent: &JupyterMessage,
    data: Media,
    display_id: Option<String>,
) {
    let msg = DisplayData {
        data,
        metadata: Default::default(),
        transient: display_id.map(|id| Transient {
            display_id: Some(id),
        }),
    };
    kernel.publish(msg.as_child_of(parent)).await;
}

pub async fn execute_cell(
    kernel: &Kernel,
    parent: &JupyterMessage,
    count: ExecutionCount,
    interrupts: tokio::sync::watch::Receiver<u64>,
) -> CellOutcome {
    let JupyterMessageContent::ExecuteRequest(req) = &parent.content else {
        return CellOutcome::ok("");
    };
    let cell = match parse_cell(&req.code) {
        Ok(cell) => cell,
        Err(e) => return magic_error(&e),
    };
    match cell {
        Cell::Empty => CellOutcome::ok(""),
        Cell::Lines(magics) => {
            for magic in magics {
                let media = match &magic {
                    LineMagic::Probes { verbose, limit, pattern } => {
                        introspect::probes_media(&kernel.knowledge, pattern, *verbose, *limit).await.map_err(|e| {
                            CellOutcome::error(
                                "CatalogUnavailable",
                                &format!("cannot read the kernel's probe catalog: {e}"),
                                vec![format!("{RED}cannot read the kernel's probe catalog{RESET}: {e}"),
                                     "`kgent doctor` in a terminal says what is missing and how to fix it.".to_string()],
                            )
                        })
                    }
                    LineMagic::Lsmagic => Ok(introspect::lsmagic_media()),
                    LineMagic::Llm(args) => crate::llm_magic::run(&kernel.assistant, args).await.map_err(|e| {
                        CellOutcome::error("UsageError", &e, vec![format!("{RED}%llm{RESET}: {e}")])
                    }),
                    LineMagic::Help { topic } => introspect::help_media(topic.as_deref())
                        .map_err(|e| CellOutcome::error("UsageError", &e, vec![format!("{RED}UsageError{RESET}: {e}")])),
                };
                match media {
                    Ok(media) => display(kernel, parent, media, None).await,
                    Err(outcome) => return outcome,
                }
            }
            CellOutcome::ok("")
        }
        Cell::Introspect { target } => match introspect::describe(&kernel.knowledge, &target).await {
            Some(data) => CellOutcome::Ok {
                payload: vec![Payload::Page { data, start: 0 }],
                summary: String::new(),
            },
            None => CellOutcome::error(
                "NotFound",
                &format!("nothing is known about `{target}`"),
                vec![format!(
                    "{RED}NotFound{RESET}: nothing is known about `{target}`: not an attach point of this kernel, a bpftrace builtin or a magic. %probes PATTERN searches attach points."
                )],
            ),
        },
        Cell::NaturalLanguage { options, request } => {
            crate::nl_cell::run(
                crate::nl_cell::NlCell {
                    kernel,
                    parent,
                    count,
                    options: &options,
                    request: &request,
                    silent: req.silent,
                },
                interrupts,
            )
            .await
        }
        Cell::Verify { options, program } => {
            crate::verify_cell::run(
                crate::verify_cell::VerifyCell { kernel, parent, options: &options, program: &program },
                interrupts,
            )
            .await
        }
        Cell::Bpftrace { options, program, first_line } => {
            let outcome = trace_cell::run(
                trace_cell::TraceCell {
                    kernel,
                    parent,
                    count,
                    options: &options,
                    program: &program,
                    first_line,
                    silent: req.silent,
                },
                interrupts,
            ).await;
            // Running a program Kgent proposed, and seeing it attach, is the approval
            // that adds it to the person's own library.
            if let (CellOutcome::Ok { .. }, Some(request)) =
                (&outcome, kgent_agent::synth::trace::pinned_request(&program))
            {
                kernel.assistant.learn(&request, &program, "approved in a notebook".to_string());
            }
            outcome
        }
    }
}

fn magic_error(e: &MagicError) -> CellOutcome {
    let ename = match e {
        MagicError::UnknownMagic { .. } => "UnknownMagic",
        _ => "UsageError",
    };
    let mut tb = vec![format!("{RED}{ename}{RESET}: {e}")];
    match e {
        MagicError::UnknownMagic { .. } => {
            tb.push("%lsmagic lists the magics this kernel knows.".to_string())
        }
        MagicError::BadArguments { magic, .. } => {
            if let Some(info) = kgent_magics::MAGICS
                .iter()
                .find(|m| magic.trim_start_matches('%') == m.name)
            {
                tb.push(format!("usage: {}", info.usage));
            }
        }
        _ => {}
    }
    CellOutcome::error(ename, &e.to_string(), tb)
}
