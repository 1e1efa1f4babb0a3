//! A compact, indented text form of the tree with spans, for tests and debugging.

use std::fmt::Write;

use super::*;

/// One node per line, children indented by two spaces, spans as `start..end`.
pub fn dump(program: &Program) -> String {
    let mut d = Dumper {
        out: String::new(),
        depth: 0,
    };
    d.program(program);
    d.out
}

struct Dumper {
    out: String,
    depth: usize,
}

impl Dumper {
    fn line(&mut self, span: Span, text: impl std::fmt::Display) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        let _ = writeln!(self.out, "{text} {span:?}");
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self)) {
        self.depth += 1;
        f(self);
        self.depth -= 1;
    }

    fn program(&mut self, program: &Program) {
        self.line(program.span, "Program");
        self.nested(|d| {
            for item in &program.items {
                d.item(item);
            }
        });
    }

    fn item(&mut self, item: &Item) {
        match &item.kind {
            ItemKind::Preprocessor(p) => self.line(
                item.span,
                format_args!("Preprocessor {:?} {:?}", p.kind, p.text),
            ),
            ItemKind::CDefinition(c) => self.line(
                item.span,
                format_args!("CDefinition {:?} {:?} {:?}", c.kind, c.name, c.text),
            ),
            ItemKind::Config(config) => {
                self.line(item.span, "Config");
                self.nested(|d| {
                    for entry in &config.entries {
                        d.line(entry.span, format_args!("Entry {}", entry.key.name));
                        d.nested(|d| d.expr(&entry.value));
                    }
                });
            }
            ItemKind::Probe(probe) => {
                self.line(item.span, "Probe");
                self.nested(|d| {
                    for ap in &probe.attach_points {
                        d.line(
                            ap.span,
                            format_args!(
                                "AttachPoint {:?} provider={} normalized={}{}",
                                ap.raw,
                                ap.provider,
                                ap.normalized_provider(),
                                if ap.wildcard { " wildcard" } else { "" }
                            ),
                        );
                        d.nested(|d| {
                            for part in &ap.parts {
                                d.line(part.span, format_args!("Part {:?}", part.text));
                            }
                        });
                    }
                    if let Some(pred) = &probe.predicate {
                        d.line(pred.span, "Predicate");
                        d.nested(|d| d.expr(pred));
                    }
                    d.block(&probe.body);
                });
            }
            ItemKind::Function(func) => {
                self.line(item.span, format_args!("Function {}", func.name.name));
                self.nested(|d| {
                    for param in &func.params {
                        d.line(param.span, format_args!("Param ${}", param.name.name));
                        d.nested(|d| d.ty(&param.ty));
                    }
                    if let Some(ret) = &func.return_type {
                        d.line(ret.span, "Returns");
                        d.nested(|d| d.ty(ret));
                    }
                    d.block(&func.body);
                });
            }
            ItemKind::Macro(mac) => {
                self.line(item.span, format_args!("Macro {}", mac.name.name));
                self.nested(|d| {
                    for param in &mac.params {
                        d.expr(param);
                    }
                    d.block(&mac.body);
                });
            }
            ItemKind::Error => self.line(item.span, "ErrorItem"),
        }
    }

    fn block(&mut self, block: &Block) {
        self.line(block.span, "Block");
        self.nested(|d| {
            for stmt in &block.stmts {
                d.stmt(stmt);
            }
        });
    }

    fn stmt(&mut self, stmt: &Stmt) {
        let span = stmt.span;
        match &stmt.kind {
            StmtKind::Expr(e) => {
                self.line(span, "ExprStmt");
                self.nested(|d| d.expr(e));
            }
            StmtKind::Assign { target, op, value } => {
                self.line(span, format_args!("Assign {}", op.as_str()));
                self.nested(|d| {
                    d.expr(target);
                    d.expr(value);
                });
            }
            StmtKind::Let { var, ty, init } => {
                self.line(span, format_args!("Let ${}", var.name));
                self.nested(|d| {
                    if let Some(ty) = ty {
                        d.ty(ty);
                    }
                    if let Some(init) = init {
                        d.expr(init);
                    }
                });
            }
            StmtKind::If(if_stmt) => self.if_stmt(if_stmt),
            StmtKind::Unroll { count, body } => {
                self.line(span, "Unroll");
                self.nested(|d| {
                    d.expr(count);
                    d.block(body);
                });
            }
            StmtKind::While { cond, body } => {
                self.line(span, "While");
                self.nested(|d| {
                    d.expr(cond);
                    d.block(body);
                });
            }
            StmtKind::For { var, iter, body } => {
                self.line(span, format_args!("For ${}", var.name));
                self.nested(|d| {
                    match iter {
                        ForIter::Expr(e) => d.expr(e),
                        ForIter::Range { start, end } => {
                            d.line(start.span.cover(end.span), "Range");
                            d.nested(|d| {
                                d.expr(start);
                                d.expr(end);
                            });
                        }
                    }
                    d.block(body);
                });
            }
            StmtKind::Return(e) => {
                self.line(span, "Return");
                if let Some(e) = e {
                    self.nested(|d| d.expr(e));
                }
            }
            StmtKind::Break => self.line(span, "Break"),
            StmtKind::Continue => self.line(span, "Continue"),
            StmtKind::Block(b) => {
                self.line(span, "BlockStmt");
                self.nested(|d| d.block(b));
            }
            StmtKind::Assume(e) => {
                self.line(span, "Assume");
                self.nested(|d| d.expr(e));
            }
            StmtKind::Assert { cond, message } => {
                match message {
                    Some(m) => self.line(span, format_args!("Assert message=\"{}\"", m.raw)),
                    None => self.line(span, "Assert"),
                }
                self.nested(|d| d.expr(cond));
            }
            StmtKind::Error => self.line(span, "ErrorStmt"),
        }
    }

    fn if_stmt(&mut self, if_stmt: &IfStmt) {
        self.line(if_stmt.span, "If");
        self.nested(|d| {
            d.expr(&if_stmt.cond);
            d.block(&if_stmt.then_block);
            match &if_stmt.else_branch {
                Some(ElseBranch::Block(b)) => {
                    d.line(b.span, "Else");
                    d.nested(|d| d.block(b));
                }
                Some(ElseBranch::If(nested)) => {
                    d.line(nested.span, "ElseIf");
                    d.nested(|d| d.if_stmt(nested));
                }
                None => {}
            }
        });
    }

    fn ty(&mut self, ty: &TypeExpr) {
        match &ty.kind {
            TypeKind::Named(name) => self.line(ty.span, format_args!("Type {name}")),
            TypeKind::Record { keyword, name } => {
                self.line(ty.span, format_args!("Type {} {name}", keyword.as_str()))
            }
            TypeKind::Pointer(inner) => {
                self.line(ty.span, "Pointer");
                self.nested(|d| d.ty(inner));
            }
            TypeKind::Error => self.line(ty.span, "ErrorType"),
            TypeKind::Array { elem, len } => {
                match len {
                    Some(n) => self.line(ty.span, format_args!("Array [{n}]")),
                    None => self.line(ty.span, "Array []"),
                }
                self.nested(|d| d.ty(elem));
            }
        }
    }

    fn type_or_expr(&mut self, t: &TypeOrExpr) {
        match t {
            TypeOrExpr::Type(t) => self.ty(t),
            TypeOrExpr::Expr(e) => self.expr(e),
        }
    }

    fn expr(&mut self, e: &Expr) {
        let span = e.span;
        match &e.kind {
            ExprKind::Int(i) => self.line(span, format_args!("Int {} ({})", i.value, i.raw)),
            ExprKind::Str(s) => self.line(span, format_args!("Str \"{}\"", s.raw)),
            ExprKind::Bool(b) => self.line(span, format_args!("Bool {b}")),
            ExprKind::Var(name) => self.line(span, format_args!("Var ${name}")),
            ExprKind::Positional(n) => self.line(span, format_args!("Positional ${n}")),
            ExprKind::PositionalCount => self.line(span, "PositionalCount"),
            ExprKind::Map { name, keys } => {
                self.line(span, format_args!("Map @{name}"));
                self.nested(|d| {
                    for k in keys {
                        d.expr(k);
                    }
                });
            }
            ExprKind::Builtin(name) => self.line(span, format_args!("Builtin {name}")),
            ExprKind::Ident(name) => self.line(span, format_args!("Ident {name}")),
            ExprKind::Call { name, args } => {
                self.line(span, format_args!("Call {}", name.name));
                self.nested(|d| {
                    for a in args {
                        d.expr(a);
                    }
                });
            }
            ExprKind::Field { base, field, arrow } => {
                let op = if *arrow { "->" } else { "." };
                self.line(span, format_args!("Field {op}{}", field.name));
                self.nested(|d| d.expr(base));
            }
            ExprKind::Index { base, index } => {
                self.line(span, "Index");
                self.nested(|d| {
                    d.expr(base);
                    d.expr(index);
                });
            }
            ExprKind::TupleIndex { base, index } => {
                self.line(span, format_args!("TupleIndex .{index}"));
                self.nested(|d| d.expr(base));
            }
            ExprKind::Unary { op, operand } => {
                let fix = match op {
                    UnaryOp::PostInc | UnaryOp::PostDec => " (post)",
                    UnaryOp::PreInc | UnaryOp::PreDec => " (pre)",
                    _ => "",
                };
                self.line(span, format_args!("Unary {}{fix}", op.as_str()));
                self.nested(|d| d.expr(operand));
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.line(span, format_args!("Binary {}", op.as_str()));
                self.nested(|d| {
                    d.expr(lhs);
                    d.expr(rhs);
                });
            }
            ExprKind::Ternary {
                cond,
                then_expr,
                else_expr,
            } => {
                self.line(span, "Ternary");
                self.nested(|d| {
                    d.expr(cond);
                    d.expr(then_expr);
                    d.expr(else_expr);
                });
            }
            ExprKind::Cast { ty, expr } => {
                self.line(span, "Cast");
                self.nested(|d| {
                    d.ty(ty);
                    d.expr(expr);
                });
            }
            ExprKind::Tuple(elems) => {
                self.line(span, "Tuple");
                self.nested(|d| {
                    for el in elems {
                        d.expr(el);
                    }
                });
            }
            ExprKind::Sizeof(arg) => {
                self.line(span, "Sizeof");
                self.nested(|d| d.type_or_expr(arg));
            }
            ExprKind::Offsetof { of, fields } => {
                let path: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                self.line(span, format_args!("Offsetof {}", path.join(".")));
                self.nested(|d| d.type_or_expr(of));
            }
            ExprKind::Error => self.line(span, "ErrorExpr"),
        }
    }
}
