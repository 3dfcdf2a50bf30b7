//! The builtin functions of LANGUAGE.md: those that need the interpreter's state (`print`,
//! `spawn`, `Lock`, `TransactionQueue`, `time`, `args`) here; the rest live in
//! [`crate::builtins_core`], shared with the JIT.

use super::{Interp, R};
use crate::ast::Builtin;
use crate::builtins_core::{self, arity, BuiltinEnv};
use crate::callargs;
use crate::diag::ErrorKind;
use crate::diag::Span;
use crate::value::*;
use std::sync::Arc;

impl Interp {
    pub(super) fn call_builtin(&mut self, b: Builtin, args: Vec<Value>, span: Span) -> R<Value> {
        let name = b.name();
        match b {
            Builtin::Print => {
                let mut line = String::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        line.push(' ');
                    }
                    line.push_str(&self.to_str(a)?);
                }
                line.push('\n');
                self.shared.write_out(&line);
                Ok(Value::None)
            }
            Builtin::PrintKw => {
                let env = BuiltinEnv {
                    names: &self.func_name(),
                    start: self.shared.start,
                    args: &self.shared.args,
                };
                let line = self.with_special(|| builtins_core::call_builtin(b, args, &env))?;
                if let Value::Str(s) = line {
                    self.shared.write_out(&s);
                }
                Ok(Value::None)
            }
            Builtin::Input => {
                builtins_core::arity(name, &args, 0, 1)?;
                let prompt = args.first().map(|p| self.to_str(p)).transpose()?;
                self.shared.flush_out();
                Ok(builtins_core::read_input(prompt.as_deref())?)
            }
            Builtin::GetAttr => {
                let attr = builtins_core::attr_name(name, &args, 2, 3)?;
                match self.get_attr(&args[0], &attr) {
                    Err(e) if args.len() == 3 && e.kind == ErrorKind::AttributeError => {
                        Ok(args[2].clone())
                    }
                    r => r,
                }
            }
            Builtin::HasAttr => {
                let attr = builtins_core::attr_name(name, &args, 2, 2)?;
                match self.get_attr(&args[0], &attr) {
                    Ok(_) => Ok(Value::Bool(true)),
                    Err(e) if e.kind == ErrorKind::AttributeError => Ok(Value::Bool(false)),
                    Err(e) => Err(e),
                }
            }
            Builtin::SetAttr => {
                let attr = builtins_core::attr_name(name, &args, 3, 3)?;
                self.set_attr(&args[0], &attr, args[2].clone())?;
                Ok(Value::None)
            }
            Builtin::SuperAttr | Builtin::SuperCall => {
                if let [Value::Str(m), _] = &args[..] {
                    // `super()` where CPython has no class or no first argument (the parser
                    // wrote the end of its message).
                    return Err(super::exc(ErrorKind::RuntimeError, format!("super(): {m}")));
                }
                let (Value::Class(c), Value::Str(attr)) = (&args[0], &args[2]) else {
                    return Err(super::exc(
                        ErrorKind::TypeError,
                        format!(
                            "super() argument 1 must be a type, not {}",
                            args[0].type_name()
                        ),
                    ));
                };
                if !matches!(&args[1], Value::Instance(i) if builtins_core::is_subclass(&i.class, c))
                {
                    return Err(super::exc(
                        ErrorKind::TypeError,
                        "super(type, obj): obj must be an instance or subtype of type",
                    ));
                }
                let found = c.base.as_ref().and_then(|b| b.lookup(attr));
                let call = b == Builtin::SuperCall;
                let rest = args.get(3..).unwrap_or_default().to_vec();
                match found {
                    Some(Value::Function(f)) if call => {
                        let mut all = vec![args[1].clone()];
                        all.extend(rest);
                        self.call_function(&f, all, Vec::new())
                    }
                    Some(Value::Function(f)) => {
                        Ok(Value::BoundMethod(Arc::new((args[1].clone(), f))))
                    }
                    Some(v) if call => self.call_value(v, rest, Default::default()),
                    Some(v) => Ok(v),
                    None if call && &**attr == "__init__" => match &args[1] {
                        Value::Instance(i) if i.class.exc => {
                            let mut attrs = lock(&i.attrs);
                            let t = TupleObj::new_value(rest);
                            match attrs.iter_mut().find(|(n, _)| n == "args") {
                                Some(slot) => slot.1 = t,
                                None => attrs.push(("args".into(), t)),
                            }
                            Ok(Value::None)
                        }
                        _ if rest.is_empty() => Ok(Value::None),
                        _ => Err(super::exc(
                            ErrorKind::TypeError,
                            "object.__init__() takes exactly one argument (the instance to initialize)",
                        )),
                    },
                    None => Err(super::exc(
                        ErrorKind::AttributeError,
                        format!("'super' object has no attribute '{attr}'"),
                    )),
                }
            }
            Builtin::Spawn => {
                arity(name, &args, 1, usize::MAX)?;
                let mut args = args;
                let f = args.remove(0);
                self.spawn(f, args, span)
            }
            Builtin::Lock => {
                arity(name, &args, 0, 0)?;
                Ok(Value::Lock(Arc::new(LockObj::default())))
            }
            Builtin::TransactionQueue => {
                arity(name, &args, 0, 0)?;
                Ok(Value::Queue(Arc::new(QueueObj::default())))
            }
            Builtin::Map | Builtin::Filter => {
                let calls =
                    self.with_special(|| crate::builtins_seq::map_filter_items(name, &args))?;
                let f = args[0].clone();
                let mut out = Vec::with_capacity(calls.len());
                for call in calls {
                    if b == Builtin::Map {
                        out.push(self.call_value(f.clone(), call, span)?);
                    } else {
                        let keep = match &f {
                            Value::None => self.truth(&call[0])?,
                            _ => {
                                let r = self.call_value(f.clone(), call.clone(), span)?;
                                self.truth(&r)?
                            }
                        };
                        if keep {
                            out.extend(call);
                        }
                    }
                }
                Ok(ListObj::new_value(out))
            }
            _ => {
                let env = BuiltinEnv {
                    names: &self.func_name(),
                    start: self.shared.start,
                    args: &self.shared.args,
                };
                self.with_special(|| builtins_core::call_builtin(b, args, &env))
            }
        }
    }

    /// Builtin `b` called with keyword arguments `kw`: `print(sep=, end=)`,
    /// `sorted(key=, reverse=)`, `min`/`max(key=, default=)`; others take none.
    pub(super) fn call_builtin_kw(
        &mut self,
        b: Builtin,
        args: Vec<Value>,
        kw: Vec<(String, Value)>,
        span: Span,
    ) -> R<Value> {
        let type_error = |m: String| super::exc(ErrorKind::TypeError, m);
        if let Some(params) = callargs::positional_keywords(b.name()) {
            let args = callargs::keywords_to_positional(b.name(), params, args, kw, Value::None)
                .map_err(type_error)?;
            return self.call_builtin(b, args, span);
        }
        if b == Builtin::Dict {
            // `dict(..., k=v)`: the keywords are str keys added after the positional
            // argument's items, as CPython's.
            let Value::Dict(d) = self.call_builtin(b, args, span)? else {
                unreachable!("dict() makes a dict")
            };
            let mut map = lock(&d.map);
            for (k, v) in kw {
                let k = Value::str(k.as_str());
                let key = map.key_for(&k)?;
                map.insert(key, k, v);
            }
            drop(map);
            return Ok(Value::Dict(d));
        }
        let allowed: &[&str] = match b {
            Builtin::Print => &["sep", "end", "flush"],
            Builtin::Sorted => &["key", "reverse"],
            Builtin::Min | Builtin::Max => &["key", "default"],
            _ => &[],
        };
        let mut kws = callargs::builtin_keywords(b.name(), allowed, kw).map_err(type_error)?;
        match b {
            Builtin::Print => {
                let mut all = args;
                let mut n = 0;
                // `flush=` changes nothing: output is written at each commit.
                for (k, v) in allowed.iter().zip(kws) {
                    if let (Some(v), false) = (v, *k == "flush") {
                        all.push(Value::str(*k));
                        all.push(v);
                        n += 1;
                    }
                }
                all.push(Value::Int(n));
                self.call_builtin(Builtin::PrintKw, all, span)
            }
            Builtin::Sorted => {
                if args.len() != 1 {
                    return Err(type_error(format!(
                        "sorted expected 1 argument, got {}",
                        args.len()
                    )));
                }
                let items = self.iterating(&args[0], || crate::ops::iterate(&args[0]))?;
                let reverse = kws[1].take().is_some_and(|r| r.truthy());
                let keys = self.keys_of(kws[0].take(), &items, span)?;
                let order = builtins_core::sort_order(keys, reverse)?;
                Ok(ListObj::new_value(
                    order.into_iter().map(|i| items[i].clone()).collect(),
                ))
            }
            Builtin::Min | Builtin::Max => {
                let default = kws[1].take();
                let items = match args.len() {
                    0 => {
                        return Err(type_error(format!(
                            "{} expected at least 1 argument, got 0",
                            b.name()
                        )))
                    }
                    1 => self.iterating(&args[0], || crate::ops::iterate(&args[0]))?,
                    _ if default.is_some() => {
                        return Err(type_error(format!(
                            "Cannot specify a default for {}() with multiple positional arguments",
                            b.name()
                        )))
                    }
                    _ => args,
                };
                let keys = self.keys_of(kws[0].take(), &items, span)?;
                match (builtins_core::min_max_index(b, &keys)?, default) {
                    (Some(i), _) => Ok(items[i].clone()),
                    (None, Some(d)) => Ok(d),
                    (None, None) => Err(builtins_core::empty_min_max(b).into()),
                }
            }
            _ => unreachable!("builtin_keywords refuses keywords of other builtins"),
        }
    }

    /// The keys that `key` (None: no key function, the items are their own keys) gives
    /// `items`, in order.
    pub(super) fn keys_of(
        &mut self,
        key: Option<Value>,
        items: &[Value],
        span: Span,
    ) -> R<Vec<Value>> {
        let Some(key) = key.filter(|k| !matches!(k, Value::None)) else {
            return Ok(items.to_vec());
        };
        let mut keys = Vec::with_capacity(items.len());
        for it in items {
            keys.push(self.call_value(key.clone(), vec![it.clone()], span)?);
        }
        Ok(keys)
    }
}
