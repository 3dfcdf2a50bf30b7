//! The process's futex hash (Linux 6.16+): a runtime keeps the private one, and moves to the
//! kernel's global table only when asked (the object model asks once a program has started
//! many OS threads). The switch sleeps ~40 ms in the kernel: made at every runtime's
//! creation, it delayed every run by that much.

mod common;
use common::*;
use stmjit_runtime::*;

#[test]
fn a_runtime_keeps_the_private_futex_hash_until_asked() {
    let _stm = Stm::new(config_mode(false, 2, WaitPolicy::Wait)).unwrap();
    let Some(slots) = futex_hash_slots() else {
        eprintln!("skipped: this kernel has no PR_FUTEX_HASH (the global table always)");
        return;
    };
    assert_ne!(
        slots, 0,
        "creating a runtime switched to the global futex hash"
    );
    use_global_futex_hash();
    assert_eq!(futex_hash_slots(), Some(0));
}
