//! Read-only traversal for later passes (checker, symbolic executor): implement
//! the `visit_*` methods you care about and call the matching `walk_*` to
//! continue into children.

use crate::ast::*;

pub trait Visitor {
    fn visit_program(&mut self, program: &Program) {
        walk_program(self, program);
    }
    fn visit_item(&mut self, item: &Item) {
        walk_item(self, item);
    }
    fn visit_config(&mut self, config: &Config) {
        walk_config(self, config);
    }
    fn visit_probe(&mut self, probe: &Probe) {
        walk_probe(self, probe);
    }
    fn visit_attach_point(&mut self, _attach_point: &AttachPoint) {}
    fn visit_function(&mut self, function: &Function) {
        walk_function(self, function);
    }
    fn visit_macro(&mut self, mac: &Macro) {
        walk_macro(self, mac);
    }
    fn visit_block(&mut self, block: &Block) {
        walk_block(self, block);
    }
    fn visit_stmt(&mut self, stmt: &Stmt) {
        walk_stmt(self, stmt);
    }
    fn visit_if(&mut self, if_stmt: &IfStmt) {
        walk_if(self, if_stmt);
    }
    fn visit_expr(&mut self, expr: &Expr) {
        walk_expr(self, expr);
    }
    fn visit_type(&mut self, ty: &TypeExpr) {
        walk_type(self, ty);
    }
}

pub fn walk_program<V: Visitor + ?Sized>(v: &mut V, program: &Program) {
    for item in &program.items {
        v.visit_item(item);
    }
}

pub fn walk_item<V: Visitor + ?Sized>(v: &mut V, item: &Item) {
    match &item.kind {
        ItemKind::Config(config) => v.visit_config(config),
        ItemKind::Probe(probe) => v.visit_probe(probe),
        ItemKind::Function(function) => v.visit_function(function),
        ItemKind::Macro(mac) => v.visit_macro(mac),
        ItemKind::Preprocessor(_) | ItemKind::CDefinition(_) | ItemKind::Error => {}
    }
}

pub fn walk_config<V: Visitor + ?Sized>(v: &mut V, config: &Config) {
    for entry in &config.entries {
        v.visit_expr(&entry.value);
    }
}

pub fn walk_probe<V: Visitor + ?Sized>(v: &mut V, probe: &Probe) {
    for ap in &probe.attach_points {
        v.visit_attach_point(ap);
    }
    if let Some(pred) = &probe.predicate {
        v.visit_expr(pred);
    }
    v.visit_block(&probe.body);
}

pub fn walk_function<V: Visitor + ?Sized>(v: &mut V, function: &Function) {
    for param in &function.params {
        v.visit_type(&param.ty);
    }
    if let Some(ret) = &function.return_type {
        v.visit_type(ret);
    }
    v.visit_block(&function.body);
}

pub fn walk_macro<V: Visitor + ?Sized>(v: &mut V, mac: &Macro) {
    for param in &mac.params {
        v.visit_expr(param);
    }
    v.visit_block(&mac.body);
}

pub fn walk_block<V: Visitor + ?Sized>(v: &mut V, block: &Block) {
    for stmt in &block.stmts {
        v.visit_stmt(stmt);
    }
}

pub fn walk_stmt<V: Visitor + ?Sized>(v: &mut V, stmt: &Stmt) {
    match &stmt.kind {
        StmtKind::Expr(e) | StmtKind::Assume(e) => v.visit_expr(e),
        StmtKind::Assign { target, value, .. } => {
            v.visit_expr(target);
            v.visit_expr(value);
        }
        StmtKind::Let { ty, init, .. } => {
            if let Some(ty) = ty {
                v.visit_type(ty);
            }
            if let Some(init) = init {
                v.visit_expr(init);
            }
        }
        StmtKind::If(if_stmt) => v.visit_if(if_stmt),
        StmtKind::Unroll { count: e, body } | StmtKind::While { cond: e, body } => {
            v.visit_expr(e);
            v.visit_block(body);
        }
        StmtKind::For { iter, body, .. } => {
            match iter {
                ForIter::Expr(e) => v.visit_expr(e),
                ForIter::Range { start, end } => {
                    v.visit_expr(start);
                    v.visit_expr(end);
                }
            }
            v.visit_block(body);
        }
        StmtKind::Return(e) => {
            if let Some(e) = e {
                v.visit_expr(e);
            }
        }
        StmtKind::Block(block) => v.visit_block(block),
        StmtKind::Assert { cond, .. } => v.visit_expr(cond),
        StmtKind::Break | StmtKind::Continue | StmtKind::Error => {}
    }
}

pub fn walk_if<V: Visitor + ?Sized>(v: &mut V, if_stmt: &IfStmt) {
    v.visit_expr(&if_stmt.cond);
    v.visit_block(&if_stmt.then_block);
    match &if_stmt.else_branch {
        Some(ElseBranch::Block(block)) => v.visit_block(block),
        Some(ElseBranch::If(nested)) => v.visit_if(nested),
        None => {}
    }
}

pub fn walk_type_or_expr<V: Visitor + ?Sized>(v: &mut V, t: &TypeOrExpr) {
    match t {
        TypeOrExpr::Type(ty) => v.visit_type(ty),
        TypeOrExpr::Expr(e) => v.visit_expr(e),
    }
}

pub fn walk_expr<V: Visitor + ?Sized>(v: &mut V, expr: &Expr) {
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Var(_)
        | ExprKind::Positional(_)
        | ExprKind::PositionalCount
        | ExprKind::Builtin(_)
        | ExprKind::Ident(_)
        | ExprKind::Error => {}
        ExprKind::Map { keys, .. } => keys.iter().for_each(|k| v.visit_expr(k)),
        ExprKind::Call { args, .. } => args.iter().for_each(|a| v.visit_expr(a)),
        ExprKind::Tuple(elems) => elems.iter().for_each(|e| v.visit_expr(e)),
        ExprKind::Field { base, .. } | ExprKind::TupleIndex { base, .. } => v.visit_expr(base),
        ExprKind::Index { base, index } => {
            v.visit_expr(base);
            v.visit_expr(index);
        }
        ExprKind::Unary { operand, .. } => v.visit_expr(operand),
        ExprKind::Binary { lhs, rhs, .. } => {
            v.visit_expr(lhs);
            v.visit_expr(rhs);
        }
        ExprKind::Ternary {
            cond,
            then_expr,
            else_expr,
        } => {
            v.visit_expr(cond);
            v.visit_expr(then_expr);
            v.visit_expr(else_expr);
        }
        ExprKind::Cast { ty, expr } => {
            v.visit_type(ty);
            v.visit_expr(expr);
        }
        ExprKind::Sizeof(arg) => walk_type_or_expr(v, arg),
        ExprKind::Offsetof { of, .. } => walk_type_or_expr(v, of),
    }
}

pub fn walk_type<V: Visitor + ?Sized>(v: &mut V, ty: &TypeExpr) {
    match &ty.kind {
        TypeKind::Pointer(inner) | TypeKind::Array { elem: inner, .. } => v.visit_type(inner),
        TypeKind::Named(_) | TypeKind::Record { .. } | TypeKind::Error => {}
    }
}
