//! Cells: the shared variables of closures (`stmjit_lang::closures`). A cell is a list of
//! one item, empty while the variable is unbound: a heap object like any other, so reads and
//! writes of a captured variable are transactional (barriers, conflicts, aborts) and need no
//! object kind of their own. Cells never escape to programs: only compiled code and function
//! objects hold them.

use super::helpers::with_rt;
use super::{exc, Ctx, UNBOUND};
use stmjit_lang::closures::{unbound_kind, unbound_message};
use stmjit_runtime::value::{Word, NONE};

/// A new cell holding `v`, or empty for `UNBOUND` (a cell variable at function entry: a
/// parameter's value, or an unbound local).
///
/// # Safety
/// `ctx` must be the live context.
pub unsafe extern "C" fn stmjit_new_cell(ctx: *mut Ctx, v: Word) -> Word {
    with_rt(ctx, |rt| {
        if v == UNBOUND {
            rt.new_list(&[])
        } else {
            rt.new_list(&[v])
        }
    })
}

/// The content of `cell`; for an empty one, the NameError of variable `info & 0xffff_ffff`
/// (a name id), a free variable of the running function when `info >> 32` is 1.
///
/// # Safety
/// `ctx` must be the live context; `cell` a cell.
pub unsafe extern "C" fn stmjit_cell_get(ctx: *mut Ctx, cell: Word, info: u64) -> Word {
    with_rt(ctx, |rt| {
        if rt.list_len(cell) > 0 {
            return Ok(rt.list_get(cell, 0));
        }
        let name = rt.info.names.text(info as u32);
        let free = info >> 32 == 1;
        Err(exc(unbound_kind(free), unbound_message(name, free)))
    })
}

/// Stores `v` into `cell`, or empties it for `UNBOUND` (the end of an `except ... as n`
/// clause unbinds `n`, a cell variable too); returns None.
///
/// # Safety
/// `ctx` must be the live context; `cell` a cell.
pub unsafe extern "C" fn stmjit_cell_set(ctx: *mut Ctx, cell: Word, v: Word) -> Word {
    with_rt(ctx, |rt| {
        if v == UNBOUND {
            if rt.list_len(cell) > 0 {
                rt.list_pop(cell, 0)?;
            }
        } else if rt.list_len(cell) > 0 {
            rt.list_set(cell, 0, v)?;
        } else {
            rt.list_push(cell, v)?;
        }
        Ok(NONE)
    })
}
