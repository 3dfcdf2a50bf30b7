//! Runtime micro-benchmarks: `%gs` switching (arch_prctl vs wrgsbase), commit cost of an
//! empty and of a 10-object transaction with 1 and 2 threads, the write-barrier slow path per
//! first write, and page privatization per page.
//!
//! `CARGO_TARGET_DIR=/work/target-runtime cargo bench -p stmjit-runtime --bench stm`
//!
//! Figures (median, 2-vCPU KVM guest, Emerald Rapids, kernel 6.18, FSGSBASE available):
//!
//! | bench | median |
//! |---|---|
//! | gs_switch/arch_prctl | 184 ns |
//! | gs_switch/wrgsbase | 11.9 ns (so `wrgsbase` is used where available) |
//! | commit/empty/1thread (begin + commit) | 106 ns |
//! | commit/10objects/1thread (10 reads + 10 first writes + commit) | 774 ns |
//! | commit/empty/2thread (read-only: no stop-the-world) | 428 ns |
//! | commit/10objects/2thread (stops the other thread: ~1.4 us per sync) | 2.85 us |
//! | write_barrier/first_write_private_page (lock + record + flag) | 47.9 ns |
//! | write_barrier/first_write_shared_page (+ privatization: mmap + 4 KiB copy) | 11 us |
//!
//! Privatization is dominated by the `mmap(MAP_FIXED)` system call (about 4 us alone on this
//! VM in a separate experiment; anonymous+copy, `MAP_POPULATE`, and a `MAP_PRIVATE` file
//! mapping with kernel copy-on-write all cost about 7 us per page there).

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stmjit_runtime::*;

mod common;
use common::cells;

fn cell_size(_: *const u8) -> usize {
    16
}
fn array_size(obj: *const u8) -> usize {
    // SAFETY: called by the runtime on a mapped, initialised array object.
    16 + 8 * unsafe { *(obj.add(8) as *const u64) } as usize
}

fn setup(n: usize) -> (Arc<Stm>, TypeId, TypeId) {
    let stm = Stm::new(StmConfig {
        num_segments: n,
        segment_size: 4 << 30,
        nursery_size: 1 << 20,
        wait_policy: WaitPolicy::Wait,
        budget: 1000,
        move_threads: false,
        trace: false,
        record_read_sites: false,
        commit_log: StmConfig::default().commit_log,
        time_slice: DEFAULT_TIME_SLICE,
        idle_collect: None,
    })
    .unwrap();
    let cell = stm.register_type(TypeInfo {
        name: "cell",
        size: cell_size,
        trace: trace_none,
        carded: false,
        trace_card: None,
    });
    let arr = stm.register_type(TypeInfo {
        name: "array",
        size: array_size,
        trace: trace_none,
        carded: true,
        trace_card: None,
    });
    (stm, cell, arr)
}

fn gs_switch(c: &mut Criterion) {
    let (stm, _, _) = setup(2);
    let (b1, b2) = (stm.segment_base(1), stm.segment_base(2));
    let mut g = c.benchmark_group("gs_switch");
    g.bench_function("arch_prctl", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            gs::set_gs_base_with(gs::GsMethod::ArchPrctl, if i & 1 == 0 { b1 } else { b2 });
        })
    });
    if gs::fsgsbase_available() {
        g.bench_function("wrgsbase", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                gs::set_gs_base_with(gs::GsMethod::WrGsBase, if i & 1 == 0 { b1 } else { b2 });
            })
        });
    }
    g.finish();
}

/// Runs `f` on the calling thread while `extra` other threads run small read-only
/// transactions on their own objects (so the commits measured must stop them).
fn with_background<R>(stm: &Arc<Stm>, ty: TypeId, extra: usize, f: impl FnOnce() -> R) -> R {
    let stop = Arc::new(AtomicBool::new(false));
    let hs: Vec<_> = (0..extra)
        .map(|_| {
            let stm = stm.clone();
            let stop = stop.clone();
            let objs = cells(&stm, ty, 10);
            std::thread::spawn(move || {
                let mut th = stm.thread();
                while !stop.load(Ordering::Relaxed) {
                    th.run(|tx| {
                        for &o in &objs {
                            tx.read_u64(o, 8)?;
                        }
                        Ok(())
                    });
                }
            })
        })
        .collect();
    let r = f();
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }
    r
}

fn commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit");
    for threads in [1usize, 2] {
        let (stm, cell, _) = setup(2);
        let objs = cells(&stm, cell, 10);
        with_background(&stm, cell, threads - 1, || {
            let mut th = stm.thread();
            g.bench_function(format!("empty/{threads}thread"), |b| {
                b.iter(|| {
                    th.begin();
                    th.commit().unwrap();
                })
            });
            g.bench_function(format!("10objects/{threads}thread"), |b| {
                b.iter(|| {
                    th.run(|tx| {
                        for &o in &objs {
                            let v = tx.read_u64(o, 8)?;
                            tx.write_u64(o, 8, v + 1)?;
                        }
                        Ok(())
                    })
                })
            });
        });
        let st = stm.stats();
        eprintln!(
            "  [{threads} thread(s)] commits {} syncs {} sync wait {:.1} ms, paused {:.1} ms",
            st.commits,
            st.syncs,
            st.sync_wait_ns as f64 / 1e6,
            st.paused_ns as f64 / 1e6
        );
    }
    g.finish();
}

fn write_barrier(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_barrier");
    let (stm, cell, arr) = setup(2);
    // First write to an object whose page is already private: lock + record + flag clear.
    let objs = cells(&stm, cell, 1000);
    let mut th = stm.thread();
    th.run(|tx| objs.iter().try_for_each(|&o| tx.write_barrier(o)));
    g.bench_function("first_write_private_page", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                th.begin();
                let t0 = Instant::now();
                for &o in &objs[..n as usize] {
                    th.write_barrier(o).unwrap();
                }
                total += t0.elapsed();
                th.commit().unwrap();
                left -= n;
            }
            total
        })
    });
    // First write on a still-shared page: the above plus privatization (mmap + 4 KiB copy).
    g.bench_function("first_write_shared_page", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                let f = th.shadow_stack().push(1);
                th.run(|tx| {
                    let a = tx.alloc(arr, 16 + 4096 * n)?;
                    tx.store_u64(a, 8, 512 * n);
                    tx.shadow_stack().set(f, 0, a);
                    Ok(())
                });
                let a = th.shadow_stack().get(f, 0);
                th.begin();
                let before = stm.stats().pages_privatized;
                let t0 = Instant::now();
                for i in 0..n {
                    th.write_elem_barrier(a, 16 + 4096 * i).unwrap();
                }
                total += t0.elapsed();
                assert!(stm.stats().pages_privatized - before >= n - 1);
                th.commit().unwrap();
                th.shadow_stack().pop(f);
                left -= n;
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = gs_switch, commit, write_barrier
}
criterion_main!(benches);
