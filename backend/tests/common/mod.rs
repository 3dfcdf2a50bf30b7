//! Helpers shared by the integration tests: building IR with the segment
//! conventions, and switching this thread's `%gs` base safely.
#![allow(dead_code)]

use cranelift_codegen::ir::{self, types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

/// Offset of the flags byte in an object header (as the write barrier tests it).
pub const FLAGS: i32 = 2;
/// The write-barrier bit in the flags byte.
pub const WRITE_BARRIER: i64 = 1;

/// `get_pinned_reg + off`: a segment address, the compiler's convention (one
/// fresh `get_pinned_reg` per access).
pub fn seg_addr(b: &mut FunctionBuilder, off: Value) -> Value {
    let p = b.ins().get_pinned_reg(types::I64);
    b.ins().iadd(p, off)
}

/// Read barrier: `gs:[obj >> 4] = version` (a byte store).
pub fn read_marker(b: &mut FunctionBuilder, obj: Value, version: Value) {
    let off = b.ins().ushr_imm_u(obj, 4);
    let a = seg_addr(b, off);
    b.ins().store(MemFlagsData::trusted(), version, a, 0);
}

/// Write-barrier test: `gs:[obj + FLAGS] & WRITE_BARRIER` (non-zero = slow path).
pub fn flag_test(b: &mut FunctionBuilder, obj: Value) -> Value {
    let a = seg_addr(b, obj);
    let f = b.ins().load(types::I8, MemFlagsData::trusted(), a, FLAGS);
    b.ins().band_imm_u(f, WRITE_BARRIER)
}

/// Load an i64 field at `gs:[obj + off]`.
pub fn load_field(b: &mut FunctionBuilder, obj: Value, off: i32) -> Value {
    let a = seg_addr(b, obj);
    b.ins().load(types::I64, MemFlagsData::trusted(), a, off)
}

/// Store an i64 field at `gs:[obj + off]`.
pub fn store_field(b: &mut FunctionBuilder, obj: Value, off: i32, v: Value) {
    let a = seg_addr(b, obj);
    b.ins().store(MemFlagsData::trusted(), v, a, off);
}

pub fn i64s(n: usize) -> Vec<ir::Type> {
    vec![types::I64; n]
}

const ARCH_SET_GS: i32 = 0x1001;
const ARCH_GET_GS: i32 = 0x1004;

/// This thread's `%gs` base.
pub fn gs_base() -> u64 {
    let mut v: u64 = 0;
    // SAFETY: ARCH_GET_GS writes one u64 to the valid pointer we pass.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_GS, &mut v as *mut u64) };
    assert_eq!(r, 0, "arch_prctl(ARCH_GET_GS)");
    v
}

/// Set this thread's `%gs` base (Rust code on x86-64 Linux does not use gs).
pub fn set_gs_base(base: u64) {
    // SAFETY: ARCH_SET_GS only changes this thread's gs base, which nothing
    // in this process uses except the JIT code under test.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, base) };
    assert_eq!(r, 0, "arch_prctl(ARCH_SET_GS)");
}

/// Whether user mode may use rdgsbase/wrgsbase (AT_HWCAP2 bit 1, FSGSBASE).
pub fn has_fsgsbase() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_HWCAP2) & 2 != 0 }
}

/// Read the gs base with `rdgsbase` (only if [`has_fsgsbase`]).
pub fn rdgsbase() -> u64 {
    assert!(has_fsgsbase());
    let v: u64;
    // SAFETY: FSGSBASE is enabled for user mode (checked above); rdgsbase
    // only reads this thread's gs base.
    unsafe { std::arch::asm!("rdgsbase {}", out(reg) v, options(nomem, nostack)) };
    v
}

/// Set the gs base with `wrgsbase` (only if [`has_fsgsbase`]).
pub fn wrgsbase(v: u64) {
    assert!(has_fsgsbase());
    // SAFETY: FSGSBASE is enabled for user mode (checked above); wrgsbase
    // only changes this thread's gs base, which nothing but the JIT code
    // under test uses.
    unsafe { std::arch::asm!("wrgsbase {}", in(reg) v, options(nomem, nostack)) };
}

/// Restores the thread's original gs base when dropped (also on panic).
pub struct GsGuard(u64);

impl GsGuard {
    pub fn new() -> GsGuard {
        GsGuard(gs_base())
    }
}

impl Drop for GsGuard {
    fn drop(&mut self) {
        set_gs_base(self.0);
    }
}

/// Call an entry trampoline `f(base, x, y) -> i64` (functions with fewer
/// parameters ignore the extra ones) with r15 set to a sentinel, and return
/// (result, r15 after the call): the trampoline must give r15 back.
pub fn call_entry(f: *const u8, base: u64, x: u64, y: u64, sentinel: u64) -> (u64, u64) {
    let ret: u64;
    let after: u64;
    // SAFETY: `f` is a finalized trampoline with signature
    // extern "sysv64" fn(i64, i64[, i64]) -> i64; the stack is call-aligned on entry
    // to an asm block without `nostack`; every register the C ABI lets the
    // callee clobber is declared clobbered, and r15 is an in/out operand.
    unsafe {
        std::arch::asm!(
            "call r11",
            inout("r11") f => _,
            inout("rdi") base => _,
            inout("rsi") x => _,
            inout("rdx") y => _,
            inout("r15") sentinel => after,
            lateout("rax") ret,
            clobber_abi("C"),
        );
    }
    (ret, after)
}

/// Emits a few instructions with iced-x86's assembler (hand-written test code).
pub type Asm = fn(&mut iced_x86::code_asm::CodeAssembler) -> Result<(), iced_x86::IcedError>;

/// The bytes of `body` assembled at address 0.
pub fn assemble(
    body: impl FnOnce(&mut iced_x86::code_asm::CodeAssembler) -> Result<(), iced_x86::IcedError>,
) -> Vec<u8> {
    let mut a = iced_x86::code_asm::CodeAssembler::new(64).unwrap();
    body(&mut a).unwrap();
    a.assemble(0).unwrap()
}

/// The instructions of `code` in Intel syntax, NOPs included, one string each.
pub fn texts(code: &[u8]) -> Vec<String> {
    use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
    let mut f = IntelFormatter::new();
    Decoder::with_ip(64, code, 0, DecoderOptions::NONE)
        .iter()
        .map(|i: Instruction| {
            let mut s = String::new();
            f.format(&i, &mut s);
            s
        })
        .collect()
}
