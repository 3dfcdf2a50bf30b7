//! Comprehensions, lowered in the front end to constructs the interpreter and the JIT already
//! run, so that both get them without code of their own.
//!
//! `[ELT for V in IT if C ...]` becomes a call `<listcomp#k>(IT, free...)` of a hidden
//! module-level function (defined at the start of the module body):
//!
//! ```text
//! def <listcomp#k>(<it>, free...):
//!     <r> = []
//!     for V in <it>:
//!         if C:
//!             <r>.append(ELT)
//!     return <r>
//! ```
//!
//! This is Python's own scoping: the first iterable is evaluated in the enclosing scope, the
//! loop variables are local to the comprehension. The enclosing function's locals that the
//! comprehension reads (`free`) are passed by value: exact unless code the comprehension
//! calls rebinds one through `nonlocal` while it runs (a known difference; Python's
//! comprehension would see the new value). Module names stay globals. Dict comprehensions
//! store `<r>[K] = V`, set comprehensions call `<r>.add(ELT)` on an empty set display. A generator expression as the argument of `any`/`all` stops at the
//! first deciding item, as in Python: its function returns `[True]` (`[False]` for `all`)
//! there, `[]` at the end, which `any`/`all` then decide on. As the argument of any other
//! call it is evaluated to a list first. The names `<...>` cannot be written in a program: no clash.

use crate::ast::*;
use crate::diag::Span;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What a comprehension builds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CompKind {
    List,
    Dict,
    /// `{x for ...}`: `<r> = {}` as a set (`ExprKind::Set` of no items), `<r>.add(x)`.
    Set,
    /// A generator expression passed to `any`: `[True]` at the first true item, else `[]`.
    Any,
    /// A generator expression passed to `all`: `[False]` at the first false item, else `[]`.
    All,
}

/// One `for` or `if` clause.
pub enum Clause {
    For(Name, Expr),
    If(Expr),
    /// The statement that unpacks the variable of the `for` clause before it into its
    /// tuple target (`for k, v in ...`), first in that loop's body.
    Bind(Stmt),
}

/// The name of a comprehension's iterable parameter.
const ITER: &str = "<it>";
/// The name of a comprehension's result variable.
const RESULT: &str = "<r>";

fn name(n: &str, span: Span) -> Name {
    Name {
        name: n.into(),
        slot: Slot::Unresolved,
        span,
    }
}

fn expr(kind: ExprKind, span: Span) -> Expr {
    Expr { kind, span }
}

fn stmt(kind: StmtKind, span: Span) -> Stmt {
    Stmt { kind, span }
}

/// Builds the hidden function of a comprehension (appended to `functions`) and returns its
/// global name and the call that replaces the comprehension. `elt` is the item (the key for
/// a dict), `value` a dict's value; `clauses` starts with a `for`.
pub fn lower(
    kind: CompKind,
    elt: Expr,
    value: Option<Expr>,
    clauses: Vec<Clause>,
    span: Span,
    functions: &mut Vec<Function>,
) -> (String, Expr) {
    let r = || expr(ExprKind::Name(name(RESULT, span)), span);
    let inner = match kind {
        CompKind::List | CompKind::Set => stmt(
            StmtKind::Expr(expr(
                ExprKind::MethodCall {
                    obj: Box::new(r()),
                    name: if kind == CompKind::Set {
                        "add"
                    } else {
                        "append"
                    }
                    .into(),
                    args: vec![elt],
                },
                span,
            )),
            span,
        ),
        CompKind::Dict => stmt(
            StmtKind::Assign {
                targets: vec![Target::Index {
                    obj: Box::new(r()),
                    index: Box::new(elt),
                }],
                value: value.expect("a dict comprehension has a value"),
            },
            span,
        ),
        CompKind::Any | CompKind::All => {
            let any = kind == CompKind::Any;
            let cond = if any {
                elt
            } else {
                expr(ExprKind::Not(Box::new(elt)), span)
            };
            stmt(
                StmtKind::If {
                    cond,
                    body: vec![stmt(
                        StmtKind::Return(Some(expr(
                            ExprKind::List(vec![expr(ExprKind::Bool(any), span)]),
                            span,
                        ))),
                        span,
                    )],
                    orelse: Vec::new(),
                },
                span,
            )
        }
    };
    let mut first_iter = None;
    let mut inner = vec![inner];
    let first_for = clauses
        .iter()
        .position(|c| matches!(c, Clause::For(..)))
        .expect("a comprehension starts with a for clause");
    for (i, clause) in clauses.into_iter().enumerate().rev() {
        inner = match clause {
            Clause::If(cond) => vec![stmt(
                StmtKind::If {
                    cond,
                    body: inner,
                    orelse: Vec::new(),
                },
                span,
            )],
            Clause::Bind(unpack) => {
                inner.insert(0, unpack);
                inner
            }
            Clause::For(var, iter) => {
                let iter = if i == first_for {
                    // The first iterable is evaluated by the caller and passed in.
                    first_iter = Some(iter);
                    expr(ExprKind::Name(name(ITER, span)), span)
                } else {
                    iter
                };
                vec![stmt(
                    StmtKind::For {
                        var,
                        iter: Box::new(iter),
                        body: inner,
                        orelse: Vec::new(),
                    },
                    span,
                )]
            }
        };
    }
    let (init, result) = match kind {
        CompKind::List => (
            Some(ExprKind::List(Vec::new())),
            ExprKind::Name(name(RESULT, span)),
        ),
        CompKind::Dict => (
            Some(ExprKind::Dict(Vec::new())),
            ExprKind::Name(name(RESULT, span)),
        ),
        CompKind::Set => (
            Some(ExprKind::Set(Vec::new())),
            ExprKind::Name(name(RESULT, span)),
        ),
        CompKind::Any | CompKind::All => (None, ExprKind::List(Vec::new())),
    };
    let mut body = Vec::new();
    if let Some(init) = init {
        body.push(stmt(
            StmtKind::Assign {
                targets: vec![Target::Name(name(RESULT, span))],
                value: expr(init, span),
            },
            span,
        ));
    }
    body.extend(inner);
    body.push(stmt(StmtKind::Return(Some(expr(result, span))), span));
    let label = match kind {
        CompKind::List => "<listcomp>",
        CompKind::Dict => "<dictcomp>",
        CompKind::Set => "<setcomp>",
        CompKind::Any | CompKind::All => "<genexpr>",
    };
    let id = functions.len();
    functions.push(Function {
        name: label.into(),
        qualname: label.into(),
        arity: 1,
        params: Params::positional(1),
        defaults: Vec::new(),
        nfree: 0,
        closure: Vec::new(),
        cells: Vec::new(),
        locals: vec![ITER.into()],
        body,
        span,
    });
    let global = format!("{}#{id}>", &label[..label.len() - 1]);
    let call = expr(
        ExprKind::Call {
            func: Box::new(expr(ExprKind::Name(name(&global, span)), span)),
            args: vec![first_iter.expect("a comprehension starts with a for clause")],
        },
        span,
    );
    (global, call)
}

/// The statements defining the hidden functions `comps` (global name, function), to run
/// first in the module.
pub fn definitions(comps: &[(String, FuncId)], span: Span) -> Vec<Stmt> {
    comps
        .iter()
        .map(|(global, id)| {
            stmt(
                StmtKind::FunctionDef {
                    func: *id,
                    target: name(global, span),
                },
                span,
            )
        })
        .collect()
}

/// Gives each hidden function the enclosing function's locals it reads as parameters after
/// `<it>`, and passes them at its call. `assigned(id, f)` are the names function `f` binds
/// or has as free variables; `nested_needs(id)` the names the functions nested in
/// comprehension `id` use from outside (read by the comprehension too).
/// (its locals once resolved, parameters excluded).
pub fn bind_free_names(
    body: &mut [Stmt],
    functions: &mut [Function],
    comps: &[(String, FuncId)],
    assigned: &dyn Fn(FuncId, &Function) -> HashSet<String>,
    nested_needs: &dyn Fn(FuncId) -> BTreeSet<String>,
) {
    if comps.is_empty() {
        return;
    }
    let by_global: HashMap<&str, FuncId> = comps.iter().map(|(g, id)| (g.as_str(), *id)).collect();
    // The function (None: the module) whose code calls each comprehension.
    let mut parent: HashMap<FuncId, Option<FuncId>> = HashMap::new();
    let mut children: HashMap<Option<FuncId>, Vec<FuncId>> = HashMap::new();
    let owners = std::iter::once((None, &*body)).chain(
        functions
            .iter()
            .enumerate()
            .map(|(i, f)| (Some(i), f.body.as_slice())),
    );
    for (owner, stmts) in owners {
        visit_stmts(stmts, &mut |e| {
            if let Some(id) = called_comp(e, &by_global) {
                parent.insert(id, owner);
                children.entry(owner).or_default().push(id);
            }
        });
    }
    // Names each comprehension reads, its nested comprehensions' included.
    fn reads(
        id: FuncId,
        functions: &[Function],
        children: &HashMap<Option<FuncId>, Vec<FuncId>>,
        assigned: &dyn Fn(FuncId, &Function) -> HashSet<String>,
        nested_needs: &dyn Fn(FuncId) -> BTreeSet<String>,
        memo: &mut HashMap<FuncId, BTreeSet<String>>,
    ) -> BTreeSet<String> {
        if let Some(r) = memo.get(&id) {
            return r.clone();
        }
        let f = &functions[id];
        let mut out = BTreeSet::new();
        visit_stmts(&f.body, &mut |e| {
            if let ExprKind::Name(n) = &e.kind {
                out.insert(n.name.to_string());
            }
        });
        for &c in children.get(&Some(id)).into_iter().flatten() {
            out.extend(reads(c, functions, children, assigned, nested_needs, memo));
        }
        out.extend(nested_needs(id));
        let own = assigned(id, f);
        out.retain(|n| !own.contains(n) && !f.locals.contains(n));
        memo.insert(id, out.clone());
        out
    }
    let mut memo = HashMap::new();
    // Parents before children: a comprehension's parameters are locals of its own nested ones.
    let mut order: Vec<FuncId> = Vec::new();
    let mut stack: Vec<FuncId> = children.get(&None).cloned().unwrap_or_default();
    for (i, _) in functions.iter().enumerate() {
        if !by_global.values().any(|&c| c == i) {
            stack.extend(children.get(&Some(i)).into_iter().flatten());
        }
    }
    while let Some(c) = stack.pop() {
        order.push(c);
        stack.extend(children.get(&Some(c)).into_iter().flatten());
    }
    let mut free_of: HashMap<FuncId, Vec<String>> = HashMap::new();
    for &c in &order {
        let wanted = reads(c, functions, &children, assigned, nested_needs, &mut memo);
        let free: Vec<String> = match parent.get(&c).copied().flatten() {
            None => Vec::new(),
            Some(p) => {
                let pf = &functions[p];
                let mut locals: HashSet<String> = assigned(p, pf);
                locals.extend(pf.locals.iter().cloned());
                wanted.into_iter().filter(|n| locals.contains(n)).collect()
            }
        };
        let f = &mut functions[c];
        f.locals.extend(free.iter().cloned());
        f.arity = f.locals.len();
        f.params = Params::positional(f.arity);
        free_of.insert(c, free);
    }
    // Pass them at the calls.
    let patch = |stmts: &mut [Stmt]| {
        visit_stmts_mut(stmts, &mut |e| {
            if let Some(id) = called_comp(e, &by_global) {
                let span = e.span;
                if let ExprKind::Call { args, .. } = &mut e.kind {
                    for n in &free_of[&id] {
                        args.push(expr(ExprKind::Name(name(n, span)), span));
                    }
                }
            }
        })
    };
    patch(body);
    for f in functions.iter_mut() {
        patch(&mut f.body);
    }
}

/// The comprehension that `e` calls, if it is such a call.
fn called_comp(e: &Expr, by_global: &HashMap<&str, FuncId>) -> Option<FuncId> {
    match &e.kind {
        ExprKind::Call { func, .. } => match &func.kind {
            ExprKind::Name(n) => by_global.get(&*n.name).copied(),
            _ => None,
        },
        _ => None,
    }
}

/// Calls `f` on every expression of `stmts`, outer ones first.
fn visit_stmts(stmts: &[Stmt], f: &mut dyn FnMut(&Expr)) {
    // One walker to keep in step with the AST: the mutable one, on a copy (this runs only
    // for programs with comprehensions, a few times per function).
    for s in stmts {
        let mut s = s.clone();
        visit_stmt_mut(&mut s, &mut |e| f(e));
    }
}

fn visit_stmts_mut(stmts: &mut [Stmt], f: &mut dyn FnMut(&mut Expr)) {
    for s in stmts {
        visit_stmt_mut(s, f);
    }
}

fn visit_stmt_mut(s: &mut Stmt, f: &mut dyn FnMut(&mut Expr)) {
    match &mut s.kind {
        StmtKind::Expr(e) | StmtKind::Return(Some(e)) => visit_expr_mut(e, f),
        StmtKind::Assign { targets, value } => {
            visit_expr_mut(value, f);
            targets.iter_mut().for_each(|t| visit_target_mut(t, f));
        }
        StmtKind::AugAssign { target, value, .. } => {
            visit_expr_mut(value, f);
            visit_target_mut(target, f);
        }
        StmtKind::If { cond, body, orelse } => {
            visit_expr_mut(cond, f);
            visit_stmts_mut(body, f);
            visit_stmts_mut(orelse, f);
        }
        StmtKind::While { cond, body, orelse } => {
            visit_expr_mut(cond, f);
            visit_stmts_mut(body, f);
            visit_stmts_mut(orelse, f);
        }
        StmtKind::For {
            iter, body, orelse, ..
        } => {
            visit_expr_mut(iter, f);
            visit_stmts_mut(body, f);
            visit_stmts_mut(orelse, f);
        }
        StmtKind::Del(t) => visit_target_mut(t, f),
        StmtKind::ClassDef { base, attrs, .. } => {
            if let Some(b) = base {
                visit_expr_mut(b, f);
            }
            attrs.iter_mut().for_each(|(_, e)| visit_expr_mut(e, f));
        }
        StmtKind::With { kind, body } => {
            if let WithKind::Lock(e) = kind {
                visit_expr_mut(e, f);
            }
            visit_stmts_mut(body, f);
        }
        StmtKind::Try {
            body,
            handlers,
            orelse,
            finalbody,
            ..
        } => {
            visit_stmts_mut(body, f);
            for h in handlers {
                h.classes.iter_mut().for_each(|e| visit_expr_mut(e, f));
                visit_stmts_mut(&mut h.body, f);
            }
            visit_stmts_mut(orelse, f);
            visit_stmts_mut(finalbody, f);
        }
        StmtKind::Raise { exc, .. } => {
            if let Some(e) = exc {
                visit_expr_mut(e, f);
            }
        }
        StmtKind::Return(None)
        | StmtKind::Break
        | StmtKind::Continue
        | StmtKind::Pass
        | StmtKind::Global(_)
        | StmtKind::Nonlocal(_)
        | StmtKind::FunctionDef { .. } => {}
    }
}

fn visit_target_mut(t: &mut Target, f: &mut dyn FnMut(&mut Expr)) {
    match t {
        Target::Name(_) => {}
        Target::Index { obj, index } => {
            visit_expr_mut(obj, f);
            visit_expr_mut(index, f);
        }
        Target::Slice { obj, lo, hi } => {
            visit_expr_mut(obj, f);
            lo.iter_mut()
                .chain(hi.iter_mut())
                .for_each(|e| visit_expr_mut(e, f));
        }
        Target::Attr { obj, .. } => visit_expr_mut(obj, f),
        Target::Tuple(items, _) => items.iter_mut().for_each(|t| visit_target_mut(t, f)),
    }
}

fn visit_expr_mut(e: &mut Expr, f: &mut dyn FnMut(&mut Expr)) {
    f(e);
    match &mut e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Name(_)
        | ExprKind::Lambda(_) => {}
        ExprKind::List(items) | ExprKind::Tuple(items) | ExprKind::Set(items) => {
            items.iter_mut().for_each(|i| visit_expr_mut(i, f))
        }
        ExprKind::Dict(items) => items.iter_mut().for_each(|(k, v)| {
            visit_expr_mut(k, f);
            visit_expr_mut(v, f);
        }),
        ExprKind::Unary(_, a) | ExprKind::Not(a) | ExprKind::Attr { obj: a, .. } => {
            visit_expr_mut(a, f)
        }
        ExprKind::Binary(_, a, b)
        | ExprKind::And(a, b)
        | ExprKind::Or(a, b)
        | ExprKind::Index { obj: a, index: b } => {
            visit_expr_mut(a, f);
            visit_expr_mut(b, f);
        }
        ExprKind::Compare { first, rest } => {
            visit_expr_mut(first, f);
            rest.iter_mut().for_each(|(_, r)| visit_expr_mut(r, f));
        }
        ExprKind::IfElse { cond, then, orelse } => {
            visit_expr_mut(cond, f);
            visit_expr_mut(then, f);
            visit_expr_mut(orelse, f);
        }
        ExprKind::Call { func, args } => {
            visit_expr_mut(func, f);
            args.iter_mut().for_each(|a| visit_expr_mut(a, f));
        }
        ExprKind::CallEx { func, args } => {
            visit_expr_mut(func, f);
            args.iter_mut()
                .for_each(|a| visit_expr_mut(&mut a.value, f));
        }
        ExprKind::MethodCall { obj, args, .. } => {
            visit_expr_mut(obj, f);
            args.iter_mut().for_each(|a| visit_expr_mut(a, f));
        }
        ExprKind::Slice { obj, lo, hi } => {
            visit_expr_mut(obj, f);
            lo.iter_mut()
                .chain(hi.iter_mut())
                .for_each(|e| visit_expr_mut(e, f));
        }
    }
}
