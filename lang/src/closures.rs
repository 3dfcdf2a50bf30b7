//! Python's scoping of nested functions (`def` inside a function, `lambda`) and
//! `nonlocal`, for the resolver: which names of enclosing functions each function uses (its
//! free variables), and which locals nested functions capture (cell variables).
//!
//! A captured variable lives in a cell, a heap object that the enclosing function's frame
//! and every function object that captured it share: reads and writes of it are then
//! transactional like any other heap access. Each function's free variables get the local
//! slots right after its parameters; its function object supplies their cells when it is
//! called (`Function::closure` says which slots of the enclosing function they come from).
//!
//! Comprehensions keep their own scheme (`comprehension.rs`: the names they read are passed
//! by value); a function nested in a comprehension may capture the comprehension's locals,
//! which are then its cell variables like any function's.

use crate::ast::*;
use crate::diag::{Diagnostic, ErrorKind};
use crate::resolve::{collect_assigned_ordered, collect_declared};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The kind of the error of reading an unbound captured variable: a `NameError` for a free
/// variable of the running function (`free`), an `UnboundLocalError` (a `NameError` too)
/// for one of its own cell variables, as in CPython.
pub fn unbound_kind(free: bool) -> ErrorKind {
    if free {
        ErrorKind::NameError
    } else {
        ErrorKind::UnboundLocalError
    }
}

/// The message of the error of reading an unbound captured variable `name`: a free
/// variable of the running function (`free`) or one of its cell variables.
pub fn unbound_message(name: &str, free: bool) -> String {
    if free {
        format!(
            "cannot access free variable '{name}' where it is not associated with a value \
             in enclosing scope"
        )
    } else {
        format!("cannot access local variable '{name}' where it is not associated with a value")
    }
}

/// The scope facts of a program, before comprehensions get their parameters.
pub struct Scopes {
    /// The function whose code defines each function (None: the module or a class body;
    /// comprehensions, called rather than defined there, have None too).
    pub parent: Vec<Option<FuncId>>,
    /// Names each function uses without binding them (its nested functions' included),
    /// global declarations excepted.
    pub needs: Vec<BTreeSet<String>>,
    /// The functions each function's code defines.
    pub children: Vec<Vec<FuncId>>,
}

/// The names a function binds: its locals so far (parameters, and a comprehension's passed
/// names) and what it assigns, less what it declares `global` or `nonlocal`.
pub fn bound(f: &Function) -> HashSet<String> {
    let (globals, nonlocals) = declared(f);
    let mut assigned = f.locals.clone();
    collect_assigned_ordered(&f.body, &mut assigned);
    assigned
        .into_iter()
        .filter(|n| !globals.contains(n) && !nonlocals.contains(n))
        .collect()
}

/// The names `f` declares `global`, and those it declares `nonlocal`.
fn declared(f: &Function) -> (HashSet<String>, HashSet<String>) {
    let (mut globals, mut nonlocals) = (HashSet::new(), HashSet::new());
    collect_declared(&f.body, &mut globals, &mut nonlocals);
    (globals, nonlocals)
}

/// Computes the parent and the needs of every function. `comps` are the comprehensions'
/// hidden functions (global name, id): a function needs what the comprehensions it calls
/// need.
pub fn scopes(functions: &[Function], comps: &[(String, FuncId)]) -> Scopes {
    let n = functions.len();
    let comps: HashMap<&str, FuncId> = comps.iter().map(|(g, id)| (g.as_str(), *id)).collect();
    let mut parent = vec![None; n];
    let mut uses: Vec<HashSet<String>> = Vec::with_capacity(n);
    let mut children: Vec<Vec<FuncId>> = Vec::with_capacity(n);
    let mut called: Vec<Vec<FuncId>> = Vec::with_capacity(n);
    for (i, f) in functions.iter().enumerate() {
        let mut w = Walk::new(functions, &comps);
        w.stmts(&f.body);
        for c in &w.children {
            parent[*c] = Some(i);
        }
        uses.push(w.names);
        children.push(w.children);
        called.push(w.comps_called);
    }
    let mut needs: Vec<Option<BTreeSet<String>>> = vec![None; n];
    let edges: Vec<Vec<FuncId>> = children
        .iter()
        .zip(&called)
        .map(|(a, b)| a.iter().chain(b).copied().collect())
        .collect();
    for f in 0..n {
        needs_of(f, functions, &uses, &edges, &mut needs);
    }
    Scopes {
        parent,
        needs: needs.into_iter().map(|x| x.unwrap_or_default()).collect(),
        children,
    }
}

/// `needs[f]`, computed (children and called comprehensions first) if not yet.
fn needs_of(
    f: FuncId,
    functions: &[Function],
    uses: &[HashSet<String>],
    children: &[Vec<FuncId>],
    needs: &mut Vec<Option<BTreeSet<String>>>,
) -> BTreeSet<String> {
    if let Some(n) = &needs[f] {
        return n.clone();
    }
    // Placeholder against cycles (there are none: a function is defined in one place).
    needs[f] = Some(BTreeSet::new());
    let mut all: BTreeSet<String> = uses[f].iter().cloned().collect();
    for &c in &children[f] {
        all.extend(needs_of(c, functions, uses, children, needs));
    }
    let func = &functions[f];
    let (globals, nonlocals) = declared(func);
    all.extend(nonlocals);
    let own = bound(func);
    all.retain(|n| !own.contains(n) && !globals.contains(n));
    needs[f] = Some(all.clone());
    all
}

/// The free variables of every function: the names it needs that an enclosing function
/// binds, in sorted order. `bound` gives each function's bound names ([`bound`]).
pub fn free_vars(
    scopes: &Scopes,
    functions: &[Function],
    bound: &[HashSet<String>],
) -> Result<Vec<Vec<String>>, Diagnostic> {
    let globals: Vec<HashSet<String>> = functions.iter().map(|f| declared(f).0).collect();
    (0..functions.len())
        .map(|f| free_vars_of(f, scopes, functions, bound, &globals))
        .collect()
}

fn free_vars_of(
    f: FuncId,
    scopes: &Scopes,
    functions: &[Function],
    bound: &[HashSet<String>],
    globals: &[HashSet<String>],
) -> Result<Vec<String>, Diagnostic> {
    let (_, nonlocals) = declared(&functions[f]);
    let mut free = Vec::new();
    for n in &scopes.needs[f] {
        let mut a = scopes.parent[f];
        let mut found = false;
        while let Some(p) = a {
            if bound[p].contains(n) {
                found = true;
                break;
            }
            if globals[p].contains(n) {
                break;
            }
            a = scopes.parent[p];
        }
        if found {
            free.push(n.clone());
        } else if nonlocals.contains(n) {
            let at = nonlocal_span(&functions[f].body, n).unwrap_or(functions[f].span);
            return Err(Diagnostic::new(
                format!("no binding for nonlocal '{n}' found"),
                at,
            ));
        }
    }
    Ok(free)
}

/// The position of the `nonlocal` statement of `stmts` that declares `name`.
fn nonlocal_span(stmts: &[Stmt], name: &str) -> Option<crate::diag::Span> {
    stmts.iter().find_map(|s| match &s.kind {
        StmtKind::Nonlocal(names) if names.iter().any(|n| n == name) => Some(s.span),
        StmtKind::If { body, orelse, .. } => {
            nonlocal_span(body, name).or_else(|| nonlocal_span(orelse, name))
        }
        StmtKind::While { body, orelse, .. } | StmtKind::For { body, orelse, .. } => {
            nonlocal_span(body, name).or_else(|| nonlocal_span(orelse, name))
        }
        StmtKind::With { body, .. } => nonlocal_span(body, name),
        StmtKind::Try {
            body,
            handlers,
            orelse,
            finalbody,
            ..
        } => nonlocal_span(body, name)
            .or_else(|| handlers.iter().find_map(|h| nonlocal_span(&h.body, name)))
            .or_else(|| nonlocal_span(orelse, name))
            .or_else(|| nonlocal_span(finalbody, name)),
        _ => None,
    })
}

/// Collects the names a function's own code uses and the functions it defines. Nested
/// functions' bodies are theirs; their default values are evaluated here, so they count.
struct Walk<'a> {
    functions: &'a [Function],
    comps: &'a HashMap<&'a str, FuncId>,
    names: HashSet<String>,
    children: Vec<FuncId>,
    /// The comprehensions it calls.
    comps_called: Vec<FuncId>,
}

impl<'a> Walk<'a> {
    fn new(functions: &'a [Function], comps: &'a HashMap<&'a str, FuncId>) -> Walk<'a> {
        Walk {
            functions,
            comps,
            names: HashSet::new(),
            children: Vec::new(),
            comps_called: Vec::new(),
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn child(&mut self, f: FuncId) {
        self.children.push(f);
        for d in &self.functions[f].defaults {
            self.expr(d);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Expr(e) | StmtKind::Return(Some(e)) => self.expr(e),
            StmtKind::Assign { targets, value } => {
                self.expr(value);
                targets.iter().for_each(|t| self.target(t));
            }
            StmtKind::AugAssign { target, value, .. } => {
                self.expr(value);
                self.target(target);
            }
            StmtKind::If { cond, body, orelse } => {
                self.expr(cond);
                self.stmts(body);
                self.stmts(orelse);
            }
            StmtKind::While { cond, body, orelse } => {
                self.expr(cond);
                self.stmts(body);
                self.stmts(orelse);
            }
            StmtKind::For {
                var,
                iter,
                body,
                orelse,
            } => {
                self.names.insert(var.name.to_string());
                self.expr(iter);
                self.stmts(body);
                self.stmts(orelse);
            }
            StmtKind::Del(t) => self.target(t),
            StmtKind::FunctionDef { func, target } => {
                self.names.insert(target.name.to_string());
                self.child(*func);
            }
            StmtKind::ClassDef {
                target,
                base,
                methods,
                attrs,
                ..
            } => {
                self.names.insert(target.name.to_string());
                base.iter().for_each(|b| self.expr(b));
                attrs.iter().for_each(|(_, e)| self.expr(e));
                methods.iter().for_each(|(_, f)| self.child(*f));
            }
            StmtKind::With { kind, body } => {
                if let WithKind::Lock(e) = kind {
                    self.expr(e);
                }
                self.stmts(body);
            }
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finalbody,
                ..
            } => {
                self.stmts(body);
                for h in handlers {
                    h.classes.iter().for_each(|c| self.expr(c));
                    if let Some(n) = &h.name {
                        self.names.insert(n.name.to_string());
                    }
                    self.stmts(&h.body);
                }
                self.stmts(orelse);
                self.stmts(finalbody);
            }
            StmtKind::Raise { exc, .. } => exc.iter().for_each(|e| self.expr(e)),
            StmtKind::Global(_)
            | StmtKind::Nonlocal(_)
            | StmtKind::Return(None)
            | StmtKind::Break
            | StmtKind::Continue
            | StmtKind::Pass => {}
        }
    }

    fn target(&mut self, t: &Target) {
        match t {
            Target::Name(n) => {
                self.names.insert(n.name.to_string());
            }
            Target::Index { obj, index } => {
                self.expr(obj);
                self.expr(index);
            }
            Target::Slice { obj, lo, hi } => {
                self.expr(obj);
                lo.iter().chain(hi.iter()).for_each(|e| self.expr(e));
            }
            Target::Attr { obj, .. } => self.expr(obj),
            Target::Tuple(items, _) => items.iter().for_each(|t| self.target(t)),
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::None => {}
            ExprKind::Name(n) => {
                if let Some(&c) = self.comps.get(&*n.name) {
                    self.comps_called.push(c);
                } else {
                    self.names.insert(n.name.to_string());
                }
            }
            ExprKind::Lambda(f) => self.child(*f),
            ExprKind::List(items) | ExprKind::Tuple(items) | ExprKind::Set(items) => {
                items.iter().for_each(|i| self.expr(i))
            }
            ExprKind::Dict(items) => items.iter().for_each(|(k, v)| {
                self.expr(k);
                self.expr(v);
            }),
            ExprKind::Unary(_, a) | ExprKind::Not(a) | ExprKind::Attr { obj: a, .. } => {
                self.expr(a)
            }
            ExprKind::Binary(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Index { obj: a, index: b } => {
                self.expr(a);
                self.expr(b);
            }
            ExprKind::Compare { first, rest } => {
                self.expr(first);
                rest.iter().for_each(|(_, r)| self.expr(r));
            }
            ExprKind::IfElse { cond, then, orelse } => {
                self.expr(cond);
                self.expr(then);
                self.expr(orelse);
            }
            ExprKind::Call { func, args } => {
                self.expr(func);
                args.iter().for_each(|a| self.expr(a));
            }
            ExprKind::CallEx { func, args } => {
                self.expr(func);
                args.iter().for_each(|a| self.expr(&a.value));
            }
            ExprKind::MethodCall { obj, args, .. } => {
                self.expr(obj);
                args.iter().for_each(|a| self.expr(a));
            }
            ExprKind::Slice { obj, lo, hi } => {
                self.expr(obj);
                lo.iter().chain(hi.iter()).for_each(|e| self.expr(e));
            }
        }
    }
}
