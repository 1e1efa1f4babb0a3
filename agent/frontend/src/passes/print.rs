//! The pretty printer: one consistent layout (4-space indent, one statement per
//! line, minimal parentheses) whose output parses back to the same tree.

use crate::ast::*;

/// Prints `program` in canonical layout. Comments are not kept; C text and
/// preprocessor lines are printed verbatim. For a program without parse errors,
/// `parse(&print_program(p)).program` equals `p` ignoring spans.
pub fn print_program(program: &Program) -> String {
    let mut printer = Printer {
        out: String::new(),
        indent: 0,
    };
    let mut previous: Option<&ItemKind> = None;
    for item in &program.items {
        if let Some(prev) = previous {
            let both_directives = matches!(prev, ItemKind::Preprocessor(_))
                && matches!(item.kind, ItemKind::Preprocessor(_));
            if !both_directives {
                printer.out.push('\n');
            }
        }
        printer.item(item);
        previous = Some(&item.kind);
    }
    printer.out
}

/// Prints one expression in canonical form (e.g. for messages).
pub fn print_expr(expr: &Expr) -> String {
    let mut printer = Printer {
        out: String::new(),
        indent: 0,
    };
    printer.expr(expr, 0);
    printer.out
}

/// Prints one type as it would appear in a cast.
pub fn print_type(ty: &TypeExpr) -> String {
    let mut out = String::new();
    type_into(&mut out, ty);
    out
}

// Precedence levels for deciding parentheses: ternary 0, binary operators
// 1..=10 (see `BinaryOp::precedence`), prefix operators and casts, postfix
// forms, atoms.
const PREFIX: u8 = 11;
const POSTFIX: u8 = 12;
const ATOM: u8 = 13;

struct Printer {
    out: String,
    indent: usize,
}

impl Printer {
    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
    }

    fn item(&mut self, item: &Item) {
        match &item.kind {
            ItemKind::Preprocessor(p) => {
                self.out.push_str(&p.text);
                self.out.push('\n');
            }
            ItemKind::CDefinition(c) => {
                self.out.push_str(&c.text);
                self.out.push('\n');
            }
            ItemKind::Config(config) => {
                self.out.push_str("config = {");
                self.indent += 1;
                for entry in &config.entries {
                    self.newline();
                    self.out.push_str(&entry.key.name);
                    self.out.push_str(" = ");
                    self.expr(&entry.value, 0);
                    self.out.push(';');
                }
                self.indent -= 1;
                self.out.push_str("\n}\n");
            }
            ItemKind::Probe(probe) => {
                let names: Vec<&str> = probe.attach_points.iter().map(|a| a.raw.as_str()).collect();
                self.out.push_str(&names.join(",\n"));
                if let Some(pred) = &probe.predicate {
                    self.out.push_str("\n/");
                    let start = self.out.len();
                    self.expr(pred, 0);
                    // `/*` would open a comment.
                    if self.out[start..].starts_with('*') {
                        self.out.insert(start, ' ');
                    }
                    self.out.push('/');
                }
                self.out.push('\n');
                self.block(&probe.body);
                self.out.push('\n');
            }
            ItemKind::Function(f) => {
                self.out.push_str("fn ");
                self.out.push_str(&f.name.name);
                self.out.push('(');
                for (i, param) in f.params.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push('$');
                    self.out.push_str(&param.name.name);
                    self.out.push_str(": ");
                    type_into(&mut self.out, &param.ty);
                }
                self.out.push(')');
                if let Some(ret) = &f.return_type {
                    self.out.push_str(": ");
                    type_into(&mut self.out, ret);
                }
                self.out.push('\n');
                self.block(&f.body);
                self.out.push('\n');
            }
            ItemKind::Macro(m) => {
                self.out.push_str("macro ");
                self.out.push_str(&m.name.name);
                self.out.push('(');
                self.expr_list(&m.params);
                self.out.push_str(")\n");
                self.block(&m.body);
                self.out.push('\n');
            }
            ItemKind::Error => self.out.push_str("/* error */\n"),
        }
    }

    /// `{`, the statements one per line, `}` at the current indentation.
    fn block(&mut self, block: &Block) {
        self.out.push('{');
        self.indent += 1;
        for stmt in &block.stmts {
            self.newline();
            self.stmt(stmt);
        }
        self.indent -= 1;
        self.newline();
        self.out.push('}');
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Expr(e) => {
                self.expr(e, 0);
                self.out.push(';');
            }
            StmtKind::Assign { target, op, value } => {
                self.expr(target, 0);
                self.out.push(' ');
                self.out.push_str(op.as_str());
                self.out.push(' ');
                self.expr(value, 0);
                self.out.push(';');
            }
            StmtKind::Let { var, ty, init } => {
                self.out.push_str("let $");
                self.out.push_str(&var.name);
                if let Some(ty) = ty {
                    self.out.push_str(": ");
                    type_into(&mut self.out, ty);
                }
                if let Some(init) = init {
                    self.out.push_str(" = ");
                    self.expr(init, 0);
                }
                self.out.push(';');
            }
            StmtKind::If(if_stmt) => self.if_stmt(if_stmt),
            StmtKind::Unroll { count, body } => {
                self.out.push_str("unroll (");
                self.expr(count, 0);
                self.out.push_str(") ");
                self.block(body);
            }
            StmtKind::While { cond, body } => {
                self.out.push_str("while (");
                self.expr(cond, 0);
                self.out.push_str(") ");
                self.block(body);
            }
            StmtKind::For { var, iter, body } => {
                self.out.push_str("for ($");
                self.out.push_str(&var.name);
                self.out.push_str(" : ");
                match iter {
                    ForIter::Expr(e) => self.expr(e, 0),
                    ForIter::Range { start, end } => {
                        self.expr(start, 0);
                        self.out.push_str("..");
                        self.expr(end, 0);
                    }
                }
                self.out.push_str(") ");
                self.block(body);
            }
            StmtKind::Return(e) => {
                self.out.push_str("return");
                if let Some(e) = e {
                    self.out.push(' ');
                    self.expr(e, 0);
                }
                self.out.push(';');
            }
            StmtKind::Break => self.out.push_str("break;"),
            StmtKind::Continue => self.out.push_str("continue;"),
            StmtKind::Block(block) => self.block(block),
            StmtKind::Assume(cond) => {
                self.out.push_str("assume(");
                self.expr(cond, 0);
                self.out.push_str(");");
            }
            StmtKind::Assert { cond, message } => {
                self.out.push_str("assert(");
                self.expr(cond, 0);
                if let Some(message) = message {
                    self.out.push_str(", \"");
                    self.out.push_str(&message.raw);
                    self.out.push('"');
                }
                self.out.push_str(");");
            }
            StmtKind::Error => self.out.push_str("/* error */"),
        }
    }

    fn if_stmt(&mut self, if_stmt: &IfStmt) {
        self.out.push_str("if (");
        self.expr(&if_stmt.cond, 0);
        self.out.push_str(") ");
        self.block(&if_stmt.then_block);
        match &if_stmt.else_branch {
            Some(ElseBranch::Block(block)) => {
                self.out.push_str(" else ");
                self.block(block);
            }
            Some(ElseBranch::If(nested)) => {
                self.out.push_str(" else ");
                self.if_stmt(nested);
            }
            None => {}
        }
    }

    fn expr_list(&mut self, exprs: &[Expr]) {
        for (i, e) in exprs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.expr(e, 0);
        }
    }

    /// Prints `e`, in parentheses if it binds more loosely than `min` requires.
    fn expr(&mut self, e: &Expr, min: u8) {
        let prec = precedence(e);
        let paren = prec < min;
        if paren {
            self.out.push('(');
        }
        self.expr_inner(e);
        if paren {
            self.out.push(')');
        }
    }

    fn expr_inner(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Int(i) => self.out.push_str(&i.raw),
            ExprKind::Str(s) => {
                self.out.push('"');
                self.out.push_str(&s.raw);
                self.out.push('"');
            }
            ExprKind::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            ExprKind::Var(name) => {
                self.out.push('$');
                self.out.push_str(name);
            }
            ExprKind::Positional(n) => {
                self.out.push('$');
                self.out.push_str(&n.to_string());
            }
            ExprKind::PositionalCount => self.out.push_str("$#"),
            ExprKind::Map { name, keys } => {
                self.out.push('@');
                self.out.push_str(name);
                if !keys.is_empty() {
                    self.out.push('[');
                    self.expr_list(keys);
                    self.out.push(']');
                }
            }
            ExprKind::Builtin(name) | ExprKind::Ident(name) => self.out.push_str(name),
            ExprKind::Call { name, args } => {
                self.out.push_str(&name.name);
                self.out.push('(');
                self.expr_list(args);
                self.out.push(')');
            }
            ExprKind::Field { base, field, arrow } => {
                self.expr(base, POSTFIX);
                self.out.push_str(if *arrow { "->" } else { "." });
                self.out.push_str(&field.name);
            }
            ExprKind::Index { base, index } => {
                self.expr(base, POSTFIX);
                self.out.push('[');
                self.expr(index, 0);
                self.out.push(']');
            }
            ExprKind::TupleIndex { base, index } => {
                self.expr(base, POSTFIX);
                self.out.push('.');
                self.out.push_str(&index.to_string());
            }
            ExprKind::Unary { op, operand } => {
                if op.is_postfix() {
                    self.expr(operand, POSTFIX);
                    self.out.push_str(op.as_str());
                } else {
                    self.out.push_str(op.as_str());
                    // `- -x`, `& &x`, `!!x`: parenthesise nested prefix forms so
                    // operators never fuse into `--`, `&&`, ...
                    let nested_prefix = matches!(
                        &operand.kind,
                        ExprKind::Unary { op, .. } if !op.is_postfix()
                    ) || matches!(&operand.kind, ExprKind::Cast { .. })
                        && matches!(op, UnaryOp::PreInc | UnaryOp::PreDec);
                    if nested_prefix {
                        self.out.push('(');
                        self.expr_inner(operand);
                        self.out.push(')');
                    } else {
                        self.expr(operand, PREFIX);
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let prec = op.precedence();
                self.expr(lhs, prec);
                self.out.push(' ');
                self.out.push_str(op.as_str());
                self.out.push(' ');
                self.expr(rhs, prec + 1);
            }
            ExprKind::Ternary {
                cond,
                then_expr,
                else_expr,
            } => {
                self.expr(cond, 1);
                self.out.push_str(" ? ");
                // A nested conditional in the middle parses either way; the
                // parentheses are for readers.
                self.expr(then_expr, 1);
                self.out.push_str(" : ");
                self.expr(else_expr, 0);
            }
            ExprKind::Cast { ty, expr } => {
                self.out.push('(');
                type_into(&mut self.out, ty);
                self.out.push(')');
                self.expr(expr, PREFIX);
            }
            ExprKind::Tuple(elems) => {
                self.out.push('(');
                self.expr_list(elems);
                self.out.push(')');
            }
            ExprKind::Sizeof(arg) => {
                self.out.push_str("sizeof(");
                self.type_or_expr(arg);
                self.out.push(')');
            }
            ExprKind::Offsetof { of, fields } => {
                self.out.push_str("offsetof(");
                self.type_or_expr(of);
                self.out.push_str(", ");
                let path: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                self.out.push_str(&path.join("."));
                self.out.push(')');
            }
            ExprKind::Error => self.out.push_str("/* error */"),
        }
    }

    fn type_or_expr(&mut self, t: &TypeOrExpr) {
        match t {
            TypeOrExpr::Type(ty) => type_into(&mut self.out, ty),
            TypeOrExpr::Expr(e) => self.expr(e, 0),
        }
    }
}

fn precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Ternary { .. } => 0,
        ExprKind::Binary { op, .. } => op.precedence(),
        ExprKind::Unary { op, .. } if !op.is_postfix() => PREFIX,
        ExprKind::Cast { .. } => PREFIX,
        ExprKind::Unary { .. }
        | ExprKind::Field { .. }
        | ExprKind::Index { .. }
        | ExprKind::TupleIndex { .. } => POSTFIX,
        _ => ATOM,
    }
}

fn type_into(out: &mut String, ty: &TypeExpr) {
    match &ty.kind {
        TypeKind::Named(name) => out.push_str(name),
        TypeKind::Record { keyword, name } => {
            out.push_str(keyword.as_str());
            out.push(' ');
            out.push_str(name);
        }
        TypeKind::Pointer(inner) => {
            type_into(out, inner);
            if !out.ends_with('*') {
                out.push(' ');
            }
            out.push('*');
        }
        TypeKind::Array { elem, len } => {
            type_into(out, elem);
            out.push('[');
            if let Some(len) = len {
                out.push_str(&len.to_string());
            }
            out.push(']');
        }
        TypeKind::Error => out.push('?'),
    }
}
