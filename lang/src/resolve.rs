//! Name resolution, with Python's rules: in a function, a name that is assigned (or a parameter,
//! or a `for` variable) is local unless declared `global` or `nonlocal`; a name an enclosing
//! function binds is its (free) variable, shared through a cell (`closures.rs`); every other
//! name is a module global, or a builtin when no code of the program can ever bind a global
//! of that name.

use crate::ast::*;
use crate::closures;
use crate::diag::Diagnostic;
use crate::parser::Parsed;
use std::collections::{HashMap, HashSet};

/// Resolves every name of `parsed` and returns the finished program.
pub fn resolve(parsed: Parsed) -> Result<Program, Diagnostic> {
    let Parsed {
        mut body,
        mut functions,
        comps,
    } = parsed;
    for f in &functions {
        let (mut globals, mut nonlocals) = (HashSet::new(), HashSet::new());
        collect_declared(&f.body, &mut globals, &mut nonlocals);
        for (set, what) in [(&globals, "global"), (&nonlocals, "nonlocal")] {
            if let Some(p) = f.locals[..f.arity].iter().find(|p| set.contains(*p)) {
                return Err(Diagnostic::new(
                    format!("name '{p}' is parameter and {what}"),
                    f.span,
                ));
            }
        }
        if let Some(n) = globals.intersection(&nonlocals).next() {
            return Err(Diagnostic::new(
                format!("name '{n}' is nonlocal and global"),
                f.span,
            ));
        }
    }
    let (free, children) = free_variables(&mut body, &mut functions, &comps)?;
    for (f, free) in functions.iter_mut().zip(&free) {
        let at = f.arity;
        f.locals.splice(at..at, free.iter().cloned());
        f.nfree = free.len();
        let (mut globals, mut nonlocals) = (HashSet::new(), HashSet::new());
        collect_declared(&f.body, &mut globals, &mut nonlocals);
        let mut assigned = Vec::new();
        collect_assigned_ordered(&f.body, &mut assigned);
        for name in assigned {
            if !globals.contains(&name) && !f.locals.contains(&name) {
                f.locals.push(name);
            }
        }
    }
    // Cell variables, and where each closure's cells come from.
    for p in 0..functions.len() {
        for &c in &children[p] {
            let slots: Vec<LocalId> = free[c]
                .iter()
                .map(|n| {
                    functions[p]
                        .locals
                        .iter()
                        .position(|l| l == n)
                        .expect("a free variable is bound or free in the enclosing function")
                })
                .collect();
            let pf = &mut functions[p];
            for &s in &slots {
                let is_free = (pf.arity..pf.arity + pf.nfree).contains(&s);
                if !is_free && !pf.cells.contains(&s) {
                    pf.cells.push(s);
                }
            }
            functions[c].closure = slots;
        }
    }
    // Names that may be bound as globals somewhere: assigned at module level or declared global.
    let mut bindable = HashSet::new();
    collect_assigned(&body, &mut bindable);
    for f in &functions {
        collect_globals(&f.body, &mut bindable);
    }
    let mut r = Resolver {
        bindable,
        globals: Vec::new(),
        global_ids: HashMap::new(),
        // Resolved where the `def` is, in the enclosing scope.
        defaults: functions
            .iter_mut()
            .map(|f| std::mem::take(&mut f.defaults))
            .collect(),
        module_loops: 0,
        in_module_loop: vec![false; functions.len()],
    };
    r.block(&mut body, None)?;
    for f in &mut functions {
        f.cells.sort_unstable();
        let free_slots = f.arity..f.arity + f.nfree;
        let locals: HashMap<String, Slot> = f
            .locals
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let cell = free_slots.contains(&i) || f.cells.contains(&i);
                (n.clone(), if cell { Slot::Cell(i) } else { Slot::Local(i) })
            })
            .collect();
        r.block(&mut f.body, Some(&locals))?;
    }
    for (f, d) in functions.iter_mut().zip(r.defaults.drain(..)) {
        f.defaults = d;
    }
    Ok(Program {
        body,
        functions,
        globals: r.globals,
        defined_in_module_loop: r.in_module_loop,
    })
}

/// What [`free_variables`] gives: each function's free variables and its children.
type FreeAndChildren = (Vec<Vec<String>>, Vec<Vec<FuncId>>);

/// The free variables of every function (in the order of its slots after the parameters)
/// and the functions each function's code defines. Comprehensions get the enclosing
/// function's names they read (their nested functions' needs included) as parameters
/// first. The scope facts computed on the way (each function's needs and bound names, as
/// sets of `String`s) are dropped on return, before the names are resolved (issue 20: they
/// stayed to the end of [`resolve`], two sets of bound names among them).
fn free_variables(
    body: &mut [Stmt],
    functions: &mut [Function],
    comps: &[(String, FuncId)],
) -> Result<FreeAndChildren, Diagnostic> {
    // Nested functions first: which names each function uses from its enclosing ones.
    let scopes = closures::scopes(functions, comps);
    {
        let bound: Vec<HashSet<String>> = functions.iter().map(closures::bound).collect();
        let early_free = closures::free_vars(&scopes, functions, &bound)?;
        crate::comprehension::bind_free_names(
            body,
            functions,
            comps,
            &|id, _| {
                let mut names = bound[id].clone();
                names.extend(early_free[id].iter().cloned());
                names
            },
            &|c| {
                scopes.children[c]
                    .iter()
                    .flat_map(|&k| scopes.needs[k].iter().cloned())
                    .collect()
            },
        );
    }
    // The final free variables (comprehensions now bind their parameters).
    let bound: Vec<HashSet<String>> = functions.iter().map(closures::bound).collect();
    let free = closures::free_vars(&scopes, functions, &bound)?;
    Ok((free, scopes.children))
}

/// Adds the names declared by `global` statements in `stmts` (nested blocks included).
fn collect_globals(stmts: &[Stmt], out: &mut HashSet<String>) {
    collect_declared(stmts, out, &mut HashSet::new());
}

/// Adds the names declared by `global` statements in `stmts` (nested blocks included, nested
/// functions not) to `globals`, those declared `nonlocal` to `nonlocals`.
pub(crate) fn collect_declared(
    stmts: &[Stmt],
    globals: &mut HashSet<String>,
    nonlocals: &mut HashSet<String>,
) {
    for s in stmts {
        match &s.kind {
            StmtKind::Global(names) => globals.extend(names.iter().cloned()),
            StmtKind::Nonlocal(names) => nonlocals.extend(names.iter().cloned()),
            _ => {
                for b in s.blocks() {
                    collect_declared(b, globals, nonlocals);
                }
            }
        }
    }
}

fn collect_assigned(stmts: &[Stmt], out: &mut HashSet<String>) {
    let mut v = Vec::new();
    collect_assigned_ordered(stmts, &mut v);
    out.extend(v);
}

/// Appends the names bound by `stmts` (assignment targets, `for` variables, `def` and `class`
/// names), in source order, possibly with repeats.
pub(crate) fn collect_assigned_ordered(stmts: &[Stmt], out: &mut Vec<String>) {
    for s in stmts {
        match &s.kind {
            StmtKind::Assign { targets, .. } => {
                for t in targets {
                    target_names(t, out);
                }
            }
            StmtKind::AugAssign {
                target: Target::Name(n),
                ..
            } => out.push(n.name.to_string()),
            StmtKind::For {
                var, body, orelse, ..
            } => {
                out.push(var.name.to_string());
                collect_assigned_ordered(body, out);
                collect_assigned_ordered(orelse, out);
            }
            StmtKind::FunctionDef { target, .. } | StmtKind::ClassDef { target, .. } => {
                out.push(target.name.to_string())
            }
            StmtKind::If { body, orelse, .. } => {
                collect_assigned_ordered(body, out);
                collect_assigned_ordered(orelse, out);
            }
            StmtKind::While { body, orelse, .. } => {
                collect_assigned_ordered(body, out);
                collect_assigned_ordered(orelse, out);
            }
            StmtKind::With { body, .. } => collect_assigned_ordered(body, out),
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finalbody,
                ..
            } => {
                collect_assigned_ordered(body, out);
                for h in handlers {
                    if let Some(n) = &h.name {
                        out.push(n.name.to_string());
                    }
                    collect_assigned_ordered(&h.body, out);
                }
                collect_assigned_ordered(orelse, out);
                collect_assigned_ordered(finalbody, out);
            }
            _ => {}
        }
    }
}

/// Appends the names a target binds (a tuple target's, nested ones included).
fn target_names(t: &Target, out: &mut Vec<String>) {
    match t {
        Target::Name(n) => out.push(n.name.to_string()),
        Target::Tuple(items, _) => items.iter().for_each(|t| target_names(t, out)),
        _ => {}
    }
}

struct Resolver {
    bindable: HashSet<String>,
    globals: Vec<String>,
    global_ids: HashMap<String, GlobalId>,
    /// Each function's default values, taken out of it while it is resolved.
    defaults: Vec<Vec<Expr>>,
    /// How many loops of the module body enclose the statement being resolved.
    module_loops: usize,
    /// See [`Program::defined_in_module_loop`].
    in_module_loop: Vec<bool>,
}

type Locals<'a> = Option<&'a HashMap<String, Slot>>;

impl Resolver {
    fn global(&mut self, name: &str) -> GlobalId {
        if let Some(&id) = self.global_ids.get(name) {
            return id;
        }
        let id = self.globals.len();
        self.globals.push(name.to_string());
        self.global_ids.insert(name.to_string(), id);
        id
    }

    fn name(&mut self, n: &mut Name, locals: Locals) {
        if let Slot::Builtin(_) = n.slot {
            // Set by the parser for what it lowers (f-strings): never shadowed.
            return;
        }
        n.slot = if let Some(&slot) = locals.and_then(|l| l.get(&*n.name)) {
            slot
        } else if self.bindable.contains(&*n.name) {
            Slot::Global(self.global(&n.name))
        } else if let Some(b) = Builtin::from_name(&n.name) {
            Slot::Builtin(b)
        } else {
            Slot::Global(self.global(&n.name))
        };
    }

    /// The default values of function `f`, in the scope of its `def` (`locals`).
    fn defaults(&mut self, f: FuncId, locals: Locals) {
        if locals.is_none() && self.module_loops > 0 {
            self.in_module_loop[f] = true;
        }
        let mut d = std::mem::take(&mut self.defaults[f]);
        for e in &mut d {
            self.expr(e, locals);
        }
        self.defaults[f] = d;
    }

    fn block(&mut self, stmts: &mut [Stmt], locals: Locals) -> Result<(), Diagnostic> {
        for s in stmts {
            self.stmt(s, locals)?;
        }
        Ok(())
    }

    /// A loop's body, counted in [`Resolver::module_loops`] when it is the module's.
    fn loop_body(&mut self, body: &mut [Stmt], locals: Locals) -> Result<(), Diagnostic> {
        let module = locals.is_none() as usize;
        self.module_loops += module;
        let r = self.block(body, locals);
        self.module_loops -= module;
        r
    }

    fn stmt(&mut self, s: &mut Stmt, locals: Locals) -> Result<(), Diagnostic> {
        match &mut s.kind {
            StmtKind::Expr(e) => self.expr(e, locals),
            StmtKind::Assign { targets, value } => {
                self.expr(value, locals);
                for t in targets {
                    self.target(t, locals);
                }
            }
            StmtKind::AugAssign { target, value, .. } => {
                self.expr(value, locals);
                self.target(target, locals);
            }
            StmtKind::If { cond, body, orelse } => {
                self.expr(cond, locals);
                self.block(body, locals)?;
                self.block(orelse, locals)?;
            }
            StmtKind::While { cond, body, orelse } => {
                self.expr(cond, locals);
                self.loop_body(body, locals)?;
                self.block(orelse, locals)?;
            }
            StmtKind::For {
                iter,
                var,
                body,
                orelse,
            } => {
                self.expr(iter, locals);
                self.name(var, locals);
                self.loop_body(body, locals)?;
                self.block(orelse, locals)?;
            }
            StmtKind::Return(Some(e)) => self.expr(e, locals),
            StmtKind::Del(t) => self.target(t, locals),
            StmtKind::FunctionDef { func, target } => {
                self.defaults(*func, locals);
                self.name(target, locals);
            }
            StmtKind::ClassDef {
                target,
                base,
                attrs,
                methods,
                ..
            } => {
                for (_, f) in methods.iter() {
                    self.defaults(*f, None);
                }
                self.name(target, locals);
                if let Some(b) = base {
                    self.expr(b, None);
                }
                for (_, e) in attrs {
                    self.expr(e, None);
                }
            }
            StmtKind::With { kind, body } => {
                if let WithKind::Lock(e) = kind {
                    self.expr(e, locals);
                }
                self.block(body, locals)?;
            }
            StmtKind::Global(names) => {
                for n in names.iter() {
                    self.global(n);
                }
            }
            StmtKind::Nonlocal(_) => {}
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finalbody,
                ..
            } => {
                self.block(body, locals)?;
                for h in handlers {
                    for c in &mut h.classes {
                        self.expr(c, locals);
                    }
                    if let Some(n) = &mut h.name {
                        self.name(n, locals);
                    }
                    self.block(&mut h.body, locals)?;
                }
                self.block(orelse, locals)?;
                self.block(finalbody, locals)?;
            }
            StmtKind::Raise { exc, .. } => {
                if let Some(e) = exc {
                    self.expr(e, locals);
                }
            }
            StmtKind::Return(None) | StmtKind::Break | StmtKind::Continue | StmtKind::Pass => {}
        }
        Ok(())
    }

    fn target(&mut self, t: &mut Target, locals: Locals) {
        match t {
            Target::Name(n) => self.name(n, locals),
            Target::Index { obj, index } => {
                self.expr(obj, locals);
                self.expr(index, locals);
            }
            Target::Slice { obj, lo, hi } => {
                self.expr(obj, locals);
                if let Some(e) = lo {
                    self.expr(e, locals);
                }
                if let Some(e) = hi {
                    self.expr(e, locals);
                }
            }
            Target::Attr { obj, .. } => self.expr(obj, locals),
            Target::Tuple(items, _) => {
                for t in items {
                    self.target(t, locals);
                }
            }
        }
    }

    fn expr(&mut self, e: &mut Expr, locals: Locals) {
        match &mut e.kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::None => {}
            ExprKind::Name(n) => self.name(n, locals),
            ExprKind::Lambda(f) => self.defaults(*f, locals),
            ExprKind::List(items) | ExprKind::Tuple(items) | ExprKind::Set(items) => {
                for i in items {
                    self.expr(i, locals);
                }
            }
            ExprKind::Dict(items) => {
                for (k, v) in items {
                    self.expr(k, locals);
                    self.expr(v, locals);
                }
            }
            ExprKind::Unary(_, a) | ExprKind::Not(a) | ExprKind::Attr { obj: a, .. } => {
                self.expr(a, locals)
            }
            ExprKind::Binary(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Index { obj: a, index: b } => {
                self.expr(a, locals);
                self.expr(b, locals);
            }
            ExprKind::Compare { first, rest } => {
                self.expr(first, locals);
                for (_, r) in rest {
                    self.expr(r, locals);
                }
            }
            ExprKind::IfElse { cond, then, orelse } => {
                self.expr(cond, locals);
                self.expr(then, locals);
                self.expr(orelse, locals);
            }
            ExprKind::Call { func, args } => {
                self.expr(func, locals);
                for a in args {
                    self.expr(a, locals);
                }
            }
            ExprKind::CallEx { func, args } => {
                self.expr(func, locals);
                for a in args {
                    self.expr(&mut a.value, locals);
                }
            }
            ExprKind::MethodCall { obj, args, .. } => {
                self.expr(obj, locals);
                for a in args {
                    self.expr(a, locals);
                }
            }
            ExprKind::Slice { obj, lo, hi } => {
                self.expr(obj, locals);
                if let Some(e) = lo {
                    self.expr(e, locals);
                }
                if let Some(e) = hi {
                    self.expr(e, locals);
                }
            }
        }
    }
}
