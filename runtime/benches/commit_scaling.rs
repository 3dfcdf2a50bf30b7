//! Commit scaling: what a writer commit costs the whole machine as the thread count grows.
//!
//! `cargo bench -p stmjit-runtime --bench commit_scaling` (add `-- --secs 2` for longer
//! windows, `-- --threads 1,2,4` to choose T). Without `--bench` on the command line (as
//! `cargo test --benches` runs it) it only does a short smoke run.
//!
//! Two scenarios, each on a runtime with one segment per thread (so the segment queue plays no
//! part) and T = 1, 2, 4, 8, 16:
//! - `disjoint`: T threads each loop `begin; read + write 1 own cell; ~3 us of work; commit`.
//!   Nothing conflicts, so an ideal runtime would reach min(T, cores) x the 1-thread rate.
//! - `1writer`: one thread as above, T-1 threads running read-only transactions of ~3 us on
//!   their own cells (they never conflict either, but today every writer commit stops them).
//!
//! Columns: `commits/s` (writer commits, all threads), `x1` (ratio to T=1), `lost/commit`
//! (core time per writer commit minus the 1-thread cost: `min(T, cores) * wall / commits -
//! wall1 / commits1`, the time the machine lost per commit; meaningful for `disjoint`),
//! `sync/commit` (the runtime's own `sync_wait_ns + paused_ns` per writer commit: thread time
//! spent stopping others or stopped), `max tx` (`1writer`: the slowest writer transaction, begin to commit).
//! Every thread's cell is checked against its commit count at the end (no lost update).
//!
//! Figures at main 576fc60 (every writer commit stops the world), 2-vCPU KVM guest shared with
//! other builds (load average 8-11 during the runs, so the 1-thread transaction took ~6.8 us
//! instead of ~3.5), `--secs 1`, median of 4 runs (the spread is wide: T=16 `disjoint` ranged
//! from 33k to 113k commits/s):
//!
//! | scenario | T | commits/s | x1 | lost/commit | sync/commit | max tx |
//! |---|---|---|---|---|---|---|
//! | disjoint | 1 | 148k | 1.00 | 0 | 0 | |
//! | disjoint | 2 | 140k | 0.94 | 7.5 us | 7.2 us | |
//! | disjoint | 4 | 92k | 0.64 | 14.9 us | 33 us | |
//! | disjoint | 8 | 92k | 0.62 | 15.1 us | 81 us | |
//! | disjoint | 16 | 92k | 0.61 | 15.8 us | 176 us | |
//! | 1writer | 2 | 73k | | | 6.3 us | 22 ms |
//! | 1writer | 4 | 34k | | | 89 us | 54 ms |
//! | 1writer | 8 | 8.5k | | | 553 us | 106 ms |
//! | 1writer | 16 | 4.5k | | | 1.9 ms | 200 ms |
//!
//! So a second thread adds nothing (0.94x on 2 cores), and one writer beside read-only threads
//! gets slower with every reader (each of its commits waits for all of them to stop).
//! (The goal for the commit log: `lost/commit` flat in T, 2 threads >= 1.7x.)

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use stmjit_runtime::*;

mod common;
use common::cells;

fn cell_size(_: *const u8) -> usize {
    16
}

/// A runtime with `n` segments and a 16-byte cell type.
fn setup(n: usize) -> (Arc<Stm>, TypeId) {
    let stm = Stm::new(StmConfig {
        num_segments: n,
        segment_size: 256 << 20,
        nursery_size: 1 << 20,
        wait_policy: WaitPolicy::Wait,
        budget: 1 << 20,
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
    (stm, cell)
}

/// CPU work: `iters` rounds of an integer hash (calibrated by [`iters_per_us`]).
#[inline(never)]
fn work(iters: u64) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..iters {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
    black_box(x)
}

/// How many [`work`] rounds take one microsecond on this machine (best of a few tries).
fn iters_per_us() -> u64 {
    let n = 200_000;
    let best = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            work(n);
            t0.elapsed()
        })
        .min()
        .unwrap();
    (n as f64 / (best.as_nanos() as f64 / 1000.0)).max(1.0) as u64
}

/// One measured run.
struct Run {
    wall: Duration,
    writer_commits: u64,
    sync_ns: u64,
    max_commit: Duration,
}

/// Runs `threads` threads for `window` (after a short warm-up). Thread 0 always writes;
/// the others write too iff `all_write`, else run read-only transactions.
fn run(threads: usize, all_write: bool, work_iters: u64, window: Duration) -> Run {
    let (stm, ty) = setup(threads);
    let objs = cells(&stm, ty, threads);
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let hs: Vec<_> = (0..threads)
        .map(|i| {
            let (stm, stop, measuring, start) =
                (stm.clone(), stop.clone(), measuring.clone(), start.clone());
            let cell = objs[i];
            let writes = i == 0 || all_write;
            std::thread::spawn(move || {
                let mut th = stm.thread();
                let (mut total, mut counted) = (0u64, 0u64);
                let mut max_commit = Duration::ZERO;
                start.wait();
                while !stop.load(Relaxed) {
                    let t0 = Instant::now();
                    th.run(|tx| {
                        let v = tx.read_u64(cell, 8)?;
                        work(work_iters);
                        if writes {
                            tx.write_u64(cell, 8, v + 1)?;
                        }
                        Ok(())
                    });
                    if writes {
                        total += 1;
                        if measuring.load(Relaxed) {
                            counted += 1;
                            max_commit = max_commit.max(t0.elapsed());
                        }
                    }
                }
                (total, counted, max_commit)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(window / 5);
    let s0 = stm.stats();
    let t0 = Instant::now();
    measuring.store(true, Relaxed);
    std::thread::sleep(window);
    measuring.store(false, Relaxed);
    let wall = t0.elapsed();
    let s1 = stm.stats();
    stop.store(true, Relaxed);
    let mut writer_commits = 0;
    let mut max_commit = Duration::ZERO;
    let mut th = stm.thread();
    for (h, &cell) in hs.into_iter().zip(&objs) {
        let (total, counted, m) = h.join().unwrap();
        writer_commits += counted;
        max_commit = max_commit.max(m);
        let v = th.run(|tx| tx.read_u64(cell, 8));
        assert_eq!(
            v, total,
            "lost update: a cell disagrees with its commit count"
        );
    }
    let sync_ns = (s1.sync_wait_ns + s1.paused_ns) - (s0.sync_wait_ns + s0.paused_ns);
    Run {
        wall,
        writer_commits,
        sync_ns,
        max_commit,
    }
}

fn us(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.1} us", ns / 1e3)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let bench = args.iter().any(|a| a == "--bench");
    let secs: f64 = arg("--secs").map_or(if bench { 1.0 } else { 0.02 }, |s| {
        s.parse().expect("--secs takes a number")
    });
    let threads: Vec<usize> = arg("--threads").map_or_else(
        || {
            if bench {
                vec![1, 2, 4, 8, 16]
            } else {
                vec![1, 2]
            }
        },
        |s| {
            s.split(',')
                .map(|t| t.parse().expect("--threads takes a list like 1,2,4"))
                .collect()
        },
    );
    let work_us: f64 = arg("--work-us").map_or(3.0, |s| s.parse().expect("--work-us: a number"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work_iters = (iters_per_us() as f64 * work_us) as u64;
    let window = Duration::from_secs_f64(secs);
    println!(
        "commit_scaling: {cores} cores, {work_us} us of work per transaction, {secs} s windows"
    );
    println!(
        "{:<9} {:>3} {:>10} {:>6} {:>12} {:>12} {:>11}",
        "scenario", "T", "commits/s", "x1", "lost/commit", "sync/commit", "max tx"
    );
    let mut base: Option<(f64, f64)> = None; // (commits/s, ns per commit) at T=1
    for all_write in [true, false] {
        for &t in &threads {
            if !all_write && t < 2 {
                continue;
            }
            let r = run(t, all_write, work_iters, window);
            let c = r.writer_commits.max(1) as f64;
            let rate = c / r.wall.as_secs_f64();
            let per = t.min(cores) as f64 * r.wall.as_nanos() as f64 / c;
            if all_write && t == 1 {
                base = Some((rate, per));
            }
            let (x1, lost) = match (all_write, base) {
                (true, Some((b, p))) => (format!("{:.2}", rate / b), us((per - p).max(0.0))),
                _ => (String::new(), String::new()),
            };
            println!(
                "{:<9} {:>3} {:>9.0}k {:>6} {:>12} {:>12} {:>11}",
                if all_write { "disjoint" } else { "1writer" },
                t,
                rate / 1e3,
                x1,
                lost,
                us(r.sync_ns as f64 / c),
                if all_write {
                    String::new()
                } else {
                    us(r.max_commit.as_nanos() as f64)
                },
            );
        }
    }
}
