//! Statements: assignment, control flow, definitions, `with`.

use super::*;

impl Interp {
    // ----- statements -----

    pub(super) fn exec_block(&mut self, stmts: &[Stmt], env: &mut Vec<Option<Value>>) -> R<Flow> {
        for s in stmts {
            self.tick();
            match self.exec(s, env).map_err(|e| self.locate(e, s.span))? {
                Flow::Next => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Next)
    }

    pub(super) fn exec(&mut self, s: &Stmt, env: &mut Vec<Option<Value>>) -> R<Flow> {
        match &s.kind {
            StmtKind::Expr(e) => {
                self.eval(e, env)?;
            }
            StmtKind::Assign { targets, value } => {
                let v = self.eval(value, env)?;
                for t in targets {
                    self.assign(t, v.clone(), env)?;
                }
            }
            StmtKind::AugAssign { target, op, value } => {
                self.aug_assign(target, *op, value, env)?
            }
            StmtKind::If { cond, body, orelse } => {
                let c = self.eval(cond, env)?;
                let branch = if self.truth(&c).map_err(|e| self.locate(e, cond.span))? {
                    body
                } else {
                    orelse
                };
                return self.exec_block(branch, env);
            }
            StmtKind::While { cond, body, orelse } => loop {
                let c = self.eval(cond, env)?;
                if !self.truth(&c).map_err(|e| self.locate(e, cond.span))? {
                    return self.exec_block(orelse, env);
                }
                match self.exec_block(body, env)? {
                    Flow::Break => break,
                    Flow::Return(v) => return Ok(Flow::Return(v)),
                    Flow::Next | Flow::Continue => {}
                }
                self.tick();
            },
            StmtKind::For {
                var,
                iter,
                body,
                orelse,
            } => return self.exec_for(var, iter, (body, orelse), env),
            StmtKind::Break => return Ok(Flow::Break),
            StmtKind::Continue => return Ok(Flow::Continue),
            StmtKind::Pass | StmtKind::Global(_) => {}
            StmtKind::Return(e) => {
                let v = match e {
                    Some(e) => self.eval(e, env)?,
                    None => Value::None,
                };
                return Ok(Flow::Return(v));
            }
            StmtKind::Del(target) => match target {
                Target::Index { obj, index } => {
                    let o = self.eval(obj, env)?;
                    let i = self.eval(index, env)?;
                    self.on_item(&o, &i, || ops::del_item(&o, &i))?;
                }
                Target::Slice { obj, lo, hi } => {
                    let o = self.eval(obj, env)?;
                    let (lo, hi) = self.eval_bounds(lo.as_deref(), hi.as_deref(), env)?;
                    self.on_slice(&o, [&lo, &hi], &Value::None, || {
                        ops::set_slice(&o, &lo, &hi, None)
                    })?;
                }
                _ => return Err(exc(ErrorKind::SyntaxError, "invalid del target")),
            },
            StmtKind::Nonlocal(_) => {}
            StmtKind::FunctionDef { func, target } => {
                let f = self.make_function(*func, env)?;
                self.store(target, f, env)?;
            }
            StmtKind::ClassDef {
                name,
                target,
                base,
                methods,
                attrs,
            } => {
                let base = match base {
                    None => None,
                    Some(b) => match self.eval(b, env)? {
                        Value::Class(c) => Some(c),
                        other => {
                            return Err(self.locate(
                                exc(
                                    ErrorKind::TypeError,
                                    format!(
                                        "a base class must be a class, not '{}'",
                                        other.type_name()
                                    ),
                                ),
                                b.span,
                            ))
                        }
                    },
                };
                let mut table: Vec<(String, Value)> = Vec::new();
                for (n, e) in attrs {
                    let v = self.eval(e, env)?;
                    table.retain(|(m, _)| m != n);
                    table.push((n.clone(), v));
                }
                for (n, f) in methods {
                    let f = self.make_function(*f, env)?;
                    table.retain(|(m, _)| m != n);
                    table.push((n.clone(), f));
                }
                let class = ClassObj {
                    name: name.clone(),
                    exc: base.as_ref().is_some_and(|b| b.exc),
                    base,
                    attrs: Mutex::new(table),
                    builtin: false,
                };
                self.store(target, Value::Class(Arc::new(class)), env)?;
            }
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finalbody,
                ..
            } => return self.exec_try(body, handlers, orelse, finalbody, env),
            StmtKind::Raise { exc, handler_level } => {
                return Err(self.raise_stmt(exc.as_ref(), *handler_level, env))
            }
            StmtKind::With { kind, body } => {
                let held = match kind {
                    WithKind::Atomic => None,
                    WithKind::Lock(e) => match self.eval(e, env)? {
                        Value::Lock(l) => Some(l),
                        other => {
                            return Err(self.locate(
                                exc(
                                    ErrorKind::TypeError,
                                    format!(
                                        "'{}' object does not support the context manager protocol",
                                        other.type_name()
                                    ),
                                ),
                                e.span,
                            ))
                        }
                    },
                };
                if let Some(l) = &held {
                    self.lock_acquire(l);
                }
                self.atomic += 1;
                let r = self.exec_block(body, env);
                self.atomic -= 1;
                if let Some(l) = &held {
                    self.lock_release(l);
                }
                return r;
            }
        }
        Ok(Flow::Next)
    }

    /// `for var in iter: body`, then its `else` block (`orelse`) when the items ran out
    /// (not after a `break`).
    pub(super) fn exec_for(
        &mut self,
        var: &Name,
        iter: &Expr,
        (body, orelse): (&[Stmt], &[Stmt]),
        env: &mut Vec<Option<Value>>,
    ) -> R<Flow> {
        match self.exec_for_items(var, iter, body, env)? {
            Flow::Next => self.exec_block(orelse, env),
            Flow::Break => Ok(Flow::Next),
            flow => Ok(flow),
        }
    }

    /// The items of `for var in iter: body`: `Flow::Break` when a `break` ended the loop,
    /// `Flow::Next` when the items ran out, or a `return`'s flow.
    fn exec_for_items(
        &mut self,
        var: &Name,
        iter: &Expr,
        body: &[Stmt],
        env: &mut Vec<Option<Value>>,
    ) -> R<Flow> {
        let it = self.eval(iter, env)?;
        // Runs the body for one item; a `break` ends the loop with `Flow::Break`.
        macro_rules! step {
            ($item:expr) => {{
                self.store(var, $item, env)?;
                match self.exec_block(body, env)? {
                    Flow::Break => return Ok(Flow::Break),
                    Flow::Return(v) => return Ok(Flow::Return(v)),
                    Flow::Next | Flow::Continue => {}
                }
                self.tick();
            }};
        }
        match &it {
            Value::Range(a, b, s) => {
                let n = range_len(*a, *b, *s);
                for k in 0..n {
                    step!(Value::Int(a + k * s));
                }
            }
            // One item at a time: a big range may be too long to list.
            Value::BigRange(r) => {
                let mut k = 0;
                while let Some(item) = crate::ranges::next(r, k) {
                    k += 1;
                    step!(item);
                }
            }
            // Lists are walked by index, so items appended during the loop are visited (Python).
            Value::List(l) => {
                let mut i = 0;
                loop {
                    let item = lock(&l.items).get(i).cloned();
                    let Some(item) = item else { break };
                    i += 1;
                    step!(item);
                }
            }
            // Keys are a snapshot; a change of size raises at the next step, as in Python.
            Value::Dict(d) | Value::Set(d) => {
                let what = if matches!(it, Value::Set(_)) {
                    "Set"
                } else {
                    "dictionary"
                };
                let keys = lock(&d.map).keys();
                let n = keys.len();
                let mut keys = keys.into_iter();
                loop {
                    if lock(&d.map).len() != n {
                        let e = (
                            ErrorKind::RuntimeError,
                            format!("{what} changed size during iteration"),
                        );
                        return Err(self.locate(e.into(), iter.span));
                    }
                    let Some(item) = keys.next() else { break };
                    step!(item);
                }
            }
            // An instance's iterator runs one `__next__` per step (a `break` ends it early).
            Value::Instance(_) => {
                let mut iterator = self
                    .with_special(|| crate::special::iter_of(&it))
                    .map_err(|e| self.locate(e, iter.span))?;
                loop {
                    let next = self
                        .with_special(|| crate::special::next_of(&mut iterator))
                        .map_err(|e| self.locate(e, iter.span))?;
                    let Some(item) = next else { break };
                    step!(item);
                }
            }
            other => {
                let items = ops::iterate(other).map_err(|e| self.locate(e.into(), iter.span))?;
                for item in items {
                    step!(item);
                }
            }
        }
        Ok(Flow::Next)
    }

    pub(super) fn store(&mut self, n: &Name, v: Value, env: &mut [Option<Value>]) -> R<()> {
        match n.slot {
            Slot::Local(i) => env[i] = Some(v),
            Slot::Cell(i) => {
                let Some(Value::List(cell)) = &env[i] else {
                    unreachable!("a cell slot holds its cell")
                };
                *lock(&cell.items) = vec![v];
            }
            Slot::Global(g) => lock(&self.shared.globals)[g] = Some(v),
            Slot::Builtin(_) | Slot::Unresolved => {
                return Err(exc(
                    ErrorKind::SyntaxError,
                    format!("cannot assign to '{}'", n.name),
                ))
            }
        }
        Ok(())
    }

    pub(super) fn load(&self, n: &Name, env: &[Option<Value>]) -> R<Value> {
        let found = match n.slot {
            Slot::Local(i) => {
                return env[i].clone().ok_or_else(|| {
                    exc(
                        ErrorKind::UnboundLocalError,
                        format!(
                        "cannot access local variable '{}' where it is not associated with a value",
                        n.name
                    ),
                    )
                })
            }
            Slot::Cell(i) => {
                let Some(Value::List(cell)) = &env[i] else {
                    unreachable!("a cell slot holds its cell")
                };
                if let Some(v) = lock(&cell.items).first() {
                    return Ok(v.clone());
                }
                let program = &self.shared.program;
                let func = self.frames.last().and_then(|f| f.func);
                let free = func.is_some_and(|f| {
                    let f = &program.functions[f];
                    (f.arity..f.arity + f.nfree).contains(&i)
                });
                return Err(exc(
                    crate::closures::unbound_kind(free),
                    crate::closures::unbound_message(&n.name, free),
                ));
            }
            Slot::Global(g) => lock(&self.shared.globals)[g].clone(),
            Slot::Builtin(b) => Some(self.builtin_value(b)),
            Slot::Unresolved => None,
        };
        found
            .or_else(|| Builtin::from_name(&n.name).map(|b| self.builtin_value(b)))
            .ok_or_else(|| {
                exc(
                    ErrorKind::NameError,
                    format!("name '{}' is not defined", n.name),
                )
            })
    }

    pub(super) fn assign(&mut self, t: &Target, v: Value, env: &mut Vec<Option<Value>>) -> R<()> {
        match t {
            Target::Name(n) => self.store(n, v, env),
            Target::Index { obj, index } => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                self.on_item(&o, &i, || ops::set_item(&o, &i, v))
                    .map_err(|e| self.locate(e, obj.span))
            }
            Target::Slice { obj, lo, hi } => {
                let o = self.eval(obj, env)?;
                let (lo, hi) = self.eval_bounds(lo.as_deref(), hi.as_deref(), env)?;
                self.on_slice(&o, [&lo, &hi], &v, || {
                    ops::set_slice(&o, &lo, &hi, Some(&v))
                })
                .map_err(|e| self.locate(e, obj.span))
            }
            Target::Attr { obj, name } => {
                let o = self.eval(obj, env)?;
                self.set_attr(&o, name, v)
                    .map_err(|e| self.locate(e, obj.span))
            }
            Target::Tuple(targets, star) => {
                let n = targets.len();
                let items = self.iterating(&v, || match star {
                    None => crate::builtins_seq::unpack(&v, n),
                    Some(s) => crate::builtins_seq::unpack_starred(&v, *s, n - 1 - s),
                })?;
                for (t, x) in targets.iter().zip(items) {
                    self.assign(t, x, env)?;
                }
                Ok(())
            }
        }
    }

    pub(super) fn aug_assign(
        &mut self,
        target: &Target,
        op: BinOp,
        value: &Expr,
        env: &mut Vec<Option<Value>>,
    ) -> R<()> {
        match target {
            Target::Name(n) => {
                let cur = self.load(n, env).map_err(|e| self.locate(e, n.span))?;
                let rhs = self.eval(value, env)?;
                let new = self.with_special(|| inplace(op, &cur, &rhs))?;
                self.store(n, new, env)
            }
            Target::Index { obj, index } => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                let cur = self
                    .on_item(&o, &i, || ops::get_item(&o, &i))
                    .map_err(|e| self.locate(e, obj.span))?;
                let rhs = self.eval(value, env)?;
                let new = self.with_special(|| inplace(op, &cur, &rhs))?;
                self.on_item(&o, &i, || ops::set_item(&o, &i, new))
            }
            Target::Slice { obj, lo, hi } => {
                let o = self.eval(obj, env)?;
                let (lo, hi) = self.eval_bounds(lo.as_deref(), hi.as_deref(), env)?;
                let cur = self.on_slice(&o, [&lo, &hi], &Value::None, || {
                    ops::get_slice(&o, &lo, &hi)
                })?;
                let rhs = self.eval(value, env)?;
                let new = self.with_special(|| inplace(op, &cur, &rhs))?;
                self.on_slice(&o, [&lo, &hi], &new, || {
                    ops::set_slice(&o, &lo, &hi, Some(&new))
                })
            }
            Target::Attr { obj, name } => {
                let o = self.eval(obj, env)?;
                let cur = self
                    .get_attr(&o, name)
                    .map_err(|e| self.locate(e, obj.span))?;
                let rhs = self.eval(value, env)?;
                let new = self.with_special(|| inplace(op, &cur, &rhs))?;
                self.set_attr(&o, name, new)
            }
            // The parser rejects `a, b += ...`.
            Target::Tuple(..) => Err(exc(
                ErrorKind::SyntaxError,
                "illegal expression for augmented assignment",
            )),
        }
    }
}

/// `cur op= rhs`: lists are extended (`+=`) or repeated (`*=`) in place, as in Python;
/// otherwise `cur op rhs` (an instance's binary special methods: no `__iadd__`).
fn inplace(op: BinOp, cur: &Value, rhs: &Value) -> Result<Value, crate::value::OpError> {
    if let Some(r) = crate::sets::inplace(op, cur, rhs) {
        return r;
    }
    if let Some(r) = crate::special::inplace(op, cur, rhs) {
        return r;
    }
    if let (BinOp::BitOr, Value::Dict(d)) = (op, cur) {
        crate::builtins_seq::dict_update(d, rhs)?;
        return Ok(cur.clone());
    }
    if let Value::List(l) = cur {
        match (op, rhs) {
            (BinOp::Add, _) => {
                let more = ops::iterate(rhs)?;
                lock(&l.items).extend(more);
                return Ok(cur.clone());
            }
            (BinOp::Mul, Value::Int(_) | Value::Bool(_) | Value::BigInt(_)) => {
                let items = l.snapshot();
                let count = ops::repeat_count(rhs, items.len())?;
                *lock(&l.items) = ops::repeat_items(&items, count)?;
                return Ok(cur.clone());
            }
            _ => {}
        }
    }
    ops::binary_inplace(op, cur, rhs)
}
