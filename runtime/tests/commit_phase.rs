//! An inevitable transaction waiting for the commit phase dooms every transaction that holds
//! it, including one that took it again while the waiter was not looking (issue 14: it waited
//! for the phase to be *free*, so a holder that retook it in between was never doomed; that
//! holder's commit waited for the inevitable transaction: `dictfill 1000000` on 2 threads
//! hung about one run in 5-15 under load).
//!
//! The race is made deterministic by freezing the waiting thread (a signal whose handler
//! spins) while the holder aborts and takes the phase again; a watchdog turns the hang into a
//! failure. `STMJIT_COMMIT_PHASE_ROUNDS` sets the rounds of the deterministic test and
//! `STMJIT_COMMIT_PHASE_SECS` the length of the stress (both small by default).

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use stmjit_runtime::*;

/// How long a scenario may go without progress before it counts as hung.
const WATCHDOG: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread, which counts its progress in the counter it is given; panics
/// with `what` if the count has not moved for [`WATCHDOG`] before `f` returned (the hung
/// threads are left behind: the test binary's exit ends them).
fn within_watchdog(what: &str, f: impl FnOnce(&AtomicU64) + Send + 'static) {
    let progress = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    let p = progress.clone();
    let h = std::thread::spawn(move || {
        f(&p);
        let _ = tx.send(());
    });
    let (mut seen, mut since) = (0, Instant::now());
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            // Returned, or panicked: its own message.
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return h.join().unwrap(),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = progress.load(SeqCst);
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() > WATCHDOG {
            panic!("{what}: no progress for {WATCHDOG:?} after {seen} steps (an inevitable waiter for the commit phase and its holder wait for each other)")
        }
    }
}

/// A number from the environment variable `name`, or `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether the thread that gets [`FREEZE_SIGNAL`] spins in its handler.
static FROZEN: AtomicBool = AtomicBool::new(false);
/// Set by the handler once the thread is frozen.
static FROZEN_ACK: AtomicBool = AtomicBool::new(false);
const FREEZE_SIGNAL: libc::c_int = libc::SIGUSR2;

extern "C" fn freeze_handler(_: libc::c_int) {
    // Atomics only: async-signal-safe.
    FROZEN_ACK.store(true, SeqCst);
    while FROZEN.load(SeqCst) {
        std::hint::spin_loop();
    }
}

fn install_freeze_handler() {
    // SAFETY: a zeroed sigaction with a handler that only touches atomics is valid; the
    // signal is not used by the runtime or the test harness.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = freeze_handler as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(FREEZE_SIGNAL, &sa, std::ptr::null_mut()), 0);
    }
}

/// Stops `thread` in the freeze handler until [`thaw`]; returns once it is stopped.
fn freeze(thread: libc::pthread_t) {
    FROZEN_ACK.store(false, SeqCst);
    FROZEN.store(true, SeqCst);
    // SAFETY: `thread` is alive (it waits for the commit phase) and handles the signal.
    assert_eq!(unsafe { libc::pthread_kill(thread, FREEZE_SIGNAL) }, 0);
    while !FROZEN_ACK.load(SeqCst) {
        std::thread::yield_now();
    }
}

fn thaw() {
    FROZEN.store(false, SeqCst);
}

/// Whether segment `seg` was asked to abort (its transaction was doomed).
fn asked_to_abort(stm: &Stm, seg: usize) -> bool {
    stm.segment_info(seg).safe_point_request.load(SeqCst) & layout::REQUEST_ABORT != 0
}

/// B commits `value` into `cell` through the commit phase, retrying while it is doomed.
fn commit_through_the_phase(b: &mut StmThread, cell: Ref, value: u64) {
    loop {
        let r = b
            .write_u64(cell, 8, value)
            .and_then(|()| b.enter_commit_phase())
            .and_then(|()| b.commit());
        if r.is_ok() {
            return;
        }
        b.begin();
    }
}

/// One round: B holds the commit phase; inevitable A asks for it and dooms B; A is frozen
/// while B rolls back, begins again and asks for the phase once more; then A is thawed. B's
/// commit waits for inevitable A, so B must not hold the phase meanwhile, or A must doom it
/// again: before the fix (5272da4) B took the phase while A was frozen and A, waiting for the
/// phase to be free, never doomed it: both waited forever.
fn holder_that_asks_again_for_the_phase_yields_again(stm: &Arc<Stm>, cells: &[Ref], round: u64) {
    let (a_cell, b_cell) = (cells[0], cells[1]);
    let (held_tx, held) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let (asking_tx, asking) = mpsc::channel();
    let stm_b = stm.clone();
    let b = std::thread::spawn(move || {
        let mut b = stm_b.thread();
        b.begin();
        b.write_u64(b_cell, 8, round).unwrap();
        b.enter_commit_phase().unwrap();
        held_tx.send(b.segment()).unwrap();
        go.recv().unwrap();
        let seg = b.segment();
        assert!(
            b.poll().is_err(),
            "B was doomed: it rolls back, freeing the phase"
        );
        b.begin();
        assert_eq!(b.segment(), seg);
        asking_tx.send(()).unwrap();
        commit_through_the_phase(&mut b, b_cell, round + 1);
    });
    let b_seg = held.recv().unwrap();
    let inevitable = Arc::new(Barrier::new(2));
    let (stm_a, inev) = (stm.clone(), inevitable.clone());
    let a = std::thread::spawn(move || {
        let mut a = stm_a.thread();
        a.begin();
        a.become_inevitable().unwrap();
        a.write_u64(a_cell, 8, round).unwrap();
        inev.wait();
        // Waits for B's phase, dooming B (and, fixed, every later holder).
        a.enter_commit_phase().unwrap();
        a.commit().unwrap();
    });
    let a_thread = std::os::unix::thread::JoinHandleExt::as_pthread_t(&a);
    inevitable.wait();
    // A has doomed B: it is now in (or about to enter) its wait for the phase.
    while !asked_to_abort(stm, b_seg) {
        std::thread::yield_now();
    }
    freeze(a_thread);
    go_tx.send(()).unwrap();
    asking.recv().unwrap();
    // Time for B to take the phase again (where it may) before A looks.
    std::thread::sleep(Duration::from_millis(20));
    thaw();
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(stm.committed_u64(a_cell, 8), round);
    assert_eq!(stm.committed_u64(b_cell, 8), round + 1);
}

fn an_inevitable_waiter_for_the_commit_phase_is_not_kept_from_it_in(log: bool) {
    // One frozen thread at a time: the freeze flags are global.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    install_freeze_handler();
    let rounds = env_or("STMJIT_COMMIT_PHASE_ROUNDS", 20);
    within_watchdog("the retaken commit phase", move |progress| {
        let stm = Stm::new(config_mode(log, 2, WaitPolicy::Wait)).unwrap();
        let t = types(&stm);
        let cells = make_cells(&stm, &t, &[0, 0]);
        for round in 0..rounds {
            holder_that_asks_again_for_the_phase_yields_again(&stm, &cells, round * 10);
            progress.fetch_add(1, SeqCst);
        }
    });
}

#[test]
fn an_inevitable_waiter_for_the_commit_phase_is_not_kept_from_it() {
    an_inevitable_waiter_for_the_commit_phase_is_not_kept_from_it_in(true);
}

/// The same without the commit log (it did not doom the holder: the stress below hung).
#[test]
fn an_inevitable_waiter_for_the_commit_phase_is_not_kept_from_it_no_log() {
    an_inevitable_waiter_for_the_commit_phase_is_not_kept_from_it_in(false);
}

/// The undisturbed race: one thread whose transactions become inevitable and then enter the
/// commit phase, while the others commit through the phase in a tight loop. Every thread
/// must keep committing (a hang is a failure after [`WATCHDOG`]).
fn inevitable_commits_beside_a_tight_loop_of_commit_phases_in(log: bool) {
    let secs = env_or("STMJIT_COMMIT_PHASE_SECS", 1);
    within_watchdog("the commit-phase stress", move |progress| {
        let stm = Stm::new(config_mode(log, 3, WaitPolicy::Wait)).unwrap();
        let t = types(&stm);
        let cells = make_cells(&stm, &t, &[0, 0, 0]);
        let stop = Arc::new(AtomicBool::new(false));
        let commits: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
        let workers: Vec<_> = (0..3)
            .map(|k| {
                let (stm, stop, commits) = (stm.clone(), stop.clone(), commits.clone());
                let cell = cells[k];
                std::thread::spawn(move || {
                    let mut th = stm.thread();
                    let mut n = 0;
                    while !stop.load(SeqCst) {
                        n += 1;
                        th.run(|tx| {
                            if k == 0 {
                                tx.become_inevitable()?;
                            }
                            tx.write_u64(cell, 8, n)?;
                            tx.enter_commit_phase()
                        });
                        commits[k].fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
            progress.store(commits.iter().map(|c| c.load(SeqCst)).sum(), SeqCst);
        }
        stop.store(true, SeqCst);
        for w in workers {
            w.join().unwrap();
        }
        for (k, c) in commits.iter().enumerate() {
            assert!(c.load(SeqCst) > 0, "thread {k} never committed");
        }
    });
}

#[test]
fn inevitable_commits_beside_a_tight_loop_of_commit_phases() {
    inevitable_commits_beside_a_tight_loop_of_commit_phases_in(true);
}

/// The same without the commit log.
#[test]
fn inevitable_commits_beside_a_tight_loop_of_commit_phases_no_log() {
    inevitable_commits_beside_a_tight_loop_of_commit_phases_in(false);
}
