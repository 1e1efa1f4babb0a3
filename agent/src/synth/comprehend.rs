//! Comprehension by the model: given the request, the accepted program and the
//! contracts of its attach points, the model writes `assume(...)` and
//! `assert(...)` annotations saying what the request means. Its answer is
//! accepted only if removing the annotations gives back exactly the program
//! it was shown: the model annotates, it never edits code here.

use kgent_frontend::{parse, print_program, strip_annotations, Diagnostic};
use kgent_llm::{extract_program, ChatMessage};

/// The system prompt: what annotations are and what to write.
pub const COMPREHENSION_SYSTEM: &str = "You annotate bpftrace programs for a verifier. \
Given a request in English, a bpftrace program that is meant to do it, and the contracts \
of the attach points it uses, insert annotations that say what the request means:\n\
- `assume(COND);` at the start of a probe body: a fact that holds whenever the probe \
fires (take these from the contracts; never invent them).\n\
- `assert(COND, \"why\");` where the program must satisfy something for the request to be \
met, typically just before a printf, about the values printed or the filter (for example \
that both AF_INET and AF_INET6 events get through when both were asked for, or that a \
duration printed in milliseconds is the nanosecond delta divided by 1000000).\n\
COND is a bpftrace boolean expression over the probe's fields, builtins and $variables \
already assigned at that point. Do not change, add or remove any other code. Reply with \
the whole annotated program in one ```bpftrace fence; if nothing needs asserting, reply \
with the program unchanged.";

/// The messages asking for annotations of `program`.
pub fn comprehension_messages(request: &str, program: &str, contracts: &str) -> Vec<ChatMessage> {
    let contracts = if contracts.trim().is_empty() {
        "(none known for these attach points)"
    } else {
        contracts.trim()
    };
    vec![
        ChatMessage::system(COMPREHENSION_SYSTEM),
        ChatMessage::user(format!(
            "Request: {}\n\nContracts:\n{contracts}\n\nProgram:\n```bpftrace\n{}\n```",
            request.trim(),
            program.trim_end()
        )),
    ]
}

/// Why a comprehension reply was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    NoProgram,
    /// The annotated text does not parse (first error).
    DoesNotParse(String),
    /// Removing the annotations does not give the original program back.
    ChangedCode,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::NoProgram => write!(f, "the reply had no program"),
            Rejected::DoesNotParse(e) => write!(f, "the annotated program does not parse: {e}"),
            Rejected::ChangedCode => write!(
                f,
                "the reply changed the program's code, not only its annotations"
            ),
        }
    }
}

/// The annotated program in `reply`, if it is `original` plus annotations.
pub fn accept_annotated(original: &str, reply: &str) -> Result<String, Rejected> {
    let annotated = extract_program(reply).ok_or(Rejected::NoProgram)?;
    let parsed = parse(&annotated);
    if let Some(e) = parsed.diagnostics.iter().find(|d| d.is_error()) {
        return Err(Rejected::DoesNotParse(e.message.clone()));
    }
    let stripped = strip_annotations(&annotated, &parsed.program);
    if same_code(&stripped, original) {
        Ok(annotated)
    } else {
        Err(Rejected::ChangedCode)
    }
}

/// Equal programs up to layout and comments (the printer normalises both).
fn same_code(a: &str, b: &str) -> bool {
    let (pa, pb) = (parse(a), parse(b));
    let clean = |d: &[Diagnostic]| !d.iter().any(Diagnostic::is_error);
    clean(&pa.diagnostics)
        && clean(&pb.diagnostics)
        && print_program(&pa.program) == print_program(&pb.program)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: &str = "tracepoint:sock:inet_sock_set_state\n/args.family == 2/\n{\n    printf(\"%d\\n\", args.newstate);\n}\n";

    #[test]
    fn annotations_only_are_accepted() {
        let reply = "```bpftrace\ntracepoint:sock:inet_sock_set_state\n/args.family == 2/\n{\n    assume(args.family == 2 || args.family == 10);\n    assert(args.family == 10 || args.family == 2, \"both families reach the printf\");\n    printf(\"%d\\n\", args.newstate);\n}\n```";
        let annotated = accept_annotated(PROGRAM, reply).unwrap();
        assert!(annotated.contains("assume(") && annotated.contains("assert("));
    }

    #[test]
    fn edited_code_or_no_program_is_rejected() {
        let edited = "```bpftrace\ntracepoint:sock:inet_sock_set_state\n/args.family == 2 || args.family == 10/\n{\n    printf(\"%d\\n\", args.newstate);\n}\n```";
        assert_eq!(
            accept_annotated(PROGRAM, edited),
            Err(Rejected::ChangedCode)
        );
        assert_eq!(
            accept_annotated(PROGRAM, "looks fine to me"),
            Err(Rejected::NoProgram)
        );
        let broken = "```bpftrace\ntracepoint:sock:inet_sock_set_state\n{\n    assert(args.family ==, \"x\");\n}\n```";
        assert!(matches!(
            accept_annotated(PROGRAM, broken),
            Err(Rejected::DoesNotParse(_))
        ));
    }

    #[test]
    fn the_prompt_carries_request_contracts_and_program() {
        let m = comprehension_messages("IPv4 and IPv6 connections", PROGRAM, "family in {2, 10}");
        assert_eq!(m.len(), 2);
        assert!(
            m[1].content.contains("IPv4 and IPv6") && m[1].content.contains("family in {2, 10}")
        );
        assert!(m[1].content.contains("inet_sock_set_state"));
    }
}
