//! The spanned abstract syntax tree of a `.tk` file, as produced by the parser.
//!
//! The AST is purely syntactic: names are unresolved strings and nothing is typed. Every node that
//! a diagnostic may point at carries a [`Span`].

use tk_diag::Span;

/// A name with the span where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed `.tk` file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `import softmax;` (a stdlib module) or `import "path/to/file.tk";` (relative to this file).
    Import(Import),
    /// `kernel name<...>(...) { ... }` or `fn name(...) -> T { ... }`.
    Func(FuncDecl),
    /// `const NAME: i32 = 4;` at file level: a compile-time constant visible to every function.
    Const(ConstDecl),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub target: ImportTarget,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ImportTarget {
    /// `import activations;` resolves to `<stdlib>/activations.tk`.
    Module(Ident),
    /// `import "local/helpers.tk";` resolves relative to the importing file.
    Path(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncKindAst {
    /// Launched over a grid; parameters are scalars and pointers.
    Kernel,
    /// Inlined at every call; parameters may be blocks of any shape (generic over shapes).
    Helper,
}

/// `#[autotune(BLOCK = [64, 128], WARPS = [4, 8])]` before a kernel: configurations to try.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: Ident,
    pub args: Vec<(Ident, Expr)>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FuncDecl {
    pub kind: FuncKindAst,
    pub attributes: Vec<Attribute>,
    pub name: Ident,
    /// Compile-time parameters `<BLOCK: i32 = 128, ...>`.
    pub const_params: Vec<ConstParam>,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Block,
    pub span: Span,
}

/// A compile-time parameter: its type is a scalar dtype; `default` is used unless `-D` sets it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstParam {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

/// A run-time parameter. Helper parameters may omit the type (then any type is accepted).
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub span: Span,
}

/// A written type.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeExprKind {
    /// `f32`, `i64`, `bool`, ...: in a helper parameter this means "this dtype, any shape".
    Named(Ident),
    /// `*f32`
    Ptr(Box<TypeExpr>),
    /// `f32[BLOCK, 16]`: a block type with compile-time dimensions.
    Block(Ident, Vec<Expr>),
    /// `(f32, i32)` as a helper's return type.
    Tuple(Vec<TypeExpr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

/// `{ stmt; stmt; tail }`: the optional tail expression is the block's value (helpers only).
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub tail: Option<Box<Expr>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

/// The names bound by `let`.
#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Name(Ident),
    /// `let (values, indices) = topk(x, 8);`
    Tuple(Vec<Ident>),
}

// `For` is the largest variant; statements are few, so boxing it is not worth the noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `let [mut] pattern [: ty] = value;`
    Let { mutable: bool, pattern: Pattern, ty: Option<TypeExpr>, value: Expr },
    /// `name = value;` or `name op= value;` (`op` is `Some` for compound assignment).
    Assign { target: Ident, op: Option<BinOp>, value: Expr },
    /// An expression evaluated for its effect, e.g. `store(...);`.
    Expr(Expr),
    /// `for var in range(lo, hi[, step]) { ... }` (run-time loop) or
    /// `for var in static_range(lo, hi[, step]) { ... }` (unrolled at compile time).
    For { var: Ident, is_static: bool, lo: Expr, hi: Expr, step: Option<Expr>, body: Block },
    /// `if cond { ... } [else { ... }]`; `else if` is an `If` inside the else block.
    If { cond: Expr, then_block: Block, else_block: Option<Block> },
    /// `return [value];` (helpers; must be the last statement).
    Return(Option<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    /// `&&`: logical and of bools (both sides are evaluated; blocks work element-wise).
    And,
    /// `||`
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `!x`: logical not (bool) or bitwise not (integers).
    Not,
}

/// One subscript in `x[...]`.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    /// `:` keeps a dimension.
    Full(Span),
    /// `None` inserts a size-1 dimension.
    NewAxis(Span),
}

/// A call argument, positional (`name == None`) or keyword (`mask: m`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal (untyped until used: it takes the type of the other operand, else i32,
    /// or i64 if it does not fit).
    Int(u64),
    /// A float literal (takes the other operand's float type, else f32).
    Float(f64),
    Bool(bool),
    /// A string literal: only for messages (`device_assert`, `print`, `static_assert`).
    Str(String),
    Name(Ident),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(args)`: a builtin or a helper `fn`.
    Call(Ident, Vec<Arg>),
    /// `x[:, None]`
    Index(Box<Expr>, Vec<IndexItem>),
    /// `x as f16`
    Cast(Box<Expr>, TypeExpr),
    /// `[a, b]`: shape lists such as `zeros([M, N], f32)`.
    List(Vec<Expr>),
    /// `(a, b)`: a tuple value returned by a helper.
    Tuple(Vec<Expr>),
    /// `if c { a } else { b }` as an expression (both branches have a tail value).
    If(Box<Expr>, Block, Block),
}
