//! A mutable walk over every span in a program, for span-free comparison and shifting.

use super::*;

pub(super) fn for_each_span_mut(program: &mut Program, f: &mut dyn FnMut(&mut Span)) {
    f(&mut program.span);
    for item in &mut program.items {
        f(&mut item.span);
        match &mut item.kind {
            ItemKind::Preprocessor(_) | ItemKind::CDefinition(_) | ItemKind::Error => {}
            ItemKind::Config(config) => {
                for entry in &mut config.entries {
                    f(&mut entry.span);
                    f(&mut entry.key.span);
                    expr(&mut entry.value, f);
                }
            }
            ItemKind::Probe(probe) => {
                for ap in &mut probe.attach_points {
                    f(&mut ap.span);
                    f(&mut ap.provider_span);
                    for part in &mut ap.parts {
                        f(&mut part.span);
                    }
                }
                if let Some(pred) = &mut probe.predicate {
                    expr(pred, f);
                }
                block(&mut probe.body, f);
            }
            ItemKind::Function(func) => {
                f(&mut func.name.span);
                for param in &mut func.params {
                    f(&mut param.span);
                    f(&mut param.name.span);
                    ty(&mut param.ty, f);
                }
                if let Some(ret) = &mut func.return_type {
                    ty(ret, f);
                }
                block(&mut func.body, f);
            }
            ItemKind::Macro(mac) => {
                f(&mut mac.name.span);
                for param in &mut mac.params {
                    expr(param, f);
                }
                block(&mut mac.body, f);
            }
        }
    }
}

fn block(block: &mut Block, f: &mut dyn FnMut(&mut Span)) {
    f(&mut block.span);
    for s in &mut block.stmts {
        stmt(s, f);
    }
}

fn stmt(stmt: &mut Stmt, f: &mut dyn FnMut(&mut Span)) {
    f(&mut stmt.span);
    match &mut stmt.kind {
        StmtKind::Expr(e) | StmtKind::Assume(e) => expr(e, f),
        StmtKind::Assign { target, value, .. } => {
            expr(target, f);
            expr(value, f);
        }
        StmtKind::Let { var, ty: t, init } => {
            f(&mut var.span);
            if let Some(t) = t {
                ty(t, f);
            }
            if let Some(e) = init {
                expr(e, f);
            }
        }
        StmtKind::If(if_stmt) => if_(if_stmt, f),
        StmtKind::Unroll { count: e, body } | StmtKind::While { cond: e, body } => {
            expr(e, f);
            block(body, f);
        }
        StmtKind::For { var, iter, body } => {
            f(&mut var.span);
            match iter {
                ForIter::Expr(e) => expr(e, f),
                ForIter::Range { start, end } => {
                    expr(start, f);
                    expr(end, f);
                }
            }
            block(body, f);
        }
        StmtKind::Return(e) => {
            if let Some(e) = e {
                expr(e, f);
            }
        }
        StmtKind::Block(b) => block(b, f),
        StmtKind::Assert { cond, .. } => expr(cond, f),
        StmtKind::Break | StmtKind::Continue | StmtKind::Error => {}
    }
}

fn if_(if_stmt: &mut IfStmt, f: &mut dyn FnMut(&mut Span)) {
    f(&mut if_stmt.span);
    expr(&mut if_stmt.cond, f);
    block(&mut if_stmt.then_block, f);
    match &mut if_stmt.else_branch {
        Some(ElseBranch::Block(b)) => block(b, f),
        Some(ElseBranch::If(nested)) => if_(nested, f),
        None => {}
    }
}

fn ty(t: &mut TypeExpr, f: &mut dyn FnMut(&mut Span)) {
    f(&mut t.span);
    match &mut t.kind {
        TypeKind::Named(_) | TypeKind::Record { .. } | TypeKind::Error => {}
        TypeKind::Pointer(inner) | TypeKind::Array { elem: inner, .. } => ty(inner, f),
    }
}

fn type_or_expr(t: &mut TypeOrExpr, f: &mut dyn FnMut(&mut Span)) {
    match t {
        TypeOrExpr::Type(t) => ty(t, f),
        TypeOrExpr::Expr(e) => expr(e, f),
    }
}

fn expr(e: &mut Expr, f: &mut dyn FnMut(&mut Span)) {
    f(&mut e.span);
    match &mut e.kind {
        ExprKind::Int(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Var(_)
        | ExprKind::Positional(_)
        | ExprKind::PositionalCount
        | ExprKind::Builtin(_)
        | ExprKind::Ident(_)
        | ExprKind::Error => {}
        ExprKind::Map { keys, .. } => {
            for k in keys {
                expr(k, f);
            }
        }
        ExprKind::Call { name, args } => {
            f(&mut name.span);
            for a in args {
                expr(a, f);
            }
        }
        ExprKind::Field { base, field, .. } => {
            expr(base, f);
            f(&mut field.span);
        }
        ExprKind::Index { base, index } => {
            expr(base, f);
            expr(index, f);
        }
        ExprKind::TupleIndex { base, .. } => expr(base, f),
        ExprKind::Unary { operand, .. } => expr(operand, f),
        ExprKind::Binary { lhs, rhs, .. } => {
            expr(lhs, f);
            expr(rhs, f);
        }
        ExprKind::Ternary {
            cond,
            then_expr,
            else_expr,
        } => {
            expr(cond, f);
            expr(then_expr, f);
            expr(else_expr, f);
        }
        ExprKind::Cast { ty: t, expr: inner } => {
            ty(t, f);
            expr(inner, f);
        }
        ExprKind::Tuple(elems) => {
            for el in elems {
                expr(el, f);
            }
        }
        ExprKind::Sizeof(arg) => type_or_expr(arg, f),
        ExprKind::Offsetof { of, fields } => {
            type_or_expr(of, f);
            for field in fields {
                f(&mut field.span);
            }
        }
    }
}
