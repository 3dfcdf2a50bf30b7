//! The rewrite on real Cranelift output: the listing shows genuine `gs:`
//! barriers, every instruction boundary is kept, the code really goes through
//! `%gs` when executed, and escapes of the base register are refused.

mod common;

use common::*;
use cranelift_codegen::ir::{self, condcodes::IntCC, types, BlockArg, InstBuilder};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use iced_x86::{Decoder, DecoderOptions, Mnemonic, Register};
use std::sync::atomic::{AtomicU64, Ordering};
use stmjit_backend::disasm::{self, Syntax};
use stmjit_backend::gs_rewrite::{rewrite_with, AccessKind, CopyReads, SegmentBase};
use stmjit_backend::Jit;

static SLOW_CALLS: AtomicU64 = AtomicU64::new(0);

/// The write barrier's slow path: counts, clears the flag is the runtime's
/// job (not done here), returns the object.
extern "C" fn slow_path(obj: i64) -> i64 {
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    obj
}

fn new_jit(mode: SegmentBase) -> Jit {
    Jit::new(mode, &[("slow_path", slow_path as *const u8)]).unwrap()
}

/// `barrier(obj)`: read marker, write-barrier flag test with a call to the
/// slow path, then a field load and a field store.
/// Returns `1000 + slow_path(obj)` if the flag is set, else the field at +8
/// (after storing field+1 at +16).
fn build_barrier(jit: &mut Jit, name: &str) -> (FuncId, ir::Function, ir::Signature) {
    let sig = jit.signature(&i64s(1), &i64s(1));
    let id = jit.declare(name, &sig).unwrap();
    let slow_sig = jit.signature(&i64s(1), &i64s(1));
    let slow_id = jit
        .module()
        .declare_function("slow_path", Linkage::Import, &slow_sig)
        .unwrap();
    let mut func = jit.new_function(id, sig.clone());
    let slow_ref = jit.module().declare_func_in_func(slow_id, &mut func);
    let cfg = jit.isa().frontend_config();
    let mut fbc = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fbc);
    let entry = b.create_block();
    let slow = b.create_block();
    let fast = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let obj = b.block_params(entry)[0];
    let one = b.ins().iconst(types::I8, 1);
    read_marker(&mut b, obj, one);
    let t = flag_test(&mut b, obj);
    b.ins().brif(t, slow, &[], fast, &[]);
    b.switch_to_block(slow);
    let call = b.ins().call(slow_ref, &[obj]);
    let r = b.inst_results(call)[0];
    let r = b.ins().iadd_imm_s(r, 1000);
    b.ins().return_(&[r]);
    b.switch_to_block(fast);
    let f = load_field(&mut b, obj, 8);
    let f1 = b.ins().iadd_imm_s(f, 1);
    store_field(&mut b, obj, 16, f1);
    b.ins().return_(&[f]);
    b.seal_all_blocks();
    b.finalize(cfg);
    (id, func, sig)
}

/// `markloop(n, obj0)`: for i in 0..n { obj = obj0 + 32*i; marker; if flag {cnt+=1} }.
fn build_loop(jit: &mut Jit, name: &str) -> (FuncId, ir::Function, ir::Signature) {
    let sig = jit.signature(&i64s(2), &i64s(1));
    let id = jit.declare(name, &sig).unwrap();
    let mut func = jit.new_function(id, sig.clone());
    let cfg = jit.isa().frontend_config();
    let mut fbc = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fbc);
    let entry = b.create_block();
    let header = b.create_block();
    let flagged = b.create_block();
    let cont = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.append_block_param(header, types::I64);
    b.append_block_param(header, types::I64);
    b.append_block_param(cont, types::I64);
    b.switch_to_block(entry);
    let n = b.block_params(entry)[0];
    let obj0 = b.block_params(entry)[1];
    let zero = b.ins().iconst(types::I64, 0);
    b.ins()
        .jump(header, &[BlockArg::Value(zero), BlockArg::Value(zero)]);
    b.switch_to_block(header);
    let i = b.block_params(header)[0];
    let cnt = b.block_params(header)[1];
    let off = b.ins().ishl_imm_u(i, 5);
    let obj = b.ins().iadd(obj0, off);
    let one = b.ins().iconst(types::I8, 1);
    read_marker(&mut b, obj, one);
    let t = flag_test(&mut b, obj);
    b.ins().brif(t, flagged, &[], cont, &[BlockArg::Value(cnt)]);
    b.switch_to_block(flagged);
    let c1 = b.ins().iadd_imm_s(cnt, 1);
    b.ins().jump(cont, &[BlockArg::Value(c1)]);
    b.switch_to_block(cont);
    let c = b.block_params(cont)[0];
    let i2 = b.ins().iadd_imm_s(i, 1);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, i2, n);
    b.ins().brif(
        more,
        header,
        &[BlockArg::Value(i2), BlockArg::Value(c)],
        exit,
        &[],
    );
    b.switch_to_block(exit);
    b.ins().return_(&[c]);
    b.seal_all_blocks();
    b.finalize(cfg);
    (id, func, sig)
}

fn dump(jit: &Jit, id: FuncId, syntax: Syntax) -> String {
    let f = jit.function(id).unwrap();
    let code = jit.final_code(id).unwrap();
    disasm::dump_function(f, code, jit.code_ptr(id) as u64, syntax, &[])
}

#[test]
fn dump_asm_shows_gs_barriers() {
    let mut jit = new_jit(SegmentBase::Gs);
    let (bid, bfunc, _) = build_barrier(&mut jit, "barrier");
    let (lid, lfunc, _) = build_loop(&mut jit, "markloop");
    jit.compile(bid, bfunc).unwrap();
    jit.compile(lid, lfunc).unwrap();
    jit.finalize().unwrap();
    for id in [bid, lid] {
        let intel = dump(&jit, id, Syntax::Intel);
        let att = dump(&jit, id, Syntax::Att);
        println!("{intel}\n{att}");
        assert!(
            intel.contains("mov byte ptr gs:["),
            "no gs marker store:\n{intel}"
        );
        assert!(intel.contains("byte ptr gs:["), "{intel}");
        assert!(intel.contains("read barrier"), "{intel}");
        assert!(intel.contains("write barrier"), "{intel}");
        assert!(att.contains("movb $1,%gs:("), "{att}");
        assert!(att.contains("%gs:2("), "no gs flag byte load:\n{att}");
        let stats = &jit.function(id).unwrap().rewrite.stats;
        assert_eq!(stats.total_left(), 0, "{stats}");
        assert!(stats.rewritten[&AccessKind::Store] >= 1);
    }
    let all = disasm::dump_asm(&jit, Syntax::Att, |_| true, |_| Default::default()).unwrap();
    assert!(all.contains("; function barrier:") && all.contains("; function markloop:"));
    assert!(all.starts_with(disasm::LEGEND), "{all}");
    // The loop's back-edge jumps to a label, never to an absolute address.
    assert!(all.contains("\n.L1:\n"), "{all}");
    assert!(!all.contains("0x7f"), "{all}");
    let only = disasm::dump_asm(
        &jit,
        Syntax::Att,
        |f| f.name == "markloop",
        |_| Default::default(),
    )
    .unwrap();
    assert!(only.contains("; function markloop:") && !only.contains("; function barrier:"));
    assert!(disasm::dump_asm(&jit, Syntax::Att, |_| false, |_| Default::default()).is_none());
    let code = &all[disasm::LEGEND.len()..];
    assert_eq!(code.matches("read barrier").count(), 2, "{all}");
    let st = &jit.function(bid).unwrap().rewrite.stats;
    // marker store + field store, flag load + field load
    assert_eq!(st.rewritten.get(&AccessKind::Store), Some(&2), "{st}");
    assert_eq!(st.rewritten.get(&AccessKind::Load), Some(&2), "{st}");
    assert_eq!(st.copies, 4, "{st}");
    // The write-barrier annotation covers the flag load, its test and the branch.
    let f = jit.function(bid).unwrap();
    let ann = disasm::barrier_annotations(&f.rewrite.accesses, &f.rewrite.code);
    let wb = ann
        .iter()
        .find(|a| a.label.starts_with(disasm::WRITE_BARRIER))
        .unwrap();
    let mut d = Decoder::with_ip(
        64,
        &f.rewrite.code[wb.range.start as usize..wb.range.end as usize],
        0,
        DecoderOptions::NONE,
    );
    let seq: Vec<Mnemonic> = d
        .iter()
        .map(|i| i.mnemonic())
        .filter(|&m| m != Mnemonic::Nop)
        .collect();
    assert_eq!(seq.last(), Some(&Mnemonic::Jne), "{seq:?}");
    assert!(seq.contains(&Mnemonic::Test), "{seq:?}");
}

const SENTINEL: u64 = 0x5E57_1AE1_0000_0015;

fn write_i64(seg: &mut [u8], off: usize, v: i64) {
    seg[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn read_i64(seg: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(seg[off..off + 8].try_into().unwrap())
}

/// Compile `barrier` and `markloop` in `mode`, with entry trampolines.
fn compiled(mode: SegmentBase) -> (Jit, *const u8, *const u8) {
    let mut jit = new_jit(mode);
    let (bid, bfunc, bsig) = build_barrier(&mut jit, "barrier");
    let (lid, lfunc, lsig) = build_loop(&mut jit, "markloop");
    jit.compile(bid, bfunc).unwrap();
    jit.compile(lid, lfunc).unwrap();
    let eb = jit
        .define_entry_trampoline("enter_barrier", bid, &bsig)
        .unwrap();
    let el = jit
        .define_entry_trampoline("enter_markloop", lid, &lsig)
        .unwrap();
    jit.finalize().unwrap();
    let (pb, pl) = (jit.code_ptr(eb), jit.code_ptr(el));
    (jit, pb, pl)
}

#[test]
fn executed_code_really_goes_through_gs() {
    let _restore = GsGuard::new();
    let mut seg1 = vec![0u8; 1 << 20];
    let mut seg2 = vec![0u8; 1 << 20];
    let (base1, base2) = (seg1.as_mut_ptr() as u64, seg2.as_mut_ptr() as u64);
    let obj = 0x1230usize;
    write_i64(&mut seg1, obj + 8, 41);
    write_i64(&mut seg2, obj + 8, 99);

    for mode in [SegmentBase::Gs, SegmentBase::R15] {
        for seg in [&mut seg1, &mut seg2] {
            seg[obj >> 4] = 0;
            write_i64(seg, obj + 16, 0);
        }
        let (_jit, barrier, markloop) = compiled(mode);

        // The invariant holds: r15 == gs base == seg1.
        set_gs_base(base1);
        if has_fsgsbase() {
            assert_eq!(rdgsbase(), base1);
        }
        let (r, r15) = call_entry(barrier, base1, obj as u64, 0, SENTINEL);
        assert_eq!((r, r15), (41, SENTINEL), "{mode:?}: result, r15 restored");
        assert_eq!(seg1[obj >> 4], 1, "read marker in seg1");
        assert_eq!(read_i64(&seg1, obj + 16), 42);
        assert_eq!(seg2[obj >> 4], 0);

        // Break the invariant on purpose: r15 = seg1 but gs = seg2. The gs
        // form reads and writes seg2, the r15 form still seg1. (Switched with
        // `wrgsbase` where the CPU and kernel allow it from user mode.)
        if has_fsgsbase() {
            wrgsbase(base2);
            assert_eq!(gs_base(), base2);
        } else {
            set_gs_base(base2);
        }
        let (r, r15) = call_entry(barrier, base1, obj as u64, 0, SENTINEL);
        assert_eq!(r15, SENTINEL);
        match mode {
            SegmentBase::Gs => {
                assert_eq!(r, 99, "field read through gs");
                assert_eq!(seg2[obj >> 4], 1, "marker landed in the gs segment");
                assert_eq!(read_i64(&seg2, obj + 16), 100);
            }
            SegmentBase::R15 => {
                assert_eq!(r, 41, "field read through r15");
                assert_eq!(seg2[obj >> 4], 0);
                assert_eq!(read_i64(&seg2, obj + 16), 0);
            }
        }

        // Write-barrier flag set in the gs segment: the slow path is called.
        set_gs_base(base1);
        seg1[obj + 2] = 1;
        let before = SLOW_CALLS.load(Ordering::SeqCst);
        let (r, r15) = call_entry(barrier, base1, obj as u64, 0, SENTINEL);
        assert_eq!((r, r15), (1000 + obj as u64, SENTINEL));
        assert!(SLOW_CALLS.load(Ordering::SeqCst) > before);
        seg1[obj + 2] = 0;

        // The loop: 1000 markers, every 7th object flagged, all in seg2 via gs.
        set_gs_base(base2);
        let obj0 = 0x4_0000usize;
        for i in (0..1000).step_by(7) {
            seg2[obj0 + 32 * i + 2] = 1;
        }
        let (cnt, r15) = call_entry(markloop, base2, 1000, obj0 as u64, SENTINEL);
        assert_eq!((cnt, r15), (143, SENTINEL));
        assert!((0..1000).all(|i| seg2[(obj0 + 32 * i) >> 4] == 1));
        for i in 0..1000 {
            seg2[(obj0 + 32 * i) >> 4] = 0;
            seg2[obj0 + 32 * i + 2] = 0;
        }
    }
}

/// Instruction starts and instructions of `code` between `starts` (what the
/// pass decoded).
fn decode_all(code: &[u8], end: u32) -> Vec<iced_x86::Instruction> {
    Decoder::with_ip(64, &code[..end as usize], 0, DecoderOptions::NONE)
        .iter()
        .collect()
}

#[test]
fn rewrite_keeps_every_instruction_boundary() {
    let (jit, _, _) = compiled(SegmentBase::Gs);
    let (mut checked, mut removed) = (0, 0);
    for f in jit.functions().filter(|f| !f.is_trampoline) {
        // The rewrite alone (the module then removes dead copies: checked below).
        let rw = &rewrite_with(
            &f.original,
            &f.block_starts,
            SegmentBase::Gs,
            CopyReads::Count,
        )
        .unwrap();
        let before = decode_all(&f.original, rw.code_end);
        let after = decode_all(&rw.code, rw.code_end);
        let after_starts: std::collections::BTreeMap<u64, &iced_x86::Instruction> =
            after.iter().map(|i| (i.ip(), i)).collect();
        for i in &before {
            let j = after_starts
                .get(&i.ip())
                .unwrap_or_else(|| panic!("{}: boundary {:#x} lost", f.name, i.ip()));
            let range = i.ip() as usize..i.next_ip() as usize;
            match rw.accesses.iter().find(|a| a.offset as u64 == i.ip()) {
                None => assert_eq!(
                    f.original[range.clone()],
                    rw.code[range],
                    "{}: untouched bytes",
                    f.name
                ),
                Some(a) => {
                    assert!(a.left.is_none());
                    assert_eq!(j.segment_prefix(), Register::GS);
                    assert_eq!(j.mnemonic(), i.mnemonic());
                    assert_eq!(j.len() + a.nop_bytes as usize, i.len());
                    // Only NOPs fill the rest of the original instruction.
                    let mut off = j.next_ip();
                    while off < i.next_ip() {
                        let n = after_starts[&off];
                        assert_eq!(n.mnemonic(), Mnemonic::Nop);
                        off = n.next_ip();
                    }
                    assert_eq!(off, i.next_ip());
                    checked += 1;
                }
            }
        }
        assert_eq!(f.original.len(), rw.code.len());
        assert_eq!(
            f.original[rw.code_end as usize..],
            rw.code[rw.code_end as usize..]
        );
        // The final code: the rewrite's instructions in order, less the copies removed,
        // same length, same tail, every block start still an instruction start.
        let fin = &f.rewrite;
        assert_eq!(fin.code.len(), rw.code.len());
        assert_eq!(
            fin.code[fin.code_end as usize..],
            rw.code[rw.code_end as usize..]
        );
        let text = |i: &iced_x86::Instruction| format!("{i}");
        let kept: Vec<_> = decode_all(&fin.code, fin.code_end)
            .iter()
            .map(|i| (i.ip(), text(i)))
            .collect();
        let mut k = 0;
        let mut skipped = 0;
        for i in &after {
            if kept.get(k).is_some_and(|(_, t)| *t == text(i)) {
                k += 1;
            } else {
                assert!(
                    text(i).starts_with("mov") && text(i).ends_with(",r15"),
                    "{}: {i} lost",
                    f.name
                );
                skipped += 1;
            }
        }
        assert_eq!(
            (k, skipped),
            (kept.len(), fin.stats.copies_removed),
            "{}",
            f.name
        );
        let starts: std::collections::BTreeSet<u64> = kept.iter().map(|(ip, _)| *ip).collect();
        assert!(f
            .block_starts
            .iter()
            .all(|b| *b >= fin.code_end || starts.contains(&(*b as u64))));
        removed += skipped;
    }
    assert_eq!(checked, 6);
    assert!(removed > 0, "the test functions have dead copies to remove");
}

/// Allocation fast path and safe-point poll, tagged with source locations
/// that the listing turns into comments.
#[test]
fn srcloc_tags_mark_allocation_and_poll_sequences() {
    use cranelift_codegen::ir::{MemFlagsData, SourceLoc};
    const ALLOC: u32 = 1;
    const POLL: u32 = 2;
    let mut jit = new_jit(SegmentBase::Gs);
    let sig = jit.signature(&i64s(1), &i64s(1));
    let id = jit.declare("alloc_poll", &sig).unwrap();
    let mut func = jit.new_function(id, sig);
    let cfg = jit.isa().frontend_config();
    let mut fbc = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fbc);
    let entry = b.create_block();
    let slow = b.create_block();
    let fast = b.create_block();
    let done = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let size = b.block_params(entry)[0];
    // nursery bump: cur = gs:[0x40]; new = cur + size; if new > gs:[0x48] slow
    b.set_srcloc(SourceLoc::new(ALLOC));
    let p = b.ins().get_pinned_reg(types::I64);
    let cur = b.ins().load(types::I64, MemFlagsData::trusted(), p, 0x40);
    let new = b.ins().iadd(cur, size);
    let p = b.ins().get_pinned_reg(types::I64);
    let end = b.ins().load(types::I64, MemFlagsData::trusted(), p, 0x48);
    let over = b.ins().icmp(IntCC::UnsignedGreaterThan, new, end);
    b.ins().brif(over, slow, &[], fast, &[]);
    b.switch_to_block(fast);
    let p = b.ins().get_pinned_reg(types::I64);
    b.ins().store(MemFlagsData::trusted(), new, p, 0x40);
    b.set_srcloc(SourceLoc::default());
    b.ins().jump(done, &[]);
    b.switch_to_block(slow);
    b.ins().jump(done, &[]);
    b.switch_to_block(done);
    // poll: gs:[0x50] -= 1
    b.set_srcloc(SourceLoc::new(POLL));
    let p = b.ins().get_pinned_reg(types::I64);
    let budget = b.ins().load(types::I64, MemFlagsData::trusted(), p, 0x50);
    let budget = b.ins().iadd_imm_s(budget, -1);
    let p = b.ins().get_pinned_reg(types::I64);
    b.ins().store(MemFlagsData::trusted(), budget, p, 0x50);
    b.set_srcloc(SourceLoc::default());
    b.ins().return_(&[cur]);
    b.seal_all_blocks();
    b.finalize(cfg);
    jit.compile(id, func).unwrap();
    jit.finalize().unwrap();
    let f = jit.function(id).unwrap();
    let labels = |loc: SourceLoc| match loc.bits() {
        ALLOC => Some("allocation fast path".to_string()),
        POLL => Some("safe-point poll".to_string()),
        _ => None,
    };
    let extra = disasm::srcloc_annotations(&f.srclocs, labels);
    let text = disasm::dump_function(f, jit.final_code(id).unwrap(), 0, Syntax::Intel, &extra);
    println!("{text}");
    assert!(text.contains("; allocation fast path"), "{text}");
    assert!(text.contains("; safe-point poll"), "{text}");
    // Constant-offset segment accesses cannot take the gs form in place.
    assert!(f
        .rewrite
        .accesses
        .iter()
        .all(|a| a.left == Some(stmjit_backend::gs_rewrite::LeftReason::WouldGrow)));
    assert!(text.contains("(r15)"), "{text}");
    let alloc = extra
        .iter()
        .find(|a| a.label == "allocation fast path")
        .unwrap();
    let loads_in_alloc = f
        .rewrite
        .accesses
        .iter()
        .filter(|a| alloc.range.contains(&a.offset))
        .count();
    assert!(loads_in_alloc >= 2, "{extra:?}");
}

/// GC references declared with `declare_value_needs_stack_map` are reported
/// at the call's return address, in the compiled function's side table.
#[test]
fn stack_maps_are_kept() {
    let mut jit = new_jit(SegmentBase::Gs);
    let sig = jit.signature(&i64s(2), &i64s(1));
    let id = jit.declare("with_roots", &sig).unwrap();
    let slow_sig = jit.signature(&i64s(1), &i64s(1));
    let slow_id = jit
        .module()
        .declare_function("slow_path", Linkage::Import, &slow_sig)
        .unwrap();
    let mut func = jit.new_function(id, sig);
    let slow_ref = jit.module().declare_func_in_func(slow_id, &mut func);
    let cfg = jit.isa().frontend_config();
    let mut fbc = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fbc);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let (x, y) = (b.block_params(entry)[0], b.block_params(entry)[1]);
    b.declare_value_needs_stack_map(x);
    b.declare_value_needs_stack_map(y);
    let c = b.ins().call(slow_ref, &[x]);
    let r = b.inst_results(c)[0];
    let s = b.ins().iadd(r, x);
    let s = b.ins().iadd(s, y);
    b.ins().return_(&[s]);
    b.seal_all_blocks();
    b.finalize(cfg);
    let f = jit.compile(id, func).unwrap();
    let map = &f.stack_maps;
    assert_eq!(map.len(), 1, "{map:?}");
    assert_eq!(map[0].slots.len(), 2, "{map:?}");
    // The return address follows a call instruction.
    let call = decode_all(&f.rewrite.code, f.rewrite.code_end)
        .into_iter()
        .find(|i| i.next_ip() == map[0].return_offset as u64)
        .unwrap();
    assert_eq!(call.mnemonic(), Mnemonic::Call);
}

/// Not a test: how much the pass adds to compile time (run with
/// `cargo test --release -p stmjit-jit --test cranelift_rewrite -- --ignored --nocapture`).
#[test]
#[ignore]
fn measure_rewrite_cost() {
    use std::time::Instant;
    let mut jit = new_jit(SegmentBase::Gs);
    let (_, bfunc, _) = build_barrier(&mut jit, "barrier");
    let (_, lfunc, _) = build_loop(&mut jit, "markloop");
    for (name, func) in [("barrier", bfunc), ("markloop", lfunc)] {
        let n = 2000;
        let t = Instant::now();
        let mut e = None;
        for _ in 0..n {
            e = Some(stmjit_backend::module::emit(jit.isa(), func.clone()).unwrap());
        }
        let compile = t.elapsed() / n;
        let e = e.unwrap();
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                stmjit_backend::gs_rewrite::rewrite(&e.bytes, &e.block_starts, SegmentBase::Gs)
                    .unwrap(),
            );
        }
        let rewrite = t.elapsed() / n;
        println!(
            "{name}: {} bytes, Cranelift compile {compile:?}, gs rewrite {rewrite:?} ({:.1}%)",
            e.bytes.len(),
            100.0 * rewrite.as_secs_f64() / compile.as_secs_f64()
        );
    }
}

/// Real code shapes that put data in or after the code: a `br_table` (inline
/// jump table), float constants (constant pool after the code), a
/// conditional trap (trap stub after the code). Every segment access in them
/// is still found and rewritten, and the function runs correctly.
#[test]
fn jump_tables_constants_and_trap_stubs() {
    use cranelift_codegen::ir::{JumpTableData, TrapCode};
    let _restore = GsGuard::new();
    let mut jit = new_jit(SegmentBase::Gs);
    let sig = jit.signature(&i64s(2), &i64s(1));
    let id = jit.declare("shapes", &sig).unwrap();
    let mut func = jit.new_function(id, sig.clone());
    let cfg = jit.isa().frontend_config();
    let mut fbc = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fbc);
    let entry = b.create_block();
    let arms: Vec<_> = (0..4).map(|_| b.create_block()).collect();
    let dflt = b.create_block();
    let join = b.create_block();
    b.append_block_param(join, types::I64);
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let (sel, obj) = (b.block_params(entry)[0], b.block_params(entry)[1]);
    // trap if sel == 99 (a deferred trap stub)
    let is99 = b.ins().icmp_imm_s(IntCC::Equal, sel, 99);
    b.ins().trapnz(is99, TrapCode::unwrap_user(1));
    let sel32 = b.ins().ireduce(types::I32, sel);
    let dblock = b.func.dfg.block_call(dflt, &[]);
    let calls: Vec<_> = arms
        .iter()
        .map(|&a| b.func.dfg.block_call(a, &[]))
        .collect();
    let jt = b.create_jump_table(JumpTableData::new(dblock, &calls));
    b.ins().br_table(sel32, jt);
    for (k, &arm) in arms.iter().enumerate() {
        b.switch_to_block(arm);
        let v = b.ins().iconst(types::I8, k as i64 + 1);
        read_marker(&mut b, obj, v);
        let f = load_field(&mut b, obj, 8 * k as i32);
        // a float constant from the constant pool: f * 1.5 truncated
        let x = b.ins().fcvt_from_sint(types::F64, f);
        let c = b.ins().f64const(1.5);
        let y = b.ins().fmul(x, c);
        let r = b.ins().fcvt_to_sint_sat(types::I64, y);
        b.ins().jump(join, &[BlockArg::Value(r)]);
    }
    b.switch_to_block(dflt);
    let z = b.ins().iconst(types::I64, -1);
    b.ins().jump(join, &[BlockArg::Value(z)]);
    b.switch_to_block(join);
    let r = b.block_params(join)[0];
    b.ins().return_(&[r]);
    b.seal_all_blocks();
    b.finalize(cfg);
    let f = jit.compile(id, func).unwrap();
    let text = disasm::dump_function(f, &f.rewrite.code, 0, Syntax::Intel, &[]);
    println!("{text}");
    assert_eq!(f.rewrite.stats.total_left(), 0, "{}", f.rewrite.stats);
    assert_eq!(f.rewrite.stats.total_rewritten(), 8, "{}", f.rewrite.stats);
    assert!(
        (f.rewrite.code_end as usize) < f.rewrite.code.len(),
        "constants/stubs after the code"
    );
    // The inline jump table is listed as data, not as instructions.
    assert!(text.contains("bytes of data"), "{text}");
    assert!(!text.contains("(bad)"), "{text}");
    let entry = jit
        .define_entry_trampoline("enter_shapes", id, &sig)
        .unwrap();
    jit.finalize().unwrap();
    let ptr = jit.code_ptr(entry);
    let mut seg = vec![0u8; 1 << 16];
    let base = seg.as_mut_ptr() as u64;
    let obj = 0x800usize;
    for k in 0..4 {
        write_i64(&mut seg, obj + 8 * k, 10 * (k as i64 + 1));
    }
    set_gs_base(base);
    for k in 0..4u64 {
        let (r, r15) = call_entry(ptr, base, k, obj as u64, SENTINEL);
        assert_eq!((r, r15), (15 * (k + 1), SENTINEL));
        assert_eq!(seg[obj >> 4], k as u8 + 1);
    }
    assert_eq!(call_entry(ptr, base, 7, obj as u64, SENTINEL).0, u64::MAX);
}

/// Not a test: the barrier loop (`markloop`: marker store + flag test per
/// object) in gs and r15 form, ns per iteration (run like
/// `measure_rewrite_cost`).
#[test]
#[ignore]
fn measure_gs_vs_r15_loop() {
    use std::time::Instant;
    let _restore = GsGuard::new();
    let mut seg = vec![0u8; 1 << 20];
    let base = seg.as_mut_ptr() as u64;
    set_gs_base(base);
    let (n, reps) = (10_000u64, 5_000);
    for round in 0..2 {
        for mode in [SegmentBase::Gs, SegmentBase::R15] {
            let (_jit, _, markloop) = compiled(mode);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps {
                    let (cnt, _) = call_entry(markloop, base, n, 0x10000, SENTINEL);
                    assert_eq!(cnt, 0);
                }
                best = best.min(t.elapsed().as_secs_f64() * 1e9 / (n * reps) as f64);
            }
            if round == 1 {
                println!(
                    "markloop {mode:?}: {best:.3} ns/iteration (best of 5, {} iterations each)",
                    n * reps
                );
            }
        }
    }
    assert!(seg.contains(&1));
}
