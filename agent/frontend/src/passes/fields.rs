//! `no-such-field`, `member-operator`, `unknown-type` and
//! `builtin-unavailable`: field accesses on `args` and on BTF structs that do
//! not exist (with the nearest names, also inside embedded structs:
//! `$sk->sk_dport` -> `$sk->__sk_common.skc_dport`), `.` and `->` mixed up,
//! casts to structs the kernel does not have, and `args`, `argN`, `retval`,
//! `func` used in probe types that do not provide them.
//!
//! Structs the program defines in its own C text are never checked, nor
//! unknown structs when the program `#include`s headers or no BTF is there.

use std::collections::HashSet;

use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::facts::{RecordKind, RecordRef};
use crate::suggest;
use crate::visit::{self, Visitor};

use super::context::{ArgsSource, Ctx, ProbeCtx};
use super::types::{FieldIssue, Owner, Types};

pub(crate) fn run(ctx: &Ctx<'_>, types: &Types, out: &mut Vec<Diagnostic>) {
    let mut w = Walker {
        ctx,
        types,
        out,
        probe: None,
        reported_builtins: HashSet::new(),
        reported_types: HashSet::new(),
    };
    for p in &ctx.probes {
        w.probe = Some(p);
        w.reported_builtins.clear();
        w.visit_probe(p.probe);
    }
    w.probe = None;
    for item in &ctx.program.items {
        if let ItemKind::Function(f) = &item.kind {
            w.visit_function(f);
        }
    }
}

struct Walker<'c, 'a, 'o> {
    ctx: &'c Ctx<'a>,
    types: &'c Types,
    out: &'o mut Vec<Diagnostic>,
    probe: Option<&'c ProbeCtx<'a>>,
    /// Builtins already reported in this probe (once per probe is enough).
    reported_builtins: HashSet<String>,
    reported_types: HashSet<String>,
}

impl Visitor for Walker<'_, '_, '_> {
    fn visit_expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Field { base, field, arrow } => {
                if let Some(issue) = self.types.field_issue(e) {
                    let d = self.field_issue(e, base, field, *arrow, issue);
                    self.out.push(d);
                }
            }
            ExprKind::Builtin(name) => self.builtin(e, name),
            _ => {}
        }
        visit::walk_expr(self, e);
    }

    fn visit_type(&mut self, ty: &TypeExpr) {
        if let TypeKind::Record { keyword, name } = &ty.kind {
            let kind = match keyword {
                RecordKeyword::Struct => Some(RecordKind::Struct),
                RecordKeyword::Union => Some(RecordKind::Union),
                RecordKeyword::Enum => None,
            };
            if let Some(kind) = kind {
                self.record_type(ty, RecordRef::new(kind, name));
            }
        }
        visit::walk_type(self, ty);
    }
}

impl Walker<'_, '_, '_> {
    fn record_type(&mut self, ty: &TypeExpr, record: RecordRef) {
        let ctx = self.ctx;
        if ctx.defines_record(&record)
            || ctx.has_includes
            || !ctx.facts.types_available()
            || !self.reported_types.insert(record.spelled())
            || ctx.facts.record_fields(&record).is_some()
        {
            return;
        }
        let spelled = record.spelled();
        self.out.push(
            Diagnostic::error(
                codes::UNKNOWN_TYPE,
                format!("`{spelled}` is not a kernel type (not in this kernel's BTF), and the program does not define it"),
                ty.span,
            )
            .with_help(format!(
                "check the name, define it in the program (`{spelled} {{ ... }};`), or #include the header that declares it"
            )),
        );
    }

    fn field_issue(
        &self,
        e: &Expr,
        base: &Expr,
        field: &Ident,
        arrow: bool,
        issue: &FieldIssue,
    ) -> Diagnostic {
        let mut written = short(e.span.text(self.ctx.source));
        if written.matches('(').count() != written.matches(')').count() {
            // The base was parenthesised (`((struct x *)p)->f`): quote just the access.
            written = format!("...{}{}", if arrow { "->" } else { "." }, field.name);
        }
        match issue {
            FieldIssue::Operator { arrow_needed, what } => {
                let (op, wrong) = if *arrow_needed {
                    ("->", ".")
                } else {
                    (".", "->")
                };
                let message = if what == "args" {
                    format!(
                        "`{written}`: in bpftrace {}.{} `args` is a pointer, so its fields are read with `->`",
                        self.ctx.options.version.0, self.ctx.options.version.1
                    )
                } else {
                    format!("`{wrong}` on {what}: use `{op}` to read `{}`", field.name)
                };
                let mut d = Diagnostic::error(codes::MEMBER_OPERATOR, message, e.span);
                if let Some(op_span) = operator_span(self.ctx.source, base.span, field.span, arrow)
                {
                    d = d.with_suggestion(op_span, op);
                }
                d
            }
            FieldIssue::Missing {
                owner,
                names,
                present_in,
            } => {
                let (of, candidates) = match owner {
                    Owner::Probe(probe) => (probe.clone(), names.clone()),
                    Owner::Record(r) => (
                        format!("`{}`", r.spelled()),
                        self.record_candidates(r, names),
                    ),
                };
                let best = suggest::nearest(&field.name, candidates.iter().map(String::as_str), 1)
                    .first()
                    .map(|s| s.to_string())
                    .or_else(|| {
                        // `sk_dport` -> `__sk_common.skc_dport`: compare the last part.
                        candidates
                            .iter()
                            .filter(|c| c.contains('.'))
                            .map(|c| {
                                (
                                    suggest::distance(
                                        &field.name,
                                        c.rsplit('.').next().unwrap_or(c),
                                    ),
                                    c,
                                )
                            })
                            .filter(|(d, _)| *d <= suggest::max_distance(&field.name))
                            .min()
                            .map(|(_, c)| c.clone())
                    });
                let mut message = match owner {
                    Owner::Probe(_) => {
                        format!("`{written}`: `{}` is not a field of {of}", field.name)
                    }
                    Owner::Record(_) => format!("`{written}`: {of} has no member `{}`", field.name),
                };
                if let Some(b) = &best {
                    message.push_str(&format!("; did you mean `{b}`?"));
                }
                let mut d = Diagnostic::error(codes::NO_SUCH_FIELD, message, field.span);
                let mut help = Vec::new();
                if !present_in.is_empty() {
                    help.push(format!(
                        "`{}` exists in {} but not in {of}, and the probe covers both",
                        field.name,
                        present_in.join(", ")
                    ));
                }
                // Zero-size markers (`__cacheline_group_begin__x`) are not fields to read.
                let listed: Vec<&str> = names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !n.starts_with("__cacheline_group_"))
                    .collect();
                let direct: Vec<&str> = listed.iter().copied().take(24).collect();
                if !direct.is_empty() {
                    let more = if listed.len() > direct.len() {
                        ", ..."
                    } else {
                        ""
                    };
                    help.push(format!("fields of {of}: {}{more}", direct.join(", ")));
                }
                if !help.is_empty() {
                    d = d.with_help(help.join("\n"));
                }
                if let Some(b) = best {
                    d = d.with_suggestion(field.span, b);
                }
                d
            }
        }
    }

    /// Member names of `record`, plus `embedded.member` for the members of
    /// structs embedded by value (one level), where kernel macros hide them.
    fn record_candidates(&self, record: &RecordRef, names: &[String]) -> Vec<String> {
        let mut out: Vec<String> = names.to_vec();
        let Some(fields) = self.ctx.facts.record_fields(record) else {
            return out;
        };
        for f in fields {
            let (Some(inner), false) = (&f.record, f.pointer) else {
                continue;
            };
            if f.c_type.contains('[') || f.name.is_empty() {
                continue;
            }
            if let Some(members) = self.ctx.facts.record_fields(inner) {
                for m in members {
                    if !m.name.is_empty() {
                        out.push(format!("{}.{}", f.name, m.name));
                    }
                }
            }
        }
        out
    }

    fn builtin(&mut self, e: &Expr, name: &str) {
        let Some(probe) = self.probe else {
            return;
        };
        let family = if name == "args" {
            "args"
        } else if is_numbered(name, "arg") {
            "argN"
        } else if is_numbered(name, "sarg") {
            "sargN"
        } else if name == "retval" || name == "func" {
            name
        } else {
            return;
        };
        if self.reported_builtins.contains(family) {
            return;
        }
        let d = match family {
            "args" => self.args_unavailable(probe, e),
            _ => self.builtin_unavailable(probe, e, name, family),
        };
        if let Some(d) = d {
            self.reported_builtins.insert(family.to_string());
            self.out.push(d);
        }
    }

    fn args_unavailable(&self, probe: &ProbeCtx<'_>, e: &Expr) -> Option<Diagnostic> {
        let ArgsSource::Unavailable(kind) = probe.args else {
            return None;
        };
        let help = match kind {
            ProbeKind::Kprobe | ProbeKind::Kretprobe => {
                "kprobes see raw arguments: arg0, arg1, ... (cast them, e.g. (struct sock *)arg0), or use a tracepoint, whose fields are typed"
            }
            _ => "args holds the typed fields of tracepoint, kfunc and uprobe probes only",
        };
        Some(
            Diagnostic::error(
                codes::BUILTIN_UNAVAILABLE,
                format!(
                    "`args` is not available in {} probes: they have no typed arguments",
                    kind.as_str()
                ),
                e.span,
            )
            .with_help(help),
        )
    }

    fn builtin_unavailable(
        &self,
        probe: &ProbeCtx<'_>,
        e: &Expr,
        name: &str,
        family: &str,
    ) -> Option<Diagnostic> {
        let version = self.ctx.options.version;
        let allowed = |k: ProbeKind| -> bool {
            use ProbeKind::*;
            match family {
                "argN" => {
                    matches!(k, Kprobe | Uprobe | Usdt)
                        || (version >= (0, 19) && matches!(k, Fentry | Fexit))
                }
                "sargN" => matches!(k, Kprobe | Uprobe),
                "retval" => matches!(k, Kretprobe | Uretprobe | Fentry | Fexit),
                "func" => {
                    matches!(k, Kprobe | Kretprobe | Uprobe | Uretprobe)
                        || (version >= (0, 19) && matches!(k, Fentry | Fexit))
                }
                _ => true,
            }
        };
        let bad = probe
            .points
            .iter()
            .filter_map(|p| p.kind)
            .find(|&k| !allowed(k))?;
        let kind = bad.as_str();
        let mut d = Diagnostic::error(
            codes::BUILTIN_UNAVAILABLE,
            format!("`{name}` is not available in {kind} probes"),
            e.span,
        );
        let field_names = match &probe.args {
            ArgsSource::Fields(lists) => lists.first().map(|(_, f)| f.clone()),
            _ => None,
        };
        match (family, bad) {
            ("argN", ProbeKind::Tracepoint) => {
                // In syscall tracepoints argument N is the N-th field after __syscall_nr.
                let n: usize = name[3..].parse().unwrap_or(usize::MAX);
                let syscall = probe.points.iter().all(|p| {
                    p.ap.parts.first().is_some_and(|c| c.value == "syscalls")
                        && p.ap
                            .parts
                            .get(1)
                            .is_some_and(|e| e.value.starts_with("sys_enter_"))
                });
                let fields: Vec<String> = field_names
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| f.name)
                    .filter(|f| f != "__syscall_nr")
                    .collect();
                d.message
                    .push_str(": tracepoints have typed fields, read as args->NAME");
                if let (true, Some(f)) = (syscall, fields.get(n)) {
                    d.message.push_str(&format!("; did you mean `args->{f}`?"));
                    d = d.with_suggestion(e.span, format!("args->{f}"));
                }
                if !fields.is_empty() {
                    d = d.with_help(format!("fields: {}", fields.join(", ")));
                }
            }
            ("retval", ProbeKind::Tracepoint) => {
                let has_ret = field_names.is_some_and(|f| f.iter().any(|f| f.name == "ret"));
                if has_ret {
                    d.message.push_str("; did you mean `args->ret`?");
                    d = d.with_suggestion(e.span, "args->ret");
                } else {
                    d = d.with_help("retval exists in kretprobe, uretprobe and kretfunc probes; syscall exit tracepoints have args->ret");
                }
            }
            ("func", _) => {
                d.message.push_str("; did you mean `probe`?");
                d = d.with_help("`probe` holds the full name of the probe that fired");
                d = d.with_suggestion(e.span, "probe");
            }
            _ => {
                d = d.with_help(match family {
                    "argN" => "arg0..argN exist in kprobe, uprobe and usdt probes",
                    "sargN" => "sarg0..sargN exist in kprobe and uprobe probes",
                    _ => "retval exists in kretprobe, uretprobe and kretfunc probes",
                });
            }
        }
        Some(d)
    }
}

fn is_numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The span of the `.` or `->` between a field's base and name.
fn operator_span(source: &str, base: Span, field: Span, arrow: bool) -> Option<Span> {
    let between = source.get(base.end as usize..field.start as usize)?;
    let op = if arrow { "->" } else { "." };
    let at = between.find(op)?;
    let start = base.end + at as u32;
    Some(Span::new(start, start + op.len() as u32))
}

/// The program text of an expression for a message, shortened when long.
fn short(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        let cut: String = one_line.chars().take(57).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}
