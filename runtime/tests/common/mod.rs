#![allow(dead_code)]
//! Shared helpers of the runtime tests: small configurations and two object types.

use std::sync::Arc;
use stmjit_runtime::*;

/// A config with small segments so tests run fast.
pub fn config(n: usize, policy: WaitPolicy) -> StmConfig {
    StmConfig {
        num_segments: n,
        segment_size: 64 << 20,
        nursery_size: 1 << 20,
        wait_policy: policy,
        budget: 1000,
        move_threads: false,
        trace: false,
        record_read_sites: false,
        commit_log: StmConfig::default().commit_log,
        time_slice: DEFAULT_TIME_SLICE,
        idle_collect: None,
    }
}

/// [`config`] with the commit log on or off (tests run in both modes).
pub fn config_mode(log: bool, n: usize, policy: WaitPolicy) -> StmConfig {
    StmConfig {
        commit_log: log,
        ..config(n, policy)
    }
}

fn cell_size(_: *const u8) -> usize {
    16
}

fn array_size(obj: *const u8) -> usize {
    // SAFETY: called by the runtime on a mapped, initialised array object.
    let len = unsafe { *(obj.add(8) as *const u64) } as usize;
    16 + 8 * len
}

/// Types used by tests: `cell` = header + one u64 at offset 8; `array` = header + length at
/// offset 8 + u64 elements from offset 16, card-marked.
pub struct Types {
    pub cell: TypeId,
    pub array: TypeId,
}

pub fn types(stm: &Stm) -> Types {
    Types {
        cell: stm.register_type(TypeInfo {
            name: "cell",
            size: cell_size,
            trace: trace_none,
            carded: false,
            trace_card: None,
        }),
        array: stm.register_type(TypeInfo {
            name: "array",
            size: array_size,
            trace: trace_none,
            carded: true,
            trace_card: None,
        }),
    }
}

/// Allocates and commits `n` cells with the given initial values. The cells are kept in the
/// shadow stack across the commit (which moves them out of the nursery), then registered as
/// global roots so that tests may hold them in plain variables.
pub fn make_cells(stm: &Arc<Stm>, t: &Types, vals: &[u64]) -> Vec<Ref> {
    let mut th = stm.thread();
    let f = th.shadow_stack().push(vals.len());
    th.run(|tx| {
        for (i, &x) in vals.iter().enumerate() {
            let r = tx.alloc(t.cell, 16)?;
            tx.write_u64(r, 8, x)?;
            tx.shadow_stack().set(f, i, r);
        }
        Ok(())
    });
    let v: Vec<Ref> = (0..vals.len())
        .map(|i| th.shadow_stack().get(f, i))
        .collect();
    th.shadow_stack().pop(f);
    for &r in &v {
        stm.add_root(r);
    }
    v
}

/// Allocates and commits an array of `n` u64 elements, all `init` (rooted as `make_cells`).
pub fn make_array(stm: &Arc<Stm>, t: &Types, n: u64, init: u64) -> Ref {
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let r = tx.alloc(t.array, 16 + 8 * n)?;
        tx.store_u64(r, 8, n);
        for i in 0..n {
            tx.write_elem_u64(r, 16 + 8 * i, init)?;
        }
        tx.shadow_stack().set(f, 0, r);
        Ok(())
    });
    let r = th.shadow_stack().get(f, 0);
    th.shadow_stack().pop(f);
    stm.add_root(r);
    r
}

/// Offset of element `i` of an array.
pub fn elem(i: u64) -> u64 {
    16 + 8 * i
}

/// A tiny deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub mod gcnode;
