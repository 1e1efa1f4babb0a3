//! `kgent check`: the front end's diagnostics for a program file, for people or as JSON,
//! optionally followed by the real load check in the kernel.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use kgent_frontend::{parse, render_human, to_json, Diagnostic};

/// What `kgent check` was asked to do.
pub struct CheckArgs<'a> {
    pub file: &'a Path,
    pub json: bool,
    pub load: bool,
    pub allow_unsafe: bool,
}

/// Everything found about one program, in order: syntax, kernel checks, load.
pub struct Findings {
    pub program: kgent_frontend::Program,
    pub diagnostics: Vec<Diagnostic>,
    /// Whether the load check ran (it is skipped while errors remain).
    pub loaded: bool,
}

impl Findings {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses, checks against the running kernel, and load-checks when asked and clean.
pub async fn check_source(
    source: &str,
    knowledge: &crate::knowledge::Knowledge,
    allow_unsafe: bool,
    load: bool,
) -> Findings {
    let parsed = parse(source);
    let mut diagnostics = parsed.diagnostics.clone();
    if !parsed.has_errors() {
        diagnostics.extend(kernel_checks(&parsed.program, source, knowledge, allow_unsafe).await);
    }
    let mut loaded = false;
    if load && !diagnostics.iter().any(Diagnostic::is_error) {
        match tokio::task::spawn_blocking(kgent_catalog::find_bpftrace)
            .await
            .ok()
            .flatten()
        {
            Some(info) => {
                let result = kgent_agent::loadcheck::load_check(
                    &info.path,
                    source,
                    &parsed.program,
                    allow_unsafe,
                )
                .await;
                diagnostics.extend(result.diagnostics);
                loaded = true;
            }
            None => diagnostics.push(Diagnostic::error(
                "bpftrace-missing",
                "the load check needs bpftrace, which is not installed (apt-get install bpftrace)",
                kgent_frontend::Span { start: 0, end: 0 },
            )),
        }
    }
    Findings {
        program: parsed.program,
        diagnostics,
        loaded,
    }
}

/// [`check_source`] without the load check, done on this thread: a short-lived
/// `kgent check` then needs no async runtime (nor its blocking-pool thread).
fn check_source_now(source: &str, allow_unsafe: bool) -> Findings {
    let parsed = parse(source);
    let mut diagnostics = parsed.diagnostics.clone();
    if !parsed.has_errors() {
        diagnostics.extend(kernel_checks_now(&parsed.program, source, allow_unsafe));
    }
    Findings {
        program: parsed.program,
        diagnostics,
        loaded: false,
    }
}

/// The checks that need kernel facts; skipped, with a note, when the catalog is unreadable.
async fn kernel_checks(
    program: &kgent_frontend::Program,
    source: &str,
    knowledge: &crate::knowledge::Knowledge,
    allow_unsafe: bool,
) -> Vec<Diagnostic> {
    let catalog = match knowledge.catalog().await {
        Ok(c) => c,
        Err(e) => return vec![catalog_unavailable(&e)],
    };
    let caps = knowledge.caps().await;
    let facts = kgent_agent::facts::CatalogFacts::new(catalog, Some(caps));
    checks_with(program, source, &facts, allow_unsafe)
}

/// [`kernel_checks`] on this thread for the short-lived `kgent check` process, loading
/// what `Knowledge` would load.
fn kernel_checks_now(
    program: &kgent_frontend::Program,
    source: &str,
    allow_unsafe: bool,
) -> Vec<Diagnostic> {
    use kgent_catalog::{Catalog, CatalogPaths};
    // Find tracefs once for both the catalog and the capabilities.
    let tracefs = kgent_catalog::tracefs_state();
    let catalog = match Catalog::load(&CatalogPaths::for_tracefs(&tracefs)) {
        Ok(c) => Arc::new(c),
        Err(e) => return vec![catalog_unavailable(&e.to_string())],
    };
    let caps = Arc::new(kgent_catalog::capabilities_given(tracefs, false));
    let facts = kgent_agent::facts::CatalogFacts::new(catalog, Some(caps));
    let diagnostics = checks_with(program, source, &facts, allow_unsafe);
    // The process ends right after: unmapping BTF and freeing the catalog's tables one by
    // one (~0.2 ms) would only repeat what exit does at once.
    std::mem::forget(facts);
    diagnostics
}

fn catalog_unavailable(reason: &str) -> Diagnostic {
    Diagnostic::new(
        kgent_frontend::Severity::Note,
        "catalog-unavailable",
        format!("kernel checks skipped: cannot read the kernel's probe catalog ({reason})"),
        kgent_frontend::Span { start: 0, end: 0 },
    )
}

/// The front end's checks against `facts`, however they were loaded.
fn checks_with(
    program: &kgent_frontend::Program,
    source: &str,
    facts: &kgent_agent::facts::CatalogFacts,
    allow_unsafe: bool,
) -> Vec<Diagnostic> {
    let mut options = kgent_frontend::CheckOptions {
        allow_unsafe,
        ..Default::default()
    };
    // Which builtins and syntax exist depends on the bpftrace that will run it.
    if let Some(info) = facts.caps.as_ref().and_then(|c| c.bpftrace.as_ref()) {
        options.version = info.major_minor;
    }
    kgent_frontend::check(program, source, facts, &options)
}

/// `kgent check` with `--load`, which runs bpftrace and so needs the async runtime.
pub async fn run(args: CheckArgs<'_>) -> ExitCode {
    let (name, source) = match read_source(args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kgent check: {e}");
            return ExitCode::from(2);
        }
    };
    let knowledge = crate::knowledge::Knowledge::new();
    let findings = check_source(&source, &knowledge, args.allow_unsafe, args.load).await;
    report(&args, &name, &source, &findings)
}

/// `kgent check` without `--load`: everything on this thread, no runtime.
pub fn run_now(args: CheckArgs<'_>) -> ExitCode {
    debug_assert!(!args.load, "the load check needs `run`");
    let (name, source) = match read_source(args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kgent check: {e}");
            return ExitCode::from(2);
        }
    };
    let findings = check_source_now(&source, args.allow_unsafe);
    report(&args, &name, &source, &findings)
}

/// Prints the findings (for people, or as JSON) and gives the exit status.
fn report(args: &CheckArgs<'_>, name: &str, source: &str, findings: &Findings) -> ExitCode {
    if args.json {
        let value = serde_json::json!({
            "file": name,
            "ok": !findings.has_errors(),
            "loaded": findings.loaded,
            "diagnostics": to_json(source, &findings.diagnostics),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if findings.diagnostics.is_empty() {
        let how = if findings.loaded {
            "checked and loaded in the kernel"
        } else {
            "checked"
        };
        eprintln!("{name}: no problems found ({how})");
    } else {
        let color = std::io::stderr().is_terminal();
        eprint!(
            "{}",
            render_human(source, name, &findings.diagnostics, color)
        );
    }
    if findings.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A program file's display name and text; `-` is standard input.
pub(crate) fn read_source(file: &Path) -> Result<(String, String), String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(("<stdin>".to_string(), s));
    }
    let s = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok((file.display().to_string(), s))
}
