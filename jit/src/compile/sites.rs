//! Attribute and method-call sites: the inline probe of their polymorphic caches
//! ([`stmjit_vm::site_cache`]), the instance-slot fast path of `o.name`, and method calls
//! `o.name(args)` that call the cached function directly, and class calls `C(args)` that
//! call the cached `__init__` directly.

use super::{mf, FnCompiler};
use cranelift_codegen::ir::{self, condcodes::IntCC, types::I64, Block, InstBuilder, Value};
use std::mem::offset_of;
use stmjit_lang::ast::Expr;
use stmjit_lang::diag::Span;
use stmjit_vm::abi::young_header;
use stmjit_vm::abi::Helper;
use stmjit_vm::objects::{ClassObj, InstanceObj, INSTANCE_DATA};
use stmjit_vm::site_cache::{NO_CLASS, WAYS};
use stmjit_vm::UNBOUND;

/// A known class id is kept as `id ^ FACT_KEY` in its local's class variable (see
/// `FnCompiler::class_vars`), so that 0, "unknown", probes as [`NO_CLASS`], which no site
/// cache holds: a probe with an unknown local's variable misses.
pub(crate) const FACT_KEY: i64 = NO_CLASS as i32 as i64;

impl FnCompiler<'_, '_> {
    /// A new attribute-site cache (filled by the helpers with `slot << 32 | class id`).
    pub(crate) fn attr_site(&mut self) -> i64 {
        self.sh.code.new_attr_site() as i64
    }

    /// The cache of the attribute read of interned `name` at `span`, shared by every copy of
    /// that read (`CodeTables::attr_read_site`).
    pub(crate) fn attr_read_site(&mut self, name: u32, span: Span) -> i64 {
        self.sh.code.attr_read_site(name, span) as i64
    }

    /// Branches to `slow` unless `o` is an instance; returns its class id. No read barrier:
    /// an instance's class (set when it is created) and a class's id never change.
    fn class_id_of(&mut self, o: Value, slow: Block) -> Value {
        self.expect_type(o, self.sh.types.instance.0, slow);
        self.class_id_loads(o)
    }

    /// The class id of instance `o` (two loads), as an `i32` (ids are below `u32::MAX`).
    fn class_id_loads(&mut self, o: Value) -> Value {
        let ca = self.seg_addr(o);
        let cls = self
            .b
            .ins()
            .load(I64, mf(), ca, offset_of!(InstanceObj, class) as i32);
        self.class_id_of_class(cls)
    }

    /// The class id of class `cls` as an `i32`: the low half of the little-endian word.
    fn class_id_of_class(&mut self, cls: Value) -> Value {
        let ia = self.seg_addr(cls);
        self.b.ins().load(
            ir::types::I32,
            mf(),
            ia,
            offset_of!(ClassObj, class_id) as i32,
        )
    }

    /// Compares class id `cid` (an `i32`) with the entries of the site cache at `cache`
    /// (their low halves: a 32-bit compare), in order:
    /// continues with the matching entry word in a new block, or branches to `slow`. The
    /// first comparison is inline; the others are out of line, so a monomorphic site pays
    /// one load and one compare.
    ///
    /// The region goes on in the new block: its predecessors all come from the current
    /// block through blocks that only read the cache (no call, no barrier).
    fn probe_site(&mut self, cid: Value, cache: i64, slow: Block) -> Value {
        let carry = self.region.block == self.b.current_block();
        let hit = self.b.create_block();
        self.b.append_block_param(hit, I64);
        let cp = self.b.ins().iconst(I64, cache);
        for way in 0..WAYS {
            let word = self.b.ins().load(I64, mf(), cp, 8 * way as i32);
            let want = self.b.ins().ireduce(ir::types::I32, word);
            let same = self.b.ins().icmp(IntCC::Equal, cid, want);
            if way + 1 == WAYS {
                self.b.ins().brif(same, hit, &[word.into()], slow, &[]);
            } else {
                let next = self.b.create_block();
                self.b.ins().brif(same, hit, &[word.into()], next, &[]);
                self.b.set_cold_block(next);
                self.b.switch_to_block(next);
            }
        }
        self.b.switch_to_block(hit);
        if carry {
            self.region.block = Some(hit);
        }
        self.b.block_params(hit)[0]
    }

    /// Sets every local's class variable to 0 (unknown).
    pub(crate) fn forget_classes(&mut self) {
        for i in 0..self.class_vars.len() {
            let unknown = self.b.ins().iconst(ir::types::I32, 0);
            self.b.def_var(self.class_vars[i], unknown);
        }
    }

    /// The class variable of local `l` here, None where it cannot be known: the function
    /// keeps none, or none was set earlier in compile order (nor can an enclosing loop carry one:
    /// `loop_classes.rs`), or it is the constant 0 here.
    fn class_fact(&mut self, l: usize) -> Option<Value> {
        if !self.class_set.get(l).copied().unwrap_or(false) {
            return None;
        }
        let v = self.b.use_var(self.class_vars[l]);
        let v = self.b.func.dfg.resolve_aliases(v);
        let constant = match self.b.func.dfg.value_def(v) {
            ir::ValueDef::Result(inst, _) => {
                self.b.func.dfg.insts[inst].opcode() == ir::Opcode::Iconst
            }
            _ => false,
        };
        (!constant).then_some(v)
    }

    /// Records that local `l` holds an instance of class id `cid` (here, on this path).
    fn record_class(&mut self, l: usize, cid: Value) {
        if l >= self.class_vars.len() {
            return;
        }
        let f = self.b.ins().bxor_imm(cid, FACT_KEY);
        self.b.def_var(self.class_vars[l], f);
        self.class_set[l] = true;
    }

    /// The site-cache entry word of the class of instance `o`, or a branch to `slow` when
    /// `o` is no instance or its class is not cached. With `fact` (its local's class
    /// variable: [`Self::class_fact`]) the site is probed with it first (no type test, no
    /// class loads); a miss (the variable unknown, or the class not cached) tests in full,
    /// out of line. `reload`: the slot to read `o` from again for the full test (a call may
    /// have moved it); `record`: the local holding `o`, whose class variable the full test
    /// sets.
    ///
    /// The region goes on after it: both ways only read (type, class, cache).
    fn probe_class(
        &mut self,
        o: Value,
        reload: Option<usize>,
        fact: Option<Value>,
        record: Option<usize>,
        cache: i64,
        slow: Block,
    ) -> Value {
        let Some(f) = fact else {
            let o = reload.map_or(o, |s| self.load_slot(s));
            let cid = self.class_id_of(o, slow);
            let word = self.probe_site(cid, cache, slow);
            if let Some(l) = record {
                self.record_class(l, cid);
            }
            return word;
        };
        let carry = self.region.block.is_some() && self.region.block == self.b.current_block();
        let marks = self.region.marks.clone();
        let hit = self.b.create_block();
        self.b.append_block_param(hit, I64);
        let miss = self.b.create_block();
        let cid = self.b.ins().bxor_imm(f, FACT_KEY);
        let word = self.probe_site(cid, cache, miss);
        self.b.ins().jump(hit, &[word.into()]);
        let first_new = self.b.func.dfg.num_blocks();
        self.b.switch_to_block(miss);
        let o = reload.map_or(o, |s| self.load_slot(s));
        let cid = self.class_id_of(o, slow);
        let word = self.probe_site(cid, cache, slow);
        if let Some(l) = record {
            self.record_class(l, cid);
        }
        self.b.ins().jump(hit, &[word.into()]);
        self.b.set_cold_block(miss);
        self.cold_from(first_new);
        self.b.switch_to_block(hit);
        if carry {
            self.region = super::barriers::Region {
                block: Some(hit),
                marks,
            };
        }
        self.b.block_params(hit)[0]
    }

    /// Where attribute `name` of `o` can be read at a slot known when compiling: exactly one
    /// class of the program's class table (at compile time: functions compile at their first
    /// call, after the classes they use have usually been made and their instances given
    /// their attributes) has `name` in its shape, at slot `s` (below 64: the float bits cover
    /// slots 0..64). Gives the condition "`o`'s class is that class" and `s`: one compare of
    /// the class variable of the local holding `o` where it is known here
    /// ([`Self::class_fact`]), else `o`'s type test (a branch to `slow` where it is no
    /// instance) and class loads, recorded in that local's class variable.
    ///
    /// Sound whatever the guess: a class's slot of a name never changes once its shape has
    /// it (shapes only grow), and an instance's class never changes, so where the condition
    /// holds, slot `s` is `name`'s, exactly as a site-cache hit says; the caller still checks
    /// the instance's inline count. Where it fails, the caller takes the site's probe.
    pub(crate) fn guessed_slot(
        &mut self,
        o: Value,
        name: u32,
        slow: Block,
    ) -> Option<(Value, i64)> {
        let local = self.local_of.get(&o).copied();
        let (id, s) = {
            let classes = self.sh.classes.read();
            let mut found = None;
            for (id, c) in classes.iter().enumerate() {
                if c.builtin {
                    continue;
                }
                if let Some(s) = c.shape.iter().position(|&n| n == name) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some((id, s));
                }
            }
            found?
        };
        if s >= 64 || id >= NO_CLASS as usize {
            return None;
        }
        if let Some(f) = local.and_then(|l| self.class_fact(l)) {
            let want = (id as i64 ^ FACT_KEY) as i32 as i64;
            return Some((self.b.ins().icmp_imm(IntCC::Equal, f, want), s as i64));
        }
        // Tested in full (as a probe without a fact would), and recorded for what follows.
        let cid = self.class_id_of(o, slow);
        if let Some(l) = local {
            self.record_class(l, cid);
        }
        Some((
            self.b.ins().icmp_imm(IntCC::Equal, cid, id as i64),
            s as i64,
        ))
    }

    /// The segment offset of inline slot `s` of `o`, an instance of the class
    /// [`Self::guessed_slot`] guessed (its condition held), and `s` as a value, after `o`'s
    /// read barrier; branches to `slow` where `o` holds fewer than `s + 1` slots inline.
    pub(crate) fn guessed_slot_addr(
        &mut self,
        o: Value,
        s: i64,
        slow: Block,
        span: Span,
    ) -> (Value, Value) {
        self.begin_sequence(super::LOC_ATTR_FAST);
        self.read_barrier_obj(o, span);
        let n = self.inline_count(o);
        let inb = self.b.ins().icmp_imm(IntCC::UnsignedGreaterThan, n, s);
        self.only_if(inb, slow);
        let addr = self.b.ins().iadd_imm(o, INSTANCE_DATA as i64 + 8 * s);
        self.end_sequence();
        (addr, self.b.ins().iconst(I64, s))
    }

    /// How many slots instance `o` holds inline. The count never changes after the
    /// allocation: no barrier of its own.
    fn inline_count(&mut self, o: Value) -> Value {
        let sa = self.seg_addr(o);
        self.b
            .ins()
            .load(I64, mf(), sa, offset_of!(InstanceObj, inline) as i32)
    }

    /// The payload (high half) of a cache entry word: one shift.
    fn payload(&mut self, word: Value) -> Value {
        self.b.ins().ushr_imm(word, 32)
    }

    /// Inline instance-slot access through the site cache: branches to `slow` unless `o`
    /// is an instance of a cached class that holds the cached slot inline (slots past its
    /// inline count, in its overflow array, take the helpers); returns the segment offset
    /// of the slot word and the slot's index, after the instance's read barrier (which covers
    /// its inline slots and their float bits). A local's known class spares the type test
    /// and the class loads ([`Self::probe_class`]).
    pub(crate) fn attr_slot(
        &mut self,
        o: Value,
        cache: i64,
        slow: Block,
        span: Span,
    ) -> (Value, Value) {
        self.begin_sequence(super::LOC_ATTR_FAST);
        let local = self.local_of.get(&o).copied();
        let fact = local.and_then(|l| self.class_fact(l));
        let word = self.probe_class(o, None, fact, local, cache, slow);
        self.read_barrier_obj(o, span);
        let idx = self.payload(word);
        let n = self.inline_count(o);
        let inb = self.b.ins().icmp(IntCC::UnsignedLessThan, idx, n);
        let b5 = self.b.create_block();
        self.b.ins().brif(inb, b5, &[], slow, &[]);
        self.follow(b5);
        let off = self.b.ins().ishl_imm(idx, 3);
        let off = self.b.ins().iadd_imm(off, INSTANCE_DATA as i64);
        let addr = self.b.ins().iadd(o, off);
        self.end_sequence();
        (addr, idx)
    }

    /// `obj.name(args)`. When the receiver is an instance of a class the site has cached,
    /// the cached JIT function is called directly (by its address, with the receiver and
    /// the arguments in registers); otherwise `stmjit_call_method` looks the method up (and
    /// fills the cache).
    ///
    /// An entry `class id → function id` exists only for a function whose arity is this
    /// site's argument count, found in the class dicts while the class's instances had no
    /// attribute of that name (see `ClassTable::fill_method_site`), so a hit needs no other
    /// check.
    pub(crate) fn method_call(
        &mut self,
        obj: &Expr,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Value {
        self.method_call_to(obj, name, args, span, None)
    }

    /// [`Self::method_call`] as the condition of a branch to `branch` = `(then, els)`:
    /// a method computed inline whose result is always a bool branches there itself
    /// (`FnCompiler::inline_methods`); the word returned (of a call, or of an inline body
    /// of another kind) is the caller's to branch on.
    pub(crate) fn method_call_to(
        &mut self,
        obj: &Expr,
        name: &str,
        args: &[Expr],
        span: Span,
        branch: Option<(Block, Block)>,
    ) -> Value {
        let cache = self.sh.classes.new_method_site() as i64;
        let name_id = self.sh.names.intern(name) as i64;
        let mark = self.temp_mark();
        let o = self.expr(obj);
        // Read now, while `o` is the local's value (an argument may assign the local).
        let local = self.local_of.get(&o).copied();
        let fact = local.and_then(|l| self.class_fact(l));
        let simple = args.iter().all(|a| self.is_simple(a));
        let record = local.filter(|_| simple);
        self.push_temp(o);
        if !simple {
            // Python's order: `o.name` must exist before the arguments are evaluated. A
            // cache hit says it does.
            self.check_method(o, name_id, cache, span);
        }
        let refs: Vec<&Expr> = args.iter().collect();
        self.args_into_temps(&refs);
        let n = args.len() + 1;
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let slow = self.b.create_block();
        // The region before the call: every way to `done` keeps it (the generic call's by a
        // repair), so that what follows the call goes on with its read markers.
        let marked = self.region_marked();
        let region = self.region.clone();
        let before = self.b.current_block();
        if let Some(m) = super::lists::ListMethod::of(name, args.len()) {
            let other = self.b.create_block();
            self.list_method_inline(m, mark, done, slow, other, span);
            self.b.switch_to_block(other);
            self.carry_region(&region, before, other);
        }
        let word = self.probe_class(o, Some(mark), fact, record, cache, slow);
        let fid = self.payload(word);
        // Simple arguments: `o` and theirs are the words in the slots (no call between).
        let methods = if simple {
            self.inline_methods_for(name, args.len())
        } else {
            Vec::new()
        };
        if !methods.is_empty() {
            let call = self.b.create_block();
            let mut vals = vec![o];
            vals.extend((1..n).map(|k| self.load_slot(mark + k)));
            self.inline_methods(fid, &methods, &vals, call, done, branch);
            self.b.switch_to_block(call);
        }
        let r = self.call_cached(fid, mark, n, span);
        self.jump_keeping(done, &[r.into()]);
        self.b.switch_to_block(slow);
        let p = self.slot_addr(mark);
        let nv = self.b.ins().iconst(I64, n as i64);
        let nid = self.b.ins().iconst(I64, name_id);
        let cp = self.b.ins().iconst(I64, cache);
        let joined = (name == "join" && args.is_empty())
            .then(|| self.join_call(nid, mark, cp, span))
            .flatten();
        let r = joined.unwrap_or_else(|| {
            self.call_checked(Helper::CallMethod, &[self.ctx, nid, p, nv, cp], span)
        });
        self.repair_and_keep(&marked, span);
        self.jump_keeping(done, &[r.into()]);
        self.enter_kept(done);
        self.pop_temps(mark);
        self.b.block_params(done)[0]
    }

    /// Calls program function `fid` (a value: the payload of a site cache entry) directly
    /// at its code address, with the context and the `n` words of frame slots `first..`,
    /// and checks its result for an error.
    fn call_cached(&mut self, fid: Value, first: usize, n: usize, span: Span) -> Value {
        let code = self.code_address(fid, span);
        let mut vals = vec![self.ctx];
        for k in 0..n {
            vals.push(self.load_slot(first + k));
        }
        let sig = self.jit_signature(vals.len());
        // As any call of a JIT function: no r15 reload (the callee keeps it right); the read
        // markers stay (see "Marks across calls" in `barriers.rs`).
        self.region.marks.after_call();
        self.spill_locals();
        let call = self.b.ins().call_indirect(sig, code, &vals);
        let r = self.b.inst_results(call)[0];
        self.reload_read_version(call);
        self.reload_locals();
        self.check(r, span);
        r
    }

    /// The class fast path of a call site `f(args)` (`f` in slot `ft`, the `nargs`
    /// arguments after it): when `f` is a class the site cache at `cache` has, a helper
    /// allocates the instance (its inline slots unbound), and the cached `__init__` is called
    /// directly (as a method-call site hit calls its method) with the instance and the
    /// arguments; its result must be None. Jumps to `done` with the instance, or to `slow`
    /// (before any call) for the generic path, which fills the cache.
    ///
    /// Why: instantiation through the generic call helper dispatches on the callee's type,
    /// looks the class's shape and `__init__` up, and calls `__init__` through an argument
    /// array, at every call. An entry `class id → (function id, slot count)` exists only
    /// for an `__init__` function of arity `nargs + 1` found in the class dicts, under the
    /// method-call sites' rules (`ClassTable::fill_method_site`): a class attribute
    /// assignment or a shape growth empties the site.
    pub(crate) fn class_call(
        &mut self,
        ft: usize,
        nargs: usize,
        cache: i64,
        done: Block,
        slow: Block,
        span: Span,
    ) {
        use stmjit_vm::abi::{CLASS_SITE_SHIFT, CLASS_SITE_SLOTS};
        let f = self.load_slot(ft);
        self.expect_type(f, self.sh.types.class.0, slow);
        // No read barrier: a class's id never changes.
        let cid = self.class_id_of_class(f);
        let word = self.probe_site(cid, cache, slow);
        let payload = self.payload(word);
        let nslots = self.b.ins().band_imm(payload, CLASS_SITE_SLOTS as i64);
        let inst = self.new_instance(f, nslots, span);
        // The class is no longer needed: its slot roots the instance across `__init__`.
        self.store_slot(ft, inst);
        let fid = self.b.ins().ushr_imm(payload, CLASS_SITE_SHIFT as i64);
        let r = self.call_cached(fid, ft, nargs + 1, span);
        let is_none = self
            .b
            .ins()
            .icmp_imm(IntCC::Equal, r, stmjit_runtime::value::NONE as i64);
        let ok = self.b.create_block();
        let bad = self.b.create_block();
        self.b.ins().brif(is_none, ok, &[], bad, &[]);
        self.b.set_cold_block(bad);
        self.b.switch_to_block(bad);
        // Always raises.
        let e = self.call(Helper::InitResult, &[self.ctx, r]);
        self.check(e, span);
        self.b.ins().jump(ok, &[]);
        self.b.switch_to_block(ok);
        let inst = self.load_slot(ft);
        self.b.ins().jump(done, &[inst.into()]);
    }

    /// A new instance of class `f` with `nslots` inline slots (at most
    /// [`MAX_INLINE`](stmjit_vm::objects::MAX_INLINE)), its slots unbound, allocated here in
    /// the nursery by the bump of the runtime's protocol (`stmjit_runtime::nursery`, as
    /// floats are boxed inline: `box_float_with`); where the nursery is full, by the helper,
    /// which collects and tests the heap limit (then at every nursery of instances).
    ///
    /// Invariant (what `Runtime::new_instance_obj` makes, and the collector and barriers
    /// expect of a new object): the size is `instance_size(n)` rounded up to 16, as
    /// `Runtime::alloc` rounds it (at most 560 bytes: under the nursery's small-object
    /// limit); the header is exactly `young_header(instance)` (flags 0: no
    /// `WRITE_BARRIER_FLAG`, so this transaction writes it without a barrier, and nothing
    /// else can see it before it commits); `class` and `inline` (which sizes the object for
    /// the collector) are stored and every inline slot is `UNBOUND` before any call that may
    /// collect, and the caller roots the instance in a frame slot before its next call;
    /// `slots`, `hash` and `floats` are 0 as the nursery is handed out zeroed. No read
    /// marker: a young object is this transaction's own.
    fn new_instance(&mut self, f: Value, nslots: Value, span: Span) -> Value {
        use stmjit_vm::objects::MAX_INLINE;
        self.begin_sequence(super::LOC_ALLOC);
        let cap = self.b.ins().iconst(I64, MAX_INLINE as i64);
        let n = self.b.ins().umin(nslots, cap);
        let bytes = self.b.ins().ishl_imm(n, 3);
        let bytes = self.b.ins().iadd_imm(bytes, INSTANCE_DATA as i64 + 15);
        let size = self.b.ins().band_imm(bytes, -16);
        let slow = self.b.create_block();
        let made = self.b.create_block();
        self.b.append_block_param(made, I64);
        let r = self.nursery_bump(size, young_header(self.sh.types.instance), slow);
        let ia = self.seg_addr(r);
        self.b
            .ins()
            .store(mf(), f, ia, offset_of!(InstanceObj, class) as i32);
        self.b
            .ins()
            .store(mf(), n, ia, offset_of!(InstanceObj, inline) as i32);
        // The slots, UNBOUND: a loop over the `n` words after the fields.
        let first = self.b.ins().iadd_imm(r, INSTANCE_DATA as i64);
        let words = self.b.ins().ishl_imm(n, 3);
        let stop = self.b.ins().iadd(first, words);
        let head = self.b.create_block();
        let p = self.b.append_block_param(head, I64);
        let body = self.b.create_block();
        self.b.ins().jump(head, &[first.into()]);
        self.b.switch_to_block(head);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, p, stop);
        self.b.ins().brif(more, body, &[], made, &[r.into()]);
        self.b.switch_to_block(body);
        let unbound = self.b.ins().iconst(I64, UNBOUND as i64);
        let pa = self.seg_addr(p);
        self.b.ins().store(mf(), unbound, pa, 0);
        let p2 = self.b.ins().iadd_imm(p, 8);
        self.b.ins().jump(head, &[p2.into()]);
        self.end_sequence();
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let inst = self.call_checked(Helper::NewInstance, &[self.ctx, f, nslots], span);
        self.b.ins().jump(made, &[inst.into()]);
        // Two ways in (one after a call): the region starts again.
        self.b.switch_to_block(made);
        self.b.block_params(made)[0]
    }

    /// Raises the AttributeError of `o.name` if `o` has no attribute `name`, unless the
    /// method-call site cache at `cache` has `o`'s class (then it has).
    fn check_method(&mut self, o: Value, name_id: i64, cache: i64, span: Span) {
        let done = self.b.create_block();
        let slow = self.b.create_block();
        let cid = self.class_id_of(o, slow);
        self.probe_site(cid, cache, slow);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(slow);
        let nid = self.b.ins().iconst(I64, name_id);
        self.call_checked(Helper::CheckMethod, &[self.ctx, o, nid], span);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }
}
