//! GC benchmarks: allocation throughput (1 and 2 threads) against `Box::new` of the same
//! size, the minor-collection pause of a full default (16 MiB) nursery, and the major
//! collection time per live MiB.
//!
//! `CARGO_TARGET_DIR=/work/target-runtime cargo bench -p stmjit-runtime --bench gc`
//!
//! Allocation goes through the Rust API (`StmThread::alloc`: it also polls the safe-point
//! word and checks the transaction on every call), i.e. an upper bound of what the JIT's
//! inline five-instruction path costs. Each transaction allocates 10 000 objects of 32 bytes
//! and commits (a minor collection with no survivor).
//!
//! Figures (criterion median, 2-vCPU KVM guest shared with another build, Emerald Rapids):
//!
//! | bench | median |
//! |---|---|
//! | alloc32/box_new (malloc + free of 32 bytes) | 9.57 ns |
//! | alloc32/stm/1thread (nursery bump + commit every 10 000) | 2.65 ns (377 M objects/s) |
//! | alloc32/stm/2threads (per allocation of each thread) | 2.73 ns (2 x 366 M objects/s) |
//! | alloc32/box_new/2threads | 27.9 ns (noisy: glibc arenas of fresh threads) |
//! | minor pause, 16 MiB nursery, nothing survives (zeroing 16 MiB) | 150 us |
//! | minor pause, 16 MiB nursery, all 512 Ki objects survive (copy 16 MiB) | 20.4 ms (39 ns/object) |
//! | major, 64 MiB live in 2 Mi objects of 32 bytes | 40.7 ms = 0.64 ms per live MiB |

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use stmjit_runtime::value;
use stmjit_runtime::*;

const PER_TX: u64 = 10_000;

fn node_size(obj: *const u8) -> usize {
    // SAFETY: called by the runtime on a mapped object whose count word is initialised.
    let w = unsafe { *(obj.add(8) as *const u64) };
    16 + 8
        * (if value::is_int(w) {
            value::to_int(w) as usize
        } else {
            0
        })
}

fn node_trace(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    for i in 0..(node_size(obj) - 16) / 8 {
        // SAFETY: the words lie inside the object.
        visit(unsafe { obj.add(16 + 8 * i) } as *mut u64);
    }
}

fn setup(nursery: u64) -> (Arc<Stm>, TypeId) {
    let stm = Stm::new(StmConfig {
        num_segments: 2,
        segment_size: 4 << 30,
        nursery_size: nursery,
        ..StmConfig::default()
    })
    .unwrap();
    let ty = stm.register_type(TypeInfo {
        name: "node",
        size: node_size,
        trace: node_trace,
        carded: false,
        trace_card: None,
    });
    (stm, ty)
}

fn alloc_loop(th: &mut StmThread, ty: TypeId, iters: u64) {
    let mut left = iters;
    while left > 0 {
        let n = left.min(PER_TX);
        th.begin();
        for _ in 0..n {
            black_box(th.alloc(ty, 32).unwrap());
        }
        th.commit().unwrap();
        left -= n;
    }
}

fn alloc(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc32");
    g.throughput(Throughput::Elements(1));
    g.bench_function("box_new", |b| b.iter(|| black_box(Box::new([0u64; 4]))));
    let (stm, ty) = setup(16 << 20);
    let mut th = stm.thread();
    g.bench_function("stm/1thread", |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            alloc_loop(&mut th, ty, iters);
            t0.elapsed()
        })
    });
    drop(th);
    // Two threads, each doing `iters` allocations: time per allocation of one thread (equal
    // to the 1-thread figure if they scale perfectly).
    for name in ["stm/2threads", "box_new/2threads"] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let bar = Arc::new(Barrier::new(2));
                let hs: Vec<_> = (0..2)
                    .map(|_| {
                        let stm = stm.clone();
                        let bar = bar.clone();
                        std::thread::spawn(move || {
                            let mut th = stm.thread();
                            bar.wait();
                            let t0 = Instant::now();
                            if name.starts_with("stm") {
                                alloc_loop(&mut th, ty, iters);
                            } else {
                                for _ in 0..iters {
                                    black_box(Box::new([0u64; 4]));
                                }
                            }
                            t0.elapsed()
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
            })
        });
    }
    g.finish();
}

/// Fills the nursery with 32-byte nodes (up to its end, without collecting); with `live`,
/// each links to the previous one and the last is in slot `f`, so the whole nursery survives.
fn fill(th: &mut StmThread, ty: TypeId, live: bool, f: Frame) -> u64 {
    let l = *th.stm().layout();
    let seg = th.segment();
    let mut n = 0;
    while th.stm().segment_info(seg).nursery_current.load(Relaxed) + 32 <= l.nursery_end {
        let r = th.alloc(ty, 32).unwrap();
        th.store_u64(r, 8, value::from_int(2).unwrap());
        if live {
            let prev = th.shadow_stack().get(f, 0);
            th.store_u64(r, 16, prev);
            th.shadow_stack().set(f, 0, r);
        }
        n += 1;
    }
    n
}

fn minor(c: &mut Criterion) {
    let mut g = c.benchmark_group("minor_pause_16MiB_nursery");
    g.sample_size(10);
    let (stm, ty) = setup(16 << 20);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    for live in [false, true] {
        let name = if live {
            "all_survive_512Ki_objects"
        } else {
            "none_survive"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    th.begin();
                    fill(&mut th, ty, live, f);
                    let t0 = Instant::now();
                    th.collect_minor().unwrap();
                    total += t0.elapsed();
                    th.abort(); // slot f reads NONE again; promoted objects are garbage
                    th.collect_major().unwrap();
                }
                total
            })
        });
    }
    g.finish();
}

fn major(c: &mut Criterion) {
    let mut g = c.benchmark_group("major");
    g.sample_size(10);
    let (stm, ty) = setup(16 << 20);
    stm.set_major_threshold(u64::MAX / 4);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    // 64 MiB of live 32-byte nodes in one chain (2M objects).
    const LIVE_MIB: u64 = 64;
    let count = (LIVE_MIB << 20) / 32;
    let mut done = 0;
    while done < count {
        th.run(|tx| {
            for _ in 0..PER_TX {
                let r = tx.alloc(ty, 32)?;
                tx.store_u64(r, 8, value::from_int(2).unwrap());
                let prev = tx.shadow_stack().get(f, 0);
                tx.store_u64(r, 16, prev);
                tx.shadow_stack().set(f, 0, r);
            }
            Ok(())
        });
        done += PER_TX;
    }
    g.bench_function(format!("{LIVE_MIB}MiB_live_2M_objects"), |b| {
        b.iter(|| th.collect_major().unwrap())
    });
    let s = stm.stats();
    eprintln!(
        "major: live {} MiB, {} collections, mean {:.1} ms => {:.2} ms per live MiB",
        s.live_bytes >> 20,
        s.major_collections,
        s.major_ns as f64 / s.major_collections.max(1) as f64 / 1e6,
        s.major_ns as f64
            / s.major_collections.max(1) as f64
            / 1e6
            / (s.live_bytes as f64 / (1 << 20) as f64)
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = alloc, minor, major
}
criterion_main!(benches);
