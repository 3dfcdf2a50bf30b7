//! Setting and using the `%gs` segment base.
//!
//! The runtime's Rust barriers go through real `gs:`-relative instructions, the same ones the
//! JIT emits, so that the Rust API exercises the same path.
//!
//! Two ways to set the base: the `arch_prctl(ARCH_SET_GS)` system call, and the `wrgsbase`
//! instruction, usable from user mode when the kernel advertises FSGSBASE in `AT_HWCAP2`.
//! `benches/stm.rs` measures both (`gs_switch/*`); `wrgsbase` is about two orders of magnitude
//! faster (no system call), so it is used whenever it is available.

use std::arch::asm;
use std::cell::Cell;
use std::sync::OnceLock;

const ARCH_SET_GS: libc::c_int = 0x1001;
const ARCH_GET_GS: libc::c_int = 0x1004;
const HWCAP2_FSGSBASE: libc::c_ulong = 1 << 1;

/// How the `%gs` base is set on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsMethod {
    /// `wrgsbase` instruction (FSGSBASE available).
    WrGsBase,
    /// `arch_prctl(ARCH_SET_GS)` system call.
    ArchPrctl,
}

/// Returns whether the CPU and kernel allow `wrgsbase`/`rdgsbase` from user mode.
pub fn fsgsbase_available() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_HWCAP2) & HWCAP2_FSGSBASE != 0 }
}

/// The method the runtime uses (the faster one available), decided once per process.
pub fn method() -> GsMethod {
    static M: OnceLock<GsMethod> = OnceLock::new();
    *M.get_or_init(|| {
        let forced = std::env::var("STMJIT_GS_ARCH_PRCTL").is_ok_and(|v| v.trim() == "1");
        if !forced && fsgsbase_available() {
            GsMethod::WrGsBase
        } else {
            GsMethod::ArchPrctl
        }
    })
}

thread_local! {
    /// The `%gs` base this thread last set through this module (0 = never set).
    static CURRENT_GS: Cell<u64> = const { Cell::new(0) };
}

/// Sets the `%gs` base of the calling thread with the given method (for benches).
pub fn set_gs_base_with(m: GsMethod, base: u64) {
    match m {
        GsMethod::WrGsBase => {
            assert!(
                fsgsbase_available(),
                "stmjit: wrgsbase not available on this CPU/kernel"
            );
            // SAFETY: FSGSBASE is enabled (checked above); %gs is not used by Rust or glibc
            // on x86-64 Linux (TLS is %fs), so changing it cannot break other code.
            unsafe { asm!("wrgsbase {}", in(reg) base, options(nostack, preserves_flags)) };
        }
        GsMethod::ArchPrctl => {
            // SAFETY: ARCH_SET_GS only changes this thread's %gs base, which nothing but this
            // runtime uses on x86-64 Linux.
            let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, base) };
            assert_eq!(
                r,
                0,
                "stmjit: arch_prctl(ARCH_SET_GS) failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Makes `%gs` point at `base` in the calling thread (no-op when it already does).
#[inline]
pub fn set_gs_base(base: u64) {
    if CURRENT_GS.with(|c| c.get()) != base {
        set_gs_base_with(method(), base);
        CURRENT_GS.with(|c| c.set(base));
    }
}

/// Reads the `%gs` base of the calling thread from the kernel/CPU (for tests).
pub fn get_gs_base() -> u64 {
    let mut v: u64 = 0;
    // SAFETY: ARCH_GET_GS writes one u64 to the pointer we pass, which is valid.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_GS, &mut v as *mut u64) };
    assert_eq!(r, 0);
    v
}

/// `mov byte gs:[off], v`.
///
/// # Safety
/// `%gs` must point at a segment in which `off` is mapped writable.
#[inline(always)]
pub unsafe fn store_u8(off: u64, v: u8) {
    // SAFETY: the caller's contract: `off` is mapped writable in the segment at `%gs`.
    unsafe {
        asm!("mov byte ptr gs:[{0}], {1}", in(reg) off, in(reg_byte) v, options(nostack, preserves_flags));
    }
}

/// `mov r8, byte gs:[off]`.
///
/// # Safety
/// `%gs` must point at a segment in which `off` is mapped readable.
#[inline(always)]
pub unsafe fn load_u8(off: u64) -> u8 {
    let v: u8;
    // SAFETY: the caller's contract: `off` is mapped readable in the segment at `%gs`.
    unsafe {
        asm!("mov {0}, byte ptr gs:[{1}]", out(reg_byte) v, in(reg) off, options(nostack, preserves_flags, readonly));
    }
    v
}

/// `mov r64, qword gs:[off]`.
///
/// # Safety
/// `%gs` must point at a segment in which `off..off+8` is mapped readable.
#[inline(always)]
pub unsafe fn load_u64(off: u64) -> u64 {
    let v: u64;
    // SAFETY: the caller's contract: `off..off+8` is mapped readable in the segment at `%gs`.
    unsafe {
        asm!("mov {0}, qword ptr gs:[{1}]", out(reg) v, in(reg) off, options(nostack, preserves_flags, readonly));
    }
    v
}

/// `mov qword gs:[off], v`.
///
/// # Safety
/// `%gs` must point at a segment in which `off..off+8` is mapped writable.
#[inline(always)]
pub unsafe fn store_u64(off: u64, v: u64) {
    // SAFETY: the caller's contract: `off..off+8` is mapped writable in the segment at `%gs`.
    unsafe {
        asm!("mov qword ptr gs:[{0}], {1}", in(reg) off, in(reg) v, options(nostack, preserves_flags));
    }
}

/// `test byte gs:[off], mask` — returns whether any bit of `mask` is set.
///
/// # Safety
/// `%gs` must point at a segment in which `off` is mapped readable.
#[inline(always)]
pub unsafe fn test_u8(off: u64, mask: u8) -> bool {
    let r: u8;
    // SAFETY: the caller's contract: `off` is mapped readable in the segment at `%gs`.
    unsafe {
        asm!("test byte ptr gs:[{0}], {1}", "setnz {2}", in(reg) off, in(reg_byte) mask, out(reg_byte) r, options(nostack, readonly));
    }
    r != 0
}
