//! What the analyses of a function's whole body find, made once per function: the parts of
//! a huge function (`parts.rs`) share them instead of each walking the whole body again,
//! which made compiling such a function quadratic in its size (`floats::mixed_ops` alone
//! was 7% of compiling a 16 000-line function).

use super::{floats, locals_in_slots, moves};
use std::collections::HashSet;
use std::rc::Rc;
use stmjit_lang::ast::Stmt;

/// The facts of one function body, cheap to clone (its sets are shared).
#[derive(Clone)]
pub struct BodyFacts {
    /// Whether the function keeps its locals in frame slots ([`locals_in_slots`]).
    pub(crate) in_slots: bool,
    /// Locals the function assigns floats to, by slot ([`floats::float_locals`]).
    pub(crate) float_locals: Vec<bool>,
    /// Attribute names it stores float trees to ([`floats::float_attrs`]).
    pub(crate) float_attrs: Rc<[String]>,
    /// The copies of float locals that may move an unboxed value ([`moves::moving_copies`]).
    pub(crate) moves: Rc<HashSet<*const Stmt>>,
}

impl BodyFacts {
    /// The facts of `body`, a function of `nlocals` locals (`quick`: every function keeps
    /// its locals in slots, `STMJIT_QUICK`).
    pub fn of(body: &[Stmt], nlocals: usize, quick: bool) -> BodyFacts {
        let float_locals = floats::float_locals(body, nlocals);
        let float_attrs = floats::float_attrs(body, &float_locals).into();
        let moves = Rc::new(moves::moving_copies(body, &float_locals));
        BodyFacts {
            in_slots: locals_in_slots(body, nlocals, quick),
            float_locals,
            float_attrs,
            moves,
        }
    }
}
