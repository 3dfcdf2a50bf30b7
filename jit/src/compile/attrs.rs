//! `o.name` and `o.name = v`: inline at an instance's inline slot (through the site cache,
//! [`FnCompiler::attr_slot`]), the helpers otherwise; and floats kept raw in the slots.
//!
//! An inline slot whose bit is set in the instance's `floats` word holds the raw bits of an
//! `f64` ([`stmjit_vm::objects::InstanceObj::floats`]). A float tree stores its result so
//! (`o.x += dt * o.vx` allocates nothing: [`FnCompiler::setattr_raw`]) and reads such a slot
//! as its `f64` ([`FnCompiler::getattr_raw`]); every other read boxes it, every other store
//! clears the bit. The bits live in the instance, under its read marker and write barrier,
//! so transactions, commits and aborts copy them with the slots. Only names that some float
//! tree of the program stores raw have their bits tested and updated (`raw_slots.rs`).

use super::barriers::Marks;
use super::{mf, FnCompiler};
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types::F64, types::I64, Block, InstBuilder, Value,
};
use std::mem::offset_of;
use stmjit_lang::diag::Span;
use stmjit_vm::abi::{Helper, UNBOXED};
use stmjit_vm::objects::{InstanceObj, INSTANCE_DATA};
use stmjit_vm::{Accessed, UNBOUND};

/// Offset of an instance's float bits.
const FLOATS: i32 = offset_of!(InstanceObj, floats) as i32;

/// The slot index of a raw read that the helper made (no inline slot known).
const NO_SLOT: i64 = -1;

/// What a store to an inline slot does with the slot's float bit.
#[derive(Clone, Copy)]
enum FloatBit {
    /// Leaves it: the name's slots never hold a raw float (`raw_slots.rs`), the bit is clear.
    Kept,
    /// Clears it: the word stored is a value.
    Cleared,
    /// Sets it where the word stored is `UNBOXED`, the value then being this `f64`.
    Raw(Value),
}

/// What a read of `o.name` gives (see [`FnCompiler::getattr_raw`]).
struct AttrRead {
    word: Value,
    f: Option<Value>,
    slot: Option<Value>,
}

/// `o.name` read for a float tree: its word (`UNBOXED` where the slot holds the raw float
/// `f`), and the index of the inline slot read (`NO_SLOT` if none).
#[derive(Clone, Copy)]
pub(crate) struct RawAttr {
    pub(crate) word: Value,
    pub(crate) f: Value,
    pub(crate) slot: Value,
}

/// The marks of a join of two fast paths of one attribute access that end with `a` and
/// `b`, keeping the read version where both had it: [`Marks::both`] drops it, so the next
/// barrier after `b.x` (guessed slot or probed) loaded it again (issue 16). Sound for
/// these joins only: each edge into them defined [`FnCompiler::rv_var`] after its last
/// call (the fast paths make none, and had it in their region, loaded after the region's
/// last call; the helper's slow path and a boxing slow path repair to their fast path's
/// marks, which loads it again after the call where those marks had it), which is what
/// [`FnCompiler::enter_join`]'s `InVar` needs.
fn join_keeping_version(a: &Marks, b: &Marks) -> Marks {
    let mut j = a.both(b);
    if a.read_version.known() && b.read_version.known() {
        j.read_version = a.read_version;
    }
    j
}

impl FnCompiler<'_, '_> {
    /// `o.name`, inline for instance slots (a raw float boxed).
    pub(crate) fn getattr(&mut self, o: Value, name: &str, span: Span) -> Value {
        self.getattr_mode(o, name, span, false).word
    }

    /// `o.name` as a float tree's leaf takes it: `(UNBOXED, f)` where the slot holds the
    /// raw float `f`, else `(word, 0.0)` (the word as [`Self::getattr`] gives it); with
    /// the index of the inline slot read, or `NO_SLOT` where the helper read it (for
    /// [`Self::setattr_raw`]).
    pub(crate) fn getattr_raw(&mut self, o: Value, name: &str, span: Span) -> RawAttr {
        let r = self.getattr_mode(o, name, span, true);
        RawAttr {
            word: r.word,
            f: r.f.expect("raw mode gives the f64"),
            slot: r.slot.expect("raw mode gives the slot"),
        }
    }

    fn getattr_mode(&mut self, o: Value, name: &str, span: Span, raw: bool) -> AttrRead {
        let nid = self.sh.names.intern(name);
        let outer = self.accesses.replace(Accessed::Attr(nid));
        let maybe_raw = self.may_be_raw(name);
        let v = self.getattr_named(o, nid, span, raw, maybe_raw);
        self.accesses = outer;
        v
    }

    /// [`Self::getattr_mode`] of the interned `name`; `maybe_raw`: whether its slot may hold a
    /// raw float (`raw_slots.rs`), else its float bit is not tested.
    fn getattr_named(
        &mut self,
        o: Value,
        name: u32,
        span: Span,
        raw: bool,
        maybe_raw: bool,
    ) -> AttrRead {
        let cache = self.attr_read_site(name, span);
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        if raw {
            self.b.append_block_param(done, F64);
            self.b.append_block_param(done, I64);
        }
        // Before any branch: they dominate every edge into `done`.
        let zero = self.b.ins().f64const(0.0);
        let no_slot = self.b.ins().iconst(I64, NO_SLOT);
        // The local holding `o`, for the guessed path's barriers: the slow path below calls
        // a helper, whose reload of the locals forgets every value's local (`local_of`),
        // though none of it runs on the way to the guessed path.
        let o_local = self.local_of.get(&o).copied();
        // A slot known when compiling: its fast path is emitted after the probed one's.
        let guessed = self.guessed_slot(o, name, slow).map(|(is_k, s)| {
            let fast = self.b.create_block();
            let probed = self.b.create_block();
            let before = self.b.current_block();
            let region = self.region.clone();
            self.b.ins().brif(is_k, fast, &[], probed, &[]);
            self.follow(probed);
            (fast, before, region, s)
        });
        let (addr, idx) = self.attr_slot(o, cache, slow, span);
        let before = self.b.current_block();
        let region = self.region.clone();
        // Only where the name's slots may hold raw floats is the float bit tested.
        let is_float = maybe_raw.then(|| self.slot_is_float(o, idx));
        let raw_zero = raw.then_some(zero);
        let marked = self.slot_word_exit(
            (addr, idx),
            is_float,
            raw_zero,
            (slow, done),
            (&region, before),
            span,
        );
        let args = |w: Value, slot: Value| -> Vec<_> {
            if raw {
                vec![w.into(), zero.into(), slot.into()]
            } else {
                vec![w.into()]
            }
        };
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let nid = self.b.ins().iconst(I64, i64::from(name));
        let cp = self.b.ins().iconst(I64, cache);
        let r = self.call_checked(Helper::GetAttrSite, &[self.ctx, o, nid, cp], span);
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &args(r, no_slot));
        let mut join = marked.clone();
        if let Some((fast, before, region, s)) = guessed {
            self.b.switch_to_block(fast);
            self.carry_region(&region, before, fast);
            // `o` is still the local's value here (issue 16: without this, every guessed
            // read stored its object's read marker again): `fast` is entered only from
            // `before`, where it was, with no call or assignment since; the region's
            // marks of that local (carried from `before`) hold for this very object.
            if let Some(l) = o_local {
                self.local_of.insert(o, l);
            }
            let m = self.getattr_at(o, s, raw, maybe_raw, (slow, done), span);
            join = join_keeping_version(&marked, &m);
        }
        self.enter_join(done, join);
        let params = self.b.block_params(done);
        AttrRead {
            word: params[0],
            f: raw.then(|| params[1]),
            slot: raw.then(|| params[2]),
        }
    }

    /// The exit of an attribute read whose slot (at `addr`, index `idx`) holds a raw float,
    /// from block `float` to `done`: under the same barriers as the word (`region` as it
    /// was in `before`; no call before the join but the box's own slow path, which repairs
    /// the region to `marked`). Raw mode passes `(UNBOXED, f, idx)`; otherwise the float is
    /// boxed, out of line.
    fn float_slot_exit(
        &mut self,
        (float, done): (Block, Block),
        raw: bool,
        (region, before): (&super::barriers::Region, Option<Block>),
        (addr, idx): (Value, Value),
        span: Span,
        marked: &Marks,
    ) {
        if !raw {
            self.b.set_cold_block(float);
        }
        self.b.switch_to_block(float);
        self.carry_region(region, before, float);
        let a = self.seg_addr(addr);
        let f = self.b.ins().load(F64, mf(), a, 0);
        if raw {
            let u = self.b.ins().iconst(I64, UNBOXED as i64);
            self.b.ins().jump(done, &[u.into(), f.into(), idx.into()]);
        } else {
            let first_new = self.b.func.dfg.num_blocks();
            let boxed = self.box_float_with(f, span, None, marked);
            self.b.ins().jump(done, &[boxed.into()]);
            self.cold_from(first_new);
        }
    }

    /// The fast path of `o.name` where `o`'s class is known to hold `name` at slot `s` (a
    /// constant: [`Self::guessed_slot`]): as the probed path after its probe, the slot's
    /// offset, float bit and bound folded into the instructions. Jumps to `done` as the
    /// probed path does, or to `slow` (the helper, whose repair re-establishes the probed
    /// path's marks after its call) where the slot is not inline or unbound; gives its marks
    /// at the jump to `done`.
    fn getattr_at(
        &mut self,
        o: Value,
        s: i64,
        raw: bool,
        maybe_raw: bool,
        (slow, done): (Block, Block),
        span: Span,
    ) -> super::barriers::Marks {
        let (addr, idx) = self.guessed_slot_addr(o, s, slow, span);
        let zero = self.b.ins().f64const(0.0);
        let before = self.b.current_block();
        let region = self.region.clone();
        let is_float = maybe_raw.then(|| {
            self.begin_sequence(super::LOC_FLOAT_BITS);
            let fa = self.seg_addr(o);
            let floats = self.b.ins().load(I64, mf(), fa, FLOATS);
            let is_float = self.b.ins().band_imm(floats, 1i64 << s);
            self.end_sequence();
            is_float
        });
        let raw_zero = raw.then_some(zero);
        self.slot_word_exit(
            (addr, idx),
            is_float,
            raw_zero,
            (slow, done),
            (&region, before),
            span,
        )
    }

    /// The end of an inline slot read (the slot at `addr`, index `idx`), shared by the
    /// probed and the guessed paths: where `is_float` (the slot's float bit, when tested)
    /// is set, the raw float's exit ([`Self::float_slot_exit`], under `region` as it was in
    /// `before`, ahead of the test); where the word is `UNBOUND`, `slow`; else the word to
    /// `done`, with `raw_zero` and `idx` for a raw read. Gives the marks at that jump.
    fn slot_word_exit(
        &mut self,
        (addr, idx): (Value, Value),
        is_float: Option<Value>,
        raw_zero: Option<Value>,
        (slow, done): (Block, Block),
        (region, before): (&super::barriers::Region, Option<Block>),
        span: Span,
    ) -> super::barriers::Marks {
        let float = is_float.map(|is_float| {
            let float = self.b.create_block();
            let word = self.b.create_block();
            self.b.ins().brif(is_float, float, &[], word, &[]);
            self.follow(word);
            float
        });
        let a = self.seg_addr(addr);
        let v = self.b.ins().load(I64, mf(), a, 0);
        let absent = self.b.ins().icmp_imm(IntCC::Equal, v, UNBOUND as i64);
        let marked = self.region_marked();
        let args: Vec<ir::BlockArg> = match raw_zero {
            Some(zero) => vec![v.into(), zero.into(), idx.into()],
            None => vec![v.into()],
        };
        self.b.ins().brif(absent, slow, &[], done, &args);
        if let Some(float) = float {
            self.float_slot_exit(
                (float, done),
                raw_zero.is_some(),
                (region, before),
                (addr, idx),
                span,
                &marked,
            );
        }
        marked
    }

    /// Whether slot `idx` of instance `o` holds a raw float: bit `idx` of its float bits
    /// (read under the instance's read marker, which the slot access stored).
    pub(crate) fn slot_is_float(&mut self, o: Value, idx: Value) -> Value {
        self.begin_sequence(super::LOC_FLOAT_BITS);
        let fa = self.seg_addr(o);
        let floats = self.b.ins().load(I64, mf(), fa, FLOATS);
        let bit = self.b.ins().ushr(floats, idx);
        let is_float = self.b.ins().band_imm(bit, 1);
        self.end_sequence();
        is_float
    }

    /// `o.name = v`, inline for existing inline instance slots (write barrier on the
    /// instance, elided when done in the region for the same local).
    pub(crate) fn setattr(&mut self, o: Value, name: &str, v: Value, span: Span) {
        self.setattr_mode(o, name, v, None, span);
    }

    /// `o.name = w`, where `w` may be `UNBOXED`, the value then being the `f64` `f`: kept raw
    /// in an inline slot, boxed for the helper. `slot`: the inline slot of `o.name` that a
    /// read of the same instance found ([`Self::getattr_raw`]), or `NO_SLOT`: an instance's
    /// class and inline count never change, nor a class's slot of a name, so a known slot
    /// is stored to without the site's probe.
    pub(crate) fn setattr_raw(
        &mut self,
        o: Value,
        name: &str,
        w: Value,
        f: Value,
        slot: Value,
        span: Span,
    ) {
        self.setattr_mode(o, name, w, Some((f, slot)), span);
    }

    fn setattr_mode(
        &mut self,
        o: Value,
        name: &str,
        v: Value,
        raw: Option<(Value, Value)>,
        span: Span,
    ) {
        let nid = self.sh.names.intern(name);
        let outer = self.accesses.replace(Accessed::Attr(nid));
        debug_assert!(
            raw.is_none() || self.may_be_raw(name),
            "raw store of {name}"
        );
        let bit = match self.may_be_raw(name) {
            true => FloatBit::Cleared,
            false => FloatBit::Kept,
        };
        self.setattr_named(o, nid, v, raw, bit, span);
        self.accesses = outer;
    }

    /// [`Self::setattr_mode`] of the interned `name`; `bit`: what a store of a value (not
    /// `raw`) does with the float bit.
    fn setattr_named(
        &mut self,
        o: Value,
        name: u32,
        v: Value,
        raw: Option<(Value, Value)>,
        bit: FloatBit,
        span: Span,
    ) {
        let done = self.b.create_block();
        let Some((f, slot)) = raw else {
            let marked = self.setattr_probed(o, name, v, bit, done, span);
            self.enter_join(done, marked);
            return;
        };
        let direct = self.b.create_block();
        let probed = self.b.create_block();
        let unknown = self.b.ins().icmp_imm(IntCC::Equal, slot, NO_SLOT);
        let before = self.b.current_block();
        let region = self.region.clone();
        self.b.ins().brif(unknown, probed, &[], direct, &[]);
        self.follow(direct);
        // The slot is read-marked already where `o` is a local marked in the region; the
        // float bits are read, so the marker is needed.
        self.read_barrier_obj(o, span);
        let off = self.b.ins().ishl_imm(slot, 3);
        let off = self.b.ins().iadd_imm(off, INSTANCE_DATA as i64);
        let addr = self.b.ins().iadd(o, off);
        self.store_slot_word(o, addr, slot, v, FloatBit::Raw(f), span);
        let direct_marks = self.region_marked();
        self.b.ins().jump(done, &[]);
        self.b.set_cold_block(probed);
        self.b.switch_to_block(probed);
        self.carry_region(&region, before, probed);
        let first_new = self.b.func.dfg.num_blocks();
        let probed_marks = self.setattr_probed(o, name, v, FloatBit::Raw(f), done, span);
        self.cold_from(first_new);
        self.enter_join(done, join_keeping_version(&direct_marks, &probed_marks));
    }

    /// `o.name = v` through the site cache's probe, or the helper; jumps to `done`, and
    /// gives the barrier marks established on every way there.
    fn setattr_probed(
        &mut self,
        o: Value,
        name: u32,
        v: Value,
        bit: FloatBit,
        done: Block,
        span: Span,
    ) -> Marks {
        let cache = self.attr_site();
        let slow = self.b.create_block();
        let (addr, idx) = self.attr_slot(o, cache, slow, span);
        self.store_slot_word(o, addr, idx, v, bit, span);
        let marked = self.region_marked();
        self.b.ins().jump(done, &[]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let nid = self.b.ins().iconst(I64, i64::from(name));
        let cp = self.b.ins().iconst(I64, cache);
        match bit {
            FloatBit::Raw(f) => {
                let fbits = self.b.ins().bitcast(I64, ir::MemFlagsData::new(), f);
                let args = [self.ctx, o, nid, v, fbits, cp];
                self.call_checked(Helper::SetAttrSiteRaw, &args, span);
            }
            FloatBit::Kept | FloatBit::Cleared => {
                self.call_checked(Helper::SetAttrSite, &[self.ctx, o, nid, v, cp], span);
            }
        }
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &[]);
        marked
    }

    /// Stores `v` (with `FloatBit::Raw`, `v` may be `UNBOXED`, the value then being the
    /// `f64` given) in inline slot `idx` of instance `o`, at `addr`, after its write
    /// barrier, with its float bit as `bit` says: the word and the bits stored together,
    /// without a branch.
    fn store_slot_word(
        &mut self,
        o: Value,
        addr: Value,
        idx: Value,
        v: Value,
        bit: FloatBit,
        span: Span,
    ) {
        let local = self.local_of.get(&o).copied();
        self.write_barrier(o, local, span);
        let raw = match bit {
            FloatBit::Kept => {
                let a = self.seg_addr(addr);
                self.b.ins().store(mf(), v, a, 0);
                return;
            }
            FloatBit::Cleared => None,
            FloatBit::Raw(f) => Some(f),
        };
        self.begin_sequence(super::LOC_FLOAT_BITS);
        let fa = self.seg_addr(o);
        let floats = self.b.ins().load(I64, mf(), fa, FLOATS);
        let one = self.b.ins().iconst(I64, 1);
        let mask = self.b.ins().ishl(one, idx);
        let cleared = self.b.ins().band_not(floats, mask);
        let (stored, bits) = match raw {
            Some(f) => {
                let is_raw = self.b.ins().icmp_imm(IntCC::Equal, v, UNBOXED as i64);
                let fbits = self.b.ins().bitcast(I64, ir::MemFlagsData::new(), f);
                let stored = self.b.ins().select(is_raw, fbits, v);
                let zero = self.b.ins().iconst(I64, 0);
                let set = self.b.ins().select(is_raw, mask, zero);
                (stored, self.b.ins().bor(cleared, set))
            }
            None => (v, cleared),
        };
        let a = self.seg_addr(addr);
        self.b.ins().store(mf(), stored, a, 0);
        let fa = self.seg_addr(o);
        self.b.ins().store(mf(), bits, fa, FLOATS);
        self.end_sequence();
    }
}
