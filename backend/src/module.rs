//! Compiling one function at a time into executable memory, with the `%gs`
//! rewrite between code generation and the moment the code becomes
//! executable.
//!
//! The route: `Context::compile` → final bytes, relocations, `bb_starts` →
//! [`crate::gs_rewrite::rewrite`] → `Module::define_function_bytes` (copies
//! into memory that is still writable, not executable) →
//! `finalize_definitions` (applies relocations, then makes it executable).
//! So unpatched code is never executable. `define_function_bytes` records no
//! per-function metadata in cranelift-jit, so the GC stack maps, source
//! locations and rewrite results are kept here, in [`CompiledFunction`].
//!
//! Every call from Rust into JIT code goes through an *entry trampoline*
//! ([`Jit::define_entry_trampoline`]): r15 is not callee-saved once it is the
//! pinned register, and the rewrite relies on r15 == gs base inside JIT code.
//!
//! Runtime helpers that JIT code calls on a fast path's cold side (the write
//! barriers' slow paths) go through a *`preserve_all` stub*
//! ([`Jit::define_preserve_all_stub`]): a call to it clobbers no register, so
//! the fast path around it keeps its values in registers.

use crate::gs_rewrite::{self, CopyReads, RewriteError, Rewritten, SegmentBase};
use crate::isa::{self, IsaError};
use crate::perf_map::PerfMap;
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, AbiParam, InstBuilder, SourceLoc, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{
    default_libcall_names, FuncId, Linkage, Module, ModuleDeclarations, ModuleError, ModuleReloc,
};
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// Why a function could not be compiled.
#[derive(Debug)]
pub enum JitError {
    /// The ISA could not be built.
    Isa(IsaError),
    /// Cranelift rejected the function (verifier error, unsupported feature).
    Codegen(String),
    /// cranelift-module/jit failed (duplicate definition, unknown symbol...).
    Module(Box<ModuleError>),
    /// The `%gs` rewrite refused the function.
    Rewrite {
        /// Name of the function.
        function: String,
        /// Why.
        error: RewriteError,
    },
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::Isa(e) => write!(f, "{e}"),
            JitError::Codegen(e) => write!(f, "code generation failed: {e}"),
            JitError::Module(e) => write!(f, "JIT module error: {e}"),
            JitError::Rewrite { function, error } => write!(f, "in function `{function}`: {error}"),
        }
    }
}

impl std::error::Error for JitError {}

impl JitError {
    /// Whether memory for the code could not be mapped (an address-space limit, or no
    /// memory left): the program's `MemoryError`, not a fault of the compiler.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, JitError::Module(e) if matches!(**e, ModuleError::Allocation { .. }))
    }
}

impl From<ModuleError> for JitError {
    fn from(e: ModuleError) -> Self {
        JitError::Module(Box::new(e))
    }
}

impl From<IsaError> for JitError {
    fn from(e: IsaError) -> Self {
        JitError::Isa(e)
    }
}

/// One GC safepoint of a compiled function (a call site): where the live GC
/// references are in the frame when the callee returns to `return_offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackMapEntry {
    /// Offset of the return address (the instruction after the call).
    pub return_offset: u32,
    /// Size of the frame, from SP at the call to the frame's top.
    pub frame_size: u32,
    /// `(type, offset from SP)` of every live GC reference slot.
    pub slots: Vec<(ir::Type, u32)>,
}

/// Machine code as Cranelift emitted it, before any rewrite: for tests and
/// tools that want to run the pass by hand.
#[derive(Clone, Debug)]
pub struct Emitted {
    /// The code buffer (code, then trap stubs and constants).
    pub bytes: Vec<u8>,
    /// Block start offsets (`machine_code_cfg_info`).
    pub block_starts: Vec<u32>,
}

/// Compile `func` with `isa` and return the raw bytes; defines nothing.
pub fn emit(isa: &OwnedTargetIsa, func: ir::Function) -> Result<Emitted, JitError> {
    let mut ctx = Context::for_function(func);
    let code = ctx
        .compile(&**isa, &mut ControlPlane::default())
        .map_err(|e| JitError::Codegen(e.inner.to_string()))?;
    Ok(Emitted {
        bytes: code.code_buffer().to_vec(),
        block_starts: code.bb_starts.clone(),
    })
}

/// What the JIT keeps about one compiled function: everything the GC, the
/// error reporter and `--dump-asm` need, since cranelift-jit keeps nothing for
/// functions defined from bytes.
#[derive(Clone, Debug)]
pub struct CompiledFunction {
    /// The name it was declared with.
    pub name: String,
    /// Its id in the module.
    pub id: FuncId,
    /// Bytes as Cranelift emitted them (before the rewrite, before relocation).
    pub original: Vec<u8>,
    /// The rewrite's result: final bytes (before relocation), the segment
    /// accesses and statistics.
    pub rewrite: Rewritten,
    /// Block start offsets reported by Cranelift.
    pub block_starts: Vec<u32>,
    /// GC stack maps, by return address (the user stack maps of Cranelift).
    pub stack_maps: Vec<StackMapEntry>,
    /// Code ranges and the IR source location they came from (set by the
    /// compiler with `FunctionBuilder::set_srcloc`): the hook that maps code
    /// back to source positions and to barrier/allocation/poll annotations.
    pub srclocs: Vec<(Range<u32>, SourceLoc)>,
    /// Whether this is an entry trampoline (not rewritten; sets r15).
    pub is_trampoline: bool,
}

/// What [`Jit::define`] is given: how the code is checked and whether it is rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A language function: IR checked, `%gs` rewrite.
    Compiled,
    /// An entry trampoline: sets r15, touches only its frame; not rewritten.
    Trampoline,
    /// A `preserve_all` stub: touches only its frame, never r15; not rewritten.
    Stub,
}

/// A JIT code space: the Cranelift module plus the side tables of every
/// function compiled into it.
///
/// Dropping it does not unmap the code (cranelift-jit frees code memory only
/// in the unsafe `JITModule::free_memory`): function pointers obtained from it
/// stay valid for the life of the process.
pub struct Jit {
    module: JITModule,
    isa: OwnedTargetIsa,
    /// The ISA of the quick tier ([`isa::Tier::Quick`]), for functions of more than
    /// `quick_above` IR instructions.
    quick_isa: OwnedTargetIsa,
    quick_above: usize,
    /// The ISA of the compact tier ([`isa::Tier::Compact`]).
    compact_isa: OwnedTargetIsa,
    mode: SegmentBase,
    functions: HashMap<FuncId, CompiledFunction>,
    /// Whether [`CompiledFunction`]s are kept (see [`Jit::keep_side_tables`]).
    keep_side_tables: bool,
    fbc: FunctionBuilderContext,
    /// The reload of r15 compiled functions may contain (see [`Jit::allow_reload`]).
    reload: Option<gs_rewrite::PinnedReload>,
    /// The symbols given to [`Jit::new`], for listings that name the helpers code calls.
    imports: Vec<(String, u64)>,
    /// Their addresses by name, to apply the relocations naming them at once
    /// ([`Jit::bind_imports`]).
    import_addresses: HashMap<String, u64>,
    /// The language functions defined since the last [`Jit::take_defined`], with the size
    /// of their code.
    defined: Vec<(FuncId, usize)>,
    /// `--perf-map`: the perf map written as code is finalized ([`Jit::write_perf_map`]).
    perf_map: Option<PerfMap>,
}

impl Jit {
    /// A new code space. `symbols` are the runtime helpers JIT code may call
    /// (imported by name with `Linkage::Import`).
    pub fn new(mode: SegmentBase, symbols: &[(&str, *const u8)]) -> Result<Jit, JitError> {
        let isa = isa::host_isa()?;
        let mut builder = JITBuilder::with_isa(isa.clone(), default_libcall_names());
        for &(name, ptr) in symbols {
            builder.symbol(name, ptr);
        }
        Ok(Jit {
            module: JITModule::new(builder),
            isa,
            quick_isa: isa::host_isa_tier(isa::Tier::Quick)?,
            quick_above: usize::MAX,
            compact_isa: isa::host_isa_tier(isa::Tier::Compact)?,
            mode,
            functions: HashMap::new(),
            keep_side_tables: true,
            fbc: FunctionBuilderContext::new(),
            reload: None,
            imports: symbols
                .iter()
                .map(|&(name, ptr)| (name.to_string(), ptr as u64))
                .collect(),
            defined: Vec::new(),
            perf_map: None,
            import_addresses: symbols
                .iter()
                .map(|&(name, ptr)| (name.to_string(), ptr as u64))
                .collect(),
        })
    }

    /// Lets compiled functions reload r15 from their context after a runtime
    /// call (`set_pinned_reg(load.i64 ctx+offset)`), for runtimes that may
    /// move a thread to another segment inside such a call; see
    /// [`gs_rewrite::check_ir_with`]. Without it any write of r15 is refused.
    pub fn allow_reload(&mut self, reload: gs_rewrite::PinnedReload) {
        self.reload = Some(reload);
    }

    /// Whether the side tables of each function defined from now on ([`CompiledFunction`]:
    /// its bytes before and after the rewrite, stack maps, source locations) are kept for
    /// [`Jit::function`] and listings (the default), or dropped once its code is defined:
    /// they take several times the size of the code, and a program that compiles its
    /// functions as it runs and lists none needs none of them.
    pub fn keep_side_tables(&mut self, keep: bool) {
        self.keep_side_tables = keep;
    }

    /// Writes the perf map `/tmp/perf-PID.map` from now on (see `perf_map.rs`): a
    /// line per function, trampolines and stubs included, as its code is finalized, so
    /// that `perf report` names JIT code. `Err` if the file cannot be created.
    /// With `PERF_BUILDID_DIR` set, cranelift-jit writes the same lines itself (and this
    /// writes none, which would double them).
    pub fn write_perf_map(&mut self) -> std::io::Result<()> {
        if std::env::var_os("PERF_BUILDID_DIR").is_none() {
            self.perf_map = Some(PerfMap::create()?);
        }
        Ok(())
    }

    /// Functions of more than `insts` IR instructions get their code from the quick tier
    /// ([`isa::Tier::Quick`]) from now on (`usize::MAX`, the default: none).
    pub fn quick_tier_above(&mut self, insts: usize) {
        self.quick_above = insts;
    }

    /// The ISAs of both tiers, for [`prepare`].
    fn isas(&self) -> Isas<'_> {
        Isas {
            optimized: &*self.isa,
            quick: &*self.quick_isa,
            quick_above: self.quick_above,
            compact: &*self.compact_isa,
        }
    }

    /// `Gs` or `R15`: how compiled code reaches the segment.
    pub fn segment_base(&self) -> SegmentBase {
        self.mode
    }

    /// The underlying Cranelift module, to declare functions and data.
    pub fn module(&mut self) -> &mut JITModule {
        &mut self.module
    }

    /// The target ISA (for `FunctionBuilder::finalize` and signatures).
    pub fn isa(&self) -> &OwnedTargetIsa {
        &self.isa
    }

    /// A signature in the JIT's calling convention.
    pub fn signature(&self, params: &[ir::Type], returns: &[ir::Type]) -> ir::Signature {
        let mut sig = self.module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns
            .extend(returns.iter().map(|&t| AbiParam::new(t)));
        sig
    }

    /// Declare a function defined in this code space.
    pub fn declare(&mut self, name: &str, sig: &ir::Signature) -> Result<FuncId, JitError> {
        Ok(self.module.declare_function(name, Linkage::Local, sig)?)
    }

    /// Compile `func` (built by the language compiler) as the body of `id`:
    /// check its IR for escapes of the segment base, generate code, rewrite
    /// the segment accesses, define the bytes. The code is executable only
    /// after [`Jit::finalize`]. Needs the side tables kept ([`Jit::keep_side_tables`]).
    pub fn compile(
        &mut self,
        id: FuncId,
        func: ir::Function,
    ) -> Result<&CompiledFunction, JitError> {
        self.define(id, func, Kind::Compiled, Pick::BySize)?;
        Ok(self
            .functions
            .get(&id)
            .expect("Jit::compile keeps the side tables (else use Jit::compile_code)"))
    }

    /// [`Jit::compile`] whether or not side tables are kept; the size of the code in bytes.
    pub fn compile_code(&mut self, id: FuncId, func: ir::Function) -> Result<usize, JitError> {
        self.define(id, func, Kind::Compiled, Pick::BySize)
    }

    /// [`Jit::compile_code`] with the quick tier ([`isa::Tier::Quick`]) whatever the size of
    /// `func`: for code that runs once (the parts of a huge module body), where code
    /// generation costs more than the optimizer can save.
    pub fn compile_code_quick(
        &mut self,
        id: FuncId,
        func: ir::Function,
    ) -> Result<usize, JitError> {
        self.define(id, func, Kind::Compiled, Pick::Quick)
    }

    /// [`Jit::compile_code`] with the compact tier ([`isa::Tier::Compact`]) whatever the
    /// size of `func`: for code that runs rarely but stays for the run (the parts of a huge
    /// function), where the size of the code counts more than its speed.
    pub fn compile_code_compact(
        &mut self,
        id: FuncId,
        func: ir::Function,
    ) -> Result<usize, JitError> {
        self.define(id, func, Kind::Compiled, Pick::Compact)
    }

    /// Define an entry trampoline `name(base: i64, args of target...) ->
    /// returns of target` that makes r15 the segment base, calls `target`,
    /// and restores the caller's r15. Rust calls JIT code only through one;
    /// `base` must be the thread's current `%gs` base.
    pub fn define_entry_trampoline(
        &mut self,
        name: &str,
        target: FuncId,
        target_sig: &ir::Signature,
    ) -> Result<FuncId, JitError> {
        let mut sig = target_sig.clone();
        sig.params.insert(0, AbiParam::new(ir::types::I64));
        self.define_forwarder(name, sig, target, Kind::Trampoline, |b, callee, params| {
            let old = b.ins().get_pinned_reg(ir::types::I64);
            b.ins().set_pinned_reg(params[0]);
            let call = b.ins().call(callee, &params[1..]);
            let results = b.inst_results(call).to_vec();
            b.ins().set_pinned_reg(old);
            results
        })
    }

    /// Define `name(params...)` in the `preserve_all` calling convention, forwarding its
    /// `params` (all `i64`) to the SystemV function `target` (declared with those
    /// parameters and no result) and returning nothing.
    ///
    /// Why: a call of a SystemV helper clobbers every caller-saved register, so the
    /// register allocator keeps the caller's live values out of them (spills, reloads,
    /// extra moves) even on the fast path that never makes the call. A `preserve_all`
    /// callee clobbers nothing at the call site; the stub pays for it on the slow path
    /// instead, by saving in its prologue every register it (with `target`, a SystemV
    /// call: all caller-saved GPRs and XMM0-15, low 128 bits) may clobber. A
    /// `preserve_all` function can return nothing: `target` reports through memory
    /// (the caller's context). The stub leaves r15 alone ([`gs_rewrite::verify_stub`]):
    /// `target` is SystemV, for which r15 is callee-saved, so the caller's segment base
    /// survives the call.
    pub fn define_preserve_all_stub(
        &mut self,
        name: &str,
        target: FuncId,
        params: usize,
    ) -> Result<FuncId, JitError> {
        let mut sig = self.signature(&vec![ir::types::I64; params], &[]);
        sig.call_conv = cranelift_codegen::isa::CallConv::PreserveAll;
        self.define_forwarder(name, sig, target, Kind::Stub, |b, callee, params| {
            b.ins().call(callee, params);
            Vec::new()
        })
    }

    /// Declares `name` with `sig` and defines it as one block that makes its call of
    /// `target` (by absolute address: cranelift-jit may place it more than 2 GiB away, and
    /// helpers are anywhere in the process) with `body`, then returns what `body` returns.
    fn define_forwarder(
        &mut self,
        name: &str,
        sig: ir::Signature,
        target: FuncId,
        kind: Kind,
        body: impl FnOnce(&mut FunctionBuilder, ir::FuncRef, &[ir::Value]) -> Vec<ir::Value>,
    ) -> Result<FuncId, JitError> {
        let id = self.declare(name, &sig)?;
        let mut func = ir::Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
        let callee = self.module.declare_func_in_func(target, &mut func);
        func.dfg.ext_funcs[callee].colocated = false;
        {
            let mut b = FunctionBuilder::new(&mut func, &mut self.fbc);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let params = b.block_params(entry).to_vec();
            let results = body(&mut b, callee, &params);
            b.ins().return_(&results);
            b.seal_all_blocks();
            b.finalize(self.isa.frontend_config());
        }
        self.define(id, func, kind, Pick::BySize)?;
        Ok(id)
    }

    fn name_of(&self, id: FuncId) -> String {
        self.module
            .declarations()
            .get_function_decl(id)
            .linkage_name(id)
            .into_owned()
    }

    /// Generates, rewrites and defines one function; the size of its code. Its Cranelift
    /// context is made for it and freed after it, so that no function's working memory
    /// outlives its compilation.
    fn define(
        &mut self,
        id: FuncId,
        func: ir::Function,
        kind: Kind,
        pick: Pick,
    ) -> Result<usize, JitError> {
        let name = self.name_of(id);
        let job = Job {
            id,
            name,
            func,
            kind,
            pick,
        };
        let prepared = prepare(
            self.isas(),
            self.mode,
            self.reload,
            &mut Context::new(),
            job,
        )?;
        self.install(prepared)
    }

    /// Like [`Jit::compile`] for every function of `funcs`, generating and rewriting
    /// their code on several threads (each function's work is independent, and it is most
    /// of a program's start-up), then defining them in order; the size of each one's code.
    /// The first failing function in `funcs`' order is the error.
    pub fn compile_all(
        &mut self,
        funcs: Vec<(FuncId, ir::Function)>,
    ) -> Result<Vec<usize>, JitError> {
        let jobs: Vec<Job> = funcs
            .into_iter()
            .map(|(id, func)| Job {
                id,
                name: self.name_of(id),
                func,
                kind: Kind::Compiled,
                pick: Pick::BySize,
            })
            .collect();
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(jobs.len())
            .min(MAX_COMPILE_THREADS);
        let results = if workers <= 1 {
            let mut ctx = Context::new();
            jobs.into_iter()
                .map(|job| prepare(self.isas(), self.mode, self.reload, &mut ctx, job))
                .collect::<Vec<_>>()
        } else {
            prepare_in_parallel(self.isas(), self.mode, self.reload, jobs, workers)
        };
        results.into_iter().map(|r| self.install(r?)).collect()
    }

    /// Hands prepared code to the module (writable, non-executable until
    /// [`Jit::finalize`]) and keeps its side tables if asked; the size of the code.
    fn install(&mut self, mut p: Prepared) -> Result<usize, JitError> {
        let keep = self.keep_side_tables || p.kind == Kind::Trampoline || p.kind == Kind::Stub;
        // The side tables keep the bytes before relocation: the relocations applied here go
        // to a copy then.
        let mut code = if keep {
            p.rewrite.code.clone()
        } else {
            std::mem::take(&mut p.rewrite.code)
        };
        let relocs = self.bind_imports(&mut code, std::mem::take(&mut p.relocs));
        self.module
            .define_function_bytes(p.id, p.alignment, &code, &relocs)?;
        let size = code.len();
        if p.kind == Kind::Compiled {
            self.defined.push((p.id, size));
        }
        if let Some(map) = &mut self.perf_map {
            map.defined(p.id, &p.name, size);
        }
        if !keep {
            return Ok(size);
        }
        let f = CompiledFunction {
            name: p.name,
            id: p.id,
            original: p.original,
            rewrite: p.rewrite,
            block_starts: p.block_starts,
            stack_maps: p.stack_maps,
            srclocs: p.srclocs,
            is_trampoline: p.kind == Kind::Trampoline,
        };
        self.functions.insert(p.id, f);
        Ok(size)
    }

    /// Applies to `code` its relocations that give the address of a helper (an import,
    /// whose address is known now) and returns the others: cranelift-jit keeps the
    /// relocations of every function for the life of the code space (8 bytes of them per
    /// 30 of code, most of them calls of helpers), also once its code is freed
    /// ([`Jit::release`]).
    fn bind_imports(&self, code: &mut [u8], relocs: Vec<ModuleReloc>) -> Vec<ModuleReloc> {
        let decls = self.module.declarations();
        relocs
            .into_iter()
            .filter(|r| {
                if r.kind != Reloc::Abs8 || !ModuleDeclarations::is_function(&r.name) {
                    return true;
                }
                let decl = decls.get_function_decl(FuncId::from_name(&r.name));
                let address = match (&decl.name, decl.linkage) {
                    (Some(name), Linkage::Import) => self.import_addresses.get(name),
                    _ => None,
                };
                let Some(&address) = address else {
                    return true;
                };
                let at = r.offset as usize;
                let value = (address as i64).wrapping_add(r.addend);
                code[at..at + 8].copy_from_slice(&value.to_le_bytes());
                false
            })
            .collect()
    }

    /// Apply relocations and make every defined function executable.
    pub fn finalize(&mut self) -> Result<(), JitError> {
        self.module.finalize_definitions()?;
        if let Some(map) = &mut self.perf_map {
            let module = &self.module;
            // A map that cannot be written (a full /tmp) costs the profile, not the run.
            if let Err(e) = map.write_finalized(|id| module.get_finalized_function(id)) {
                eprintln!("warning: --perf-map: cannot write /tmp/perf-PID.map: {e}");
                self.perf_map = None;
            }
        }
        Ok(())
    }

    /// Address of a finalized function (call it only through a trampoline
    /// unless it is one).
    pub fn code_ptr(&self, id: FuncId) -> *const u8 {
        self.module.get_finalized_function(id)
    }

    /// The language functions defined since the last call (none before the first), with the
    /// size of their code: what compiling one function made (its parts included), for
    /// [`Jit::release`].
    pub fn take_defined(&mut self) -> Vec<(FuncId, usize)> {
        std::mem::take(&mut self.defined)
    }

    /// Gives back the memory of the code of `funcs` (finalized functions and their code
    /// sizes, all those defined between two finalizes: [`Jit::take_defined`]), but for the
    /// pages they share with other code ([`crate::release`]), and forgets their side
    /// tables; the bytes given back.
    ///
    /// # Safety
    /// None of `funcs` runs again (none is running, none will be called).
    pub unsafe fn release(&mut self, funcs: &[(FuncId, usize)]) -> usize {
        let ranges = funcs
            .iter()
            .map(|&(id, size)| {
                self.functions.remove(&id);
                let start = self.code_ptr(id) as usize;
                start..start + size
            })
            .collect();
        // SAFETY: the caller's contract; cranelift-jit's provider gives the functions
        // defined between two finalizes pages of their own.
        unsafe { crate::release::release_code(ranges) }
    }

    /// The side tables of a compiled function.
    pub fn function(&self, id: FuncId) -> Option<&CompiledFunction> {
        self.functions.get(&id)
    }

    /// The imported symbols (name, address) JIT code may call, as given to [`Jit::new`].
    pub fn imports(&self) -> &[(String, u64)] {
        &self.imports
    }

    /// All compiled functions, in no particular order.
    pub fn functions(&self) -> impl Iterator<Item = &CompiledFunction> {
        self.functions.values()
    }

    /// The final, relocated, executable bytes of a finalized function (what
    /// `--dump-asm` shows), read back from the code memory.
    pub fn final_code(&self, id: FuncId) -> Option<&[u8]> {
        let f = self.functions.get(&id)?;
        let ptr = self.code_ptr(id);
        // SAFETY: after finalize, `ptr` points at the function's code, mapped
        // readable and executable for the module's lifetime (borrowed by &self),
        // and it is `rewrite.code.len()` bytes long (the bytes we defined).
        Some(unsafe { std::slice::from_raw_parts(ptr, f.rewrite.code.len()) })
    }

    /// A fresh function with the JIT's naming for `id`, for the compiler to
    /// fill with a `FunctionBuilder` (using [`Jit::builder_context`]).
    pub fn new_function(&self, id: FuncId, sig: ir::Signature) -> ir::Function {
        ir::Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig)
    }

    /// A reusable builder context (avoids reallocating per function).
    pub fn builder_context(&mut self) -> &mut FunctionBuilderContext {
        &mut self.fbc
    }
}

/// The ISAs of the tiers and which functions get the quick one.
#[derive(Clone, Copy)]
struct Isas<'a> {
    optimized: &'a dyn cranelift_codegen::isa::TargetIsa,
    quick: &'a dyn cranelift_codegen::isa::TargetIsa,
    /// Functions of more IR instructions than this get the quick tier.
    quick_above: usize,
    compact: &'a dyn cranelift_codegen::isa::TargetIsa,
}

impl Isas<'_> {
    /// The ISA a function of `insts` IR instructions is compiled with, by `pick`.
    fn pick(&self, pick: Pick, insts: usize) -> &dyn cranelift_codegen::isa::TargetIsa {
        match pick {
            Pick::Quick => self.quick,
            Pick::Compact => self.compact,
            Pick::BySize if insts > self.quick_above => self.quick,
            Pick::BySize => self.optimized,
        }
    }
}

/// Which tier a function's code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    /// The optimizing tier, or the quick one for a function of more IR instructions than
    /// [`Jit::quick_tier_above`] said.
    BySize,
    /// The quick tier ([`isa::Tier::Quick`]).
    Quick,
    /// The compact tier ([`isa::Tier::Compact`]).
    Compact,
}

/// Threads used at most to compile a program's functions.
const MAX_COMPILE_THREADS: usize = 8;

/// Stack of a compiling thread: Cranelift's passes recurse on deeply nested code.
const COMPILE_STACK: usize = 256 << 20;

/// A function to generate code for.
struct Job {
    id: FuncId,
    name: String,
    func: ir::Function,
    kind: Kind,
    /// Its tier.
    pick: Pick,
}

/// Everything a function's definition needs, computed without the module: its final
/// (rewritten) bytes, relocations and side tables.
struct Prepared {
    id: FuncId,
    name: String,
    kind: Kind,
    original: Vec<u8>,
    rewrite: gs_rewrite::Rewritten,
    block_starts: Vec<u32>,
    stack_maps: Vec<StackMapEntry>,
    srclocs: Vec<(std::ops::Range<u32>, ir::SourceLoc)>,
    alignment: u64,
    relocs: Vec<ModuleReloc>,
}

/// Checks a language function's IR (for escapes of the segment base), generates its code,
/// and rewrites (or, for trampolines and stubs, verifies) its segment accesses. Pure: it
/// touches neither the module nor another function, so it may run on any thread.
fn prepare(
    isas: Isas,
    mode: SegmentBase,
    reload: Option<gs_rewrite::PinnedReload>,
    ctx: &mut Context,
    job: Job,
) -> Result<Prepared, JitError> {
    // An allocation failure from here on is a MemoryError (on this thread too when it is a
    // worker of `compile_all`).
    let _compiling = crate::oom::Compiling::enter();
    let Job {
        id,
        name,
        func,
        kind,
        pick,
    } = job;
    if kind == Kind::Compiled {
        gs_rewrite::check_ir_with(&func, reload).map_err(|error| JitError::Rewrite {
            function: name.clone(),
            error,
        })?;
    }
    let isa = isas.pick(pick, func.dfg.num_insts());
    ctx.clear();
    ctx.func = func;
    let code = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|e| JitError::Codegen(format!("{name}: {}", e.inner)))?;
    let original = code.code_buffer().to_vec();
    let block_starts = code.bb_starts.clone();
    let mach_relocs = code.buffer.relocs().to_vec();
    let mut stack_maps: Vec<StackMapEntry> = code
        .buffer
        .user_stack_maps()
        .iter()
        .map(|(off, span, map)| StackMapEntry {
            return_offset: *off,
            frame_size: *span,
            slots: map.entries().collect(),
        })
        .collect();
    let mut srclocs: Vec<(std::ops::Range<u32>, ir::SourceLoc)> = code
        .buffer
        .get_srclocs_sorted()
        .iter()
        .filter(|s| !s.loc.is_default())
        .map(|s| (s.start..s.end, s.loc))
        .collect();
    let alignment = code.buffer.alignment as u64;
    let relocs: Vec<ModuleReloc> = mach_relocs
        .iter()
        .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
        .collect();
    let err = |error| JitError::Rewrite {
        function: name.clone(),
        error,
    };
    let rewrite = if kind != Kind::Compiled {
        match kind {
            Kind::Stub => gs_rewrite::verify_stub(&original, &block_starts),
            _ => gs_rewrite::verify_trampoline(&original, &block_starts),
        }
        .map_err(err)?;
        gs_rewrite::rewrite_none(&original, &block_starts).map_err(err)?
    } else {
        // The IR passed `check_ir` (in `compile`), so copy value reads are
        // register-allocator artifacts: count them, do not refuse.
        let mut rw = gs_rewrite::rewrite_with(&original, &block_starts, mode, CopyReads::Count)
            .inspect_err(|_| {
                if std::env::var("STMJIT_DEBUG_REWRITE").is_ok_and(|v| v.trim() == "1") {
                    eprintln!("{}", ctx.func.display());
                }
            })
            .map_err(err)?;
        let mut reloc_offsets: Vec<u32> = relocs.iter().map(|r| r.offset).collect();
        reloc_offsets.sort_unstable();
        let moved = crate::dead_copies::remove_dead_copies(&mut rw, &block_starts, &reloc_offsets)
            .map_err(err)?;
        // Source ranges follow the code that moved (for listings).
        for (range, _) in &mut srclocs {
            *range = moved.map(range.start)..moved.map(range.end);
        }
        for m in &mut stack_maps {
            m.return_offset = moved.map(m.return_offset);
        }
        rw
    };
    Ok(Prepared {
        id,
        name,
        kind,
        original,
        rewrite,
        block_starts,
        stack_maps,
        srclocs,
        alignment,
        relocs,
    })
}

/// [`prepare`] for every job on `workers` threads (each with its own Cranelift context),
/// the results in the jobs' order.
fn prepare_in_parallel(
    isas: Isas,
    mode: SegmentBase,
    reload: Option<gs_rewrite::PinnedReload>,
    jobs: Vec<Job>,
    workers: usize,
) -> Vec<Result<Prepared, JitError>> {
    let n = jobs.len();
    let jobs: Vec<std::sync::Mutex<Option<Job>>> = jobs
        .into_iter()
        .map(|j| std::sync::Mutex::new(Some(j)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<std::sync::Mutex<Option<Result<Prepared, JitError>>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        let work = || {
            let mut ctx = Context::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let job = jobs[i]
                    .lock()
                    .unwrap()
                    .take()
                    .expect("each job is taken once");
                let r = prepare(isas, mode, reload, &mut ctx, job);
                *done[i].lock().unwrap() = Some(r);
            }
        };
        for _ in 0..workers {
            std::thread::Builder::new()
                .stack_size(COMPILE_STACK)
                .spawn_scoped(scope, work)
                .expect("start a compiling thread");
        }
    });
    done.into_iter()
        .map(|d| d.into_inner().unwrap().expect("every job ran"))
        .collect()
}
