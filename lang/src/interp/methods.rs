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
}
