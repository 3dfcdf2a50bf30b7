//! Frames and roots.
//!
//! Every function pushes a frame on the thread's shadow stack (`Ctx::ss`, `ShadowStack::top`) in its
//! prologue: one word per local, then one per temporary. Locals live there (loads/stores),
//! and so does every intermediate value that must survive the evaluation of another
//! sub-expression (the left operand of `a + f(x)`, the arguments of a call being built): it
//! is spilled to a temporary slot and reloaded after. So every reference live across a call
//! that may allocate is in the shadow stack, where a moving GC finds and updates it.
//!

use super::{mf, FnCompiler};
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, Block, InstBuilder, Value};
use std::mem::offset_of;
use stmjit_runtime::ShadowStack;
use stmjit_vm::abi::Helper;
use stmjit_vm::{Ctx, MAX_DEPTH, UNBOUND};

impl FnCompiler<'_, '_> {
    /// The epilogue, at the return block: a return from the frame that opened the running
    /// transaction is a boundary first ([`Self::return_boundary`]), in a function that
    /// `polls`; then the frame is popped and the depth decremented. A function without
    /// polls never opens a transaction (only a poll's slow path makes `Ctx::txn_depth` the
    /// depth of its frame, and a frame leaving sets it back), so it needs no test.
    pub(super) fn epilogue(&mut self, polls: bool) {
        let ret = self.ret_block;
        self.b.switch_to_block(ret);
        let rv = if polls {
            let rv = self.b.block_params(ret)[0];
            let pop = self.b.create_block();
            self.b.append_block_param(pop, I64);
            self.return_boundary(rv, pop);
            self.b.switch_to_block(pop);
            self.b.block_params(pop)[0]
        } else {
            self.b.block_params(ret)[0]
        };
        let frame = self.frame();
        self.set_top(frame);
        let depth = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, depth) as i32);
        let d0 = self.b.ins().iadd_imm(depth, -1);
        self.b
            .ins()
            .store(mf(), d0, self.ctx, offset_of!(Ctx, depth) as i32);
        self.b.ins().return_(&[rv]);
    }
    /// The prologue, at `entry` (whose parameters after the context are `params`): the
    /// depth check, then the frame push: `arity` parameters, the other locals `UNBOUND`,
    /// temporaries 0, each slot initialised before `top` covers it. (Emitted after the
    /// body, whose compilation counted the temporaries.)
    pub(super) fn prologue(&mut self, entry: Block, params: &[Value], arity: usize) {
        self.b.switch_to_block(entry);
        let depth = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, depth) as i32);
        let too_deep =
            self.b
                .ins()
                .icmp_imm(IntCC::UnsignedGreaterThanOrEqual, depth, MAX_DEPTH as i64);
        let deep_block = self.b.create_block();
        let ok_block = self.b.create_block();
        self.b.ins().brif(too_deep, deep_block, &[], ok_block, &[]);
        self.b.set_cold_block(deep_block);
        self.b.switch_to_block(deep_block);
        let r = self.call(Helper::RecursionError, &[self.ctx]);
        self.b.ins().return_(&[r]);
        self.b.switch_to_block(ok_block);
        let ss = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, ss) as i32);
        let frame = self
            .b
            .ins()
            .load(I64, mf(), ss, offset_of!(ShadowStack, top) as i32);
        self.b.def_var(self.frame_var, frame);
        let nslots = (self.nlocals + self.max_temps) as i64;
        let top = self.b.ins().iadd_imm(frame, 8 * nslots);
        let limit = self
            .b
            .ins()
            .load(I64, mf(), ss, offset_of!(ShadowStack, limit) as i32);
        let over = self.b.ins().icmp(IntCC::UnsignedGreaterThan, top, limit);
        let over_block = self.b.create_block();
        let push_block = self.b.create_block();
        self.b.ins().brif(over, over_block, &[], push_block, &[]);
        self.b.set_cold_block(over_block);
        self.b.switch_to_block(over_block);
        let r = self.call(Helper::RecursionError, &[self.ctx]);
        self.b.ins().return_(&[r]);
        self.b.switch_to_block(push_block);
        let d1 = self.b.ins().iadd_imm(depth, 1);
        self.b
            .ins()
            .store(mf(), d1, self.ctx, offset_of!(Ctx, depth) as i32);
        if let Some(slot) = self.room_slot {
            // The test `inline_room` makes at each inlined call, made once: a frame's depth
            // and shadow-stack top are the same all through its body (a call returns with
            // both as they were; a part or a failed helper has its top set back before the
            // body goes on: `reset_top`), and the stack's limit never moves.
            let deep =
                self.b
                    .ins()
                    .icmp_imm(IntCC::UnsignedGreaterThanOrEqual, d1, MAX_DEPTH as i64);
            let need = self.b.ins().iadd_imm(top, self.room_need);
            let over = self.b.ins().icmp(IntCC::UnsignedGreaterThan, need, limit);
            let no_room = self.b.ins().bor(deep, over);
            self.b.ins().stack_store(I64, no_room, slot, 0);
        }
        for i in 0..self.nlocals {
            let v = if let Some(&param) = params[..arity].get(i) {
                param
            } else {
                self.b.ins().iconst(I64, UNBOUND as i64)
            };
            self.b.ins().store(mf(), v, frame, 8 * i as i32);
            if !self.locals_in_slots {
                self.b.def_var(self.local_vars[i], v);
            }
        }
        self.forget_classes();
        self.zero_slots(frame, self.nlocals, nslots as usize);
        self.b
            .ins()
            .store(mf(), top, ss, offset_of!(ShadowStack, top) as i32);
    }
    /// The epilogue of a part of a huge function's body (`parts.rs`), at the return block:
    /// a value returned (or `UNBOUND`, the end reached) is stored in slot `ret` of the
    /// frame, where the GC updates it, and the part returns `NONE` (or `ERR`, or a loop
    /// word with its slot set to `UNBOUND`: `loop_exits.rs`), after the
    /// return boundary of an opener. The shadow stack's top is left for the caller to set
    /// back.
    pub(super) fn part_epilogue(&mut self, ret: Option<usize>) {
        let ret_block = self.ret_block;
        self.b.switch_to_block(ret_block);
        let rv = self.b.block_params(ret_block)[0];
        let pop = self.b.create_block();
        self.b.append_block_param(pop, I64);
        let store = self.b.create_block();
        let is_err = self
            .b
            .ins()
            .icmp_imm(IntCC::Equal, rv, stmjit_vm::ERR as i64);
        self.b.ins().brif(is_err, pop, &[rv.into()], store, &[]);
        self.b.switch_to_block(store);
        let (stored, out) = self.split_loop_word(rv);
        if let Some(ret) = ret {
            let frame = self.frame();
            self.b.ins().store(mf(), stored, frame, 8 * ret as i32);
        }
        self.return_boundary(out, pop);
        self.b.switch_to_block(pop);
        let rv = self.b.block_params(pop)[0];
        let depth = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, depth) as i32);
        let d0 = self.b.ins().iadd_imm(depth, -1);
        self.b
            .ins()
            .store(mf(), d0, self.ctx, offset_of!(Ctx, depth) as i32);
        self.b.ins().return_(&[rv]);
        self.build_escapes(pop);
    }

    /// The prologue of a part (`parts.rs`), at `entry`: the frame is `frame` (the calling
    /// function's, whose locals it uses), its slots from `zero_from` on (those of its
    /// temporaries the caller does not use) zeroed and the shadow stack's top set past them,
    /// and the depth one more (the part is a frame to transactions: it may open one and
    /// restart in it). No depth check: the function was checked at its entry.
    pub(super) fn part_prologue(&mut self, entry: Block, frame: Value, zero_from: usize) {
        self.b.switch_to_block(entry);
        self.b.def_var(self.frame_var, frame);
        let ss = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, ss) as i32);
        let nslots = (self.nlocals + self.max_temps) as i64;
        let top = self.b.ins().iadd_imm(frame, 8 * nslots);
        let limit = self
            .b
            .ins()
            .load(I64, mf(), ss, offset_of!(ShadowStack, limit) as i32);
        let over = self.b.ins().icmp(IntCC::UnsignedGreaterThan, top, limit);
        let over_block = self.b.create_block();
        let push_block = self.b.create_block();
        self.b.ins().brif(over, over_block, &[], push_block, &[]);
        self.b.set_cold_block(over_block);
        self.b.switch_to_block(over_block);
        let r = self.call(Helper::RecursionError, &[self.ctx]);
        self.b.ins().return_(&[r]);
        self.b.switch_to_block(push_block);
        let depth = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, depth) as i32);
        let d1 = self.b.ins().iadd_imm(depth, 1);
        self.b
            .ins()
            .store(mf(), d1, self.ctx, offset_of!(Ctx, depth) as i32);
        self.zero_slots(frame, zero_from, nslots as usize);
        // Never below the caller's top: the slots between stay covered, so that none is
        // left unscanned by a collection in the part and scanned again, stale, once the
        // caller sets its top back (its frame may end past the part's).
        let entry_top = self
            .b
            .ins()
            .load(I64, mf(), ss, offset_of!(ShadowStack, top) as i32);
        let past = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThan, top, entry_top);
        let top = self.b.ins().select(past, top, entry_top);
        let top_var = self.top_var.expect("a part has its top variable");
        self.b.def_var(top_var, top);
        self.b
            .ins()
            .store(mf(), top, ss, offset_of!(ShadowStack, top) as i32);
    }

    /// Zeroes the slots `from..to` of `frame`: a store each, or a loop for many (a display
    /// of 60 000 items evaluated by parts has as many temporaries: 480 KB of stores).
    fn zero_slots(&mut self, frame: Value, from: usize, to: usize) {
        const UNROLLED: usize = 32;
        if to <= from + UNROLLED {
            let zero = self.b.ins().iconst(I64, 0);
            for i in from..to {
                self.b.ins().store(mf(), zero, frame, 8 * i as i32);
            }
            return;
        }
        let first = self.b.ins().iadd_imm(frame, 8 * from as i64);
        let end = self.b.ins().iadd_imm(frame, 8 * to as i64);
        let head = self.b.create_block();
        let p = self.b.append_block_param(head, I64);
        let exit = self.b.create_block();
        self.b.ins().jump(head, &[first.into()]);
        self.b.switch_to_block(head);
        let zero = self.b.ins().iconst(I64, 0);
        self.b.ins().store(mf(), zero, p, 0);
        let next = self.b.ins().iadd_imm(p, 8);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, next, end);
        self.b.ins().brif(more, head, &[next.into()], exit, &[]);
        self.b.switch_to_block(exit);
    }

    /// The frame pointer (first slot of this call's shadow-stack frame).
    pub(crate) fn frame(&mut self) -> Value {
        self.b.use_var(self.frame_var)
    }
    /// Writes every local to its frame slot (before a call that may move objects). What
    /// the call leaves of the barrier region is the caller's to say (see "Marks across
    /// calls" in `barriers.rs`).
    pub(crate) fn spill_locals(&mut self) {
        if self.locals_in_slots {
            return;
        }
        let f = self.frame();
        for i in 0..self.nlocals {
            let v = self.b.use_var(self.local_vars[i]);
            self.b.ins().store(mf(), v, f, 8 * i as i32);
        }
    }
    /// Reads every local back from its frame slot (after such a call: the GC may have
    /// updated it).
    pub(crate) fn reload_locals(&mut self) {
        self.local_of.clear();
        if self.locals_in_slots {
            return;
        }
        let f = self.frame();
        for i in 0..self.nlocals {
            let v = self.b.ins().load(I64, mf(), f, 8 * i as i32);
            self.b.def_var(self.local_vars[i], v);
        }
    }
    /// Sets the shadow stack's top to this frame's end (its size patched in once known:
    /// `patch_tops`; a part's top as its prologue set it), after a part or a runtime helper
    /// that failed may have left it elsewhere.
    pub(crate) fn reset_top(&mut self) {
        let top = match self.top_var {
            // A part's: set by its prologue.
            Some(v) => self.b.use_var(v),
            None => {
                let frame = self.frame();
                let size = self.b.ins().iconst(I64, 0);
                let inst = self.b.func.dfg.value_def(size).unwrap_inst();
                self.top_fixups.push(inst);
                self.b.ins().iadd(frame, size)
            }
        };
        self.set_top(top);
    }
    /// Sets the shadow stack's top to `top`.
    fn set_top(&mut self, top: Value) {
        let ss = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, ss) as i32);
        self.b
            .ins()
            .store(mf(), top, ss, offset_of!(ShadowStack, top) as i32);
    }
    /// Allocates a temporary slot.
    pub(crate) fn push_temp(&mut self, v: Value) -> usize {
        let t = self.nlocals + self.temps;
        self.temps += 1;
        self.max_temps = self.max_temps.max(self.temps);
        let f = self.frame();
        self.b.ins().store(mf(), v, f, 8 * t as i32);
        t
    }
    /// Reloads a slot (local or temporary).
    pub(crate) fn load_slot(&mut self, slot: usize) -> Value {
        if slot < self.nlocals {
            let v = self.local_value(slot);
            self.local_of.insert(v, slot);
            if self.int_locals.contains(&slot) {
                self.known_ints.insert(v);
                if self.narrow_locals.contains(&slot) {
                    self.known_narrow.insert(v);
                }
            }
            return v;
        }
        let f = self.frame();
        self.b.ins().load(I64, mf(), f, 8 * slot as i32)
    }
    /// The current value of local `slot`: its SSA variable (a float kept unboxed boxed
    /// first: `floats.rs`), or (locals in slots) a load of its frame slot.
    pub(crate) fn local_value(&mut self, slot: usize) -> Value {
        if self.locals_in_slots {
            let f = self.frame();
            self.b.ins().load(I64, mf(), f, 8 * slot as i32)
        } else if let Some(fv) = self.float_var(slot) {
            self.box_unboxed(slot, fv)
        } else {
            self.b.use_var(self.local_vars[slot])
        }
    }
    /// Stores a slot.
    pub(crate) fn store_slot(&mut self, slot: usize, v: Value) {
        // A held mark is of a local its loop never assigns (`barriers::held_locals`).
        assert!(
            !self.held.contains(&slot),
            "stmjit: internal error: a loop assigns a local whose read marker it holds"
        );
        if slot < self.nlocals {
            self.local_of.retain(|_, l| *l != slot);
            self.int_locals.retain(|&l| l != slot);
            self.narrow_locals.retain(|&l| l != slot);
            self.loop_leaves.retain(|&(l, _, _)| l != slot);
            self.region.marks.forget(slot);
            if self.locals_in_slots {
                let f = self.frame();
                self.b.ins().store(mf(), v, f, 8 * slot as i32);
            } else {
                self.b.def_var(self.local_vars[slot], v);
                let unknown = self.b.ins().iconst(cranelift_codegen::ir::types::I32, 0);
                self.b.def_var(self.class_vars[slot], unknown);
                // Unknown until an access records it again (compile order: a heuristic
                // only, see `class_set`).
                self.class_set[slot] = false;
            }
            return;
        }
        let f = self.frame();
        self.b.ins().store(mf(), v, f, 8 * slot as i32);
    }
    /// Takes `n` temporaries, written later: returns the first.
    pub(crate) fn reserve_temps(&mut self, n: usize) -> usize {
        let t = self.temp_mark();
        self.temps += n;
        self.max_temps = self.max_temps.max(self.temps);
        t
    }
    /// Frees the temporaries from `mark` on.
    pub(crate) fn pop_temps(&mut self, mark: usize) {
        self.temps = mark - self.nlocals;
    }
    /// The first free temporary slot (a mark for [`Self::pop_temps`]).
    pub(crate) fn temp_mark(&self) -> usize {
        self.nlocals + self.temps
    }
    /// Address of slot `slot` (for argument arrays).
    pub(crate) fn slot_addr(&mut self, slot: usize) -> Value {
        let f = self.frame();
        self.b.ins().iadd_imm(f, 8 * slot as i64)
    }
}
