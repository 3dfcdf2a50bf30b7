//! The attribute names whose instance slots may hold a raw float (`attrs.rs`), program-wide.
//!
//! Only `o.NAME OP= tree` compiled as a float tree stores a slot raw (sets its bit in the
//! instance's `floats` word); the runtime's own stores clear the bit. An instance's class
//! never changes, nor a class's slot of a name, so a slot's bit is only ever set by a raw
//! store of the name that slot holds. So a read of any other name needs no test of the bit
//! (it is never set), and a store of any other name no update of the bits: richards'
//! attributes pay nothing for nbody's raw floats. The set is computed from the whole program
//! before any function is compiled (functions compile lazily), and the compiler emits a
//! raw store only for a name in it ([`FnCompiler::may_be_raw`]), so the two cannot disagree.

use super::floats::{float_attrs, float_likely, float_locals};
use super::FnCompiler;
use std::collections::HashSet;
use stmjit_lang::ast::{BinOp, Expr, ExprKind, Program, Stmt, StmtKind, Target};

/// The names that some `o.NAME OP= value` of the program may store raw: `OP` one of
/// `+ - * /`, and `value` a tree where a float is likely in its function (a float literal or
/// float local among its leaves, or an attribute that the function stores float trees to:
/// what [`FnCompiler::float_aug_tree`] asks, less its conditions that only refuse).
pub(crate) fn raw_attrs(program: &Program) -> HashSet<String> {
    let mut names = HashSet::new();
    let bodies = program
        .functions
        .iter()
        .map(|f| (&f.body[..], f.locals.len()))
        .chain(std::iter::once((&program.body[..], 0)));
    for (body, nlocals) in bodies {
        let locals = float_locals(body, nlocals);
        let attrs = float_attrs(body, &locals);
        collect(body, &locals, &attrs, &mut names);
    }
    names
}

/// Adds to `names` those of the float-tree attribute stores of `stmts` (see [`raw_attrs`]).
fn collect(stmts: &[Stmt], locals: &[bool], attrs: &[String], names: &mut HashSet<String>) {
    for s in stmts {
        if let StmtKind::AugAssign {
            target: Target::Attr { name, .. },
            op: BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div,
            value,
        } = &s.kind
        {
            if float_likely(value, locals) || attr_leaf_in(value, attrs) {
                names.insert(name.to_string());
            }
        }
        for b in s.blocks() {
            collect(b, locals, attrs, names);
        }
    }
}

/// Whether the tree `e` (of `+ - * /`) has an attribute leaf named in `attrs`.
pub(super) fn attr_leaf_in(e: &Expr, attrs: &[String]) -> bool {
    match &e.kind {
        ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, a, b) => {
            attr_leaf_in(a, attrs) || attr_leaf_in(b, attrs)
        }
        ExprKind::Attr { name, .. } => attrs.iter().any(|n| *n == **name),
        _ => false,
    }
}

impl FnCompiler<'_, '_> {
    /// Whether a slot holding attribute `name` may hold a raw float anywhere in the program
    /// (see the module docs): only then is its bit tested on a read and updated on a store.
    pub(crate) fn may_be_raw(&self, name: &str) -> bool {
        self.sh.raw_attrs.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_float_tree_stores_make_raw_names() {
        let src = "class B:\n    pass\n\ndef f(bs, dt):\n    for b in bs:\n        b.x += dt * b.vx\n        b.n += 1\n        b.t += b.n * 2\n        b.s = 1.5\n        b.k %= 2.0\n    return 0\n\ndef g(b):\n    b.vx -= 0.5\n    b.y += b.x\n\no = B()\no.z += 2.5\no.w += 1\n";
        let p = stmjit_lang::parse(src).unwrap();
        let mut names: Vec<String> = raw_attrs(&p).into_iter().collect();
        names.sort();
        // `vx` takes a float literal's tree (in `g`); `x` has `vx` among its leaves only in
        // `f`, where no float store to `vx` is seen: not raw there. `y` has `x` among its
        // leaves in `g`, where `x` is stored no float tree. A plain store (`s`), `%=` (`k`)
        // and int trees (`n`, `t`, `w`) store boxed words.
        assert_eq!(names, ["vx", "z"]);
    }
}
