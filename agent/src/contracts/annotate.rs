//! Rule-based comprehension: a program with `assume(...)` from the contracts
//! of its attach points and `assert(...)` from the rules, each annotation
//! recording where it came from.
//!
//! Annotations are inserted into the text, never by reprinting, so the
//! program keeps its layout and comments: an annotation goes on a line of its
//! own where the code allows (then `strip_annotations` gives back the
//! original text exactly), inline otherwise.

use std::collections::BTreeSet;

use kgent_frontend::ast::*;
use kgent_frontend::{KernelFacts, Span};
use serde::Serialize;

use super::expr;
use super::rules;
use super::{canonical_attach, canonical_attach_text, ConditionOrigin, Contract, ContractSet};

/// A program with its annotations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Annotated {
    /// The program text with the annotations inserted.
    pub source: String,
    /// Every annotation of `source` (inserted or already there), in text order.
    pub annotations: Vec<Annotation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Annotation {
    pub kind: AnnotationKind,
    /// The condition, a bpftrace boolean expression.
    pub expr: String,
    pub origin: Origin,
    /// 1-based line in [`Annotated::source`].
    pub line: u32,
    pub why: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationKind {
    Assume,
    Assert,
}

/// Where an annotation came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Origin {
    /// A precondition of the attach point's contract (hand-written or derived
    /// from its types); `attach_point` names the contract (a family
    /// contract's pattern, or the attach points it holds for).
    Spec { attach_point: String },
    /// One of [`super::RULES`].
    Rule { name: String },
    /// What the request means, written by whoever wrote the candidate (the
    /// LLM): annotations already in the program text.
    Request,
}

/// Where to insert one annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// First in a block (`span` is the block's, from `{`); `first` is the
    /// block's first statement, for its indentation.
    BlockStart { block: Span, first: Option<Span> },
    /// Right before a statement.
    Before(Span),
}

impl Place {
    pub(crate) fn block_start(block: &Block) -> Place {
        Place::BlockStart {
            block: block.span,
            first: block.stmts.first().map(|s| s.span),
        }
    }
}

/// An annotation to insert.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub place: Place,
    pub kind: AnnotationKind,
    pub expr: String,
    pub origin: Origin,
    pub why: String,
    /// The `assert` message (short); unused for `assume`.
    pub message: String,
}

/// One probe with the contracts of the attach points it fires at.
pub(crate) struct ProbeView<'a> {
    pub probe: &'a Probe,
    /// Merged contracts, one per concrete attach point (wildcards expanded,
    /// at most [`MAX_EXPANSION`]; beyond that, the pattern's own contract).
    pub contracts: Vec<Contract>,
}

impl ProbeView<'_> {
    /// `name`'s spec when every attach point has it with the same meaning
    /// for the rules (unit, errno, byte order).
    pub(crate) fn common_field(&self, name: &str) -> Option<&super::FieldSpec> {
        let first = self.contracts.first()?.field(name)?;
        self.contracts[1..]
            .iter()
            .all(|c| {
                c.field(name).is_some_and(|f| {
                    f.unit == first.unit
                        && f.errno == first.errno
                        && f.byte_order == first.byte_order
                })
            })
            .then_some(first)
    }
}

/// Wildcards expanding to more attach points than this are not expanded.
const MAX_EXPANSION: usize = 64;

/// Annotates `source` (whose parse is `program`) for `request`:
///
/// 1. at the start of each probe's body, `assume(...)` for every
///    precondition that holds at all of the probe's attach points and reads
///    a context value the probe reads (the others say nothing about it);
/// 2. `assert(...)` from each rule in [`super::RULES`] that applies;
/// 3. annotations already in the program are kept and listed as
///    [`Origin::Request`].
///
/// Never fails: a program the rules do not understand gets fewer
/// annotations. The result parses whenever `source` does, and
/// `strip_annotations` of it is `source` again up to layout (exactly, when
/// every annotation could go on a line of its own).
pub fn annotate(
    request: &str,
    source: &str,
    program: &Program,
    facts: &dyn KernelFacts,
    contracts: &ContractSet,
) -> Annotated {
    let views: Vec<ProbeView<'_>> = program
        .probes()
        .map(|probe| ProbeView {
            probe,
            contracts: probe_contracts(probe, facts, contracts),
        })
        .collect();

    let mut planned = Vec::new();
    for view in &views {
        spec_assumes(view, &mut planned);
    }
    let input = rules::Input {
        request,
        source,
        program,
        facts,
        probes: &views,
    };
    rules::run(&input, &mut planned);

    let existing = existing_annotations(program);
    // What the program already says (e.g. annotated before) is not said twice.
    let bodies: Vec<Span> = program.probes().map(|p| p.body.span).collect();
    let body_of = |offset: u32| {
        bodies
            .iter()
            .position(|b| b.start <= offset && offset < b.end)
    };
    let said: BTreeSet<(Option<usize>, AnnotationKind, String)> = existing
        .iter()
        .map(|(span, a)| (body_of(span.start), a.kind, a.expr.clone()))
        .collect();
    planned.retain(|p| {
        let at = match p.place {
            Place::BlockStart { block, .. } => block.start,
            Place::Before(span) => span.start,
        };
        !said.contains(&(body_of(at), p.kind, expr::normalize(&p.expr)))
    });
    let annotated = render(source, &planned, &existing);
    // Insertions go only between statements, with expressions the printer
    // made or the loader parsed, so this holds; if it ever did not, a
    // program without annotations is better than one that does not parse.
    let broke = kgent_frontend::parse(&annotated.source).has_errors()
        && !kgent_frontend::parse(source).has_errors();
    if broke {
        return render(source, &[], &existing);
    }
    annotated
}

/// The merged contract of every concrete attach point of `probe`.
fn probe_contracts(probe: &Probe, facts: &dyn KernelFacts, set: &ContractSet) -> Vec<Contract> {
    let mut out = Vec::new();
    for ap in &probe.attach_points {
        let canonical = canonical_attach(ap);
        if !ap.wildcard {
            out.push(set.contract_for(&canonical, facts));
            continue;
        }
        let found = facts.matching_probes(&canonical, MAX_EXPANSION);
        if found.total == 0 || found.total > MAX_EXPANSION || found.problem.is_some() {
            out.push(set.contract_for(&canonical, facts));
            continue;
        }
        for name in found.names {
            let name = canonical_attach_text(&name).unwrap_or(name);
            out.push(set.contract_for(&name, facts));
        }
    }
    out
}

/// `assume(...)` for the preconditions common to all attach points of the
/// probe that read something the probe reads.
fn spec_assumes(view: &ProbeView<'_>, out: &mut Vec<Planned>) {
    let Some((first, rest)) = view.contracts.split_first() else {
        return;
    };
    let read = expr::probe_atoms(view.probe);
    let mut seen = BTreeSet::new();
    for cond in &first.pre {
        let key = expr::normalize(&cond.expr);
        if !seen.insert(key.clone()) {
            continue;
        }
        // Holds at every attach point: each contract has it.
        let mut attaches = vec![cond.attach.clone()];
        let everywhere = rest.iter().all(|c| {
            c.pre.iter().any(|p| {
                let same = expr::normalize(&p.expr) == key;
                if same && !attaches.contains(&p.attach) {
                    attaches.push(p.attach.clone());
                }
                same
            })
        });
        if !everywhere {
            continue;
        }
        let Some(parsed) = expr::parse_expr(&cond.expr) else {
            continue;
        };
        let mut atoms = BTreeSet::new();
        expr::atoms(&parsed, &mut atoms);
        if atoms.is_disjoint(&read) {
            continue;
        }
        let why = match &cond.origin {
            ConditionOrigin::Derived => format!("from the field's type: {}", cond.why),
            ConditionOrigin::File { path, line } => format!("{} ({path}:{line})", cond.why),
        };
        out.push(Planned {
            place: Place::block_start(&view.probe.body),
            kind: AnnotationKind::Assume,
            expr: cond.expr.clone(),
            origin: Origin::Spec {
                attach_point: attaches.join(", "),
            },
            why,
            message: String::new(),
        });
    }
}

/// Annotations already in the program, with their statement spans.
fn existing_annotations(program: &Program) -> Vec<(Span, Annotation)> {
    use kgent_frontend::visit::{self, Visitor};
    struct Find {
        out: Vec<(Span, Annotation)>,
    }
    impl Visitor for Find {
        fn visit_stmt(&mut self, stmt: &Stmt) {
            let (kind, cond, message) = match &stmt.kind {
                StmtKind::Assume(e) => (AnnotationKind::Assume, e, None),
                StmtKind::Assert { cond, message } => (
                    AnnotationKind::Assert,
                    cond,
                    message.as_ref().map(|m| m.text().into_owned()),
                ),
                _ => return visit::walk_stmt(self, stmt),
            };
            self.out.push((
                stmt.span,
                Annotation {
                    kind,
                    expr: expr::text(cond),
                    origin: Origin::Request,
                    line: 0,
                    why: message.unwrap_or_else(|| "written in the candidate program".to_string()),
                },
            ));
        }
    }
    let mut f = Find { out: Vec::new() };
    f.visit_program(program);
    f.out
}

/// An annotation statement as text.
fn statement(p: &Planned) -> String {
    match p.kind {
        AnnotationKind::Assume => format!("assume({});", p.expr),
        AnnotationKind::Assert => {
            let message: String = p
                .message
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                .collect();
            let message = message.replace('\\', "\\\\").replace('"', "\\\"");
            format!("assert({}, \"{message}\");", p.expr)
        }
    }
}

/// The whitespace a line starts with.
fn indentation(line: &str) -> &str {
    let end = line.len() - line.trim_start_matches([' ', '\t']).len();
    &line[..end]
}

fn line_start(source: &str, offset: usize) -> usize {
    source[..offset].rfind('\n').map_or(0, |i| i + 1)
}

fn only_space_before(source: &str, offset: usize) -> bool {
    source[line_start(source, offset)..offset]
        .bytes()
        .all(|b| b == b' ' || b == b'\t')
}

struct Insertion {
    at: usize,
    prefix: String,
    stmt: String,
    suffix: String,
    /// Index into the planned annotations.
    index: usize,
}

fn insertion(source: &str, p: &Planned, index: usize) -> Option<Insertion> {
    let stmt = statement(p);
    match p.place {
        Place::BlockStart { block, first } => {
            let open = block.start as usize;
            if source.as_bytes().get(open) != Some(&b'{') {
                return None;
            }
            let eol = source[open..].find('\n').map_or(source.len(), |i| open + i);
            let rest = source[open + 1..eol].trim();
            let line_indent = indentation(&source[line_start(source, open)..]);
            let indent = match first {
                Some(s)
                    if (s.start as usize) > eol && only_space_before(source, s.start as usize) =>
                {
                    indentation(&source[line_start(source, s.start as usize)..]).to_string()
                }
                _ => format!("{line_indent}    "),
            };
            if rest.is_empty() || rest.starts_with("//") {
                // A line of its own after the `{` line.
                Some(Insertion {
                    at: eol,
                    prefix: format!("\n{indent}"),
                    stmt,
                    suffix: String::new(),
                    index,
                })
            } else {
                Some(Insertion {
                    at: open + 1,
                    prefix: " ".to_string(),
                    stmt,
                    suffix: String::new(),
                    index,
                })
            }
        }
        Place::Before(span) => {
            let start = span.start as usize;
            if start > source.len() {
                return None;
            }
            if only_space_before(source, start) {
                let ls = line_start(source, start);
                Some(Insertion {
                    at: ls,
                    prefix: source[ls..start].to_string(),
                    stmt,
                    suffix: "\n".to_string(),
                    index,
                })
            } else {
                Some(Insertion {
                    at: start,
                    prefix: String::new(),
                    stmt,
                    suffix: " ".to_string(),
                    index,
                })
            }
        }
    }
}

fn line_at(text: &str, offset: usize) -> u32 {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u32
        + 1
}

/// Inserts `planned` into `source`; lists them with `existing`, by position.
fn render(source: &str, planned: &[Planned], existing: &[(Span, Annotation)]) -> Annotated {
    let mut inserts: Vec<Insertion> = planned
        .iter()
        .enumerate()
        .filter_map(|(i, p)| insertion(source, p, i))
        .collect();
    inserts.sort_by_key(|ins| (ins.at, ins.index));

    let mut out = String::with_capacity(source.len() + inserts.len() * 64);
    let mut copied = 0;
    // (offset of the statement in `out`, annotation)
    let mut placed: Vec<(usize, Annotation)> = Vec::new();
    let mut shifts: Vec<(usize, usize)> = Vec::new(); // (source offset, bytes inserted there)
    for ins in &inserts {
        out.push_str(&source[copied..ins.at]);
        copied = ins.at;
        out.push_str(&ins.prefix);
        let pos = out.len();
        out.push_str(&ins.stmt);
        out.push_str(&ins.suffix);
        shifts.push((ins.at, ins.prefix.len() + ins.stmt.len() + ins.suffix.len()));
        let p = &planned[ins.index];
        placed.push((
            pos,
            Annotation {
                kind: p.kind,
                expr: p.expr.clone(),
                origin: p.origin.clone(),
                line: 0,
                why: p.why.clone(),
            },
        ));
    }
    out.push_str(&source[copied..]);

    for (span, a) in existing {
        let old = span.start as usize;
        let shift: usize = shifts
            .iter()
            .filter(|(at, _)| *at <= old)
            .map(|(_, n)| n)
            .sum();
        placed.push((old + shift, a.clone()));
    }
    placed.sort_by_key(|(pos, _)| *pos);
    let annotations = placed
        .into_iter()
        .map(|(pos, mut a)| {
            a.line = line_at(&out, pos);
            a
        })
        .collect();
    Annotated {
        source: out,
        annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kgent_frontend::{parse, print_program, strip_annotations, StaticFacts};

    fn planned(place: Place, kind: AnnotationKind, e: &str) -> Planned {
        Planned {
            place,
            kind,
            expr: e.to_string(),
            origin: Origin::Rule { name: "t".into() },
            why: "w".into(),
            message: "say \"why\"".into(),
        }
    }

    fn first_probe(p: &Program) -> &Probe {
        p.probes().next().unwrap()
    }

    #[test]
    fn annotations_on_their_own_lines_strip_back_exactly() {
        let source = "// c\ntracepoint:a:b // x\n{ // body\n    $x = 1;\n    if ($x) {\n        printf(\"%d\\n\", $x);\n    }\n}\n";
        let program = parse(source).program;
        let probe = first_probe(&program);
        let StmtKind::If(ifs) = &probe.body.stmts[1].kind else {
            panic!()
        };
        let plans = vec![
            planned(
                Place::block_start(&probe.body),
                AnnotationKind::Assume,
                "pid > 0",
            ),
            planned(
                Place::Before(ifs.then_block.stmts[0].span),
                AnnotationKind::Assert,
                "$x == 1",
            ),
            planned(
                Place::block_start(&ifs.then_block),
                AnnotationKind::Assert,
                "$x != 0",
            ),
        ];
        let out = render(source, &plans, &[]);
        assert_eq!(
            out.source,
            "// c\ntracepoint:a:b // x\n{ // body\n    assume(pid > 0);\n    $x = 1;\n    if ($x) {\n        assert($x != 0, \"say \\\"why\\\"\");\n        assert($x == 1, \"say \\\"why\\\"\");\n        printf(\"%d\\n\", $x);\n    }\n}\n"
        );
        let lines: Vec<u32> = out.annotations.iter().map(|a| a.line).collect();
        assert_eq!(lines, [4, 7, 8]);
        let reparsed = parse(&out.source);
        assert!(!reparsed.has_errors());
        assert_eq!(strip_annotations(&out.source, &reparsed.program), source);
    }

    #[test]
    fn one_line_bodies_get_inline_annotations() {
        let source = "BEGIN { printf(\"hi\\n\"); exit(); }";
        let program = parse(source).program;
        let probe = first_probe(&program);
        let plans = vec![
            planned(
                Place::block_start(&probe.body),
                AnnotationKind::Assume,
                "pid > 0",
            ),
            planned(
                Place::Before(probe.body.stmts[1].span),
                AnnotationKind::Assert,
                "1 == 1",
            ),
        ];
        let out = render(source, &plans, &[]);
        assert_eq!(
            out.source,
            "BEGIN { assume(pid > 0); printf(\"hi\\n\"); assert(1 == 1, \"say \\\"why\\\"\"); exit(); }"
        );
        let reparsed = parse(&out.source);
        assert!(!reparsed.has_errors());
        let stripped = strip_annotations(&out.source, &reparsed.program);
        assert_eq!(
            print_program(&parse(&stripped).program),
            print_program(&program)
        );
    }

    #[test]
    fn a_second_pass_adds_nothing() {
        let source = "tracepoint:sock:inet_sock_set_state\n/args->family == 2/\n{\n    printf(\"%d\\n\", args->dport);\n}\n";
        let set = ContractSet::shipped().unwrap();
        let facts = StaticFacts::default();
        let once = annotate(
            "IPv6 connections",
            source,
            &parse(source).program,
            &facts,
            &set,
        );
        assert!(once.annotations.len() >= 2, "{once:?}");
        let twice = annotate(
            "IPv6 connections",
            &once.source,
            &parse(&once.source).program,
            &facts,
            &set,
        );
        assert_eq!(twice.source, once.source);
        assert_eq!(twice.annotations.len(), once.annotations.len());
        assert!(twice
            .annotations
            .iter()
            .all(|a| a.origin == Origin::Request));
    }

    #[test]
    fn annotations_already_there_are_listed_from_the_request() {
        let source = "BEGIN\n{\n    assert(1 == 1, \"given\");\n}\n";
        let program = parse(source).program;
        let facts = StaticFacts::default();
        let set = ContractSet::default();
        let out = annotate("", source, &program, &facts, &set);
        assert_eq!(out.source, source);
        assert_eq!(out.annotations.len(), 1);
        assert_eq!(out.annotations[0].origin, Origin::Request);
        assert_eq!(out.annotations[0].line, 3);
        assert_eq!(out.annotations[0].why, "given");
    }
}
