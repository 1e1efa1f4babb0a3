//! The table of magics the kernel understands: one source for `%lsmagic`, `%help` and completion.

/// Whether a magic takes the rest of its line (`%x`) or the whole cell (`%%x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MagicKind {
    Line,
    Cell,
}

/// One magic as users see it in `%lsmagic` and `%help`.
#[derive(Clone, Copy, Debug)]
pub struct MagicInfo {
    pub name: &'static str,
    pub kind: MagicKind,
    pub usage: &'static str,
    pub summary: &'static str,
}

impl MagicInfo {
    /// The name with its `%` or `%%` prefix.
    pub fn spelled(&self) -> String {
        match self.kind {
            MagicKind::Line => format!("%{}", self.name),
            MagicKind::Cell => format!("%%{}", self.name),
        }
    }
}

pub const MAGICS: &[MagicInfo] = &[
    MagicInfo {
        name: "bpftrace",
        kind: MagicKind::Cell,
        usage: "%%bpftrace [--timeout DURATION] [-c COMMAND] [--max-lines N] [--watch] [--unsafe] [--force] [-- ARGS...]",
        summary: "Run the rest of the cell as a bpftrace program; printf output streams live, maps \
                  render as tables and charts. Stop it with the notebook's stop button. \
                  --timeout stops it after DURATION (e.g. 5s, 500ms, 2m); -c runs a shell \
                  command while tracing and stops when it exits (its pid is `cpid`); --max-lines caps the \
                  lines shown (the full output is kept in a file); --watch shows only the latest \
                  frame, starting a new one at each time() call; --unsafe allows system() and \
                  other unsafe builtins; ARGS become $1, $2, ...",
    },
    MagicInfo {
        name: "nl",
        kind: MagicKind::Cell,
        usage: "%%nl [--model NAME] [--retries N] [--hint TEXT]... [--offline] [--no-load] [--no-verify] [--run [--timeout DURATION]]",
        summary: "A request in plain English, turned into a checked and verified bpftrace \
                  program. A cell with no magic that is not a bpftrace program is read as \
                  such a request. The program is shown with the assumptions and assertions \
                  it was verified against, and proposed as a new %%bpftrace cell below; \
                  running that cell approves it. --offline answers from the verified example \
                  library only; --hint tells the model more after it gave up; --no-load \
                  skips the kernel's verifier check; --no-verify skips the assertions' \
                  proofs; --run attaches the program at once.",
    },
    MagicInfo {
        name: "verify",
        kind: MagicKind::Cell,
        usage: "%%verify [--request TEXT] [--no-annotate]",
        summary: "Verify the bpftrace program in the cell without running it: the attach \
                  points' contracts add assume(...)s, rules add assert(...)s for what the \
                  request asks (--request, or the program's `// Request:` line), and Z3 proves \
                  or refutes every assert(...), the program's own included. Shows the \
                  annotated program with each verdict; a refuted assertion is an error with \
                  its counterexample. --no-annotate checks only the program's own annotations.",
    },
    MagicInfo {
        name: "llm",
        kind: MagicKind::Line,
        usage: "%llm [offline|online|reset] [--base-url URL] [--model NAME] [--api-key-env VAR] [--timeout SECS]",
        summary: "Show the model provider natural-language cells use, or set it for this \
                  session: any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp), \
                  or offline (the verified example library only). The key is read from the \
                  environment variable VAR, never written in the notebook.",
    },
    MagicInfo {
        name: "probes",
        kind: MagicKind::Line,
        usage: "%probes [-v] [--limit N] PATTERN",
        summary: "List the attach points of the running kernel that match PATTERN \
                  (e.g. tracepoint:syscalls:sys_enter_open*, t:sched:*, *tcp*); -v adds typed fields.",
    },
    MagicInfo {
        name: "lsmagic",
        kind: MagicKind::Line,
        usage: "%lsmagic",
        summary: "List the available magics.",
    },
    MagicInfo {
        name: "help",
        kind: MagicKind::Line,
        usage: "%help [MAGIC]",
        summary: "Show how to use this kernel, or one magic. `PROBE?` in a cell shows a probe's fields.",
    },
];

/// Looks a magic up by name (without its `%` prefix) and kind.
pub fn find_magic(name: &str, kind: MagicKind) -> Option<&'static MagicInfo> {
    MAGICS.iter().find(|m| m.name == name && m.kind == kind)
}
