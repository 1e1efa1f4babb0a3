//! The bpftrace syntax tree: a plain boxed tree with a byte span on every node.
//!
//! Parentheses are not kept as nodes (the tree is the meaning); comments are
//! dropped; top-level C text is kept verbatim. The parser bounds the depth of
//! any tree it builds (see `MAX_DEPTH` in `parser`), so recursive walks are safe.

mod dump;
mod spans;

pub use dump::dump;

pub use crate::span::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub items: Vec<Item>,
    pub span: Span,
}

impl Program {
    /// Structural equality that ignores every span: what "the same program" means
    /// after printing and re-parsing.
    pub fn eq_ignoring_spans(&self, other: &Program) -> bool {
        self.without_spans() == other.without_spans()
    }

    /// A copy with every span set to `0..0`: a span-free normal form.
    pub fn without_spans(&self) -> Program {
        let mut copy = self.clone();
        spans::for_each_span_mut(&mut copy, &mut |s| *s = Span::default());
        copy
    }

    /// Moves every span by `delta` bytes, e.g. to place a cell's program inside
    /// a larger document.
    pub fn shift_spans(&mut self, delta: u32) {
        spans::for_each_span_mut(self, &mut |s| {
            s.start = s.start.saturating_add(delta);
            s.end = s.end.saturating_add(delta);
        });
    }

    pub fn probes(&self) -> impl Iterator<Item = &Probe> {
        self.items.iter().filter_map(|item| match &item.kind {
            ItemKind::Probe(p) => Some(p),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// `#include`, `#define`, `#if...`, a shebang: one line (with `\` continuations), verbatim.
    Preprocessor(Preprocessor),
    /// `struct`/`union`/`enum`/`typedef` definitions, verbatim, for the C parser.
    CDefinition(CDefinition),
    Config(Config),
    Probe(Probe),
    /// `fn name($a: type, ...): type { ... }` (bpftrace 0.20+).
    Function(Function),
    /// `macro name(...) { ... }` (bpftrace 0.23+).
    Macro(Macro),
    /// Something that could not be parsed; its diagnostics say why.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreprocessorKind {
    Shebang,
    Include,
    Define,
    /// `#if`, `#ifdef`, `#ifndef`, `#elif`, `#else`, `#endif`.
    Conditional,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preprocessor {
    pub kind: PreprocessorKind,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CDefinitionKind {
    Struct,
    Union,
    Enum,
    Typedef,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CDefinition {
    pub kind: CDefinitionKind,
    /// The tag (`struct NAME {`), when there is one.
    pub name: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub entries: Vec<ConfigEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub attach_points: Vec<AttachPoint>,
    pub predicate: Option<Expr>,
    pub body: Block,
}

/// One attach point, e.g. `uprobe:/bin/bash:readline`, split at top-level `:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachPoint {
    /// The whole text as written.
    pub raw: String,
    /// The provider as written (`t`, `kprobe`, `BEGIN`).
    pub provider: String,
    /// The provider it names, if known (`t` -> `Tracepoint`).
    pub kind: Option<ProbeKind>,
    /// The `:`-separated parts after the provider.
    pub parts: Vec<AttachPart>,
    /// True when an unquoted part contains `*`.
    pub wildcard: bool,
    pub span: Span,
    pub provider_span: Span,
}

impl AttachPoint {
    /// The canonical provider name (`t` -> `tracepoint`), or the text as written
    /// when the provider is unknown.
    pub fn normalized_provider(&self) -> &str {
        match self.kind {
            Some(kind) => kind.as_str(),
            None => &self.provider,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachPart {
    /// As written, quotes included.
    pub text: String,
    /// With quotes removed.
    pub value: String,
    pub quoted: bool,
    pub span: Span,
}

/// Probe types of bpftrace 0.17 to 0.23. Deprecated spellings map to the
/// current name (`kfunc` -> `Fentry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Begin,
    End,
    Kprobe,
    Kretprobe,
    Uprobe,
    Uretprobe,
    Usdt,
    Tracepoint,
    Rawtracepoint,
    Profile,
    Interval,
    Software,
    Hardware,
    Watchpoint,
    Asyncwatchpoint,
    Fentry,
    Fexit,
    Iter,
    SelfProbe,
}

impl ProbeKind {
    /// Every spelling bpftrace accepts, with the kind it names.
    pub const SPELLINGS: &'static [(&'static str, ProbeKind)] = &[
        ("BEGIN", ProbeKind::Begin),
        ("END", ProbeKind::End),
        ("kprobe", ProbeKind::Kprobe),
        ("k", ProbeKind::Kprobe),
        ("kretprobe", ProbeKind::Kretprobe),
        ("kr", ProbeKind::Kretprobe),
        ("uprobe", ProbeKind::Uprobe),
        ("u", ProbeKind::Uprobe),
        ("uretprobe", ProbeKind::Uretprobe),
        ("ur", ProbeKind::Uretprobe),
        ("usdt", ProbeKind::Usdt),
        ("U", ProbeKind::Usdt),
        ("tracepoint", ProbeKind::Tracepoint),
        ("t", ProbeKind::Tracepoint),
        ("rawtracepoint", ProbeKind::Rawtracepoint),
        ("rt", ProbeKind::Rawtracepoint),
        ("profile", ProbeKind::Profile),
        ("p", ProbeKind::Profile),
        ("interval", ProbeKind::Interval),
        ("i", ProbeKind::Interval),
        ("software", ProbeKind::Software),
        ("s", ProbeKind::Software),
        ("hardware", ProbeKind::Hardware),
        ("h", ProbeKind::Hardware),
        ("watchpoint", ProbeKind::Watchpoint),
        ("w", ProbeKind::Watchpoint),
        ("asyncwatchpoint", ProbeKind::Asyncwatchpoint),
        ("aw", ProbeKind::Asyncwatchpoint),
        ("fentry", ProbeKind::Fentry),
        ("kfunc", ProbeKind::Fentry),
        ("f", ProbeKind::Fentry),
        ("fexit", ProbeKind::Fexit),
        ("kretfunc", ProbeKind::Fexit),
        ("fr", ProbeKind::Fexit),
        ("iter", ProbeKind::Iter),
        ("it", ProbeKind::Iter),
        ("self", ProbeKind::SelfProbe),
    ];

    pub fn from_provider(provider: &str) -> Option<ProbeKind> {
        Self::SPELLINGS
            .iter()
            .find(|(name, _)| *name == provider)
            .map(|(_, kind)| *kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Begin => "BEGIN",
            ProbeKind::End => "END",
            ProbeKind::Kprobe => "kprobe",
            ProbeKind::Kretprobe => "kretprobe",
            ProbeKind::Uprobe => "uprobe",
            ProbeKind::Uretprobe => "uretprobe",
            ProbeKind::Usdt => "usdt",
            ProbeKind::Tracepoint => "tracepoint",
            ProbeKind::Rawtracepoint => "rawtracepoint",
            ProbeKind::Profile => "profile",
            ProbeKind::Interval => "interval",
            ProbeKind::Software => "software",
            ProbeKind::Hardware => "hardware",
            ProbeKind::Watchpoint => "watchpoint",
            ProbeKind::Asyncwatchpoint => "asyncwatchpoint",
            ProbeKind::Fentry => "fentry",
            ProbeKind::Fexit => "fexit",
            ProbeKind::Iter => "iter",
            ProbeKind::SelfProbe => "self",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: Ident,
    pub params: Vec<Param>,
    pub return_type: Option<TypeExpr>,
    pub body: Block,
}

/// A function parameter `$name: type`; `name` is without the `$`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Macro {
    pub name: Ident,
    /// Each a `Var`, `Map` or `Ident` expression.
    pub params: Vec<Expr>,
    pub body: Block,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    pub kind: StmtKind,
    /// Excludes the terminating `;`.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StmtKind {
    Expr(Expr),
    /// `target op value`; `target` is a `Var` or `Map` expression.
    Assign {
        target: Expr,
        op: AssignOp,
        value: Expr,
    },
    /// `let $x;`, `let $x: type = value;` (bpftrace 0.22+); `var` is without the `$`.
    Let {
        var: Ident,
        ty: Option<TypeExpr>,
        init: Option<Expr>,
    },
    If(IfStmt),
    Unroll {
        count: Expr,
        body: Block,
    },
    While {
        cond: Expr,
        body: Block,
    },
    /// `for ($kv : @map) { }` or `for ($i : 0..10) { }`; `var` is without the `$`.
    For {
        var: Ident,
        iter: ForIter,
        body: Block,
    },
    Return(Option<Expr>),
    Break,
    Continue,
    Block(Block),
    /// `assume(cond);`: a verification annotation, removed before bpftrace runs.
    Assume(Expr),
    /// `assert(cond)` or `assert(cond, "why")`: a verification annotation.
    Assert {
        cond: Expr,
        message: Option<StrLit>,
    },
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfStmt {
    pub cond: Expr,
    pub then_block: Block,
    pub else_branch: Option<ElseBranch>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElseBranch {
    Block(Block),
    If(Box<IfStmt>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForIter {
    /// A map (or any expression bpftrace may accept there).
    Expr(Expr),
    /// `start..end` (bpftrace 0.22+ per our brief; released in 0.24).
    Range { start: Expr, end: Expr },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    Assign,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
}

impl AssignOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignOp::Assign => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
            AssignOp::Mod => "%=",
            AssignOp::BitAnd => "&=",
            AssignOp::BitOr => "|=",
            AssignOp::BitXor => "^=",
            AssignOp::Shl => "<<=",
            AssignOp::Shr => ">>=",
        }
    }

    /// The binary operator a compound assignment applies (`+=` -> `+`).
    pub fn binary_op(self) -> Option<BinaryOp> {
        Some(match self {
            AssignOp::Assign => return None,
            AssignOp::Add => BinaryOp::Add,
            AssignOp::Sub => BinaryOp::Sub,
            AssignOp::Mul => BinaryOp::Mul,
            AssignOp::Div => BinaryOp::Div,
            AssignOp::Mod => BinaryOp::Mod,
            AssignOp::BitAnd => BinaryOp::BitAnd,
            AssignOp::BitOr => BinaryOp::BitOr,
            AssignOp::BitXor => BinaryOp::BitXor,
            AssignOp::Shl => BinaryOp::Shl,
            AssignOp::Shr => BinaryOp::Shr,
        })
    }
}

/// A name with its span: a map or variable name (without sigil), a field, a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    Int(IntLit),
    Str(StrLit),
    Bool(bool),
    /// `$name`, stored without the `$`.
    Var(String),
    /// `$1`, `$2`, ...
    Positional(u64),
    /// `$#`
    PositionalCount,
    /// `@name`, `@name[k1, k2]`, `@`, `@[k]`; `name` is without the `@` and empty for `@`.
    Map {
        name: String,
        keys: Vec<Expr>,
    },
    /// A builtin variable such as `pid`, `comm`, `args`, `arg0`, `retval`, `kstack`.
    Builtin(String),
    /// Any other bare name: enum constants (`AF_INET`), stack modes (`perf`), ...
    Ident(String),
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
    /// `base.field` or `base->field` (`arrow`).
    Field {
        base: Box<Expr>,
        field: Ident,
        arrow: bool,
    },
    Index {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    /// `tuple.0`
    TupleIndex {
        base: Box<Expr>,
        index: u32,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Ternary {
        cond: Box<Expr>,
        then_expr: Box<Expr>,
        else_expr: Box<Expr>,
    },
    Cast {
        ty: TypeExpr,
        expr: Box<Expr>,
    },
    /// `(a, b, ...)`, at least two elements.
    Tuple(Vec<Expr>),
    Sizeof(TypeOrExpr),
    /// `offsetof(struct x, a.b)`: `fields` is the member path.
    Offsetof {
        of: TypeOrExpr,
        fields: Vec<Ident>,
    },
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeOrExpr {
    Type(TypeExpr),
    Expr(Box<Expr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntLit {
    pub value: u64,
    /// As written (`0xff`, `1_000`, `1e6`, `10UL`), so printing keeps it.
    pub raw: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    /// The text between the quotes, escapes not yet decoded.
    pub raw: String,
    /// The decoded bytes (may not be UTF-8: `"\xff"`).
    pub value: Vec<u8>,
}

impl StrLit {
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`
    Not,
    /// `~`
    BitNot,
    /// `-`
    Neg,
    /// `+`
    Plus,
    /// `*`
    Deref,
    /// `&` (bpftrace 0.21+)
    AddrOf,
    PreInc,
    PreDec,
    PostInc,
    PostDec,
}

impl UnaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            UnaryOp::Not => "!",
            UnaryOp::BitNot => "~",
            UnaryOp::Neg => "-",
            UnaryOp::Plus => "+",
            UnaryOp::Deref => "*",
            UnaryOp::AddrOf => "&",
            UnaryOp::PreInc | UnaryOp::PostInc => "++",
            UnaryOp::PreDec | UnaryOp::PostDec => "--",
        }
    }

    pub fn is_postfix(self) -> bool {
        matches!(self, UnaryOp::PostInc | UnaryOp::PostDec)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    BitOr,
    BitXor,
    BitAnd,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Shl,
    Shr,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::BitAnd => "&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }

    /// C precedence level: higher binds tighter. `||` is 1, `*` `/` `%` are 10.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::BitOr => 3,
            BinaryOp::BitXor => 4,
            BinaryOp::BitAnd => 5,
            BinaryOp::Eq | BinaryOp::Ne => 6,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 7,
            BinaryOp::Shl | BinaryOp::Shr => 8,
            BinaryOp::Add | BinaryOp::Sub => 9,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 10,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeKind {
    /// `int8` ... `uint64`, `bool`, `string`, `void`, or a typedef name.
    Named(String),
    /// `struct NAME`, `union NAME`, `enum NAME`.
    Record {
        keyword: RecordKeyword,
        name: String,
    },
    Pointer(Box<TypeExpr>),
    /// `T[N]`, or `T[]` when `len` is `None`.
    Array {
        elem: Box<TypeExpr>,
        len: Option<u64>,
    },
    /// A type that could not be parsed.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKeyword {
    Struct,
    Union,
    Enum,
}

impl RecordKeyword {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKeyword::Struct => "struct",
            RecordKeyword::Union => "union",
            RecordKeyword::Enum => "enum",
        }
    }
}

/// The integer type names a cast may start with.
pub const INT_TYPES: &[&str] = &[
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
];

/// Builtin variables of bpftrace 0.17 to 0.23 (besides `argN`/`sargN`).
pub const BUILTINS: &[&str] = &[
    "pid", "tid", "uid", "gid", "nsecs", "elapsed", "numaid", "cpu", "ncpus", "comm", "kstack",
    "ustack", "arg0", "args", "retval", "func", "probe", "curtask", "rand", "ctx", "cgroup",
    "cpid", "username", "jiffies", "usermode",
];

/// Whether `name` is a builtin variable (including `arg0`..`argN`, `sarg0`..`sargN`).
pub fn is_builtin(name: &str) -> bool {
    if BUILTINS.contains(&name) {
        return true;
    }
    let digits = name
        .strip_prefix("arg")
        .or_else(|| name.strip_prefix("sarg"));
    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}
