//! `finally` bodies, each compiled once (`tries.rs` compiles the rest of the `try`).
//!
//! Every way out of a `try` with a `finally` enters the same code: the normal end of the
//! body, `else` or a handler; the exception path (the statement's region, after
//! `stmjit_catch`); and the shared `return`, `break` and `continue` paths ([`Exit`]), to
//! which such a statement jumps (a `return` with its value) from anywhere inside the `try`
//! after leaving the `with` blocks opened there. Each entry says why the body runs in a
//! word ([`Why`]) passed to the body's block, and leaves what is pending in temporaries
//! reserved for the statement ([`Pending`]), where the GC updates them: a returned value,
//! or the exception object and its failing site. At its end, the body goes on the way its
//! word says: on after the statement (a test, the only code the normal way out adds), or
//! cold: raises the exception again with its kept trace from its site, returns the value
//! (to the next `try`'s return path, or out), breaks or continues the innermost loop (the
//! next `try`'s path, or the loop's exit or latch). A `return`, `break`, `continue` or
//! exception inside the body goes its own way instead (it wins over what was pending,
//! which is dropped). The body reads the word from its block parameter, or from its
//! temporary when the body has a restart point (a poll of a loop in it: a restart resumes
//! there with the frame as it was, the word included, where the parameter is not
//! defined). So the code of nested `try` statements grows with their total size, never
//! with the product of their exits (a `try` in a `finally` body was compiled once per way
//! into the outer one: 5 times per level). A small body without a `try` of its own is
//! also compiled in place for the normal way out ([`in_place`]), which then passes no word
//! and tests none: a hot loop around a `try`/`finally` runs the code it ran when each way
//! had its copy.

use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, Block, Inst, InstBuilder, Value};
use stmjit_lang::ast::Stmt;

/// A `try` with a `finally` around the code being compiled: what `break`, `continue` and
/// `return` leave on their way to its shared paths.
#[derive(Clone)]
pub(crate) struct Finally {
    /// Loops open at the `try` (a `break` of a loop opened inside does not leave it).
    pub loops: usize,
    /// `with` blocks open at the `try`.
    pub with_depth: usize,
    /// Its shared paths out (an index of `FnCompiler::fin_exits`).
    pub exit: usize,
}

/// A way out of a `try` with a `finally` that takes its shared path
/// (`FnCompiler::fin_exits`, an index of each entry).
#[derive(Clone, Copy)]
pub(crate) enum Exit {
    Return,
    Break,
    Continue,
}

/// The word of the normal way out of a `try` (the [`Why`] words are the others).
const NORMAL: i64 = 1;

/// Why a `finally` body runs, besides the normal way out (see the module docs): its entry
/// passes it as a tagged int.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Exception = 1,
    Return,
    Break,
    Continue,
}

impl Why {
    /// The word passed for it: a tagged int (never an object, whatever slot holds it).
    fn word(self) -> i64 {
        (self as i64) << 1 | 1
    }
}

impl From<Exit> for Why {
    fn from(e: Exit) -> Why {
        match e {
            Exit::Return => Why::Return,
            Exit::Break => Why::Break,
            Exit::Continue => Why::Continue,
        }
    }
}

/// The temporaries of a `finally` body being run (consecutive from `why`).
#[derive(Clone, Copy)]
struct Pending {
    /// The [`Why`] word (read at the end of a body with a restart point).
    why: usize,
    /// The returned value, or the exception object.
    value: usize,
    /// The exception's failing site (tagged).
    site: usize,
}

/// A `finally` body of at most this many nodes ([`super::weight`]) and without a `try`
/// statement is compiled a second time in place for the normal way out ([`in_place`]).
const IN_PLACE_NODES: usize = 24;

/// Whether the normal way out of a `try` with `finalbody` runs a copy of it compiled in
/// place rather than the shared body: small bodies without `try` statements, so that a hot
/// loop around a `try`/`finally` pays no test of the word (about 10% more instructions in a
/// loop of `t = t + i` in the `try` and `t = t + 1` in the `finally`). Code stays linear:
/// a body copied holds no `try` whose `finally` would be copied again.
pub(crate) fn in_place(finalbody: &[Stmt]) -> bool {
    super::weight::weight(finalbody, IN_PLACE_NODES + 1) <= IN_PLACE_NODES
        && !super::tries::has_try(finalbody)
}

/// Where the ways out of one `try` statement enter its `finally` body.
pub(crate) struct Entries {
    /// The shared body's block, taking the [`Why`] word.
    pub body: Block,
    /// Where the normal way out goes when it runs a copy in place ([`in_place`]); else it
    /// jumps to `body` with [`NORMAL`].
    pub normal: Option<Block>,
    /// The statement's exception path, taking the failing site.
    pub exception: Block,
    /// The shared paths out of the statement (an index of `FnCompiler::fin_exits`).
    pub exit: usize,
    /// The `try` level (the key of the trace its exception keeps).
    pub level: usize,
    /// `with` blocks open at the `try`.
    pub with_depth: usize,
}

impl FnCompiler<'_, '_> {
    /// The normal way out of a `try` body, `else` or handler: to `end`, passing [`NORMAL`]
    /// when `word` (`end` is then the shared `finally` body's block).
    pub(crate) fn jump_normal_end(&mut self, end: Block, word: bool) {
        if word {
            let w = self.b.ins().iconst(I64, NORMAL);
            self.b.ins().jump(end, &[w.into()]);
        } else {
            self.b.ins().jump(end, &[]);
        }
    }

    /// Compiles `finalbody` once, entered by the ways out of the `try` statement just
    /// compiled (`e`; `before`: the locals definitely assigned at its start), and leaves the
    /// builder after the statement (see the module docs).
    pub(crate) fn finally(&mut self, e: Entries, finalbody: &[Stmt], before: &[bool]) {
        let mark = self.temp_mark();
        let why = self.reserve_temps(3);
        let p = Pending {
            why,
            value: why + 1,
            site: why + 2,
        };
        let mut whys = Vec::new();
        for kind in [Exit::Return, Exit::Break, Exit::Continue] {
            if let Some(block) = self.fin_exits[e.exit][kind as usize] {
                self.b.switch_to_block(block);
                if let Exit::Return = kind {
                    let v = self.b.block_params(block)[0];
                    self.store_slot(p.value, v);
                }
                let w = self.b.ins().iconst(I64, Why::from(kind).word());
                self.b.ins().jump(e.body, &[w.into()]);
                whys.push(kind.into());
            }
        }
        // The exception path (cold, so that the shared body follows the normal way's
        // code): caught as by a handler, kept for the end.
        whys.push(Why::Exception);
        self.b.switch_to_block(e.exception);
        let site = self.b.block_params(e.exception)[0];
        let obj = self.catch_value(site, e.level, e.with_depth, true);
        self.store_slot(p.value, obj);
        let tagged = self.b.ins().ishl_imm(site, 1);
        let tagged = self.b.ins().bor_imm(tagged, 1);
        self.store_slot(p.site, tagged);
        let w = self.b.ins().iconst(I64, Why::Exception.word());
        self.b.ins().jump(e.body, &[w.into()]);
        // The shared body.
        self.b.switch_to_block(e.body);
        self.local_of.clear();
        self.assigned = before.to_vec();
        let w = self.b.block_params(e.body)[0];
        let stored = self.store_why(w, p.why);
        let restarts = self.restarts.len();
        self.stmts(finalbody);
        let resumes = self.restarts.len() > restarts;
        if !resumes {
            // No restart resumes inside the body: the parameter reaches its end.
            self.b.func.layout.remove_inst(stored);
        }
        let mut after = None;
        if !self.is_filled() {
            let w = if resumes { self.load_slot(p.why) } else { w };
            after = self.go_on(w, &whys, p, e.level, e.normal.is_none());
        }
        self.pop_temps(mark);
        if let Some(normal) = e.normal {
            // The copy for the normal way out.
            self.b.switch_to_block(normal);
            self.local_of.clear();
            self.assigned = before.to_vec();
            self.stmts(finalbody);
        } else if let Some(after) = after {
            self.b.switch_to_block(after);
        }
    }

    /// Stores the word `w` in slot `slot`; returns the store.
    fn store_why(&mut self, w: Value, slot: usize) -> Inst {
        let f = self.frame();
        self.b.ins().store(super::mf(), w, f, 8 * slot as i32)
    }

    /// At the end of the shared `finally` body run for `w`: the pending way out (one of
    /// `whys`), or, when `normal` may be pending, on after the statement: returns the block
    /// that goes on there (the builder left elsewhere).
    fn go_on(
        &mut self,
        w: Value,
        whys: &[Why],
        p: Pending,
        level: usize,
        normal: bool,
    ) -> Option<Block> {
        let after = normal.then(|| {
            let after = self.b.create_block();
            let other = self.b.create_block();
            let is = self.b.ins().icmp_imm(IntCC::Equal, w, NORMAL);
            self.b.ins().brif(is, after, &[], other, &[]);
            self.b.set_cold_block(other);
            self.b.switch_to_block(other);
            after
        });
        let assigned = self.assigned.clone();
        for (i, &why) in whys.iter().enumerate() {
            if i + 1 < whys.len() {
                let this = self.b.create_block();
                let next = self.b.create_block();
                let is = self.b.ins().icmp_imm(IntCC::Equal, w, why.word());
                self.b.ins().brif(is, this, &[], next, &[]);
                self.b.set_cold_block(next);
                self.b.switch_to_block(this);
                self.pending_way(why, p, level);
                self.b.switch_to_block(next);
            } else {
                self.pending_way(why, p, level);
            }
        }
        self.assigned = assigned;
        after
    }

    /// The way out pending at the end of a `finally` body.
    fn pending_way(&mut self, why: Why, p: Pending, level: usize) {
        match why {
            Why::Exception => {
                let s = self.load_slot(p.site);
                let s = self.b.ins().sshr_imm(s, 1);
                self.reraise(p.value, level, s);
            }
            Why::Return => {
                let v = self.load_slot(p.value);
                self.return_value(v);
            }
            Why::Break | Why::Continue => self.loop_jump(why == Why::Break),
        }
    }
}
