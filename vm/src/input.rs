//! `input([prompt])`: a line of stdin. Reading is an effect that cannot be undone, and the
//! prompt must come after the program's output so far. So the running transaction commits
//! first (its output goes out in commit order), the read happens outside any transaction
//! (other threads go on meanwhile), and the rest runs in a transaction without restart point,
//! as after a `join` that waited. An atomic block cannot end there: its transaction becomes
//! inevitable and reads in place, its own output written out first.

use super::threads::commit_for_wait;
use super::{rt_of, Ctx, ERR};
use stmjit_lang::builtins_core::read_input;
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::value::Word;

/// `input()` or `input(prompt)`: the line read, a str; `ERR` on an error (an `EOFError` at
/// the end of the input) or when the transaction aborted before the read.
pub(crate) fn input(ctx: *mut Ctx, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    if args.len() > 1 {
        let msg = format!("input expected at most 1 argument, got {}", args.len());
        return rt.raise(ErrorKind::TypeError, msg);
    }
    let prompt = match args.first().map(|&p| rt.to_str(p)).transpose() {
        Ok(p) => p,
        Err(e) => return rt.unwind(e),
    };
    // SAFETY: helpers receive the live context of their thread.
    let atomic = unsafe { (*ctx).atomic_depth } > 0;
    let line = if atomic {
        if rt.make_inevitable().is_err() {
            return ERR;
        }
        // It will commit: what it printed stands, and goes out before the prompt.
        let mut own = std::mem::take(&mut rt.out);
        rt.info.output.append(&mut own);
        rt.info.output.flush();
        read_input(prompt.as_deref())
    } else {
        if commit_for_wait(rt, ctx).is_err() {
            return ERR;
        }
        let line = read_input(prompt.as_deref());
        rt.begin_without_restart_point(ctx);
        line
    };
    match line {
        Ok(stmjit_lang::value::Value::Str(s)) => match rt.new_str(&s) {
            Ok(w) => w,
            Err(e) => rt.unwind(e),
        },
        Ok(_) => unreachable!("input() reads a str"),
        Err((kind, msg)) => rt.raise(kind, msg),
    }
}
