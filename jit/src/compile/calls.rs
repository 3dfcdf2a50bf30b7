//! Calls of helpers and of the program's functions, and what follows a call that may
//! raise.
//!
//! After every call that can raise, `r == ERR` branches to a cold block that records a trace
//! entry for the site (`stmjit_trace`) and returns `ERR` through the epilogue.
//!
//!
//! Each helper's effects come from its declaration (`stmjit_vm::abi::Helper`): around a call
//! of a helper that may move objects or end the transaction, the locals are written to
//! their slots and read back, with the segment base.

use super::{mf, FnCompiler};
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types::I64, AbiParam, FuncRef, InstBuilder, Value,
};
use cranelift_module::Module;
use std::mem::offset_of;
use stmjit_lang::diag::Span;
use stmjit_vm::abi::{Effects, Helper};
use stmjit_vm::{Ctx, ERR};

impl FnCompiler<'_, '_> {
    /// A reference to `helper` in this function.
    pub(crate) fn helper(&mut self, helper: Helper) -> FuncRef {
        if let Some(&r) = self.refs.get(&helper) {
            return r;
        }
        let id = self.sh.helpers[&helper];
        let r = self.sh.jit.module().declare_func_in_func(id, self.b.func);
        self.refs.insert(helper, r);
        r
    }
    /// The code address of program function `fid` (a constant), for a direct call. A
    /// function is compiled at its first call: if `fid` is compiled already its address is
    /// embedded, and so is that of a function defined with this one (the function itself, a
    /// recursive call; any function when all are compiled at once), by a relocation; else it
    /// is read from the table of code addresses at each call, and while it is 0 (not
    /// compiled yet) the cold path compiles it ([`Self::code_address`]).
    pub(crate) fn direct_code(&mut self, fid: usize, span: Span) -> Value {
        if let Some(code) = self.sh.code.compiled_code(fid) {
            return self.b.ins().iconst(I64, code as i64);
        }
        if fid == self.func_idx as usize || self.sh.all_defined {
            let f = self
                .sh
                .jit
                .module()
                .declare_func_in_func(self.sh.func_ids[fid], self.b.func);
            // cranelift-jit may place functions more than 2 GiB apart: an absolute address.
            self.b.func.dfg.ext_funcs[f].colocated = false;
            return self.b.ins().func_addr(I64, f);
        }
        let fidv = self.b.ins().iconst(I64, fid as i64);
        self.code_address(fidv, span)
    }

    /// The signature of a JIT function taking `params` words (the context first) and
    /// returning one, for `call_indirect`.
    pub(crate) fn jit_signature(&mut self, params: usize) -> ir::SigRef {
        let mut sig = ir::Signature::new(self.b.func.signature.call_conv);
        sig.params.extend((0..params).map(|_| AbiParam::new(I64)));
        sig.returns.push(AbiParam::new(I64));
        self.b.import_signature(sig)
    }

    /// The code address of the program function whose id is `fid` (a value): read from the
    /// table of code addresses, and where it is 0 (the function's first call), the address
    /// the compiler returns (`stmjit_compile`, which raises if the function cannot be
    /// compiled).
    pub(crate) fn code_address(&mut self, fid: Value, span: Span) -> Value {
        let off = self.b.ins().ishl_imm(fid, 3);
        let table = self.sh.code.func_code.as_ptr() as i64;
        let addr = self.b.ins().iadd_imm(off, table);
        // One aligned 8-byte load: atomic on x86-64; the compiler stores the address after
        // the code is executable.
        let code = self.b.ins().load(I64, mf(), addr, 0);
        let missing = self.b.ins().icmp_imm(IntCC::Equal, code, 0);
        let compile = self.b.create_block();
        let have = self.b.create_block();
        self.b.append_block_param(have, I64);
        // The region goes on at `have` as after any call: the compile helper keeps the
        // transaction, or ends an inevitable one and goes on in another (`stmjit_compile`),
        // its commit collecting (see "Marks across calls" in `barriers.rs`).
        let mut region = self.region.clone();
        region.marks.after_call();
        let before = self.b.current_block();
        self.b
            .ins()
            .brif(missing, compile, &[], have, &[code.into()]);
        self.b.set_cold_block(compile);
        self.b.switch_to_block(compile);
        let compiled = self.call_checked(Helper::Compile, &[self.ctx, fid], span);
        self.b.ins().jump(have, &[compiled.into()]);
        self.b.switch_to_block(have);
        self.carry_region(&region, before, have);
        self.b.block_params(have)[0]
    }
    /// Calls `helper` and returns its result. Around a helper that may move objects or end
    /// the transaction ([`Effects::MayMove`]) the locals are written to their slots and read
    /// back, with the segment base.
    pub(crate) fn call(&mut self, helper: Helper, args: &[Value]) -> Value {
        let f = self.helper(helper);
        // The read markers stay, unless the transaction that follows may restart here (see
        // "Marks across calls" in `barriers.rs`).
        if helper.restarts_in_caller() {
            self.region.marks.clear();
        } else {
            self.region.marks.after_call();
        }
        let spill = helper.decl().effects == Effects::MayMove;
        if spill {
            self.spill_locals();
        }
        let inst = self.b.ins().call(f, args);
        let r = self.b.inst_results(inst)[0];
        if spill {
            self.reload_segment_base();
            self.reload_read_version(inst);
            self.reload_locals();
            // It may have run Python code or ended the transaction (`global_cache.rs`).
            self.reload_cached_globals();
        } else {
            // No boundary: the read version stays (see "The read version in a variable").
            self.unreloaded_calls.insert(inst);
        }
        r
    }
    /// Calls `helper`, checks for an error at `span`, returns the result.
    pub(crate) fn call_checked(&mut self, helper: Helper, args: &[Value], span: Span) -> Value {
        let site = self.site(span);
        self.set_site(site);
        let r = self.call(helper, args);
        self.check_site(r, site);
        r
    }
    /// After a call that may raise: `r == ERR` unwinds with a trace entry at `span`.
    pub(crate) fn check(&mut self, r: Value, span: Span) {
        let site = self.site(span);
        self.check_site(r, site);
    }
    /// [`Self::check`] with the trace site already registered.
    pub(super) fn check_site(&mut self, r: Value, site: i64) {
        let is_err = self.b.ins().icmp_imm(IntCC::Equal, r, ERR as i64);
        let ok = self.b.create_block();
        // The region goes on at `ok`, the only successor that continues (the error path's
        // calls must not change it).
        let region = self.region.clone();
        let from = self.b.current_block();
        if self.compact && self.locals_in_slots && self.tries.is_empty() && !self.leave_built {
            // One exit for all (no locals to write back first: they are in their slots).
            let leave = *self.leave.get_or_insert_with(|| {
                let b = self.b.create_block();
                self.b.append_block_param(b, I64);
                self.b.set_cold_block(b);
                b
            });
            let s = self.b.ins().iconst(I64, site);
            self.b.ins().brif(is_err, leave, &[s.into()], ok, &[]);
            self.b.switch_to_block(ok);
            self.carry_region(&region, from, ok);
            return;
        }
        let err = self.b.create_block();
        self.b.ins().brif(is_err, err, &[], ok, &[]);
        self.b.set_cold_block(err);
        self.b.switch_to_block(err);
        if !self.error_to_region(site) {
            let s = self.b.ins().iconst(I64, site);
            self.trace_and_leave(s);
        }
        self.b.switch_to_block(ok);
        self.carry_region(&region, from, ok);
    }
    /// The code of the shared error exit of compact code ([`FnCompiler::leave`]), if a check
    /// took it.
    pub(super) fn build_leave(&mut self) {
        self.leave_built = true;
        let Some(leave) = self.leave.take() else {
            return;
        };
        self.at_line(0);
        self.b.switch_to_block(leave);
        let site = self.b.block_params(leave)[0];
        self.trace_and_leave(site);
    }
    /// Registers a trace site.
    pub(crate) fn site(&mut self, span: Span) -> i64 {
        let site = stmjit_vm::Site {
            span,
            func: self.func_idx,
            accesses: self.accesses,
        };
        self.sh.code.add_site(site) as i64
    }
    /// Stores `site` as the operation in progress (`Ctx::site`): a conflict found in the
    /// following runtime call names it (`--stats`). A plain store: no segment access.
    pub(crate) fn set_site(&mut self, site: i64) {
        let v = self.b.ins().iconst(I64, site);
        self.b
            .ins()
            .store(mf(), v, self.ctx, offset_of!(Ctx, site) as i32);
    }
}
