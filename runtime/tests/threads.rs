//! Multi-threaded tests: counter, bank, deadlock, more threads than segments.

mod common;
use common::*;
use std::sync::{Arc, Barrier};
use std::time::Instant;
use stmjit_runtime::*;

fn spawn_all<F>(n: usize, f: F) -> Vec<u64>
where
    F: Fn(usize) -> u64 + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(n));
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                f(i)
            })
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

fn counter_4_threads_x_50000_in(log: bool) {
    let stm = Stm::new(config_mode(log, 4, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0])[0];
    let t0 = Instant::now();
    let s2 = stm.clone();
    spawn_all(4, move |_| {
        let mut th = s2.thread();
        for _ in 0..50_000 {
            th.run(|tx| {
                let v = tx.read_u64(c, 8)?;
                tx.write_u64(c, 8, v + 1)
            });
        }
        0
    });
    assert_eq!(stm.committed_u64(c, 8), 200_000);
    let st = stm.stats();
    assert_eq!(st.commits, 200_001);
    eprintln!(
        "counter: {:?}, aborts ww={} wr={}, syncs={}, sync wait {} ms, paused {} ms",
        t0.elapsed(),
        st.aborts_write_write,
        st.aborts_write_read,
        st.syncs,
        st.sync_wait_ns / 1_000_000,
        st.paused_ns / 1_000_000
    );
}

#[test]
fn counter_4_threads_x_50000() {
    counter_4_threads_x_50000_in(false);
}

/// The same with the commit log.
#[test]
fn counter_4_threads_x_50000_commit_log() {
    counter_4_threads_x_50000_in(true);
}

fn transfer(tx: &mut StmThread, arr: Ref, from: u64, to: u64, amount: u64) -> Result<(), Abort> {
    let a = tx.read_elem_u64(arr, elem(from))?;
    if a < amount {
        return Ok(());
    }
    let b = tx.read_elem_u64(arr, elem(to))?;
    tx.write_elem_u64(arr, elem(from), a - amount)?;
    tx.write_elem_u64(arr, elem(to), b + amount)
}

fn bank_4_threads_x_50000_over_64_accounts_in(log: bool) {
    let stm = Stm::new(config_mode(log, 4, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let arr = make_array(&stm, &t, 64, 1000);
    let s2 = stm.clone();
    let t0 = Instant::now();
    spawn_all(4, move |i| {
        let mut th = s2.thread();
        let mut rng = Rng(0x9E3779B97F4A7C15 ^ (i as u64 + 1));
        for _ in 0..50_000 {
            let from = rng.below(64);
            let mut to = rng.below(64);
            if to == from {
                to = (to + 1) % 64;
            }
            let amount = rng.below(300);
            th.run(|tx| transfer(tx, arr, from, to, amount));
        }
        0
    });
    let mut total = 0;
    for i in 0..64 {
        let v = stm.committed_u64(arr, elem(i));
        assert!(v <= 64_000, "balance {i} went negative (wrapped): {v}");
        total += v;
    }
    assert_eq!(total, 64_000);
    // Also check in a transaction, and that segment views agree after all commits.
    let mut th = stm.thread();
    let sum = th.run(|tx| {
        let mut s = 0;
        for i in 0..64 {
            s += tx.read_elem_u64(arr, elem(i))?;
        }
        Ok(s)
    });
    assert_eq!(sum, 64_000);
    let st = stm.stats();
    eprintln!(
        "bank: {:?}, commits={} aborts ww={} wr={} waits={} pages={}",
        t0.elapsed(),
        st.commits,
        st.aborts_write_write,
        st.aborts_write_read,
        st.ww_waits,
        st.pages_privatized
    );
}

#[test]
fn bank_4_threads_x_50000_over_64_accounts() {
    bank_4_threads_x_50000_over_64_accounts_in(false);
}

/// The same with the commit log.
#[test]
fn bank_4_threads_x_50000_over_64_accounts_commit_log() {
    bank_4_threads_x_50000_over_64_accounts_in(true);
}

fn bank_disjoint_cards_do_not_conflict_in(log: bool) {
    // Two threads transfer among disjoint halves of one array (accounts 0..32 and 32..64:
    // bytes [16, 272) and [272, 528), disjoint 16-byte cards), in overlapping transactions.
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let arr = make_array(&stm, &t, 64, 1000);
    let before = stm.stats();
    let s2 = stm.clone();
    spawn_all(2, move |i| {
        let mut th = s2.thread();
        let mut rng = Rng(12345 + i as u64);
        let base = 32 * i as u64;
        for _ in 0..20_000 {
            let from = base + rng.below(32);
            let to = base + (from - base + 1 + rng.below(31)) % 32;
            let amount = rng.below(100);
            th.run(|tx| transfer(tx, arr, from, to, amount));
        }
        0
    });
    let st = stm.stats();
    assert_eq!(st.commits - before.commits, 40_000);
    assert_eq!(st.aborts() - before.aborts(), 0, "{st:?}");
    assert_eq!(st.conflicts_total - before.conflicts_total, 0);
    let total: u64 = (0..64).map(|i| stm.committed_u64(arr, elem(i))).sum();
    assert_eq!(total, 64_000);
}

#[test]
fn bank_disjoint_cards_do_not_conflict() {
    bank_disjoint_cards_do_not_conflict_in(false);
}

/// The same with the commit log.
#[test]
fn bank_disjoint_cards_do_not_conflict_commit_log() {
    bank_disjoint_cards_do_not_conflict_in(true);
}

fn deadlock_ab_ba_always_finishes_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0, 0]);
    let (a, b) = (c[0], c[1]);
    let s2 = stm.clone();
    spawn_all(2, move |i| {
        let mut th = s2.thread();
        let (x, y) = if i == 0 { (a, b) } else { (b, a) };
        for _ in 0..20_000 {
            th.run(|tx| {
                let v = tx.read_u64(x, 8)?;
                tx.write_u64(x, 8, v + 1)?;
                let w = tx.read_u64(y, 8)?;
                tx.write_u64(y, 8, w + 1)
            });
        }
        0
    });
    assert_eq!(stm.committed_u64(a, 8), 40_000);
    assert_eq!(stm.committed_u64(b, 8), 40_000);
}

#[test]
fn deadlock_ab_ba_always_finishes() {
    deadlock_ab_ba_always_finishes_in(false);
}

/// The same with the commit log.
#[test]
fn deadlock_ab_ba_always_finishes_commit_log() {
    deadlock_ab_ba_always_finishes_in(true);
}

fn more_threads_than_segments_wait_for_one_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0, 0, 0, 0, 0, 0]);
    let c2 = c.clone();
    let s2 = stm.clone();
    spawn_all(6, move |i| {
        let mut th = s2.thread();
        for _ in 0..2_000 {
            th.run(|tx| {
                let v = tx.read_u64(c2[i], 8)?;
                tx.write_u64(c2[i], 8, v + 1)
            });
        }
        0
    });
    for r in c {
        assert_eq!(stm.committed_u64(r, 8), 2_000);
    }
}

#[test]
fn more_threads_than_segments_wait_for_one() {
    more_threads_than_segments_wait_for_one_in(false);
}

/// The same with the commit log.
#[test]
fn more_threads_than_segments_wait_for_one_commit_log() {
    more_threads_than_segments_wait_for_one_in(true);
}

fn inevitable_transaction_is_never_aborted_under_contention_in(log: bool) {
    let stm = Stm::new(config_mode(log, 3, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0])[0];
    let s2 = stm.clone();
    spawn_all(3, move |i| {
        let mut th = s2.thread();
        for k in 0..5_000 {
            if i == 0 && k % 10 == 0 {
                th.begin();
                th.become_inevitable().expect("fresh transaction");
                let v = th.read_u64(c, 8).expect("inevitable never aborts");
                th.write_u64(c, 8, v + 1).expect("inevitable never aborts");
                th.commit().expect("inevitable never aborts");
            } else {
                th.run(|tx| {
                    let v = tx.read_u64(c, 8)?;
                    tx.write_u64(c, 8, v + 1)
                });
            }
        }
        0
    });
    assert_eq!(stm.committed_u64(c, 8), 15_000);
}

#[test]
fn inevitable_transaction_is_never_aborted_under_contention() {
    inevitable_transaction_is_never_aborted_under_contention_in(false);
}

/// The same with the commit log.
#[test]
fn inevitable_transaction_is_never_aborted_under_contention_commit_log() {
    inevitable_transaction_is_never_aborted_under_contention_in(true);
}

fn bank_with_abort_self_policy_and_mixed_objects_in(log: bool) {
    // Younger attackers abort instead of waiting; transfers also bump a per-thread cell
    // (non-carded objects), and every 97th transaction aborts explicitly.
    let stm = Stm::new(config_mode(log, 3, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let arr = make_array(&stm, &t, 16, 500);
    let counters = make_cells(&stm, &t, &[0, 0, 0, 0]);
    let c2 = counters.clone();
    let s2 = stm.clone();
    spawn_all(4, move |i| {
        let mut th = s2.thread();
        let mut rng = Rng(777 + i as u64);
        let mut done = 0;
        for k in 0..20_000u64 {
            let from = rng.below(16);
            let to = (from + 1 + rng.below(15)) % 16;
            let amount = rng.below(50);
            let explicit = k % 97 == 0;
            let mut first = true;
            th.run(|tx| {
                transfer(tx, arr, from, to, amount)?;
                let v = tx.read_u64(c2[i], 8)?;
                tx.write_u64(c2[i], 8, v + 1)?;
                if explicit && first {
                    first = false;
                    return Err(tx.abort());
                }
                Ok(())
            });
            done += 1;
        }
        done
    });
    let total: u64 = (0..16).map(|i| stm.committed_u64(arr, elem(i))).sum();
    assert_eq!(total, 8_000);
    for c in counters {
        assert_eq!(stm.committed_u64(c, 8), 20_000);
    }
    let st = stm.stats();
    assert_eq!(st.aborts_explicit, 4 * (20_000u64.div_ceil(97)));
}

#[test]
fn bank_with_abort_self_policy_and_mixed_objects() {
    bank_with_abort_self_policy_and_mixed_objects_in(false);
}

/// The same with the commit log.
#[test]
fn bank_with_abort_self_policy_and_mixed_objects_commit_log() {
    bank_with_abort_self_policy_and_mixed_objects_in(true);
}

fn commits_pause_a_polling_thread_and_the_pause_is_measured_in(log: bool) {
    // Thread 0 runs one long transaction that only polls (like JIT code at loop back-edges)
    // and reads an object; thread 1 commits writes to that object: its first commit must
    // stop thread 0 at a safe point and doom it (write-read); later commits stop it too.
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0, 0]);
    let (shared, other) = (c[0], c[1]);
    let s2 = stm.clone();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st2 = started.clone();
    let h = std::thread::spawn(move || {
        let mut th = s2.thread();
        th.begin();
        th.read_u64(shared, 8).unwrap();
        st2.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut polls = 0u64;
        let cause = loop {
            polls += 1;
            if let Err(a) = th.poll() {
                break a.cause();
            }
        };
        // Then keep polling inside fresh transactions that read nothing shared.
        th.begin();
        th.read_u64(other, 8).unwrap();
        for _ in 0..200_000 {
            th.poll().unwrap();
        }
        th.commit().unwrap();
        (cause, polls)
    });
    while !started.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let mut th = stm.thread();
    for i in 0..200 {
        th.run(|tx| tx.write_u64(shared, 8, i));
    }
    let (cause, polls) = h.join().unwrap();
    assert_eq!(cause, AbortCause::WriteRead);
    assert!(polls >= 1);
    let st = stm.stats();
    assert_eq!(st.aborts_write_read, 1);
    if stm.config().commit_log {
        // Nobody stops: the reader found the conflict when it validated.
        assert_eq!(st.syncs, 0, "{st:?}");
        assert!(st.validations > 0, "{st:?}");
    } else {
        assert!(st.syncs >= 1, "{st:?}");
        assert!(st.paused_ns > 0 && st.sync_wait_ns > 0, "{st:?}");
    }
}

#[test]
fn commits_pause_a_polling_thread_and_the_pause_is_measured() {
    commits_pause_a_polling_thread_and_the_pause_is_measured_in(false);
}

/// The same with the commit log.
#[test]
fn commits_pause_a_polling_thread_and_the_pause_is_measured_commit_log() {
    commits_pause_a_polling_thread_and_the_pause_is_measured_in(true);
}

/// A thread handle whose shadow stack cannot be mapped (the address space is limited to
/// what is mapped already, `RLIMIT_AS`) is an `Err` from `Stm::try_thread`, so that the
/// program reports a MemoryError; before, the runtime panicked (a spawned thread of
/// `tests/concurrency/spawn_fails.lang` sometimes did, under `ulimit -v`). The limit is set
/// in a child process (this test binary run again for this test alone), not to starve the
/// other tests.
#[test]
fn a_shadow_stack_that_cannot_be_mapped_is_an_error() {
    const CHILD: &str = "STMJIT_TEST_SHADOW_STACK_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_shadow_stack_that_cannot_be_mapped_is_an_error",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD, "1")
            .output()
            .expect("run the test binary again");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{text}");
        assert!(text.contains("child: Err"), "child did not run:\n{text}");
        return;
    }
    let stm = Stm::new(config(2, WaitPolicy::Wait)).unwrap();
    let th = stm.thread(); // fits before the limit
    drop(th);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    // Room for small allocations, not for a shadow stack (8 MiB at least).
    let limit = (vm_kib + 2048) * 1024;
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid rlimit value; this child process runs this test alone.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
    match stm.try_thread() {
        Ok(_) => panic!("a shadow stack was mapped beyond the address-space limit"),
        Err(e) => {
            assert!(e.to_string().contains("cannot map a shadow stack"), "{e}");
            println!("child: Err({e})");
        }
    }
}
