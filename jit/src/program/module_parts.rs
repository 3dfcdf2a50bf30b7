//! A huge module body run by parts compiled as they are reached, the code and the syntax
//! tree of each freed once it has run, so that neither accumulates: the memory of a module
//! body is that of one part (`compile::parts` cuts it; a 100 000-line body made 134 MB of
//! code, all of it kept for the run, with its 60 MB of syntax tree).
//!
//! `<module>` calls `stmjit_module_part(k)` for the code of part `k`, then calls it. Before
//! each part but the first it makes a boundary (`stmjit_part_boundary`) that always
//! commits and whose restart point is there: no later abort restarts a transaction that
//! began before part `k`, so no part before `k` runs again, and their code may go (a
//! restart at that point asks for part `k` again: it is kept until part `k + 1` is
//! compiled). The statements of the body are taken out of the program before it runs
//! ([`take_parted_body`]: nothing else reads them once its constants are made), each
//! part's dropped with its code. The functions and classes the body defines are compiled
//! at their first call as before, and stay. With `--dump-asm` or `STMJIT_EAGER=1` every
//! part is compiled before the program runs and kept (the listing shows them all).

use super::{verify, JitState, Started};
use crate::compile::{self, FnCompiler};
use cranelift_module::FuncId;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use stmjit_backend::JitError;
use stmjit_lang::ast::Stmt;
use stmjit_vm::ProgramInfo;

/// The statements of a module body that is compiled as parts, taken out of the program
/// (whose `body` is then empty), unless `info` or its program is shared (not before the
/// program runs) or the body is one part.
pub(super) fn take_parted_body(info: &mut Arc<ProgramInfo>) -> Option<Vec<Stmt>> {
    let program = Arc::get_mut(&mut Arc::get_mut(info)?.program)?;
    let ranges = compile::split_body(
        &program.body,
        compile::MODULE_SPLIT_ABOVE,
        compile::MODULE_PART,
    );
    (ranges.len() > 1).then(|| std::mem::take(&mut program.body))
}

/// The parts of the module body and the one compiled last.
pub(super) struct LazyParts {
    /// The top-level statements of each part, until it has run.
    parts: Vec<Option<Vec<Stmt>>>,
    /// The part compiled last: its number, code address and the functions its code is
    /// made of.
    current: Option<(usize, u64, CodeOf)>,
}

/// The functions the code of a part is made of (itself and the parts of its expressions
/// and blocks), with their sizes.
type CodeOf = Vec<(FuncId, usize)>;

impl JitState {
    /// Compiles the `<module>` of `body` (from [`take_parted_body`]) that calls its parts
    /// as they are reached, each compiled then ([`JitState::module_part`]).
    pub(super) fn compile_lazy_module(
        &mut self,
        info: &ProgramInfo,
        mut body: Vec<Stmt>,
    ) -> Result<(), JitError> {
        let started = Started::now();
        let nfuncs = info.program.functions.len();
        let ranges = compile::split_body(&body, compile::MODULE_SPLIT_ABOVE, compile::MODULE_PART);
        let spans: Vec<_> = ranges.iter().map(|r| body[r.start].span).collect();
        // Each part's statements on their own, cut from the end so that the body is never
        // copied whole.
        let mut parts = Vec::with_capacity(ranges.len());
        for r in ranges.iter().rev() {
            parts.push(Some(body.split_off(r.start)));
            body.shrink_to_fit();
        }
        parts.reverse();
        let (main, sig) = (self.funcs.main, self.funcs.main_sig.clone());
        let (func, _) = self.build_ir_with(info, main, sig, |func, fbc, sh| {
            FnCompiler::compile_lazy_parts(func, fbc, sh, &spans, nfuncs as u32)
        })?;
        if self.verify {
            verify(&self.jit, &func);
        }
        let size = self.jit.compile_code(main, func)?;
        started.count(info, 1, size);
        self.module_parts = Some(LazyParts {
            parts,
            current: None,
        });
        Ok(())
    }

    /// The code address of part `k` of the module body, compiled now unless it was last
    /// (a restart at the boundary before it asks again); the code of the part before it
    /// is given back.
    pub(super) fn module_part(&mut self, info: &ProgramInfo, k: usize) -> Result<u64, JitError> {
        let parts = self
            .module_parts
            .as_mut()
            .expect("<module> asks for parts only when it was compiled to");
        if let Some((last, code, _)) = parts.current {
            if last == k {
                return Ok(code);
            }
        }
        // Taken while it compiles (the state is borrowed meanwhile), put back after.
        let stmts = parts.parts[k]
            .take()
            .expect("a part's statements are dropped only once the next part is compiled");
        let compiled = self.compile_module_part(info, k, &stmts);
        let parts = self.module_parts.as_mut().expect("set above");
        parts.parts[k] = Some(stmts);
        let (code, funcs) = compiled?;
        if let Some((last, _, done)) = parts.current.replace((k, code, funcs)) {
            debug_assert!(last < k, "parts run in order");
            parts.parts[last] = None;
            // SAFETY: part `last` ran before the boundary before part `k`, which the
            // running transaction began at: no restart runs it again, and nothing calls it.
            let freed = unsafe { self.jit.release(&done) };
            info.code
                .compiled
                .code_freed
                .fetch_add(freed as u64, Ordering::Relaxed);
        }
        Ok(code)
    }

    /// Compiles part `k` of the module body, statements `stmts`; its code address and the
    /// functions its code is made of, with their sizes.
    fn compile_module_part(
        &mut self,
        info: &ProgramInfo,
        k: usize,
        stmts: &[Stmt],
    ) -> Result<(u64, CodeOf), JitError> {
        let started = Started::now();
        let nfuncs = info.program.functions.len();
        let sig = self.funcs.main_sig.clone();
        let id = self.jit.declare(&format!("<module>#{}", k + 1), &sig)?;
        // Only the functions of this part from here to the finalize.
        self.jit.take_defined();
        let (func, inner) = self.build_ir_with(info, id, sig, |func, fbc, sh| {
            FnCompiler::compile(func, fbc, sh, 0, 0, stmts, &[], nfuncs as u32)
        })?;
        if self.verify {
            verify(&self.jit, &func);
        }
        let size = inner
            + if compile::has_loop(stmts) {
                self.jit.compile_code(id, func)?
            } else {
                self.jit.compile_code_quick(id, func)?
            };
        self.jit.finalize()?;
        let code = self.jit.code_ptr(id) as u64;
        let funcs = self.jit.take_defined();
        started.count(info, 0, size);
        Ok((code, funcs))
    }
}
