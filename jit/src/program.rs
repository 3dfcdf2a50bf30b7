//! Linking and running a whole program: the runtime instance, the constants (allocated and
//! promoted to the old space before any code embeds them), compilation of every function,
//! entry trampolines, `--dump-asm`, and the single transaction of part 1.
//!
//! Environment (for tests and debugging): `STMJIT_NURSERY=BYTES` sets the nursery size
//! (the tests use 4096 to force a minor collection every few allocations);
//! `STMJIT_VERIFY=1` runs Cranelift's verifier on every function and prints its errors;
//! `STMJIT_BENCH_OMIT=write-barrier,poll` (for `benches/barriers.rs` only) compiles without
//! the instance write-barrier test and/or the safe-point polls (see `compile::Shared`).

use crate::compile::{
    FnCompiler, Shared, LOC_ALLOC, LOC_ATTR_FAST, LOC_CARD_WB, LOC_LIST_FAST, LOC_POLL,
    LOC_REGION_REPAIR,
};
use crate::disasm::{srcloc_annotations, Syntax};
use crate::rt::abi::{Effects, Helper};
use crate::rt::{self, Ctx, Mode, Runtime, UNBOUND};
use crate::{Jit, SegmentBase};
use cranelift_codegen::ir::{types::I64, InstBuilder, Type};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use stmjit_lang::ast::*;
use stmjit_runtime::value::{Word, NONE};
use stmjit_runtime::{Stm, StmConfig};

/// How to run a program.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--segment-base`.
    pub segment_base: Option<SegmentBase>,
    /// `--dump-asm`: `Some(None)` = stderr, `Some(Some(path))` = that file.
    pub dump_asm: Option<Option<std::path::PathBuf>>,
    /// `--asm-syntax`.
    pub syntax: Syntax,
    /// Nursery size in bytes (default: the runtime's; `STMJIT_NURSERY` overrides).
    pub nursery: Option<u64>,
    /// `--threads N`: segments, i.e. transactions that may run in parallel (default: the
    /// CPUs present).
    pub threads: Option<usize>,
    /// `--gil`: one transaction at a time, no read barriers (the baseline).
    pub gil: bool,
    /// `--stats`: print the transaction and GC figures to stderr at exit.
    pub stats: bool,
    /// Ends the process when the program fails in a spawned thread (see
    /// [`stmjit_lang::Exit`]): the binary passes `std::process::exit`.
    pub exit: stmjit_lang::Exit,
}

impl Options {
    /// The defaults (`gs:` segment base, no listing, the CPUs' number of segments, no
    /// `--gil`, no `--stats`), ending the process with `exit`.
    pub fn new(exit: stmjit_lang::Exit) -> Options {
        Options {
            segment_base: None,
            dump_asm: None,
            syntax: Syntax::default(),
            nursery: None,
            threads: None,
            gil: false,
            stats: false,
            exit,
        }
    }
}

/// Declares every helper JIT code calls ([`Helper`]) in `jit`, and defines the
/// `preserve_all` stubs of those called through one: what JIT code calls for each helper.
fn declare_helpers(jit: &mut Jit) -> HashMap<Helper, FuncId> {
    let mut ids = HashMap::new();
    for &helper in Helper::ALL {
        let d = helper.decl();
        let returns: &[Type] = if d.returns_word { &[I64] } else { &[] };
        let sig = jit.signature(&vec![I64; d.params], returns);
        let import = jit
            .module()
            .declare_function(d.symbol, Linkage::Import, &sig)
            .expect("declare helper");
        let id = match d.effects {
            Effects::PreserveAll { stub } => jit
                .define_preserve_all_stub(stub, import, d.params)
                .expect("preserve_all stub"),
            Effects::MayMove | Effects::NoMove => import,
        };
        ids.insert(helper, id);
    }
    ids
}

/// Names that occur in the program text as attributes, methods, class members.
fn collect(stmts: &[Stmt], strs: &mut Vec<String>, floats: &mut Vec<f64>, names: &mut Vec<String>) {
    fn expr(e: &Expr, strs: &mut Vec<String>, floats: &mut Vec<f64>, names: &mut Vec<String>) {
        let mut go = |x: &Expr| expr(x, strs, floats, names);
        match &e.kind {
            ExprKind::Str(s) => strs.push(s.to_string()),
            ExprKind::Float(f) => floats.push(*f),
            ExprKind::List(items) => items.iter().for_each(go),
            ExprKind::Dict(items) => items.iter().for_each(|(k, v)| {
                go(k);
                go(v)
            }),
            ExprKind::Unary(_, a) | ExprKind::Not(a) => go(a),
            ExprKind::Binary(_, a, b) | ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                go(a);
                go(b)
            }
            ExprKind::Compare { first, rest } => {
                go(first);
                rest.iter().for_each(|(_, x)| go(x))
            }
            ExprKind::IfElse { cond, then, orelse } => {
                go(cond);
                go(then);
                go(orelse)
            }
            ExprKind::Call { func, args } => {
                go(func);
                args.iter().for_each(go)
            }
            ExprKind::MethodCall { obj, name, args } => {
                names.push(name.clone());
                expr(obj, strs, floats, names);
                args.iter().for_each(|a| expr(a, strs, floats, names))
            }
            ExprKind::Attr { obj, name } => {
                names.push(name.clone());
                expr(obj, strs, floats, names)
            }
            ExprKind::Index { obj, index } => {
                go(obj);
                go(index)
            }
            ExprKind::Slice { obj, lo, hi } => {
                go(obj);
                lo.iter().for_each(|x| go(x));
                hi.iter().for_each(|x| go(x))
            }
            _ => {}
        }
    }
    fn target(t: &Target, strs: &mut Vec<String>, floats: &mut Vec<f64>, names: &mut Vec<String>) {
        match t {
            Target::Name(_) => {}
            Target::Index { obj, index } => {
                expr(obj, strs, floats, names);
                expr(index, strs, floats, names)
            }
            Target::Slice { obj, lo, hi } => {
                expr(obj, strs, floats, names);
                lo.iter().for_each(|x| expr(x, strs, floats, names));
                hi.iter().for_each(|x| expr(x, strs, floats, names))
            }
            Target::Attr { obj, name } => {
                names.push(name.clone());
                expr(obj, strs, floats, names)
            }
        }
    }
    for s in stmts {
        match &s.kind {
            StmtKind::Expr(e) => expr(e, strs, floats, names),
            StmtKind::Assign { targets, value } => {
                targets.iter().for_each(|t| target(t, strs, floats, names));
                expr(value, strs, floats, names)
            }
            StmtKind::AugAssign {
                target: t, value, ..
            } => {
                target(t, strs, floats, names);
                expr(value, strs, floats, names)
            }
            StmtKind::If { cond, body, orelse } => {
                expr(cond, strs, floats, names);
                collect(body, strs, floats, names);
                collect(orelse, strs, floats, names)
            }
            StmtKind::While { cond, body } => {
                expr(cond, strs, floats, names);
                collect(body, strs, floats, names)
            }
            StmtKind::For { iter, body, .. } => {
                expr(iter, strs, floats, names);
                collect(body, strs, floats, names)
            }
            StmtKind::Return(Some(e)) => expr(e, strs, floats, names),
            StmtKind::Del(t) => target(t, strs, floats, names),
            StmtKind::ClassDef {
                base,
                methods,
                attrs,
                ..
            } => {
                base.iter().for_each(|b| expr(b, strs, floats, names));
                methods.iter().for_each(|(n, _)| names.push(n.clone()));
                for (n, e) in attrs {
                    names.push(n.clone());
                    expr(e, strs, floats, names)
                }
            }
            StmtKind::With { kind, body } => {
                if let WithKind::Lock(e) = kind {
                    expr(e, strs, floats, names)
                }
                collect(body, strs, floats, names)
            }
            _ => {}
        }
    }
}

/// Runs `program` (already parsed) as JIT code; returns the exit status (0, or 1 after
/// printing a runtime error). Must run on a thread with a big stack.
pub fn run(program: Program, file: &str, args: Vec<String>, opts: &Options) -> i32 {
    let program = Arc::new(program);
    let nursery = opts
        .nursery
        .or_else(|| std::env::var("STMJIT_NURSERY").ok()?.parse().ok());
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 254);
    let mut config = StmConfig {
        num_segments: if opts.gil { 1 } else { threads },
        move_threads: std::env::var_os("STMJIT_MOVE_THREADS").is_some_and(|v| v == "1"),
        ..StmConfig::default()
    };
    if let Some(n) = nursery {
        config.nursery_size = n;
    }
    let stm = match Stm::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot create the runtime: {e}");
            return 1;
        }
    };
    let types = stmjit_vm::objects::register(&stm);
    let mut th = Box::new(stm.thread());
    th.begin();
    let seg_base = stm.segment_base(th.segment());
    let layout = *stm.layout();
    let th_ptr: *mut stmjit_runtime::StmThread = &mut *th;
    let nfuncs = program.functions.len();
    let heap_limit = (layout.old_end - layout.old_start) / 4 * 3;
    // SAFETY: th is boxed, lives until the end of this function (after rt's last use) and
    // stays on this thread.
    let mut rt = Box::new(unsafe {
        Runtime::new(
            program.clone(),
            file,
            args,
            opts.exit,
            types,
            th_ptr,
            seg_base,
            heap_limit,
        )
    });

    // ----- constants: allocate, root (for the whole run), promote to the old space -----
    let (mut strs, mut floats, mut names) = (Vec::new(), Vec::new(), vec!["__init__".to_string()]);
    collect(&program.body, &mut strs, &mut floats, &mut names);
    for f in program.functions.iter() {
        collect(&f.body, &mut strs, &mut floats, &mut names);
    }
    assert_eq!(rt.name_id("__init__"), rt::INIT_NAME);
    let consts = (|| -> rt::R<_> {
        let globals =
            rt.new_array_of(types.globals_array, program.globals.len() as u64, UNBOUND)?;
        let g = rt.root(globals);
        let mut fr = Vec::new();
        for fid in 0..nfuncs {
            let o = rt.alloc(
                types.function,
                std::mem::size_of::<stmjit_vm::objects::FunctionObj>() as u64,
            )?;
            rt.st(o, 8, fid as u64);
            fr.push(rt.root(o));
        }
        let mut br = Vec::new();
        for k in 0..Builtin::ALL.len() {
            let o = rt.new_builtin(k as u64, NONE, false)?;
            br.push(rt.root(o));
        }
        let mut nr = Vec::new();
        for n in &names {
            let id = rt.name_id(n) as usize;
            if nr.len() <= id {
                let o = rt.new_str(n)?;
                nr.push(rt.root(o));
            }
        }
        let mut sr = Vec::new();
        for s in &strs {
            let o = rt.new_str(s)?;
            sr.push((s.clone(), rt.root(o)));
        }
        let mut flr = Vec::new();
        for f in &floats {
            let o = rt.new_float(*f)?;
            flr.push((f.to_bits(), rt.root(o)));
        }
        Ok((g, fr, br, nr, sr, flr))
    })();
    let Ok((g, fr, br, nr, sr, flr)) = consts else {
        eprintln!("error: MemoryError: cannot allocate the program's constants");
        return 1;
    };
    if th.collect_minor().is_err() {
        eprintln!("error: the initial transaction was aborted");
        return 1;
    }
    rt.info_mut().globals = rt.get(g);
    rt.info_mut().func_objs = fr.iter().map(|&r| rt.get(r)).collect();
    let builtin_objs: Vec<Word> = br.iter().map(|&r| rt.get(r)).collect();
    rt.info_mut().name_strs = nr.iter().map(|&r| rt.get(r)).collect();
    for (s, r) in sr {
        let w = rt.get(r);
        rt.info_mut().str_consts.insert(s, w);
    }
    for (b, r) in flr {
        let w = rt.get(r);
        rt.info_mut().float_consts.insert(b, w);
    }

    // ----- compile -----
    let mode = opts.segment_base.unwrap_or(SegmentBase::Gs);
    let symbols: Vec<(&str, *const u8)> = Helper::ALL
        .iter()
        .map(|h| (h.decl().symbol, h.decl().address))
        .collect();
    let mut jit = match Jit::new(mode, &symbols) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: JIT: {e:?}");
            return 1;
        }
    };
    // A runtime call may move the thread to another segment: JIT code reloads r15 after it.
    jit.allow_reload(crate::gs_rewrite::PinnedReload {
        ctx_param: 0,
        offset: std::mem::offset_of!(crate::rt::Ctx, seg_base) as i32,
    });
    let helper_ids = declare_helpers(&mut jit);
    let mut fids = Vec::new();
    let mut sigs = Vec::new();
    for (i, f) in program.functions.iter().enumerate() {
        let sig = jit.signature(&vec![I64; 1 + f.arity], &[I64]);
        fids.push(
            jit.declare(&format!("f{i}_{}", f.qualname), &sig)
                .expect("declare"),
        );
        sigs.push(sig);
    }
    let main_sig = jit.signature(&[I64], &[I64]);
    let main_id = jit.declare("<module>", &main_sig).expect("declare");
    let mut def_of_global = HashMap::new();
    for s in &program.body {
        if let StmtKind::FunctionDef { func, target } = &s.kind {
            if let Slot::Global(g) = target.slot {
                // Two defs of one name: no direct calls for it.
                if def_of_global.insert(g, *func).is_some() {
                    def_of_global.insert(g, usize::MAX);
                }
            }
        }
    }
    def_of_global.retain(|_, f| *f != usize::MAX);
    let frontend = jit.isa().frontend_config();
    let card_disp = layout.card_marker_disp;
    // Benchmarks only: `STMJIT_BENCH_OMIT=write-barrier,poll` (see `compile::Shared`).
    let omit = std::env::var("STMJIT_BENCH_OMIT").unwrap_or_default();
    let omitted = |what: &str| omit.split(',').any(|w| w.trim() == what);
    let (write_barriers, polls) = (!omitted("write-barrier"), !omitted("poll"));
    let mut fbc = FunctionBuilderContext::new();
    let mut compiled = Vec::new();
    for idx in 0..=nfuncs {
        let (id, sig, arity, locals, body) = if idx < nfuncs {
            let f = &program.functions[idx];
            (
                fids[idx],
                sigs[idx].clone(),
                f.arity,
                f.locals.clone(),
                &f.body,
            )
        } else {
            (main_id, main_sig.clone(), 0, Vec::new(), &program.body)
        };
        let mut func = jit.new_function(id, sig);
        {
            let mut sh = Shared {
                module: jit.module(),
                helpers: &helper_ids,
                funcs: &fids,
                rt: &mut rt,
                def_of_global: &def_of_global,
                builtin_objs: &builtin_objs,
                card_disp,
                frontend,
                read_barriers: !opts.gil,
                write_barriers,
                polls,
            };
            FnCompiler::compile(
                &mut func, &mut fbc, &mut sh, arity, locals, body, idx as u32,
            );
        }
        compiled.push((id, func));
    }
    if std::env::var_os("STMJIT_VERIFY").is_some() {
        for (_, func) in &compiled {
            if let Err(e) = cranelift_codegen::verify_function(func, jit.isa().as_ref()) {
                eprintln!(
                    "{}",
                    cranelift_codegen::print_errors::pretty_verifier_error(func, None, e)
                );
            }
        }
    }
    if let Err(e) = jit.compile_all(compiled) {
        eprintln!("error: JIT: {e}");
        return 1;
    }
    // Array entries: (ctx, argv) -> word, and their trampolines.
    let array_sig = jit.signature(&[I64, I64], &[I64]);
    let mut tramps = Vec::new();
    for (i, f) in program.functions.iter().enumerate() {
        let id = jit
            .declare(&format!("a{i}_{}", f.qualname), &array_sig)
            .expect("declare");
        let mut func = jit.new_function(id, array_sig.clone());
        {
            let callee = jit.module().declare_func_in_func(fids[i], &mut func);
            // Absolute call: cranelift-jit may place functions far apart.
            func.dfg.ext_funcs[callee].colocated = false;
            let mut b = FunctionBuilder::new(&mut func, &mut fbc);
            let blk = b.create_block();
            b.append_block_params_for_function_params(blk);
            b.switch_to_block(blk);
            let p = b.block_params(blk).to_vec();
            let mut vals = vec![p[0]];
            for k in 0..f.arity {
                vals.push(b.ins().load(I64, crate::compile::mf(), p[1], 8 * k as i32));
            }
            let call = b.ins().call(callee, &vals);
            let r = b.inst_results(call)[0];
            b.ins().return_(&[r]);
            b.seal_all_blocks();
            b.finalize(frontend);
        }
        if let Err(e) = jit.compile(id, func) {
            eprintln!("error: JIT: {e}");
            return 1;
        }
        let t = jit
            .define_entry_trampoline(&format!("t{i}_{}", f.qualname), id, &array_sig)
            .expect("trampoline");
        tramps.push(t);
    }
    let main_tramp = jit
        .define_entry_trampoline("enter <module>", main_id, &main_sig)
        .expect("trampoline");
    if let Err(e) = jit.finalize() {
        eprintln!("error: JIT: {e}");
        return 1;
    }
    for (i, &id) in fids.iter().enumerate() {
        rt.info_mut().func_code[i] = jit.code_ptr(id) as u64;
    }
    for (i, t) in tramps.iter().enumerate() {
        // SAFETY: a finalized trampoline with the signature (base, ctx, argv) -> word.
        rt.info_mut().entries[i] =
            Some(unsafe { std::mem::transmute::<*const u8, rt::ArrayEntry>(jit.code_ptr(*t)) });
    }
    if let Some(target) = &opts.dump_asm {
        let text = jit.dump_asm(opts.syntax, |f| {
            srcloc_annotations(&f.srclocs, |loc| match loc.bits() {
                LOC_POLL => Some("safe-point poll".into()),
                LOC_CARD_WB => {
                    Some("card write barrier (flag test, card marker, slow path)".into())
                }
                LOC_LIST_FAST => Some("list index fast path (type and bounds checks)".into()),
                LOC_ALLOC => Some("nursery allocation (bump pointer, limit check)".into()),
                LOC_REGION_REPAIR => {
                    Some("barrier region repair (slow path re-marks, re-tests)".into())
                }
                LOC_ATTR_FAST => {
                    Some("attribute fast path (instance type, cached shape slot)".into())
                }
                _ => None,
            })
        });
        match target {
            None => {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
            Some(path) => {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return 2;
                }
            }
        }
    }

    // ----- run -----
    // The constants are embedded in the code: committed, then roots for the whole run.
    if th.commit().is_err() {
        eprintln!("error: the initial transaction was aborted");
        return 1;
    }
    for &w in rt
        .func_objs
        .iter()
        .chain(&builtin_objs)
        .chain(rt.name_strs.iter())
        .chain(rt.str_consts.values())
        .chain(rt.float_consts.values())
        .chain(std::iter::once(&rt.globals))
    {
        if stmjit_runtime::value::is_ref(w) {
            stm.add_root(w);
        }
    }
    {
        let info = rt.info_mut();
        info.mode = if opts.gil { Mode::Gil } else { Mode::Stm };
        info.sched.stats.store(opts.stats, Relaxed);
        if let Some(b) = env_number::<i64>("STMJIT_BUDGET") {
            info.sched.budget.store(b.max(1) as u64, Relaxed);
        }
        if let Some(p) = env_number::<f64>("STMJIT_ABORT_PROBABILITY") {
            let chance = (p.clamp(0.0, 0.95) * (1u64 << 32) as f64) as u64;
            info.sched.abort_chance.store(chance, Relaxed);
        }
    }
    let info = rt.info.clone();
    drop(rt);
    drop(th);
    type MainEntry = unsafe extern "C" fn(u64, *mut Ctx) -> u64;
    // SAFETY: a finalized trampoline with the signature (base, ctx) -> word.
    let main: MainEntry = unsafe { std::mem::transmute(jit.code_ptr(main_tramp)) };
    let mut driver = rt::threads::Driver::new(info.clone());
    driver.run(
        false,
        // SAFETY: ctx is the driver's live context; seg_base its transaction's segment.
        |ctx| unsafe { main((*ctx).seg_base, ctx) },
        |_, r| r,
    );
    rt::threads::wait_all(&info);
    info.sched.flush();
    rt::stats::print_stats_if_asked(&driver.rt);
    0
}

/// A number from the environment (a debugging or testing switch), if set and valid.
fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Runs the program in `path` (prints diagnostics itself; returns the exit status).
pub fn run_file(path: &std::path::Path, args: Vec<String>, opts: &Options) -> i32 {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return stmjit_lang::EXIT_SYNTAX_ERROR;
        }
    };
    let opts = opts.clone();
    stmjit_lang::stack::on_big_stack(move || match stmjit_lang::parse_bytes(&bytes) {
        Ok(program) => run(program, &name, args, &opts),
        Err(d) => {
            let source = String::from_utf8_lossy(&bytes);
            eprint!("{}", d.render(&name, Some(&source)));
            stmjit_lang::EXIT_SYNTAX_ERROR
        }
    })
}
