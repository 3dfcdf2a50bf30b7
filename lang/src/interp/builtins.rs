//! The builtin functions of LANGUAGE.md: those that need the interpreter's state (`print`,
//! `spawn`, `Lock`, `TransactionQueue`, `time`, `args`) here; the rest live in
//! [`crate::builtins_core`], shared with the JIT.

use super::{Interp, R};
use crate::ast::Builtin;
use crate::builtins_core::{self, arity, BuiltinEnv};
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
                let calls = crate::builtins_seq::map_filter_items(name, &args)?;
                let f = args[0].clone();
                let mut out = Vec::with_capacity(calls.len());
                for call in calls {
                    if b == Builtin::Map {
                        out.push(self.call_value(f.clone(), call, span)?);
                    } else {
                        let keep = match &f {
                            Value::None => call[0].truthy(),
                            _ => self.call_value(f.clone(), call.clone(), span)?.truthy(),
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
}
