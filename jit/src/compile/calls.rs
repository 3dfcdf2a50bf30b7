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
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, FuncRef, InstBuilder, Value};
use cranelift_module::Module;
use std::mem::offset_of;
use stmjit_lang::diag::Span;
use stmjit_vm::abi::{Effects, Helper};
use stmjit_vm::{Ctx, ERR, RESTART};

impl FnCompiler<'_, '_> {
    /// A reference to `helper` in this function.
    pub(crate) fn helper(&mut self, helper: Helper) -> FuncRef {
        if let Some(&r) = self.refs.get(&helper) {
            return r;
        }
        let id = self.sh.helpers[&helper];
        let r = self.sh.module.declare_func_in_func(id, self.b.func);
        self.refs.insert(helper, r);
        r
    }
    /// A reference to program function `fid` in this function.
    pub(crate) fn direct(&mut self, fid: usize) -> FuncRef {
        if let Some(&r) = self.direct.get(&fid) {
            return r;
        }
        let id = self.sh.funcs[fid];
        let r = self.sh.module.declare_func_in_func(id, self.b.func);
        // cranelift-jit may place functions more than 2 GiB apart: call through an
        // absolute address, not a 32-bit PC-relative one.
        self.b.func.dfg.ext_funcs[r].colocated = false;
        self.direct.insert(fid, r);
        r
    }
    /// Calls `helper` and returns its result. Around a helper that may move objects or end
    /// the transaction ([`Effects::MayMove`]) the locals are written to their slots and read
    /// back, with the segment base.
    pub(crate) fn call(&mut self, helper: Helper, args: &[Value]) -> Value {
        let f = self.helper(helper);
        // Any call may end the transaction or move objects: the region ends.
        self.region.marks.clear();
        let spill = helper.decl().effects == Effects::MayMove;
        if spill {
            self.spill_locals();
        }
        let inst = self.b.ins().call(f, args);
        let r = self.b.inst_results(inst)[0];
        if spill {
            self.reload_segment_base();
            self.reload_locals();
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
        let err = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(is_err, err, &[], ok, &[]);
        self.b.set_cold_block(err);
        self.b.switch_to_block(err);
        let s = self.b.ins().iconst(I64, site);
        let e = self.call(Helper::Trace, &[self.ctx, s]);
        let restart = self.b.ins().icmp_imm(IntCC::Equal, e, RESTART as i64);
        let dispatch = self.dispatch_block();
        let unwind = self.b.create_block();
        self.b.ins().brif(restart, dispatch, &[], unwind, &[]);
        self.b.set_cold_block(unwind);
        self.b.switch_to_block(unwind);
        let err = self.b.ins().iconst(I64, ERR as i64);
        self.b.ins().jump(self.ret_block, &[err.into()]);
        self.b.switch_to_block(ok);
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
