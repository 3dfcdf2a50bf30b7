//! Expressions, attribute access and calls.

use super::*;
use crate::callargs;

/// Keyword arguments: (name, value) pairs, names distinct.
type Keywords = Vec<(String, Value)>;

impl Interp {
    // ----- expressions -----

    pub(super) fn eval_bounds(
        &mut self,
        lo: Option<&Expr>,
        hi: Option<&Expr>,
        env: &mut Vec<Option<Value>>,
    ) -> R<(Option<Value>, Option<Value>)> {
        let lo = match lo {
            Some(e) => Some(self.eval(e, env)?),
            None => None,
        };
        let hi = match hi {
            Some(e) => Some(self.eval(e, env)?),
            None => None,
        };
        Ok((lo, hi))
    }

    pub(super) fn eval_args(
        &mut self,
        args: &[Expr],
        env: &mut Vec<Option<Value>>,
    ) -> R<Vec<Value>> {
        args.iter().map(|a| self.eval(a, env)).collect()
    }

    /// Evaluates `e`; an error without a position gets `e`'s.
    pub(super) fn eval(&mut self, e: &Expr, env: &mut Vec<Option<Value>>) -> R<Value> {
        self.eval_inner(e, env).map_err(|x| self.locate(x, e.span))
    }

    pub(super) fn eval_inner(&mut self, e: &Expr, env: &mut Vec<Option<Value>>) -> R<Value> {
        Ok(match &e.kind {
            ExprKind::Int(i) => Value::Int(*i),
            ExprKind::Float(f) => Value::Float(*f),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::None => Value::None,
            ExprKind::Name(n) => self.load(n, env)?,
            ExprKind::List(items) => ListObj::new_value(self.eval_args(items, env)?),
            ExprKind::Tuple(items) => TupleObj::new_value(self.eval_args(items, env)?),
            ExprKind::Set(items) => {
                let mut map = Dict::default();
                // An unhashable member is reported at the display, as the JIT does.
                for v in self.eval_args(items, env)? {
                    let hk = self
                        .with_special(|| map.key_for(&v))
                        .map_err(|x| self.locate(x, e.span))?;
                    map.insert(hk, v, Value::None);
                }
                Value::Set(std::sync::Arc::new(DictObj {
                    map: std::sync::Mutex::new(map),
                }))
            }
            ExprKind::Dict(items) => {
                let mut map = Dict::default();
                for (k, v) in items {
                    let key = self.eval(k, env)?;
                    let val = self.eval(v, env)?;
                    let hk = self
                        .with_special(|| map.key_for(&key))
                        .map_err(|x| self.locate(x, k.span))?;
                    map.insert(hk, key, val);
                }
                DictObj::new_value(map)
            }
            ExprKind::Unary(op, a) => {
                let v = self.eval(a, env)?;
                if matches!(v, Value::Instance(_)) {
                    self.with_special(|| ops::unary(*op, &v))?
                } else {
                    ops::unary(*op, &v)?
                }
            }
            ExprKind::Binary(op, a, b) => {
                let x = self.eval(a, env)?;
                let y = self.eval(b, env)?;
                // Sets: their members' `__eq__` may run.
                let special = |v: &Value| {
                    matches!(v, Value::Instance(_) | Value::Set(_) | Value::FrozenSet(_))
                };
                if special(&x) || special(&y) {
                    self.with_special(|| ops::binary(*op, &x, &y))?
                } else {
                    ops::binary(*op, &x, &y)?
                }
            }
            ExprKind::And(a, b) => {
                let x = self.eval(a, env)?;
                if self.truth(&x).map_err(|e| self.locate(e, a.span))? {
                    self.eval(b, env)?
                } else {
                    x
                }
            }
            ExprKind::Or(a, b) => {
                let x = self.eval(a, env)?;
                if self.truth(&x).map_err(|e| self.locate(e, a.span))? {
                    x
                } else {
                    self.eval(b, env)?
                }
            }
            ExprKind::Not(a) => {
                let x = self.eval(a, env)?;
                Value::Bool(!self.truth(&x).map_err(|e| self.locate(e, a.span))?)
            }
            ExprKind::Compare { first, rest } => {
                let mut left = self.eval(first, env)?;
                for (op, r) in rest {
                    let right = self.eval(r, env)?;
                    if !self.with_special(|| compare(*op, &left, &right))? {
                        return Ok(Value::Bool(false));
                    }
                    left = right;
                }
                Value::Bool(true)
            }
            ExprKind::IfElse { cond, then, orelse } => {
                let c = self.eval(cond, env)?;
                if self.truth(&c).map_err(|e| self.locate(e, cond.span))? {
                    self.eval(then, env)?
                } else {
                    self.eval(orelse, env)?
                }
            }
            ExprKind::Call { func, args } => {
                let f = self.eval(func, env)?;
                let args = self.eval_args(args, env)?;
                self.call_value(f, args, e.span)?
            }
            ExprKind::Lambda(f) => self.make_function(*f, env)?,
            ExprKind::CallEx { func, args } => {
                let f = self.eval(func, env)?;
                let (pos, kw) = self.eval_call_args(&f, args, env)?;
                self.call_value_kw(f, pos, kw, e.span)?
            }
            ExprKind::MethodCall { obj, name, args } => {
                // Python's order: the receiver, then the attribute lookup, then the arguments.
                let recv = self.eval(obj, env)?;
                match &recv {
                    Value::Instance(_) | Value::Class(_) => {
                        let f = self.get_attr(&recv, name)?;
                        let args = self.eval_args(args, env)?;
                        self.call_value(f, args, e.span)?
                    }
                    _ => {
                        if !methods::has_method(&recv, name) {
                            return Err(exc(
                                ErrorKind::AttributeError,
                                format!("'{}' object has no attribute '{name}'", recv.type_name()),
                            ));
                        }
                        let args = self.eval_args(args, env)?;
                        if let Some(f) = self.frames.last_mut() {
                            f.pos = e.span;
                        }
                        self.call_builtin_method(&recv, name, args, e.span)?
                    }
                }
            }
            ExprKind::Attr { obj, name } => {
                let o = self.eval(obj, env)?;
                self.get_attr(&o, name)?
            }
            ExprKind::Index { obj, index } => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                self.on_item(&o, &i, || ops::get_item(&o, &i))?
            }
            ExprKind::Slice { obj, lo, hi } => {
                let o = self.eval(obj, env)?;
                let (lo, hi) = self.eval_bounds(lo.as_deref(), hi.as_deref(), env)?;
                // An instance's `__getitem__` runs (with a slice object).
                self.on_slice(&o, [&lo, &hi], &Value::None, || {
                    ops::get_slice(&o, &lo, &hi)
                })?
            }
        })
    }

    // ----- attributes and calls -----

    pub(super) fn get_attr(&mut self, o: &Value, name: &str) -> R<Value> {
        match o {
            Value::Instance(inst) => {
                let own = lock(&inst.attrs)
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone());
                if let Some(v) = own {
                    return Ok(v);
                }
                match inst.class.lookup(name) {
                    Some(Value::Function(f)) => Ok(Value::BoundMethod(Arc::new((o.clone(), f)))),
                    Some(v) => Ok(v),
                    None => Err(exc(
                        ErrorKind::AttributeError,
                        format!("'{}' object has no attribute '{name}'", inst.class.name),
                    )),
                }
            }
            Value::Class(c) if name == "__name__" && c.lookup(name).is_none() => {
                Ok(Value::str(c.name.as_str()))
            }
            Value::Builtin(b) if name == "__name__" => Ok(Value::str(b.name())),
            Value::Slice(s) if let Some(v) = s.attr(name) => Ok(v),
            Value::Class(c) => c.lookup(name).ok_or_else(|| {
                exc(
                    ErrorKind::AttributeError,
                    format!("type object '{}' has no attribute '{name}'", c.name),
                )
            }),
            _ if methods::has_method(o, name) => Ok(Value::BuiltinMethod(Arc::new((
                o.clone(),
                name.to_string(),
            )))),
            _ => Err(exc(
                ErrorKind::AttributeError,
                format!("'{}' object has no attribute '{name}'", o.type_name()),
            )),
        }
    }

    pub(super) fn set_attr(&mut self, o: &Value, name: &str, v: Value) -> R<()> {
        let attrs = match o {
            Value::Instance(inst) => &inst.attrs,
            Value::Class(c) => &c.attrs,
            _ => {
                return Err(exc(
                    ErrorKind::AttributeError,
                    format!("'{}' object has no attribute '{name}'", o.type_name()),
                ))
            }
        };
        let mut attrs = lock(attrs);
        match attrs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = v,
            None => attrs.push((name.to_string(), v)),
        }
        Ok(())
    }

    /// Calls any callable value with `args`; `span` is the call's position.
    pub fn call_value(&mut self, f: Value, args: Vec<Value>, span: Span) -> R<Value> {
        self.call_value_kw(f, args, Vec::new(), span)
    }

    /// Calls any callable value with positional arguments `args` and keyword arguments
    /// `kw` (names distinct); `span` is the call's position.
    pub fn call_value_kw(
        &mut self,
        f: Value,
        mut args: Vec<Value>,
        kw: Vec<(String, Value)>,
        span: Span,
    ) -> R<Value> {
        if let Some(frame) = self.frames.last_mut() {
            frame.pos = span;
        }
        match f {
            Value::Function(f) => self.call_function(&f, args, kw),
            Value::BoundMethod(m) => {
                args.insert(0, m.0.clone());
                self.call_function(&m.1, args, kw)
            }
            Value::Class(c) => {
                // An exception's arguments are its `args`, whatever `__init__` does with
                // them (CPython's `BaseException.__new__`).
                let attrs = if c.exc {
                    vec![("args".to_string(), TupleObj::new_value(args.clone()))]
                } else {
                    Vec::new()
                };
                let inst = Value::Instance(Arc::new(InstanceObj::new(c.clone(), attrs)));
                match c.lookup("__init__") {
                    Some(init) => {
                        let init = match init {
                            Value::Function(f) => Value::BoundMethod(Arc::new((inst.clone(), f))),
                            other => other,
                        };
                        let r = self.call_value_kw(init, args, kw, span)?;
                        if !matches!(r, Value::None) {
                            return Err(exc(
                                ErrorKind::TypeError,
                                format!("__init__() should return None, not '{}'", r.type_name()),
                            ));
                        }
                    }
                    None if !kw.is_empty() && c.exc => {
                        return Err(exc(
                            ErrorKind::TypeError,
                            format!("{}() takes no keyword arguments", c.name),
                        ))
                    }
                    None if (!args.is_empty() && !c.exc) || !kw.is_empty() => {
                        return Err(exc(
                            ErrorKind::TypeError,
                            format!("{}() takes no arguments", c.name),
                        ))
                    }
                    None => {}
                }
                Ok(inst)
            }
            Value::Builtin(b) if kw.is_empty() => self.call_builtin(b, args, span),
            Value::Builtin(b) => self.call_builtin_kw(b, args, kw, span),
            Value::BuiltinMethod(m) if kw.is_empty() => {
                self.call_builtin_method(&m.0, &m.1, args, span)
            }
            Value::BuiltinMethod(m) => self.call_builtin_method_kw(&m.0, &m.1, args, kw),
            other => Err(exc(
                ErrorKind::TypeError,
                format!("'{}' object is not callable", other.type_name()),
            )),
        }
    }

    /// The function value a `def` (or a class body's method) makes: its default values
    /// evaluated now, in the enclosing scope.
    pub(super) fn make_function(&mut self, id: FuncId, env: &mut Vec<Option<Value>>) -> R<Value> {
        let program = self.shared.program.clone();
        let f = &program.functions[id];
        let defaults = self.eval_args(&f.defaults, env)?;
        let closure = f
            .closure
            .iter()
            .map(|&slot| env[slot].clone().expect("a captured slot holds its cell"))
            .collect();
        Ok(Value::Function(Arc::new(FuncValue {
            id,
            defaults,
            closure,
        })))
    }

    /// Evaluates the arguments of a call with keywords or unpacking, in source order, into
    /// positional and keyword arguments. `f` (the callee) names the errors.
    fn eval_call_args(
        &mut self,
        f: &Value,
        args: &[Arg],
        env: &mut Vec<Option<Value>>,
    ) -> R<(Vec<Value>, Keywords)> {
        let mut pos = Vec::new();
        let mut kw: Vec<(String, Value)> = Vec::new();
        for a in args {
            let v = self.eval(&a.value, env)?;
            match &a.kind {
                ArgKind::Pos => pos.push(v),
                ArgKind::Star => {
                    // An instance iterates by its special methods (either protocol).
                    if !self.with_special(|| Ok(ops::is_iterable(&v)))? {
                        return Err(exc(
                            ErrorKind::TypeError,
                            callargs::star_message(&self.callee_name(f), "*", v.type_name()),
                        ));
                    }
                    pos.extend(self.iterating(&v, || ops::iterate(&v))?);
                }
                ArgKind::Kw(k) => {
                    // Only a `**` before can have given it already (the parser refuses
                    // repeated keywords).
                    if kw.iter().any(|(n, _)| n == k) {
                        return Err(exc(
                            ErrorKind::TypeError,
                            callargs::repeated_message(&self.callee_name(f), k),
                        ));
                    }
                    kw.push((k.clone(), v))
                }
                ArgKind::DoubleStar => {
                    let Value::Dict(d) = &v else {
                        return Err(exc(
                            ErrorKind::TypeError,
                            callargs::star_message(&self.callee_name(f), "**", v.type_name()),
                        ));
                    };
                    for (k, x) in lock(&d.map).items() {
                        let Value::Str(k) = k else {
                            return Err(exc(ErrorKind::TypeError, "keywords must be strings"));
                        };
                        if kw.iter().any(|(n, _)| **n == *k) {
                            return Err(exc(
                                ErrorKind::TypeError,
                                callargs::repeated_message(&self.callee_name(f), &k),
                            ));
                        }
                        kw.push((k.to_string(), x));
                    }
                }
            }
        }
        Ok((pos, kw))
    }

    /// How errors about the arguments of a call name callee `f`.
    fn callee_name(&self, f: &Value) -> String {
        let program = &self.shared.program;
        match f {
            Value::Function(f) => callargs::function_name(&program.functions[f.id]),
            Value::BoundMethod(m) => callargs::function_name(&program.functions[m.1.id]),
            Value::Builtin(b) => b.name().to_string(),
            Value::BuiltinMethod(m) => m.1.clone(),
            Value::Class(c) => c.name.clone(),
            other => other.type_name(),
        }
    }

    pub(super) fn call_function(
        &mut self,
        fv: &Arc<FuncValue>,
        args: Vec<Value>,
        kw: Vec<(String, Value)>,
    ) -> R<Value> {
        let program = self.shared.program.clone();
        let f = &program.functions[fv.id];
        let mut env: Vec<Option<Value>> = if f.is_plain() && kw.is_empty() {
            if args.len() != f.arity {
                return Err(exc(
                    ErrorKind::TypeError,
                    crate::builtins_core::arity_message(f, args.len()),
                ));
            }
            args.into_iter().map(Some).collect()
        } else {
            let bound = callargs::bind(f, args, kw).map_err(|m| exc(ErrorKind::TypeError, m))?;
            let mut env: Vec<Option<Value>> = bound
                .slots
                .into_iter()
                .map(|s| {
                    Some(match s {
                        callargs::Source::Given(v) => v,
                        callargs::Source::Default(i) => fv.defaults[i].clone(),
                    })
                })
                .collect();
            if f.params.varargs {
                env.push(Some(TupleObj::new_value(bound.extra_pos)));
            }
            if f.params.varkw {
                let mut map = Dict::default();
                for (k, v) in bound.extra_kw {
                    let key = Value::str(k);
                    let hk = Key::of(&key)?;
                    map.insert(hk, key, v);
                }
                env.push(Some(DictObj::new_value(map)));
            }
            env
        };
        if self.frames.len() >= MAX_CALL_DEPTH || stack::near_limit() {
            return Err(exc(
                ErrorKind::RecursionError,
                "maximum recursion depth exceeded",
            ));
        }
        env.extend(fv.closure.iter().cloned().map(Some));
        env.resize(f.locals.len(), None);
        for &c in &f.cells {
            let v = env[c].take();
            env[c] = Some(ListObj::new_value(v.into_iter().collect()));
        }
        self.frames.push(Frame {
            name: f.qualname.clone(),
            pos: f.span,
            func: Some(fv.id),
        });
        let r = self.exec_block(&f.body, &mut env);
        self.frames.pop();
        match r? {
            Flow::Return(v) => Ok(v),
            _ => Ok(Value::None),
        }
    }
}

/// One comparison `left op right`.
fn compare(op: CmpOp, left: &Value, right: &Value) -> Result<bool, OpError> {
    Ok(match op {
        CmpOp::Eq => equal(left, right)?,
        CmpOp::Ne => not_equal(left, right)?,
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => order(left, right, op)?,
        CmpOp::In => ops::contains(right, left)?,
        CmpOp::NotIn => !ops::contains(right, left)?,
        CmpOp::Is => identical(left, right),
        CmpOp::IsNot => !identical(left, right),
    })
}
