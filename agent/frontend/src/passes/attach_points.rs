//! `unknown-probe` and `too-many-probes`: attach points that match nothing on
//! this kernel (unknown tracepoint categories or events, kernel functions,
//! functions missing from a binary, binaries that do not exist, wildcards
//! matching nothing), and wildcards expanding to more probes than allowed.
//!
//! Severity follows bpftrace 0.17: an attach point that matches nothing is an
//! error when bpftrace refuses the program for it (a tracepoint or kprobe
//! alone in its probe, an empty tracepoint wildcard, a missing binary, a
//! program left with nothing to attach), and a warning when bpftrace skips it
//! and runs the rest (silently, for uprobes).

use crate::ast::ProbeKind;
use crate::diagnostic::{codes, Diagnostic, Severity};
use crate::facts::MatchProblem;
use crate::span::Span;

use super::context::{Ctx, PointCtx};

pub(crate) fn run(ctx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let program_attaches_something = ctx
        .probes
        .iter()
        .flat_map(|p| &p.points)
        .any(|p| !missing(p));
    for probe in &ctx.probes {
        let probe_attaches_something = probe.points.iter().any(|p| !missing(p));
        let (ok, all_ok) = (probe_attaches_something, program_attaches_something);
        let mut skipped = Vec::new();
        for p in &probe.points {
            // "Did you mean" costs a search of every name; only errors and a
            // lone warning show it.
            if let Some(d) = unknown(ctx, p, ok, all_ok, false) {
                if d.is_error() {
                    out.push(unknown(ctx, p, ok, all_ok, true).unwrap_or(d));
                } else {
                    skipped.push((p, d));
                }
            }
            if let Some(d) = too_many(ctx, p) {
                out.push(d);
            }
        }
        if let [(p, d)] = skipped.as_slice() {
            out.push(unknown(ctx, p, ok, all_ok, true).unwrap_or_else(|| d.clone()));
        } else {
            out.extend(group(skipped.into_iter().map(|(_, d)| d).collect()));
        }
    }
}

/// Attach points bpftrace skips, one warning per probe: a probe listing many
/// alternatives (libcrypto functions of several versions) reads better so.
fn group(mut skipped: Vec<Diagnostic>) -> Option<Diagnostic> {
    if skipped.len() <= 1 {
        return skipped.pop();
    }
    let first = &skipped[0];
    let names: Vec<String> = skipped
        .iter()
        .map(|d| d.message.split('`').nth(1).unwrap_or("?").to_string())
        .collect();
    let mut d = Diagnostic::warning(
        codes::UNKNOWN_PROBE,
        format!(
            "{} attach points of this probe match nothing here and are skipped: `{}`",
            skipped.len(),
            names.join("`, `")
        ),
        first.span,
    );
    for other in &skipped[1..] {
        d = d.with_label(
            other.span,
            other
                .message
                .split(" (")
                .next()
                .unwrap_or(&other.message)
                .to_string(),
        );
    }
    Some(d.with_help("bpftrace 0.17 skips attach points it cannot resolve, without saying so for uprobes; the probe fires only for the others"))
}

/// Known to attach nothing: matched nothing, or its binary is missing.
fn missing(p: &PointCtx<'_>) -> bool {
    match &p.matches {
        Some(m) => match &m.problem {
            None => m.total == 0,
            Some(MatchProblem::TargetMissing(_)) => true,
            Some(MatchProblem::Unknowable(_)) => false,
        },
        None => false,
    }
}

fn unknown(
    ctx: &Ctx<'_>,
    p: &PointCtx<'_>,
    probe_ok: bool,
    program_ok: bool,
    suggest: bool,
) -> Option<Diagnostic> {
    if !missing(p) {
        return None;
    }
    let kind = p.kind?;
    let query = p.query.as_deref()?;
    let m = p.matches.as_ref()?;
    let user_space = matches!(
        kind,
        ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Usdt
    );
    if let Some(MatchProblem::TargetMissing(target)) = &m.problem {
        let span = p.ap.parts.first().map_or(p.ap.span, |t| t.span);
        return Some(
            Diagnostic::error(
                codes::UNKNOWN_PROBE,
                format!("{} target `{target}` does not exist: no such file, and no library of that name", kind.as_str()),
                span,
            )
            .with_help(
                "give the full path of an executable or library (e.g. /bin/bash), or a library name bpftrace can find (e.g. libc)",
            ),
        );
    }

    // bpftrace refuses: an empty tracepoint wildcard, a missing attach point
    // alone in its probe, a program with nothing left to attach.
    let fatal = !program_ok
        || (!user_space && (!probe_ok || (p.ap.wildcard && kind == ProbeKind::Tracepoint)));
    let severity = if fatal {
        Severity::Error
    } else {
        Severity::Warning
    };
    let consequence = if fatal {
        ""
    } else if user_space {
        " (bpftrace 0.17 skips it without saying so: this attach point never fires)"
    } else {
        " (bpftrace skips it with a warning)"
    };

    let last = p.ap.parts.last()?;
    let (what, mut d);
    if p.ap.wildcard {
        what = format!("`{}` matches no probe on this kernel", p.ap.raw);
        d = Diagnostic::new(
            severity,
            codes::UNKNOWN_PROBE,
            format!("{what}{consequence}"),
            p.ap.span,
        );
    } else {
        what = match kind {
            ProbeKind::Tracepoint => {
                let cat = p.ap.parts.first().map_or("", |c| c.value.as_str());
                let cat_exists = ctx
                    .facts
                    .matching_probes(&format!("tracepoint:{cat}:*"), 1)
                    .total
                    > 0;
                if cat_exists {
                    format!(
                        "tracepoint `{}` does not exist on this kernel",
                        &query["tracepoint:".len()..]
                    )
                } else {
                    format!("tracepoint category `{cat}` does not exist on this kernel")
                }
            }
            ProbeKind::Kprobe | ProbeKind::Kretprobe => {
                format!(
                    "kernel function `{}` does not exist (not in /proc/kallsyms)",
                    last.value
                )
            }
            ProbeKind::Fentry | ProbeKind::Fexit => {
                format!(
                    "kernel function `{}` does not exist (not in BTF)",
                    last.value
                )
            }
            ProbeKind::Uprobe | ProbeKind::Uretprobe => {
                let target = p.ap.parts.first().map_or("", |t| t.value.as_str());
                format!("`{}` is not a function in {target}", last.value)
            }
            ProbeKind::Usdt => format!("USDT probe `{}` does not exist", p.ap.raw),
            _ => format!("`{}` does not exist on this kernel", p.ap.raw),
        };
        d = Diagnostic::new(
            severity,
            codes::UNKNOWN_PROBE,
            format!("{what}{consequence}"),
            p.ap.span,
        );
        if suggest {
            d = with_suggestion(ctx, p, query, d);
        }
    }
    Some(d)
}

/// Adds "did you mean" from the facts, replacing just the part that differs.
fn with_suggestion(ctx: &Ctx<'_>, p: &PointCtx<'_>, query: &str, mut d: Diagnostic) -> Diagnostic {
    let kind = p.kind;
    let parts = &p.ap.parts;
    let last = match parts.last() {
        Some(l) => l,
        None => return d,
    };
    // Functions that moved into libc (glibc 2.34 merged libpthread, libdl, librt).
    if matches!(kind, Some(ProbeKind::Uprobe | ProbeKind::Uretprobe)) && parts.len() == 2 {
        let target = &parts[0];
        if target.value != "libc" {
            let in_libc = ctx
                .facts
                .matching_probes(&format!("uprobe:libc:{}", last.value), 1);
            if in_libc.total > 0 {
                d.message.push_str("; it is in libc: did you mean `libc`?");
                return d
                    .with_help("glibc 2.34 moved libpthread, libdl and librt into libc")
                    .with_suggestion(target.span, "libc");
            }
        }
    }
    let similar = ctx.facts.similar_probes(query, 3);
    let Some(best) = similar.first() else {
        return d;
    };
    // Compare the parts after the provider; uprobe targets resolve to paths,
    // so only their function part is compared.
    let theirs: Vec<&str> = best
        .split_once(':')
        .map_or("", |(_, rest)| rest)
        .split(':')
        .collect();
    let ours: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
    let user_space = matches!(
        kind,
        Some(ProbeKind::Uprobe | ProbeKind::Uretprobe | ProbeKind::Usdt)
    );
    let replacement: Option<(Span, String)> = if user_space || theirs.len() != ours.len() {
        let f = theirs.last().copied().unwrap_or_default();
        (f != last.value).then(|| (last.span, f.to_string()))
    } else {
        let differing: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != theirs[i]).collect();
        match differing.as_slice() {
            [i] => Some((parts[*i].span, theirs[*i].to_string())),
            [] => None,
            _ => Some((parts[0].span.cover(last.span), theirs.join(":"))),
        }
    };
    let Some((span, text)) = replacement else {
        return d;
    };
    d.message.push_str(&format!("; did you mean `{text}`?"));
    if similar.len() > 1 {
        let others: Vec<String> = similar[1..].iter().map(|s| format!("`{s}`")).collect();
        d = d.with_help(format!("other close matches: {}", others.join(", ")));
    }
    d.with_suggestion(span, text)
}

fn too_many(ctx: &Ctx<'_>, p: &PointCtx<'_>) -> Option<Diagnostic> {
    let m = p.matches.as_ref()?;
    let max = ctx.options.max_probes;
    if !p.ap.wildcard || m.total <= max {
        return None;
    }
    let ms = u64::from(ctx.options.attach_ms_per_probe) * m.total as u64;
    let seconds = ms as f64 / 1000.0;
    let mut d = Diagnostic::warning(
        codes::TOO_MANY_PROBES,
        format!(
            "`{}` attaches {} probes (more than {max}): attaching takes about {seconds:.0} s at ~{} ms per probe",
            p.ap.raw, m.total, ctx.options.attach_ms_per_probe
        ),
        p.ap.span,
    );
    let syscalls = p.kind == Some(ProbeKind::Tracepoint)
        && p.ap.parts.first().is_some_and(|c| c.value == "syscalls");
    d = d.with_help(if syscalls {
        "narrow the pattern to the system calls you need, or trace all of them with one probe: tracepoint:raw_syscalls:sys_enter (args->id is the syscall number)".to_string()
    } else {
        "narrow the pattern to the probes you need".to_string()
    });
    Some(d)
}
