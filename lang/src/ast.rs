//! The abstract syntax tree, after name resolution. Designed as compiler input: every node has a
//! span, every variable reference says statically whether it is a local slot of its function, a
//! module global (by index into [`Program::globals`]) or a builtin, and functions are numbered.

use crate::diag::Span;
use std::sync::Arc;

/// Index of a function in [`Program::functions`].
pub type FuncId = usize;
/// Index of a local variable slot in its [`Function::locals`] (parameters come first).
pub type LocalId = usize;
/// Index of a module global in [`Program::globals`].
pub type GlobalId = usize;

/// A whole parsed and resolved program.
#[derive(Debug, Clone)]
pub struct Program {
    /// Top-level statements, run in order; names there are globals.
    pub body: Vec<Stmt>,
    /// Every `def` of the program (module functions and methods), indexed by [`FuncId`].
    pub functions: Vec<Function>,
    /// Names of the module globals, indexed by [`GlobalId`]: every name that is assigned at
    /// module level, declared `global`, defined by `def`/`class`, or read and not local.
    pub globals: Vec<String>,
    /// For each function, whether its `def` or `lambda` sits in a loop of the module body:
    /// it may run more than once there, and each run makes a new function object (the
    /// JIT's constant object is only for the `def`s the module body runs once).
    pub defined_in_module_loop: Vec<bool>,
}

/// A function or method definition.
#[derive(Debug, Clone)]
pub struct Function {
    /// The name after `def`.
    pub name: String,
    /// `name` for module functions, `Class.name` for methods: used in errors and traces.
    pub qualname: String,
    /// Number of parameter slots: local slots `0..arity` are the positional parameters,
    /// then the keyword-only ones, then `*args`, then `**kwargs` ([`Params`]). A compiled
    /// function's entry takes one word per slot.
    pub arity: usize,
    /// How a call's arguments bind to the parameter slots.
    pub params: Params,
    /// The default values, evaluated in the enclosing scope each time the `def` runs (as in
    /// Python): those of the positional parameters, then those of the keyword-only ones.
    pub defaults: Vec<Expr>,
    /// Names of all local slots: the parameters, then the free variables, then the other
    /// locals.
    pub locals: Vec<String>,
    /// Number of free variables (names of enclosing functions it uses): slots
    /// `arity..arity + nfree` hold their cells, which the function object supplies.
    pub nfree: usize,
    /// For each free variable, the slot of the enclosing function that holds its cell (what
    /// the `def` or `lambda` captures).
    pub closure: Vec<LocalId>,
    /// The cell variables: slots (parameters or other locals, not free variables) that
    /// nested functions capture. Each holds a cell, made when the function is entered.
    pub cells: Vec<LocalId>,
    pub body: Vec<Stmt>,
    /// Position of the `def` keyword.
    pub span: Span,
}

impl Function {
    /// Whether a call binds exactly `arity` positional arguments, in order, to the slots
    /// with nothing else to do: what direct calls and call caches rely on.
    pub fn is_plain(&self) -> bool {
        self.params.is_plain() && self.defaults.is_empty() && self.nfree == 0
    }

    /// Words a call passes to the compiled function: the parameter slots, then the cells of
    /// the free variables.
    pub fn entry_words(&self) -> usize {
        self.arity + self.nfree
    }
}

/// The parameter list of a function, as slots: `npos` positional parameters, the
/// keyword-only ones, then one slot each for `*args` and `**kwargs` when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Positional(-or-keyword) parameters: slots `0..npos`.
    pub npos: usize,
    /// How many of the last positional parameters have a default value.
    pub ndefaults: usize,
    /// Keyword-only parameters (after `*` or `*args`), in order: whether each has a default.
    pub kwonly: Vec<bool>,
    /// `*args`: the slot after the keyword-only ones gets the extra positional arguments.
    pub varargs: bool,
    /// `**kwargs`: the last slot gets a dict of the extra keyword arguments.
    pub varkw: bool,
}

impl Params {
    /// `n` positional parameters without defaults.
    pub fn positional(n: usize) -> Params {
        Params {
            npos: n,
            ..Params::default()
        }
    }

    /// Only positional parameters, without defaults.
    pub fn is_plain(&self) -> bool {
        self.ndefaults == 0 && self.kwonly.is_empty() && !self.varargs && !self.varkw
    }

    /// Number of parameter slots.
    pub fn slots(&self) -> usize {
        self.npos + self.kwonly.len() + self.varargs as usize + self.varkw as usize
    }
}

/// A statement and its position (its first token).
#[derive(Debug, Clone)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

impl Stmt {
    /// The blocks nested in this statement (not the bodies of the functions and classes it
    /// defines): what a walk over a body's statements at every depth descends into.
    pub fn blocks(&self) -> Vec<&[Stmt]> {
        match &self.kind {
            StmtKind::If { body, orelse, .. } => vec![body, orelse],
            StmtKind::While { body, orelse, .. } | StmtKind::For { body, orelse, .. } => {
                vec![body, orelse]
            }
            StmtKind::With { body, .. } => vec![body],
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finalbody,
                ..
            } => {
                let mut all: Vec<&[Stmt]> = vec![body, orelse, finalbody];
                all.extend(handlers.iter().map(|h| &h.body[..]));
                all
            }
            _ => Vec::new(),
        }
    }
}

/// The statements of LANGUAGE.md.
#[derive(Debug, Clone)]
pub enum StmtKind {
    /// An expression evaluated for its effects.
    Expr(Expr),
    /// `t1 = t2 = ... = value`: the value is evaluated first, then stored into each target from
    /// left to right (Python's order).
    Assign {
        targets: Vec<Target>,
        value: Expr,
    },
    /// `target op= value`: the target's container and index are evaluated once. `+=` and `*=`
    /// on a list extend it in place, as in Python.
    AugAssign {
        target: Target,
        op: BinOp,
        value: Expr,
    },
    /// `if cond: body else: orelse` (`elif` is an `If` alone in `orelse`).
    If {
        cond: Expr,
        body: Vec<Stmt>,
        orelse: Vec<Stmt>,
    },
    /// `while cond: body`, then `else: orelse` when the loop ends without `break` (a `break`
    /// or `continue` in `orelse` is the enclosing loop's).
    While {
        cond: Expr,
        body: Vec<Stmt>,
        orelse: Vec<Stmt>,
    },
    /// `for var in iter: body` over a range, list, str or dict, then `else: orelse` as for
    /// `while`.
    For {
        var: Name,
        /// Boxed, as `ClassDef`'s `base`, to keep every `Stmt` small (issue 20).
        iter: Box<Expr>,
        body: Vec<Stmt>,
        orelse: Vec<Stmt>,
    },
    Break,
    Continue,
    Pass,
    Return(Option<Expr>),
    /// `global a, b`: a declaration for the resolver; does nothing when run.
    Global(Vec<String>),
    /// `nonlocal a, b`: a declaration for the resolver; does nothing when run.
    Nonlocal(Vec<String>),
    /// `del target`: target is an index or slice.
    Del(Target),
    /// `def`: binds the function value to `target` (a global at module level).
    FunctionDef {
        func: FuncId,
        target: Name,
    },
    /// `class Name(Base):` binds a new class to `target` (a global).
    ClassDef {
        name: String,
        target: Name,
        base: Option<Box<Expr>>,
        /// Methods, by name.
        methods: Vec<(String, FuncId)>,
        /// Class attributes `NAME = expr` in the class body, evaluated in order.
        attrs: Vec<(String, Expr)>,
    },
    /// `with atomic:` or `with LOCKEXPR:`.
    With {
        kind: WithKind,
        body: Vec<Stmt>,
    },
    /// `try: body` with `except` clauses, `else:` (runs when the body raised nothing) and
    /// `finally:` (runs on every way out). `level` is how many `try` statements of the same
    /// function enclose this one (its body, handlers, `else` or `finally`).
    Try {
        body: Vec<Stmt>,
        handlers: Vec<Handler>,
        orelse: Vec<Stmt>,
        finalbody: Vec<Stmt>,
        level: usize,
    },
    /// `raise e` or, with `None`, the bare `raise` of an `except` clause. `handler_level`
    /// is the `level` of the innermost `try` whose `except` clause holds a bare `raise`
    /// (the exception it re-raises); `None` outside any `except` clause.
    Raise {
        exc: Option<Expr>,
        handler_level: Option<usize>,
    },
}

/// One `except` clause: the classes it catches (none: every exception), the name the
/// exception is bound to (`as e`), its body.
#[derive(Debug, Clone)]
pub struct Handler {
    pub classes: Vec<Expr>,
    pub name: Option<Name>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// What a `with` statement holds for its block.
#[derive(Debug, Clone)]
pub enum WithKind {
    /// `with atomic:` — the block is one transaction.
    Atomic,
    /// `with e:` — `e` must evaluate to a `Lock`, held for the block.
    Lock(Expr),
}

/// Something that can be assigned to (or deleted).
#[derive(Debug, Clone)]
pub enum Target {
    Name(Name),
    // The expressions are boxed (as in `ExprKind`'s variants of the same names) so that a
    // `Target`, and with it every assignment statement, stays small (issue 20).
    Index {
        obj: Box<Expr>,
        index: Box<Expr>,
    },
    Slice {
        obj: Box<Expr>,
        lo: Option<Box<Expr>>,
        hi: Option<Box<Expr>>,
    },
    Attr {
        obj: Box<Expr>,
        name: Arc<str>,
    },
    /// `a, (b, c) = ...` or `[a, b] = ...`: the value is unpacked into exactly as many
    /// items, each stored into its target from left to right (Python's order and errors).
    /// With a starred target (`a, *b, c = ...`: the index of `*b`, at the top level of a
    /// target list), into at least as many items as the other targets, the starred one
    /// taking a new list of the items between.
    Tuple(Vec<Target>, Option<usize>),
}

/// A variable reference: its source name and where it lives.
#[derive(Debug, Clone)]
pub struct Name {
    pub name: Arc<str>,
    pub slot: Slot,
    pub span: Span,
}

/// Where a name lives, decided statically by the resolver (Python's rules: a name assigned in a
/// function is local unless declared `global`; other names are module globals, then builtins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A local of the enclosing function.
    Local(LocalId),
    /// A local slot of the enclosing function holding a cell, whose content is the variable:
    /// a variable that nested functions share (a cell variable, or a free variable of this
    /// function). Cells live in the heap, so reads and writes are transactional.
    Cell(LocalId),
    /// A module global. Reading it when unbound falls back to the builtin of the same name, if
    /// any (this happens only for names that are both assigned somewhere and builtins).
    Global(GlobalId),
    /// A builtin that no code of the program can shadow.
    Builtin(Builtin),
    /// Not yet resolved (only between parsing and resolution).
    Unresolved,
}

/// The builtin functions of LANGUAGE.md (ordered: a builtin is a dict key, `Key::Builtin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builtin {
    Print,
    Len,
    Range,
    Str,
    Int,
    Float,
    Bool,
    Abs,
    Min,
    Max,
    Sqrt,
    Ord,
    Chr,
    Hash,
    Time,
    Args,
    Cores,
    Spawn,
    Lock,
    TransactionQueue,
    Serve,
    Shutdown,
    ServerPort,
    /// `input([prompt])`: a line of stdin (an effect: not undone, ordered after the output).
    Input,
    Repr,
    /// `ascii(x)`: `repr(x)` with its non-ASCII characters escaped.
    Ascii,
    Sum,
    Any,
    All,
    Sorted,
    List,
    Format,
    /// The text `print(..., sep=S, end=E)` writes, as the interpreter and the runtime call it
    /// for `print` with keywords: the positional arguments, then (name, value) pairs of the
    /// keywords, then their count. Not a name a program can use.
    PrintKw,
    Round,
    Hex,
    Oct,
    Bin,
    Tuple,
    Enumerate,
    Zip,
    Reversed,
    Map,
    Filter,
    Divmod,
    /// `pow(a, b)` (`a ** b`) and `pow(a, b, m)` (modular, ints only).
    Pow,
    JsonEncode,
    JsonDecode,
    /// `type(x)`: the class of an instance (other values: a TypeError, see LANGUAGE.md).
    Type,
    /// `isinstance(x, cls)` (`cls` a class or a list of classes).
    IsInstance,
    /// `issubclass(c, cls)` (`c` a class or a built-in type; `cls` as `isinstance` takes it).
    IsSubclass,
    /// `set()`, `set(iterable)`: also the type of sets (`type(s) is set`).
    Set,
    /// `frozenset()`, `frozenset(iterable)`: also the type of frozensets.
    FrozenSet,
    /// `getattr(o, name)`, `getattr(o, name, default)`: `o.name` with a computed name.
    GetAttr,
    /// `setattr(o, name, v)`: `o.name = v` with a computed name.
    SetAttr,
    /// `hasattr(o, name)`: whether `o.name` gives no AttributeError.
    HasAttr,
    /// `super().name` in a method of class `C` whose first parameter is `self`, as the
    /// parser writes it: `<super>(C, self, "name")`, the attribute `name` of `C`'s base
    /// (a function bound to `self`). Not a name a program can use. `<super>("message", "name")`
    /// where `super()` has no class or no first argument: CPython's RuntimeError.
    SuperAttr,
    /// `super().name(args...)` as the parser writes it: `<super()>(C, self, "name",
    /// args...)`, the call of what [`Builtin::SuperAttr`] finds; when no base defines
    /// `__init__`, that of a built-in exception class (which sets `args`) or `object`'s.
    SuperCall,
    /// `dict()`, `dict(mapping)`, `dict(pairs)`: also the type of dicts.
    Dict,
    /// `id(x)`: a number unique among the objects alive at the same time and constant for
    /// an object's life (`id(a) == id(b)` exactly when `a is b`).
    Id,
    /// `slice(stop)`, `slice(start, stop[, step])`: also the type of slice objects, and what
    /// the parser calls for `x[a:b:c]` (a name no program can shadow there).
    Slice,
    /// `NotImplemented`: a constant (calling it is a TypeError) that a binary special
    /// method returns to let the reflected one, or the default, decide.
    NotImplemented,
    /// The types `type()` gives for values whose type has no name in builtins (as in
    /// CPython, where `type(None)` is NoneType but `NoneType` is not a builtin name):
    /// None, functions and lambdas, bound methods, builtin functions and methods.
    NoneType,
    /// See [`Builtin::NoneType`].
    FunctionType,
    /// See [`Builtin::NoneType`].
    MethodType,
    /// See [`Builtin::NoneType`].
    BuiltinFunctionType,
    /// The type of what `spawn` returns, `Thread` (no builtin name: threads are made by
    /// `spawn`, not by calling their type).
    ThreadType,
    /// A built-in exception class, by index in [`crate::exceptions::CLASSES`] (a class
    /// value, not a function).
    ExcClass(u8),
}

impl Builtin {
    /// All builtins, for lookups by name.
    pub const ALL: [Builtin; 66 + crate::exceptions::COUNT] = [
        Builtin::Print,
        Builtin::Len,
        Builtin::Range,
        Builtin::Str,
        Builtin::Int,
        Builtin::Float,
        Builtin::Bool,
        Builtin::Abs,
        Builtin::Min,
        Builtin::Max,
        Builtin::Sqrt,
        Builtin::Ord,
        Builtin::Chr,
        Builtin::Hash,
        Builtin::Time,
        Builtin::Args,
        Builtin::Cores,
        Builtin::Spawn,
        Builtin::Lock,
        Builtin::TransactionQueue,
        Builtin::Serve,
        Builtin::Shutdown,
        Builtin::Input,
        Builtin::ServerPort,
        Builtin::Repr,
        Builtin::Ascii,
        Builtin::Sum,
        Builtin::Any,
        Builtin::All,
        Builtin::Sorted,
        Builtin::List,
        Builtin::Format,
        Builtin::PrintKw,
        Builtin::Round,
        Builtin::Hex,
        Builtin::Oct,
        Builtin::Bin,
        Builtin::Tuple,
        Builtin::Enumerate,
        Builtin::Zip,
        Builtin::Reversed,
        Builtin::Map,
        Builtin::Filter,
        Builtin::Divmod,
        Builtin::Pow,
        Builtin::JsonEncode,
        Builtin::JsonDecode,
        Builtin::Type,
        Builtin::IsInstance,
        Builtin::IsSubclass,
        Builtin::Set,
        Builtin::FrozenSet,
        Builtin::GetAttr,
        Builtin::SetAttr,
        Builtin::HasAttr,
        Builtin::SuperAttr,
        Builtin::SuperCall,
        Builtin::NotImplemented,
        Builtin::Dict,
        Builtin::Id,
        Builtin::Slice,
        Builtin::NoneType,
        Builtin::FunctionType,
        Builtin::MethodType,
        Builtin::BuiltinFunctionType,
        Builtin::ThreadType,
        Builtin::ExcClass(0),
        Builtin::ExcClass(1),
        Builtin::ExcClass(2),
        Builtin::ExcClass(3),
        Builtin::ExcClass(4),
        Builtin::ExcClass(5),
        Builtin::ExcClass(6),
        Builtin::ExcClass(7),
        Builtin::ExcClass(8),
        Builtin::ExcClass(9),
        Builtin::ExcClass(10),
        Builtin::ExcClass(11),
        Builtin::ExcClass(12),
        Builtin::ExcClass(13),
        Builtin::ExcClass(14),
        Builtin::ExcClass(15),
        Builtin::ExcClass(16),
        Builtin::ExcClass(17),
        Builtin::ExcClass(18),
        Builtin::ExcClass(19),
    ];

    /// The name a program uses for this builtin.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Print => "print",
            Builtin::Len => "len",
            Builtin::Range => "range",
            Builtin::Str => "str",
            Builtin::Int => "int",
            Builtin::Float => "float",
            Builtin::Bool => "bool",
            Builtin::Abs => "abs",
            Builtin::Min => "min",
            Builtin::Max => "max",
            Builtin::Sqrt => "sqrt",
            Builtin::Ord => "ord",
            Builtin::Chr => "chr",
            Builtin::Hash => "hash",
            Builtin::Time => "time",
            Builtin::Args => "args",
            Builtin::Cores => "cores",
            Builtin::Spawn => "spawn",
            Builtin::Lock => "Lock",
            Builtin::TransactionQueue => "TransactionQueue",
            Builtin::Serve => "serve",
            Builtin::Shutdown => "shutdown",
            Builtin::Input => "input",
            Builtin::ServerPort => "server_port",
            Builtin::Repr => "repr",
            Builtin::Ascii => "ascii",
            Builtin::Sum => "sum",
            Builtin::Any => "any",
            Builtin::All => "all",
            Builtin::Sorted => "sorted",
            Builtin::List => "list",
            Builtin::Format => "format",
            // Not a name a program can use (`from_name` never finds it).
            Builtin::PrintKw => "<print>",
            Builtin::Round => "round",
            Builtin::Hex => "hex",
            Builtin::Oct => "oct",
            Builtin::Bin => "bin",
            Builtin::Tuple => "tuple",
            Builtin::Enumerate => "enumerate",
            Builtin::Zip => "zip",
            Builtin::Reversed => "reversed",
            Builtin::Map => "map",
            Builtin::Filter => "filter",
            Builtin::Divmod => "divmod",
            Builtin::Pow => "pow",
            Builtin::JsonEncode => "json_encode",
            Builtin::JsonDecode => "json_decode",
            Builtin::Type => "type",
            Builtin::IsInstance => "isinstance",
            Builtin::IsSubclass => "issubclass",
            Builtin::Set => "set",
            Builtin::FrozenSet => "frozenset",
            Builtin::GetAttr => "getattr",
            Builtin::SetAttr => "setattr",
            Builtin::HasAttr => "hasattr",
            // Not a name a program can use (the lexer never makes it).
            Builtin::SuperAttr => "<super>",
            Builtin::SuperCall => "<super()>",
            Builtin::NotImplemented => "NotImplemented",
            Builtin::Dict => "dict",
            Builtin::Id => "id",
            Builtin::Slice => "slice",
            Builtin::NoneType => "NoneType",
            Builtin::FunctionType => "function",
            Builtin::MethodType => "method",
            Builtin::BuiltinFunctionType => "builtin_function_or_method",
            Builtin::ThreadType => "Thread",
            Builtin::ExcClass(i) => crate::exceptions::CLASSES[i as usize].0,
        }
    }

    /// The builtin called `name`, if there is one (the unnamed types are not).
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL
            .iter()
            .copied()
            .find(|b| b.name() == name && !b.is_unnamed_type())
    }

    /// Whether this is one of the types with no builtin name ([`Builtin::NoneType`], ...).
    pub fn is_unnamed_type(self) -> bool {
        matches!(
            self,
            Builtin::NoneType
                | Builtin::FunctionType
                | Builtin::MethodType
                | Builtin::BuiltinFunctionType
                | Builtin::ThreadType
        )
    }

    /// Whether `isinstance(x, self)` holds exactly when `type(x)` is this type (no values
    /// of subclasses or other types count): `type`, the unnamed types, `Lock` and
    /// `TransactionQueue`.
    pub fn is_exact_type(self) -> bool {
        self.is_unnamed_type()
            || matches!(
                self,
                Builtin::Type | Builtin::Lock | Builtin::TransactionQueue
            )
    }

    /// Whether this builtin is a type (shown `<class 'int'>`, the result of `type(x)`), not
    /// a function (`<built-in function len>`).
    pub fn is_type(self) -> bool {
        self.is_unnamed_type()
            || matches!(
                self,
                Builtin::Int
                    | Builtin::Float
                    | Builtin::Str
                    | Builtin::Bool
                    | Builtin::List
                    | Builtin::Tuple
                    | Builtin::Dict
                    | Builtin::Set
                    | Builtin::FrozenSet
                    | Builtin::Range
                    | Builtin::Slice
                    | Builtin::Type
                    | Builtin::Enumerate
                    | Builtin::Zip
                    | Builtin::Reversed
                    | Builtin::Map
                    | Builtin::Filter
                    | Builtin::Lock
                    | Builtin::TransactionQueue
            )
    }
}

/// An expression and its position (its first token).
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// The expressions of LANGUAGE.md.
#[derive(Debug, Clone)]
pub enum ExprKind {
    /// An int literal in the tagged range (the parser builds larger ones from two of them).
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Bool(bool),
    None,
    Name(Name),
    /// `[a, b, ...]`
    List(Vec<Expr>),
    /// `(a, b)`, `(a,)`, `()`, or a bare `a, b` where Python allows one.
    Tuple(Vec<Expr>),
    /// `{k: v, ...}`
    Dict(Vec<(Expr, Expr)>),
    /// `{a, b, ...}` (at least one item in source; a set comprehension starts from an
    /// empty one, which has no source form).
    Set(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a and b` (short-circuit, yields an operand).
    And(Box<Expr>, Box<Expr>),
    /// `a or b` (short-circuit, yields an operand).
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `first op1 e1 op2 e2 ...`: each operand evaluated at most once, stops at the first false.
    Compare {
        first: Box<Expr>,
        rest: Vec<(CmpOp, Expr)>,
    },
    /// `then if cond else orelse`
    IfElse {
        cond: Box<Expr>,
        then: Box<Expr>,
        orelse: Box<Expr>,
    },
    /// `func(args)`
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
    },
    /// `lambda params: body`: a new function value, as a `def` makes (its body is
    /// `return body`).
    Lambda(FuncId),
    /// `func(args)` where some argument is a keyword argument (`name=value`), `*iterable` or
    /// `**dict`: the arguments in source order (`obj.m(k=v)` calls `Attr` `obj.m`).
    CallEx {
        func: Box<Expr>,
        args: Vec<Arg>,
    },
    /// `obj.name(args)`: kept apart from `Call(Attr)` so that builtin methods and instance
    /// methods can be dispatched without creating a bound-method value.
    MethodCall {
        obj: Box<Expr>,
        name: Arc<str>,
        args: Vec<Expr>,
    },
    Attr {
        obj: Box<Expr>,
        name: Arc<str>,
    },
    Index {
        obj: Box<Expr>,
        index: Box<Expr>,
    },
    /// `obj[lo:hi]` with either bound optional.
    Slice {
        obj: Box<Expr>,
        lo: Option<Box<Expr>>,
        hi: Option<Box<Expr>>,
    },
}

/// One argument of a [`ExprKind::CallEx`] call.
#[derive(Debug, Clone)]
pub struct Arg {
    pub kind: ArgKind,
    pub value: Expr,
}

/// How an argument is passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgKind {
    /// A positional argument.
    Pos,
    /// `*iterable`: its items are positional arguments.
    Star,
    /// `name=value`.
    Kw(String),
    /// `**dict`: its items are keyword arguments (keys must be strs).
    DoubleStar,
}

/// Unary operators `-`, `+`, `~`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Pos,
    Invert,
}

/// Binary arithmetic and bitwise operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Shl,
    Shr,
    BitAnd,
    BitOr,
    BitXor,
}

impl BinOp {
    /// The operator as written, for error messages.
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
        }
    }

    /// The augmented-assignment form (`+=`).
    pub fn aug_text(self) -> &'static str {
        match self {
            BinOp::Add => "+=",
            BinOp::Sub => "-=",
            BinOp::Mul => "*=",
            BinOp::Div => "/=",
            BinOp::FloorDiv => "//=",
            BinOp::Mod => "%=",
            BinOp::Pow => "**=",
            BinOp::Shl => "<<=",
            BinOp::Shr => ">>=",
            BinOp::BitAnd => "&=",
            BinOp::BitOr => "|=",
            BinOp::BitXor => "^=",
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

impl CmpOp {
    /// The operator as written, for error messages.
    pub fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
            CmpOp::Is => "is",
            CmpOp::IsNot => "is not",
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use std::mem::size_of;

    /// The whole syntax tree of a module is held while it compiles and runs, so its node sizes
    /// bound the compile memory per source byte (issue 20): a statement was 272 bytes before
    /// `Target`'s expressions, `For`'s `iter` and `ClassDef`'s `base` were boxed; an
    /// expression was 64 bytes (an 80-byte block where boxed) before names became shared
    /// `Arc<str>`s (56: a 64-byte block). A new large variant should be boxed rather than
    /// raise these bounds.
    #[test]
    fn syntax_tree_nodes_stay_small() {
        assert!(
            size_of::<Stmt>() <= 128,
            "Stmt is {} bytes",
            size_of::<Stmt>()
        );
        assert!(
            size_of::<Expr>() <= 56,
            "Expr is {} bytes",
            size_of::<Expr>()
        );
        assert!(
            size_of::<Target>() <= 48,
            "Target is {} bytes",
            size_of::<Target>()
        );
    }
}
