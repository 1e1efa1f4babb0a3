//! `kgent-verifier`: the symbolic verifier as a helper process, so that
//! neither `kgent` nor the Jupyter kernel links Z3 (slow to load, and able
//! to crash on some formulas).
//!
//! Protocol (see `kgent_agent::verifier`): one JSON request per line on
//! stdin, one JSON response per line on stdout, in order, until stdin ends.
//!
//! ```text
//! → {"id":1,"source":"tracepoint:... { ... }","request":"IPv4 and IPv6","annotate":true,"timeout_ms":200}
//! ← {"id":1,"annotated_source":"...","annotations":[...],"report":{...},"notes":[],"error":null}
//! ```
//!
//! Kernel facts (the catalog and the probe capabilities) are loaded once at
//! startup; when the catalog cannot be read the programs are verified
//! without them (field types unknown) and every response says so in its
//! `notes`. Diagnostics for people go to stderr.

use std::io::{BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use kgent_agent::contracts::{annotate, ContractSet};
use kgent_agent::facts::CatalogFacts;
use kgent_agent::verifier::{
    AnnotationData, AnnotationKindData, OriginData, VerifierRequest, VerifierResponse,
};
use kgent_frontend::ast::{Program, Stmt, StmtKind};
use kgent_frontend::visit::{self, Visitor};
use kgent_frontend::{KernelFacts, LineIndex, StaticFacts};
use kgent_verify::{verify, VerifyOptions};

/// What every request is verified against.
struct Context {
    facts: Box<dyn KernelFacts>,
    contracts: ContractSet,
    options: VerifyOptions,
    /// Said in every response (facts or contracts missing).
    notes: Vec<String>,
}

impl Context {
    fn load() -> Context {
        use kgent_catalog::{Catalog, CatalogPaths};
        let mut notes = Vec::new();
        let mut options = VerifyOptions::default();
        let facts: Box<dyn KernelFacts> = match Catalog::load(&CatalogPaths::detect()) {
            Ok(catalog) => {
                let caps = kgent_catalog::capabilities(false);
                // Integer rules follow the bpftrace that will run the program.
                if let Some(b) = &caps.bpftrace {
                    options.version = b.major_minor;
                }
                Box::new(CatalogFacts::new(Arc::new(catalog), Some(Arc::new(caps))))
            }
            Err(e) => {
                notes.push(format!(
                    "verified without kernel facts: cannot read the kernel's probe catalog ({e}); \
                     tracepoint fields are taken as uint64"
                ));
                Box::new(StaticFacts::default())
            }
        };
        let contracts = ContractSet::shipped().unwrap_or_else(|e| {
            notes.push(format!(
                "annotated without contracts: the shipped contracts do not load ({e})"
            ));
            ContractSet::default()
        });
        Context {
            facts,
            contracts,
            options,
            notes,
        }
    }

    fn serve(&self, request: VerifierRequest) -> VerifierResponse {
        let mut response = VerifierResponse {
            id: request.id,
            annotated_source: request.source.clone(),
            notes: self.notes.clone(),
            ..Default::default()
        };
        let parsed = kgent_frontend::parse(&request.source);
        if let Some(message) = parse_errors(&request.source, &parsed.diagnostics) {
            response.error = Some(format!("the program does not parse: {message}"));
            return response;
        }
        let (source, program) = if request.annotate {
            let annotated = annotate(
                request.request.as_deref().unwrap_or(""),
                &request.source,
                &parsed.program,
                self.facts.as_ref(),
                &self.contracts,
            );
            response.annotations = annotated.annotations.iter().map(Into::into).collect();
            let reparsed = kgent_frontend::parse(&annotated.source);
            if let Some(message) = parse_errors(&annotated.source, &reparsed.diagnostics) {
                response.annotated_source = annotated.source;
                response.error = Some(format!("the annotated program does not parse: {message}"));
                return response;
            }
            (annotated.source, reparsed.program)
        } else {
            response.annotations = own_annotations(&request.source, &parsed.program);
            (request.source.clone(), parsed.program)
        };
        let mut options = self.options.clone();
        if let Some(t) = request.timeout_ms {
            options.timeout_ms = t.max(1);
        }
        response.report = Some(verify(&source, &program, self.facts.as_ref(), &options));
        response.annotated_source = source;
        response
    }
}

/// The first few syntax errors, with line numbers; `None` when there are none.
fn parse_errors(source: &str, diagnostics: &[kgent_frontend::Diagnostic]) -> Option<String> {
    let lines = LineIndex::new(source);
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .take(3)
        .map(|d| {
            let lc = lines.line_col(d.span.start);
            format!("line {}:{}: {}", lc.line, lc.column, d.message)
        })
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The `assume`/`assert` statements a program already has, as written in it.
fn own_annotations(source: &str, program: &Program) -> Vec<AnnotationData> {
    struct Find<'a> {
        source: &'a str,
        lines: LineIndex,
        out: Vec<AnnotationData>,
    }
    impl Visitor for Find<'_> {
        fn visit_stmt(&mut self, stmt: &Stmt) {
            let (kind, cond, message) = match &stmt.kind {
                StmtKind::Assume(e) => (AnnotationKindData::Assume, e, None),
                StmtKind::Assert { cond, message } => (
                    AnnotationKindData::Assert,
                    cond,
                    message.as_ref().map(|m| m.text().into_owned()),
                ),
                _ => return visit::walk_stmt(self, stmt),
            };
            let span = cond.span;
            let expr = self
                .source
                .get(span.start as usize..span.end as usize)
                .unwrap_or_default()
                .to_string();
            self.out.push(AnnotationData {
                kind,
                expr,
                origin: OriginData::Request,
                line: self.lines.line_col(stmt.span.start).line,
                why: message.unwrap_or_else(|| "written in the program".to_string()),
            });
        }
    }
    let mut f = Find {
        source,
        lines: LineIndex::new(source),
        out: Vec::new(),
    };
    f.visit_program(program);
    f.out
}

/// The response to one line: the request's, or an error for a line that is
/// not a request (with its `id` when one can be read).
fn answer(context: &Context, line: &str) -> VerifierResponse {
    let request: VerifierRequest = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => {
            let id = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
                .unwrap_or(0);
            return VerifierResponse {
                id,
                error: Some(format!("not a request: {e}")),
                notes: context.notes.clone(),
                ..Default::default()
            };
        }
    };
    let id = request.id;
    match catch_unwind(AssertUnwindSafe(|| context.serve(request))) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            VerifierResponse {
                id,
                error: Some(format!("internal error in the verifier: {what}")),
                notes: context.notes.clone(),
                ..Default::default()
            }
        }
    }
}

fn main() {
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--help" || a == "-h")
    {
        println!(
            "kgent-verifier: reads one JSON request per line on stdin, writes one JSON \
             response per line on stdout (see kgent_agent::verifier)."
        );
        return;
    }
    let context = Context::load();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let response = answer(&context, &line);
        let text = serde_json::to_string(&response).unwrap_or_else(|e| {
            format!(
                "{{\"id\":{},\"annotated_source\":\"\",\"error\":\"cannot serialise the response: {}\"}}",
                response.id,
                e.to_string().replace('"', "'")
            )
        });
        if writeln!(stdout, "{text}")
            .and_then(|_| stdout.flush())
            .is_err()
        {
            break; // The client is gone.
        }
    }
    // Exit without unmapping BTF and freeing the catalog piece by piece.
    std::mem::forget(context);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgent_agent::verifier::Report;

    fn context() -> Context {
        Context {
            facts: Box::new(StaticFacts::default()),
            contracts: ContractSet::default(),
            options: VerifyOptions::default(),
            notes: vec!["no facts".into()],
        }
    }

    #[test]
    fn a_refuted_assertion_comes_back_as_data() {
        let source = "kretprobe:vfs_read { if (retval > 0) { printf(\"read %ld\\n\", retval); assert((int64)retval > 0, \"ok\"); } }";
        let line = serde_json::to_string(&VerifierRequest::new(source)).unwrap();
        let r = answer(&context(), &line);
        assert_eq!(r.error, None);
        assert_eq!(r.notes, ["no facts"]);
        assert_eq!(r.annotations.len(), 1);
        assert_eq!(r.annotations[0].origin, OriginData::Request);
        assert_eq!(r.annotations[0].expr, "(int64)retval > 0");
        let report = r.report.unwrap();
        assert!(report.any_refuted());
        // What is written reads back: the client parses it with the same type.
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.assertions[0].verdict, report.assertions[0].verdict);
    }

    #[test]
    fn what_is_not_a_request_is_an_error_with_its_id() {
        let r = answer(&context(), r#"{"id": 9, "sauce": 1}"#);
        assert_eq!(r.id, 9);
        assert!(r.error.unwrap().starts_with("not a request"));
        let r = answer(&context(), r#"{"id": 4, "source": "kprobe:f { "}"#);
        assert_eq!(r.id, 4);
        assert!(r.error.unwrap().contains("does not parse"));
        assert!(r.report.is_none());
    }
}
