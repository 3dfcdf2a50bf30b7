//! What the runtime's benchmarks share (`mod common;` in each: every bench is its own crate).

use std::sync::Arc;
use stmjit_runtime::{Ref, Stm, TypeId};

/// `n` committed cells of type `ty` (16 bytes), rooted: young objects move at commit, so they
/// are kept in the shadow stack across it, then registered as global roots.
pub fn cells(stm: &Arc<Stm>, ty: TypeId, n: usize) -> Vec<Ref> {
    let mut th = stm.thread();
    let f = th.shadow_stack().push(n);
    th.run(|tx| {
        for i in 0..n {
            let r = tx.alloc(ty, 16)?;
            tx.shadow_stack().set(f, i, r);
        }
        Ok(())
    });
    let v: Vec<Ref> = (0..n).map(|i| th.shadow_stack().get(f, i)).collect();
    th.shadow_stack().pop(f);
    for &r in &v {
        stm.add_root(r);
    }
    v
}
