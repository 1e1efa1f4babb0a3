//! `unsupported-probe-type`: probe types this kernel cannot attach (kprobes
//! without CONFIG_KPROBES, kfuncs bpftrace refuses, hardware events without a
//! PMU), naming the probes that exist here and see the same events.
//!
//! Alternatives come from three places, kept only when they exist on this
//! kernel: a tracepoint named like the function (`cap_capable` ->
//! `tracepoint:capability:cap_capable`), the syscall tracepoint behind a
//! syscall entry point (`__x64_sys_openat`), and the table in
//! [`super::alternatives`]; then the general advice of the facts.

use std::collections::HashMap;

use crate::ast::ProbeKind;
use crate::diagnostic::{codes, Diagnostic};
use crate::facts::{wildcard_match, ProbeSupport};

use super::alternatives::{entries_for, HARDWARE_ALTERNATIVES, SYSCALL_PREFIXES};
use super::context::{Ctx, PointCtx};

/// At most this many concrete alternatives are named per diagnostic.
const MAX_ALTERNATIVES: usize = 4;

pub(crate) fn run(ctx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let mut exists_cache: HashMap<String, bool> = HashMap::new();
    for probe in &ctx.probes {
        let mut kinds: Vec<ProbeKind> = Vec::new();
        for p in &probe.points {
            if let (Some(k), ProbeSupport::Unsupported { .. }) = (p.kind, &p.support) {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        for kind in kinds {
            let points: Vec<&PointCtx<'_>> = probe
                .points
                .iter()
                .filter(|p| {
                    p.kind == Some(kind) && matches!(p.support, ProbeSupport::Unsupported { .. })
                })
                .collect();
            out.extend(diagnose(ctx, kind, &points, &mut exists_cache));
        }
    }
}

fn diagnose(
    ctx: &Ctx<'_>,
    kind: ProbeKind,
    points: &[&PointCtx<'_>],
    exists_cache: &mut HashMap<String, bool>,
) -> Option<Diagnostic> {
    let first = points.first()?;
    let ProbeSupport::Unsupported {
        reason,
        alternatives: general,
    } = &first.support
    else {
        return None;
    };
    let mut found: Vec<(String, &'static str)> = Vec::new();
    for p in points {
        if kind == ProbeKind::Hardware {
            found.extend(
                hardware_alternative(p).filter(|(probe, _)| exists(ctx, probe, exists_cache)),
            );
            continue;
        }
        let Some(function) = function_of(p) else {
            continue;
        };
        for (probe, note) in candidates(ctx, kind, &function) {
            if found.iter().any(|(f, _)| *f == probe) {
                continue;
            }
            if exists(ctx, &probe, exists_cache) {
                found.push((probe, note));
            }
        }
    }
    found.truncate(MAX_ALTERNATIVES);

    // The provider as the program spells it (`kfunc`), unless an alias (`f`).
    let name = if first.ap.provider.len() > 2 {
        first.ap.provider.as_str()
    } else {
        kind.as_str()
    };
    let reason = reason.trim_end_matches('.');
    let mut message = format!("{name} probes cannot attach on this kernel: {reason}");
    if let Some((probe, note)) = found.first() {
        message.push_str(&format!("; use `{probe}` instead"));
        if !note.is_empty() {
            message.push_str(&format!(" ({note})"));
        }
    }
    let mut d = Diagnostic::error(codes::UNSUPPORTED_PROBE_TYPE, message, first.ap.span);
    for p in &points[1..] {
        d = d.with_label(p.ap.span, format!("also {name}"));
    }
    let mut help = Vec::new();
    if found.len() > 1 {
        let list: Vec<String> = found.iter().map(|(p, _)| format!("`{p}`")).collect();
        help.push(format!(
            "probes on this kernel that see the same events: {}",
            list.join(", ")
        ));
    }
    if !general.is_empty() {
        help.push(format!("other options: {}", general.join("; ")));
    }
    if matches!(kind, ProbeKind::Kprobe | ProbeKind::Kretprobe) {
        help.push(
            "tracepoints have typed fields: read them as args->NAME instead of arg0..argN".into(),
        );
    }
    if !help.is_empty() {
        d = d.with_help(help.join("\n"));
    }
    Some(d)
}

/// `hardware:cpu-cycles:N` -> `software:cpu-clock:N`.
fn hardware_alternative(p: &PointCtx<'_>) -> Option<(String, &'static str)> {
    let event = p.ap.parts.first()?.value.as_str();
    let count = p.ap.parts.get(1).map_or("1000000", |c| c.value.as_str());
    HARDWARE_ALTERNATIVES
        .iter()
        .find(|(events, _)| events.contains(&event))
        .map(|(_, software)| {
            (
                format!("software:{software}:{count}"),
                "CPU-clock sampling instead of a hardware counter",
            )
        })
}

/// The kernel function (or raw tracepoint event) an attach point names.
fn function_of(p: &PointCtx<'_>) -> Option<String> {
    let last = p.ap.parts.last()?;
    let f = last.value.split('+').next().unwrap_or_default();
    (!f.is_empty()).then(|| f.to_string())
}

/// Alternatives for `function`, most specific first, not yet checked for existence.
fn candidates(ctx: &Ctx<'_>, kind: ProbeKind, function: &str) -> Vec<(String, &'static str)> {
    let returns = matches!(kind, ProbeKind::Kretprobe | ProbeKind::Fexit);
    let exit = |p: &str| {
        if returns {
            p.replace("sys_enter_", "sys_exit_")
        } else {
            p.to_string()
        }
    };
    let mut out = Vec::new();
    let wild = function.contains(['*', '?']);
    if !wild {
        // A tracepoint with the function's own name: rawtracepoint:sched_switch,
        // kprobe:cap_capable, kprobe:tcp_retransmit_skb.
        let same = ctx
            .facts
            .matching_probes(&format!("tracepoint:*:{function}"), 2);
        for name in same.names {
            out.push((name, "the tracepoint of the same name"));
        }
        for prefix in SYSCALL_PREFIXES {
            if let Some(syscall) = function.strip_prefix(prefix) {
                out.push((
                    exit(&format!("tracepoint:syscalls:sys_enter_{syscall}")),
                    "the system call's tracepoint",
                ));
                break;
            }
        }
    }
    for entry in entries_for(function) {
        for probe in entry.probes {
            out.push((exit(probe), entry.note));
        }
    }
    out
}

/// Whether `probe` (maybe a pattern) matches something on a probe type that works here.
fn exists(ctx: &Ctx<'_>, probe: &str, cache: &mut HashMap<String, bool>) -> bool {
    if let Some(&hit) = cache.get(probe) {
        return hit;
    }
    let provider = probe.split(':').next().unwrap_or_default();
    let kind = ProbeKind::from_provider(provider);
    let usable = kind
        .is_some_and(|k| !matches!(ctx.facts.probe_support(k), ProbeSupport::Unsupported { .. }));
    let hit = usable
        && match kind {
            // Software events are bpftrace's own list; the facts only name
            // the event (`software:page-faults:1` -> `page-faults`).
            Some(ProbeKind::Software) => {
                let event = probe.split(':').nth(1).unwrap_or_default();
                SOFTWARE_EVENTS.iter().any(|e| wildcard_match(event, e))
            }
            _ => ctx.facts.matching_probes(probe, 1).total > 0,
        };
    cache.insert(probe.to_string(), hit);
    hit
}

/// bpftrace's software events (and aliases).
const SOFTWARE_EVENTS: &[&str] = &[
    "alignment-faults",
    "bpf-output",
    "context-switches",
    "cs",
    "cpu-clock",
    "cpu",
    "cpu-migrations",
    "dummy",
    "emulation-faults",
    "major-faults",
    "minor-faults",
    "page-faults",
    "faults",
    "task-clock",
];
