//! `undefined-variable`: a scratch variable (`$x`) read before any assignment
//! to it in the same probe.
//!
//! bpftrace 0.17 to 0.21 decide in source order within one probe (an
//! assignment inside an earlier `if` counts; one in another probe does not).
//! 0.22 adds block scoping: an assignment inside a block is gone after it.
//! From 0.23 reading an unassigned variable is allowed, so nothing is reported.

use std::collections::HashMap;

use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest;
use crate::visit::{self, Visitor};

use super::context::Ctx;

pub(crate) fn run(ctx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    if ctx.version_at_least((0, 23)) {
        return;
    }
    // Where each variable is assigned, per probe, to say "assigned later" or
    // "assigned in another probe".
    let mut assigned_in: Vec<HashMap<String, Span>> = Vec::new();
    for p in &ctx.probes {
        let mut a = Assignments::default();
        a.visit_probe(p.probe);
        assigned_in.push(a.0);
    }
    for (i, p) in ctx.probes.iter().enumerate() {
        let mut w = Walker {
            out,
            scopes: vec![HashMap::new()],
            block_scoping: ctx.version_at_least((0, 22)),
            later: &assigned_in[i],
            elsewhere: &assigned_in,
            reported: Vec::new(),
        };
        if let Some(pred) = &p.probe.predicate {
            w.visit_expr(pred);
        }
        w.block(&p.probe.body);
    }
    for item in &ctx.program.items {
        if let ItemKind::Function(f) = &item.kind {
            let params = f
                .params
                .iter()
                .map(|p| (p.name.name.clone(), p.span))
                .collect();
            let empty = HashMap::new();
            let mut w = Walker {
                out,
                scopes: vec![params],
                block_scoping: ctx.version_at_least((0, 22)),
                later: &empty,
                elsewhere: &[],
                reported: Vec::new(),
            };
            w.block(&f.body);
        }
    }
}

/// The first assignment of every variable in a probe.
#[derive(Default)]
struct Assignments(HashMap<String, Span>);

impl Visitor for Assignments {
    fn visit_stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Assign { target, .. } => {
                if let ExprKind::Var(name) = &target.kind {
                    self.0.entry(name.clone()).or_insert(target.span);
                }
            }
            StmtKind::Let { var, .. } | StmtKind::For { var, .. } => {
                self.0.entry(var.name.clone()).or_insert(var.span);
            }
            _ => {}
        }
        visit::walk_stmt(self, s);
    }
}

struct Walker<'c, 'o> {
    out: &'o mut Vec<Diagnostic>,
    /// Variables defined so far (one map per open block with block scoping).
    scopes: Vec<HashMap<String, Span>>,
    block_scoping: bool,
    later: &'c HashMap<String, Span>,
    elsewhere: &'c [HashMap<String, Span>],
    reported: Vec<String>,
}

impl Visitor for Walker<'_, '_> {
    fn visit_expr(&mut self, e: &Expr) {
        if let ExprKind::Var(name) = &e.kind {
            self.read(e.span, name);
        }
        visit::walk_expr(self, e);
    }

    fn visit_block(&mut self, b: &Block) {
        self.block(b);
    }

    fn visit_stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Assign { target, op, value } => {
                self.visit_expr(value);
                match &target.kind {
                    ExprKind::Var(name) => {
                        if op.binary_op().is_some() {
                            self.read(target.span, name);
                        }
                        self.define(name, target.span);
                    }
                    _ => self.visit_expr(target),
                }
            }
            StmtKind::Let { var, init, .. } => {
                if let Some(init) = init {
                    self.visit_expr(init);
                }
                self.define(&var.name, var.span);
            }
            StmtKind::For { var, iter, body } => {
                match iter {
                    ForIter::Expr(e) => self.visit_expr(e),
                    ForIter::Range { start, end } => {
                        self.visit_expr(start);
                        self.visit_expr(end);
                    }
                }
                self.scopes.push(HashMap::new());
                self.define(&var.name, var.span);
                for s in &body.stmts {
                    self.visit_stmt(s);
                }
                self.close_scope();
            }
            _ => visit::walk_stmt(self, s),
        }
    }
}

impl Walker<'_, '_> {
    fn block(&mut self, b: &Block) {
        if self.block_scoping {
            self.scopes.push(HashMap::new());
        }
        for s in &b.stmts {
            self.visit_stmt(s);
        }
        if self.block_scoping {
            self.close_scope();
        }
    }

    fn close_scope(&mut self) {
        if self.scopes.len() > 1 {
            let top = self.scopes.pop().unwrap_or_default();
            if !self.block_scoping {
                // Without block scoping, definitions stay for the rest of the probe.
                if let Some(outer) = self.scopes.last_mut() {
                    outer.extend(top);
                }
            }
        }
    }

    fn define(&mut self, name: &str, span: Span) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.entry(name.to_string()).or_insert(span);
        }
    }

    fn defined(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.contains_key(name))
    }

    fn read(&mut self, span: Span, name: &str) {
        if self.defined(name) || self.reported.iter().any(|r| r == name) {
            return;
        }
        self.reported.push(name.to_string());
        let mut d = Diagnostic::error(
            codes::UNDEFINED_VARIABLE,
            format!("`${name}` is read before anything is assigned to it in this probe"),
            span,
        );
        if let Some(&at) = self.later.get(name) {
            if at.start > span.start {
                d = d.with_label(at, "assigned here, after the read").with_help(
                    "bpftrace reads a probe top to bottom: assign the variable before using it",
                );
            } else {
                d = d.with_label(at, "assigned here, inside a block that has ended").with_help(
                    "from bpftrace 0.22 a variable assigned inside { } exists only there: assign it before the block",
                );
            }
        } else if let Some(at) = self.elsewhere.iter().find_map(|m| m.get(name)) {
            d = d.with_label(*at, "assigned in another probe").with_help(format!(
                "scratch variables ($) live for one probe firing; share values between probes with a map: @{name}"
            ));
        } else {
            let known: Vec<&str> = self
                .scopes
                .iter()
                .flat_map(|s| s.keys().map(String::as_str))
                .collect();
            if let Some(best) = suggest::nearest(name, known, 1).first() {
                d.message.push_str(&format!("; did you mean `${best}`?"));
                d = d.with_suggestion(span, format!("${best}"));
            } else {
                d = d.with_help("assign it first, e.g. `$x = 0;`");
            }
        }
        self.out.push(d);
    }
}
