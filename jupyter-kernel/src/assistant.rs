//! The natural-language side of a kernel session: the example library and
//! its retriever (built once, in the background), which LLM to use (`%llm`),
//! the verifier process (one per session, started on first use), and which
//! programs were already offered as new cells.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use kgent_agent::setup::{self, LlmChoice};
use kgent_agent::verifier::Verifier;
use kgent_retrieval::{Approved, UserLibrary};
use tokio::sync::Mutex as AsyncMutex;

pub use kgent_agent::setup::SessionRetrieval as Retrieval;

#[derive(Default)]
pub struct Assistant {
    retrieval: AsyncMutex<Option<Result<Arc<Retrieval>, String>>>,
    choice: Mutex<LlmChoice>,
    /// Cache keys whose program was offered as a new cell in this session: a
    /// re-run does not insert the same cell again.
    offered: Mutex<HashSet<String>>,
    /// The `kgent-verifier` client, or why there is none (not installed).
    verifier: OnceLock<Result<Arc<Verifier>, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Assistant {
    /// The retriever, built on first use (the bundled embedder loads and the
    /// vector index is opened or built: a second or so; then instant).
    pub async fn retrieval(&self) -> Result<Arc<Retrieval>, String> {
        let mut slot = self.retrieval.lock().await;
        if let Some(r) = slot.as_ref() {
            return r.clone();
        }
        let built = tokio::task::spawn_blocking(build_retrieval)
            .await
            .unwrap_or_else(|e| Err(format!("building the retriever failed: {e}")));
        *slot = Some(built.clone());
        built
    }

    /// Starts building the retriever so the first request does not wait.
    pub fn warm_up(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.retrieval().await;
        });
    }

    pub fn choice(&self) -> LlmChoice {
        lock(&self.choice).clone()
    }

    pub fn set_choice(&self, choice: LlmChoice) {
        *lock(&self.choice) = choice;
    }

    /// The session's verifier client (its process starts with the first
    /// request and ends with the kernel), or why there is none.
    pub fn verifier(&self) -> Result<Arc<Verifier>, String> {
        self.verifier
            .get_or_init(|| Verifier::locate().map(Arc::new).map_err(|e| e.to_string()))
            .clone()
    }

    /// True the first time `key` is offered in this session.
    pub fn first_offer(&self, key: &str) -> bool {
        lock(&self.offered).insert(key.to_string())
    }
}

fn build_retrieval() -> Result<Arc<Retrieval>, String> {
    let r = setup::session_retrieval()?;
    for w in &r.warnings {
        eprintln!("kgent: {w}");
    }
    Ok(Arc::new(r))
}

/// The probe types `program` uses, as the example library names them.
fn probe_types(program: &str) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for point in kgent_agent::attach_points(program) {
        let name = kgent_catalog::ProbeType::from_provider(&point.provider)
            .map(|t| t.name().to_string())
            .unwrap_or(point.provider);
        if !types.contains(&name) {
            types.push(name);
        }
    }
    types
}

/// Stores one approved program; the message says what happened, for the log.
fn store_approved(request: &str, program: &str, source: String) -> Result<String, String> {
    let user = UserLibrary::open_default().map_err(|e| e.to_string())?;
    let approved = Approved::new(request, program.trim(), probe_types(program), source);
    let example = user.add(approved).map_err(|e| e.to_string())?;
    Ok(example.id)
}

impl Assistant {
    /// Adds an approved program to the person's library and makes later
    /// requests search it. Runs in the background: a failure is logged, never
    /// shown as the cell's failure (the program did run).
    pub fn learn(self: &Arc<Self>, request: &str, program: &str, source: String) {
        let this = self.clone();
        let (request, program) = (request.to_string(), strip_header(program));
        tokio::spawn(async move {
            let stored =
                tokio::task::spawn_blocking(move || store_approved(&request, &program, source))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            match stored {
                Ok(id) => {
                    // Rebuilt off the executor: only the new texts are embedded.
                    let rebuilt = tokio::task::spawn_blocking(build_retrieval)
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                    if let Ok(r) = rebuilt {
                        *this.retrieval.lock().await = Some(Ok(r));
                    }
                    eprintln!("kgent: approved program {id} joined your library");
                }
                Err(e) => eprintln!("kgent: could not keep the approved program: {e}"),
            }
        });
    }
}

/// The program without the `// Request:` / `// Kgent:` header a pinned cell starts with.
fn strip_header(program: &str) -> String {
    let mut lines = program.lines().peekable();
    while let Some(l) = lines.peek() {
        let t = l.trim();
        if t.starts_with(kgent_agent::synth::trace::REQUEST_PREFIX.trim_end())
            || t.starts_with(kgent_agent::synth::trace::SOURCE_PREFIX.trim_end())
        {
            lines.next();
        } else {
            break;
        }
    }
    lines.collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_types_use_the_library_names() {
        let p = "BEGIN { }\nt:syscalls:sys_enter_openat { }\ntracepoint:sched:sched_switch { }\ni:s:1 { exit(); }";
        assert_eq!(probe_types(p), vec!["BEGIN", "tracepoint", "interval"]);
    }

    #[test]
    fn the_pinned_header_is_not_part_of_the_learned_program() {
        let p =
            "// Request: r\n// Kgent: retrieved\n// a comment of the program\nBEGIN { exit(); }";
        assert_eq!(
            strip_header(p),
            "// a comment of the program\nBEGIN { exit(); }"
        );
    }
}
