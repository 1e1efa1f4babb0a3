//! The TOML format of `specs/contracts/*.toml` (documented in that folder's
//! README) and its checks: unknown keys are refused (`deny_unknown_fields`),
//! every expression must parse as a bpftrace condition without side effects,
//! and may read only fields its contract declares, so the live test can check
//! each of them against the kernel's types.

use std::collections::{BTreeMap, BTreeSet};

use kgent_frontend::ast::ProbeKind;
use serde::Deserialize;
use toml::Spanned;

use super::expr::{self, Atom};
use super::{
    canonical_attach, Condition, ConditionOrigin, Contract, ContractError, ContractOrigin,
    FieldOrder, FieldSpec, Unit,
};

/// The only format version so far.
pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    schema: Spanned<u32>,
    /// What the file covers.
    description: String,
    #[serde(default)]
    contract: Vec<Spanned<ContractToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractToml {
    attach: Spanned<String>,
    summary: String,
    source: String,
    #[serde(default)]
    unchecked: Option<String>,
    #[serde(default)]
    field: Vec<Spanned<FieldToml>>,
    #[serde(default)]
    pre: Vec<Spanned<PreToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    name: Spanned<String>,
    #[serde(default)]
    c_name: Option<String>,
    c_type: String,
    size: u64,
    signed: bool,
    /// Defaults to whether `c_type` has a `*`.
    #[serde(default)]
    pointer: Option<bool>,
    byte_order: FieldOrder,
    #[serde(default)]
    nullable: Option<bool>,
    #[serde(default)]
    unit: Option<Unit>,
    #[serde(default)]
    errno: bool,
    #[serde(default)]
    values: BTreeMap<String, i64>,
    meaning: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreToml {
    expr: Spanned<String>,
    why: String,
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u32
        + 1
}

/// Parses and checks one file; every problem is returned.
pub(crate) fn parse_file(file: &str, text: &str) -> Result<Vec<Contract>, Vec<ContractError>> {
    let parsed: FileToml = toml::from_str(text).map_err(|e| {
        vec![ContractError::Toml {
            file: file.to_string(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    let mut err = |offset: usize, message: String| {
        errors.push(ContractError::Invalid {
            file: file.to_string(),
            line: line_of(text, offset),
            message,
        })
    };
    if *parsed.schema.get_ref() != SCHEMA_VERSION {
        err(
            parsed.schema.span().start,
            format!(
                "schema {} is not known (this build reads schema {SCHEMA_VERSION})",
                parsed.schema.get_ref()
            ),
        );
    }
    if parsed.description.trim().is_empty() {
        err(0, "`description` is empty".to_string());
    }
    let mut out = Vec::new();
    for c in parsed.contract {
        let start = c.span().start;
        let c = c.into_inner();
        if let Some(contract) = check_contract(file, text, start, c, &mut err) {
            out.push(contract);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// How a provider's context is named, for checking field names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// `args->NAME` (tracepoints, kfuncs); `retval` too for kretfunc.
    Args { retval: bool },
    /// `arg0`...`argN` (kprobe, uprobe, usdt).
    Positional,
    /// `retval` only (kretprobe, uretprobe: the argument registers are gone).
    Retval,
    /// No context (BEGIN, END, interval, profile, software, hardware).
    None,
}

fn context_of(kind: ProbeKind) -> Context {
    match kind {
        ProbeKind::Tracepoint | ProbeKind::Rawtracepoint | ProbeKind::Fentry => {
            Context::Args { retval: false }
        }
        ProbeKind::Fexit => Context::Args { retval: true },
        ProbeKind::Kprobe | ProbeKind::Uprobe | ProbeKind::Usdt => Context::Positional,
        ProbeKind::Kretprobe | ProbeKind::Uretprobe => Context::Retval,
        _ => Context::None,
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_positional(s: &str) -> bool {
    s.strip_prefix("arg")
        .is_some_and(|d| !d.is_empty() && d.len() <= 2 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn check_contract(
    file: &str,
    text: &str,
    start: usize,
    c: ContractToml,
    err: &mut dyn FnMut(usize, String),
) -> Option<Contract> {
    let attach_at = c.attach.span().start;
    let written = c.attach.get_ref().trim().to_string();
    let parsed = kgent_frontend::parse(&format!("{written} {{ }}"));
    let (kind, attach) = match parsed
        .program
        .probes()
        .next()
        .map(|p| p.attach_points.as_slice())
    {
        Some([ap]) if !parsed.has_errors() => {
            let Some(kind) = ap.kind else {
                err(
                    attach_at,
                    format!("`{}` is not a bpftrace probe type", ap.provider),
                );
                return None;
            };
            (kind, canonical_attach(ap))
        }
        // A family of probes whose parts bpftrace checks (`interval:*`): the
        // provider is enough.
        _ => match written.split_once(':') {
            Some((provider, rest)) if rest.contains('*') && !rest.contains(char::is_whitespace) => {
                match ProbeKind::from_provider(provider) {
                    Some(kind) if kind.as_str() == provider => (kind, written.clone()),
                    _ => {
                        err(
                            attach_at,
                            format!("`{provider}` is not a probe type's full name"),
                        );
                        return None;
                    }
                }
            }
            _ => {
                err(
                    attach_at,
                    format!("`{written}` is not one bpftrace attach point"),
                );
                return None;
            }
        },
    };
    if attach != written {
        err(
            attach_at,
            format!("write the attach point as `{attach}` (the canonical spelling)"),
        );
    }
    if c.summary.trim().is_empty() {
        err(attach_at, format!("`{attach}`: `summary` is empty"));
    }
    if c.source.trim().is_empty() {
        err(attach_at, format!("`{attach}`: `source` is empty"));
    }
    if c.unchecked.as_deref().is_some_and(|r| r.trim().is_empty()) {
        err(
            attach_at,
            format!("`{attach}`: `unchecked` must say why (or be left out)"),
        );
    }
    let context = context_of(kind);

    let mut fields = Vec::new();
    let mut names = BTreeSet::new();
    for f in c.field {
        let at = f.span().start;
        let f = f.into_inner();
        let name = f.name.get_ref().clone();
        let ok_name = match context {
            Context::Args { retval } => is_ident(&name) || (retval && name == "retval"),
            Context::Positional => is_positional(&name),
            Context::Retval => name == "retval",
            Context::None => false,
        };
        if !ok_name {
            let expected = match context {
                Context::Args { .. } => "a field name (read as `args->NAME`)",
                Context::Positional => "`arg0`...`arg15`",
                Context::Retval => "`retval` (argument registers are not preserved at return)",
                Context::None => "nothing: this probe type has no fields",
            };
            err(
                f.name.span().start,
                format!("`{attach}`: field `{name}`: expected {expected}"),
            );
            continue;
        }
        if !names.insert(name.clone()) {
            err(at, format!("`{attach}`: field `{name}` is declared twice"));
        }
        let pointer = f.pointer.unwrap_or_else(|| f.c_type.contains('*'));
        if f.size == 0 {
            err(
                at,
                format!("`{attach}`: field `{name}`: `size` must be > 0"),
            );
        }
        if f.nullable.is_some() && !pointer {
            err(
                at,
                format!("`{attach}`: field `{name}`: `nullable` is for pointers only"),
            );
        }
        if f.errno && (!f.signed || pointer) {
            err(
                at,
                format!("`{attach}`: field `{name}`: `errno` needs a signed integer"),
            );
        }
        if f.byte_order == FieldOrder::Network && (pointer || f.c_type.contains('[')) {
            err(
                at,
                format!(
                    "`{attach}`: field `{name}`: `network` is for integers; arrays of wire bytes are `bytes`"
                ),
            );
        }
        if f.meaning.trim().is_empty() {
            err(
                at,
                format!("`{attach}`: field `{name}`: `meaning` is empty"),
            );
        }
        fields.push(FieldSpec {
            name,
            c_name: f.c_name,
            c_type: f.c_type,
            size: f.size,
            signed: f.signed,
            pointer,
            byte_order: f.byte_order,
            nullable: f.nullable,
            unit: f.unit,
            errno: f.errno,
            values: f.values,
            meaning: f.meaning,
            derived: false,
        });
    }

    let mut pre = Vec::new();
    for p in c.pre {
        let at = p.span().start;
        let p = p.into_inner();
        let expr_at = p.expr.span().start;
        let source = p.expr.get_ref().trim().to_string();
        if p.why.trim().is_empty() {
            err(at, format!("`{attach}`: `why` is empty for `{source}`"));
        }
        match check_expr(&written, &source, context, &names) {
            Ok(()) => pre.push(Condition {
                expr: source,
                why: p.why,
                attach: attach.clone(),
                origin: ConditionOrigin::File {
                    path: file.to_string(),
                    line: line_of(text, expr_at),
                },
            }),
            Err(message) => err(expr_at, format!("`{attach}`: `{source}`: {message}")),
        }
    }

    Some(Contract {
        attach,
        summary: c.summary,
        source: c.source,
        unchecked: c.unchecked,
        fields,
        pre,
        origin: ContractOrigin::File {
            path: file.to_string(),
            line: line_of(text, start),
        },
    })
}

/// A precondition must be exactly one condition (no `)` smuggling in more
/// statements), free of side effects and program state, and read only
/// declared fields.
fn check_expr(
    attach: &str,
    source: &str,
    context: Context,
    declared: &BTreeSet<String>,
) -> Result<(), String> {
    // A family pattern that does not parse as a probe header (`interval:*`)
    // has no context to speak of: any header checks the expression's syntax.
    let header = if kgent_frontend::parse(&format!("{attach} {{ }}")).has_errors() {
        "BEGIN"
    } else {
        attach
    };
    let program = format!("{header} {{ assume({source}); }}");
    let parsed = kgent_frontend::parse(&program);
    if let Some(d) = parsed.errors().next() {
        return Err(format!("does not parse: {}", d.message));
    }
    let Some(probe) = parsed.program.probes().next() else {
        return Err("does not parse as a condition".to_string());
    };
    let e = match probe.body.stmts.as_slice() {
        [s] => match &s.kind {
            kgent_frontend::ast::StmtKind::Assume(e) => e,
            _ => return Err("is not one condition".to_string()),
        },
        _ => return Err("is not one condition".to_string()),
    };
    if !expr::side_effect_free(e) {
        return Err("calls a function with effects or increments something".to_string());
    }
    if expr::reads_state(e) {
        return Err(
            "reads variables or maps: a precondition speaks of the probe's context only"
                .to_string(),
        );
    }
    let mut atoms = BTreeSet::new();
    expr::atoms(e, &mut atoms);
    for a in atoms {
        match a {
            Atom::Field(name) => {
                if !matches!(context, Context::Args { .. }) {
                    return Err(format!(
                        "reads `args->{name}`, but this probe type has no `args`"
                    ));
                }
                if !declared.contains(&name) {
                    return Err(format!(
                        "reads `args->{name}`: declare it in a [[contract.field]] table so its type is checked"
                    ));
                }
            }
            Atom::Builtin(b) if b == "args" => {
                return Err("uses `args` whole; name a field".to_string());
            }
            Atom::Builtin(b) if is_positional(&b) || b == "retval" => {
                let allowed = match context {
                    Context::Positional => is_positional(&b),
                    Context::Retval | Context::Args { retval: true } => b == "retval",
                    _ => false,
                };
                if !allowed {
                    return Err(format!("`{b}` means nothing at this probe type"));
                }
                if !declared.contains(&b) {
                    return Err(format!(
                        "reads `{b}`: declare it in a [[contract.field]] table"
                    ));
                }
            }
            Atom::Builtin(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
schema = 1
description = "test"

[[contract]]
attach = "tracepoint:sock:inet_sock_set_state"
summary = "a TCP socket changes state"
source = "include/trace/events/sock.h"

[[contract.field]]
name = "family"
c_type = "__u16"
size = 2
signed = false
byte_order = "host"
values = { AF_INET = 2, AF_INET6 = 10 }
meaning = "address family"

[[contract.pre]]
expr = "args->family == 2 || args->family == 10"
why = "inet sockets only"
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse_file("t.toml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_good_file_loads() {
        let c = parse_file("t.toml", GOOD).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].fields[0].values["AF_INET6"], 10);
        assert_eq!(
            c[0].pre[0].origin,
            ConditionOrigin::File {
                path: "t.toml".into(),
                line: 20
            }
        );
        assert_eq!(
            c[0].origin,
            ContractOrigin::File {
                path: "t.toml".into(),
                line: 5
            }
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let bad = GOOD.replace("meaning = \"address family\"", "meening = \"x\"");
        let e = errors(&bad);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.toml:17:"), "{e:?}");
        assert!(e[0].contains("meening"), "{e:?}");
    }

    #[test]
    fn expressions_must_parse_and_read_declared_fields() {
        let bad = GOOD.replace(
            "args->family == 2 || args->family == 10",
            "args->family == 2 ||",
        );
        let e = errors(&bad);
        assert!(
            e[0].starts_with("t.toml:20:") && e[0].contains("does not parse"),
            "{e:?}"
        );

        let bad = GOOD.replace("args->family == 2 || args->family == 10", "args->dport > 0");
        let e = errors(&bad);
        assert!(e[0].contains("declare it"), "{e:?}");

        let bad = GOOD.replace(
            "args->family == 2 || args->family == 10",
            "args->family == 2); system(\\\"x\\\"",
        );
        assert!(!errors(&bad).is_empty());

        let bad = GOOD.replace("args->family == 2 || args->family == 10", "@x[tid] == 2");
        assert!(errors(&bad)[0].contains("reads variables or maps"));
    }

    #[test]
    fn attach_points_are_canonical_and_typed() {
        let bad = GOOD.replace(
            "attach = \"tracepoint:sock:inet_sock_set_state\"",
            "attach = \"t:sock:inet_sock_set_state\"",
        );
        assert!(errors(&bad)[0].contains("canonical spelling"));

        let kprobe = r#"
schema = 1
description = "k"
[[contract]]
attach = "kretprobe:vfs_read"
summary = "s"
source = "fs/read_write.c"
unchecked = "no kprobes here"
[[contract.field]]
name = "arg0"
c_type = "struct file *"
size = 8
signed = false
byte_order = "host"
meaning = "m"
"#;
        let e = errors(kprobe);
        assert!(e[0].contains("retval"), "{e:?}");
    }

    #[test]
    fn field_flags_must_fit_the_type() {
        let bad = GOOD.replace("values = {", "errno = true\nvalues = {");
        assert!(errors(&bad)[0].contains("signed integer"));
        let bad = GOOD.replace("values = {", "nullable = true\nvalues = {");
        assert!(errors(&bad)[0].contains("pointers only"));
    }

    #[test]
    fn the_schema_version_is_checked() {
        let bad = GOOD.replace("schema = 1", "schema = 2");
        assert!(errors(&bad)[0].contains("schema 2"));
    }
}
