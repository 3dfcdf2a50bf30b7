//! Methods of the builtin types: Thread and TransactionQueue here (they need the
//! interpreter); list, dict and str in [`crate::builtins_core`], shared with the JIT.

use super::{Interp, R};
use crate::builtins_core::{self, method_arity};
use crate::diag::Span;
use crate::value::*;

pub(super) use crate::builtins_core::has_method;

impl Interp {
    pub(super) fn call_builtin_method(
        &mut self,
        recv: &Value,
        name: &str,
        args: Vec<Value>,
        span: Span,
    ) -> R<Value> {
        match recv {
            Value::Thread(th) if name == "join" => {
                method_arity("Thread", name, &args, 0, 0)?;
                self.join_checked(th)
            }
            Value::Queue(q) => match name {
                "add" => {
                    method_arity("TransactionQueue", name, &args, 1, usize::MAX)?;
                    let mut args = args;
                    let f = args.remove(0);
                    lock(&q.calls).push_back((f, args));
                    Ok(Value::None)
                }
                "run" => {
                    method_arity("TransactionQueue", name, &args, 0, 0)?;
                    self.run_queue(q, span)
                }
                _ => Err(builtins_core::no_attr(recv, name).into()),
            },
            _ => self
                .with_special(|| builtins_core::call_method(recv, name, args, &self.func_name())),
        }
    }

    /// `recv.name(args, **kw)`: only `list.sort(key=, reverse=)` and `str.format` take
    /// keywords.
    pub(super) fn call_builtin_method_kw(
        &mut self,
        recv: &Value,
        name: &str,
        args: Vec<Value>,
        kw: Vec<(String, Value)>,
    ) -> R<Value> {
        let type_error = |m: String| super::exc(crate::diag::ErrorKind::TypeError, m);
        let full = format!("{}.{name}", recv.type_name());
        if let Some(params) = crate::callargs::positional_keywords(&full) {
            let args =
                crate::callargs::keywords_to_positional(&full, params, args, kw, Value::None)
                    .map_err(type_error)?;
            let span = self.frames.last().map(|f| f.pos).unwrap_or_default();
            return self.call_builtin_method(recv, name, args, span);
        }
        if let (Value::Str(s), "format") = (recv, name) {
            let names = self.func_name();
            return self.with_special(|| builtins_core::format_method(s, (&args, &kw), &names));
        }
        let Value::List(l) = recv else {
            let full = format!("{}.{name}", recv.type_name());
            return Err(type_error(format!("{full}() takes no keyword arguments")));
        };
        if name != "sort" {
            return Err(type_error(format!(
                "list.{name}() takes no keyword arguments"
            )));
        }
        let mut kws = crate::callargs::builtin_keywords("list.sort", &["key", "reverse"], kw)
            .map_err(type_error)?;
        if !args.is_empty() {
            return Err(type_error("sort() takes no positional arguments".into()));
        }
        let items = l.snapshot();
        let reverse = kws[1].take().is_some_and(|r| r.truthy());
        let span = self.frames.last().map(|f| f.pos).unwrap_or_default();
        let keys = self.keys_of(kws[0].take(), &items, span)?;
        let order = builtins_core::sort_order(keys, reverse)?;
        *lock(&l.items) = order.into_iter().map(|i| items[i].clone()).collect();
        Ok(Value::None)
    }
}
