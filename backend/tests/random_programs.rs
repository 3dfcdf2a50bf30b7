//! Random programs through the whole path: random IR (segment loads, stores,
//! read markers, flag tests with slow-path calls, arithmetic, branches,
//! counted loops, calls) is compiled by Cranelift in `gs` and in `r15` mode,
//! rewritten, and run with r15 == gs base. The pass must accept every program
//! (the IR follows the conventions), and both modes must return the same value
//! and leave the same segment bytes.

mod common;

use common::*;
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{Linkage, Module};
use proptest::prelude::*;
use stmjit_backend::gs_rewrite::{LeftReason, SegmentBase};
use stmjit_backend::Jit;

const NVARS: usize = 4;
const SEG_SIZE: usize = 1 << 17;

#[derive(Clone, Debug)]
enum Stmt {
    Load {
        dst: usize,
        obj: usize,
        field: i32,
    },
    Store {
        src: usize,
        obj: usize,
        field: i32,
    },
    Marker {
        obj: usize,
        version: i64,
    },
    FlagTest {
        obj: usize,
        dst: usize,
    },
    Arith {
        dst: usize,
        a: usize,
        b: usize,
        op: u8,
    },
    Const {
        dst: usize,
        value: i64,
    },
    Call {
        dst: usize,
        src: usize,
    },
    If {
        cond: usize,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    Loop {
        count: u8,
        body: Vec<Stmt>,
    },
}

fn var() -> impl Strategy<Value = usize> {
    0..NVARS
}

fn stmt() -> impl Strategy<Value = Stmt> {
    let leaf = prop_oneof![
        (var(), var(), 0..4i32).prop_map(|(dst, obj, f)| Stmt::Load {
            dst,
            obj,
            field: 8 * f
        }),
        (var(), var(), 0..4i32).prop_map(|(src, obj, f)| Stmt::Store {
            src,
            obj,
            field: 8 * f
        }),
        (var(), 1..200i64).prop_map(|(obj, version)| Stmt::Marker { obj, version }),
        (var(), var()).prop_map(|(obj, dst)| Stmt::FlagTest { obj, dst }),
        (var(), var(), var(), 0..5u8).prop_map(|(dst, a, b, op)| Stmt::Arith { dst, a, b, op }),
        (var(), any::<i64>()).prop_map(|(dst, value)| Stmt::Const { dst, value }),
        (var(), var()).prop_map(|(dst, src)| Stmt::Call { dst, src }),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (
                var(),
                prop::collection::vec(inner.clone(), 0..4),
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(cond, then, els)| Stmt::If { cond, then, els }),
            (1..5u8, prop::collection::vec(inner, 1..4))
                .prop_map(|(count, body)| Stmt::Loop { count, body }),
        ]
    })
}

extern "C" fn helper(x: i64) -> i64 {
    x.wrapping_mul(3) ^ 0x55
}

struct Gen<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    vars: Vec<Variable>,
    helper: cranelift_codegen::ir::FuncRef,
}

impl Gen<'_, '_> {
    /// An object address inside the segment: (v & 0xfff0) + 0x100.
    fn obj(&mut self, v: usize) -> Value {
        let x = self.b.use_var(self.vars[v]);
        let m = self.b.ins().band_imm_s(x, 0xfff0);
        self.b.ins().iadd_imm_s(m, 0x100)
    }

    fn stmt(&mut self, s: &Stmt) {
        match *s {
            Stmt::Load { dst, obj, field } => {
                let o = self.obj(obj);
                let v = load_field(self.b, o, field);
                self.b.def_var(self.vars[dst], v);
            }
            Stmt::Store { src, obj, field } => {
                let o = self.obj(obj);
                let v = self.b.use_var(self.vars[src]);
                store_field(self.b, o, field, v);
            }
            Stmt::Marker { obj, version } => {
                let o = self.obj(obj);
                let v = self.b.ins().iconst(types::I8, version);
                read_marker(self.b, o, v);
            }
            Stmt::FlagTest { obj, dst } => {
                let o = self.obj(obj);
                let flagged = flag_test(self.b, o);
                let slow = self.b.create_block();
                let join = self.b.create_block();
                self.b.ins().brif(flagged, slow, &[], join, &[]);
                self.b.switch_to_block(slow);
                let c = self.b.ins().call(self.helper, &[o]);
                let r = self.b.inst_results(c)[0];
                self.b.def_var(self.vars[dst], r);
                self.b.ins().jump(join, &[]);
                self.b.switch_to_block(join);
            }
            Stmt::Arith { dst, a, b, op } => {
                let (x, y) = (self.b.use_var(self.vars[a]), self.b.use_var(self.vars[b]));
                let v = match op {
                    0 => self.b.ins().iadd(x, y),
                    1 => self.b.ins().isub(x, y),
                    2 => self.b.ins().imul(x, y),
                    3 => self.b.ins().bxor(x, y),
                    _ => {
                        let s = self.b.ins().band_imm_s(y, 63);
                        self.b.ins().ishl(x, s)
                    }
                };
                self.b.def_var(self.vars[dst], v);
            }
            Stmt::Const { dst, value } => {
                let v = self.b.ins().iconst(types::I64, value);
                self.b.def_var(self.vars[dst], v);
            }
            Stmt::Call { dst, src } => {
                let x = self.b.use_var(self.vars[src]);
                let c = self.b.ins().call(self.helper, &[x]);
                let r = self.b.inst_results(c)[0];
                self.b.def_var(self.vars[dst], r);
            }
            Stmt::If {
                cond,
                ref then,
                ref els,
            } => {
                let c = self.b.use_var(self.vars[cond]);
                let c = self.b.ins().band_imm_s(c, 1);
                let (tb, eb, join) = (
                    self.b.create_block(),
                    self.b.create_block(),
                    self.b.create_block(),
                );
                self.b.ins().brif(c, tb, &[], eb, &[]);
                self.b.switch_to_block(tb);
                then.iter().for_each(|s| self.stmt(s));
                self.b.ins().jump(join, &[]);
                self.b.switch_to_block(eb);
                els.iter().for_each(|s| self.stmt(s));
                self.b.ins().jump(join, &[]);
                self.b.switch_to_block(join);
            }
            Stmt::Loop { count, ref body } => {
                let i = self.b.declare_var(types::I64);
                let zero = self.b.ins().iconst(types::I64, 0);
                self.b.def_var(i, zero);
                let (head, exit) = (self.b.create_block(), self.b.create_block());
                self.b.ins().jump(head, &[]);
                self.b.switch_to_block(head);
                body.iter().for_each(|s| self.stmt(s));
                let iv = self.b.use_var(i);
                let next = self.b.ins().iadd_imm_s(iv, 1);
                self.b.def_var(i, next);
                let more = self
                    .b
                    .ins()
                    .icmp_imm_s(IntCC::SignedLessThan, next, count as i64);
                self.b.ins().brif(more, head, &[], exit, &[]);
                self.b.switch_to_block(exit);
            }
        }
    }
}

/// Compile `prog` as `f(a, b) -> i64` in `mode`; return the JIT and the entry.
fn compile(
    prog: &[Stmt],
    mode: SegmentBase,
) -> (Jit, *const u8, stmjit_backend::gs_rewrite::RewriteStats) {
    let mut jit = Jit::new(mode, &[("helper", helper as *const u8)]).unwrap();
    let sig = jit.signature(&i64s(2), &i64s(1));
    let id = jit.declare("prog", &sig).unwrap();
    let hsig = jit.signature(&i64s(1), &i64s(1));
    let hid = jit
        .module()
        .declare_function("helper", Linkage::Import, &hsig)
        .unwrap();
    let mut func = jit.new_function(id, sig.clone());
    let href = jit.module().declare_func_in_func(hid, &mut func);
    let cfg = jit.isa().frontend_config();
    let mut fbc = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fbc);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let vars: Vec<Variable> = (0..NVARS).map(|_| b.declare_var(types::I64)).collect();
    for (k, &v) in vars.iter().enumerate() {
        b.def_var(v, params[k % 2]);
    }
    let mut g = Gen {
        b: &mut b,
        vars,
        helper: href,
    };
    prog.iter().for_each(|s| g.stmt(s));
    let mut acc = g.b.use_var(g.vars[0]);
    for k in 1..NVARS {
        let v = g.b.use_var(g.vars[k]);
        let m = g.b.ins().imul_imm_s(acc, 31);
        acc = g.b.ins().iadd(m, v);
    }
    b.ins().return_(&[acc]);
    b.seal_all_blocks();
    b.finalize(cfg);
    let stats = jit
        .compile(id, func)
        .unwrap_or_else(|e| panic!("{e}"))
        .rewrite
        .stats
        .clone();
    let entry = jit.define_entry_trampoline("enter", id, &sig).unwrap();
    jit.finalize().unwrap();
    let ptr = jit.code_ptr(entry);
    (jit, ptr, stats)
}

/// Run with r15 == gs == a fresh copy of `init`; return (result, segment).
fn run(ptr: *const u8, init: &[u8], a: u64, b: u64) -> (u64, Vec<u8>) {
    let mut seg = init.to_vec();
    let base = seg.as_mut_ptr() as u64;
    set_gs_base(base);
    let (r, r15) = call_entry(ptr, base, a, b, 0xdead);
    assert_eq!(r15, 0xdead);
    (r, seg)
}

/// Run gs-mode code with gs = a copy of `init` but r15 = another copy: if
/// every access went through gs, the r15 copy is never touched.
fn run_split(ptr: *const u8, init: &[u8], a: u64, b: u64) -> (u64, Vec<u8>, Vec<u8>) {
    let mut seg = init.to_vec();
    let mut decoy = init.to_vec();
    set_gs_base(seg.as_mut_ptr() as u64);
    let (r, r15) = call_entry(ptr, decoy.as_mut_ptr() as u64, a, b, 0xdead);
    assert_eq!(r15, 0xdead);
    (r, seg, decoy)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]
    #[test]
    fn gs_and_r15_modes_agree(prog in prop::collection::vec(stmt(), 1..12), a in any::<u64>(), b in any::<u64>(), seed in any::<u64>()) {
        let _restore = GsGuard::new();
        // Segment contents: pseudo-random bytes, with sparse write-barrier flags.
        let mut init = vec![0u8; SEG_SIZE];
        let mut x = seed | 1;
        for byte in init.iter_mut() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            *byte = (x >> 24) as u8 & 0xfe | ((x & 0x1f == 0) as u8);
        }
        let (_j1, gs_ptr, gs_stats) = compile(&prog, SegmentBase::Gs);
        let (_j2, r15_ptr, _) = compile(&prog, SegmentBase::R15);
        // Every access takes the gs form except those that cannot in place.
        prop_assert!(gs_stats.left.keys().all(|&k| k == LeftReason::WouldGrow), "{}", gs_stats);
        let (r_gs, seg_gs) = run(gs_ptr, &init, a, b);
        let (r_r15, seg_r15) = run(r15_ptr, &init, a, b);
        prop_assert_eq!(r_gs, r_r15);
        prop_assert!(seg_gs == seg_r15, "segments differ");
        if gs_stats.total_left() == 0 {
            // Every access is in gs form: it works with r15 pointing elsewhere.
            let (r_split, seg_split, decoy) = run_split(gs_ptr, &init, a, b);
            prop_assert_eq!(r_split, r_r15);
            prop_assert!(seg_split == seg_r15, "gs segment differs");
            prop_assert!(decoy == init, "r15 segment was touched");
        }
    }
}
