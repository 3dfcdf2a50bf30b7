//! Runtime additions the JIT needs: `commit_with` (commit-ordered hooks), restart roots,
//! conflict information on aborts, and the one-segment (`--gil`) runtime.

mod common;
use common::gcnode::*;
use common::*;
use std::sync::{Arc, Barrier, Mutex};
use stmjit_runtime::*;

/// Runs one transaction reading the counter `c` (and incrementing it if `write`), retrying
/// after aborts; the hook logs (thread, value seen or written, write) at the commit point.
fn counter_tx(
    th: &mut StmThread,
    c: Ref,
    write: bool,
    me: usize,
    log: &Mutex<Vec<(usize, u64, bool)>>,
) {
    loop {
        th.begin();
        let r = (|| -> Result<u64, Abort> {
            let v = th.read_u64(c, 8)?;
            if write {
                th.write_u64(c, 8, v + 1)?;
                Ok(v + 1)
            } else {
                Ok(v)
            }
        })();
        match r {
            Ok(v) => {
                let mut hook = || log.lock().unwrap().push((me, v, write));
                if th.commit_with(&mut hook).is_ok() {
                    return;
                }
            }
            Err(_) => {
                if th.in_transaction() {
                    th.abort();
                }
            }
        }
    }
}

fn commit_with_hooks_run_in_commit_order_in(log: bool) {
    const THREADS: usize = 4;
    const TXS: usize = 2000;
    let stm = Stm::new(config_mode(log, THREADS, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0])[0];
    let log = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(THREADS));
    let hs: Vec<_> = (0..THREADS)
        .map(|i| {
            let (stm, log, barrier) = (stm.clone(), log.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut th = stm.thread();
                barrier.wait();
                for j in 0..TXS {
                    counter_tx(&mut th, c, (i + j) % 3 == 0, i, &log);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(
        log.len(),
        THREADS * TXS,
        "one hook per committed transaction"
    );
    // Replaying the log in order must reproduce the committed counter values: writers see
    // 1, 2, 3, ... and every reader sees the value of the last writer before it.
    let mut cur = 0;
    for (k, &(th, v, write)) in log.iter().enumerate() {
        if write {
            cur += 1;
            assert_eq!(
                v, cur,
                "entry {k} (thread {th}): writer out of commit order"
            );
        } else {
            assert_eq!(
                v, cur,
                "entry {k} (thread {th}): reader out of commit order"
            );
        }
    }
    assert_eq!(stm.committed_u64(c, 8), cur);
}

#[test]
fn commit_with_hooks_run_in_commit_order() {
    commit_with_hooks_run_in_commit_order_in(false);
}

/// The same with the commit log.
#[test]
fn commit_with_hooks_run_in_commit_order_commit_log() {
    commit_with_hooks_run_in_commit_order_in(true);
}

fn commit_with_hook_not_run_when_commit_fails_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut reader = stm.thread();
    let mut writer = stm.thread();
    reader.begin();
    writer.begin();
    reader.read_u64(c, 8).unwrap();
    writer.write_u64(c, 8, 2).unwrap();
    let mut ran_w = 0;
    writer.commit_with(&mut || ran_w += 1).unwrap();
    assert_eq!(ran_w, 1);
    // The reader was doomed by the writer's commit: its commit fails and the hook never runs.
    let mut ran_r = 0;
    let e = reader.commit_with(&mut || ran_r += 1).unwrap_err();
    assert_eq!(e.cause(), AbortCause::WriteRead);
    assert_eq!(ran_r, 0);
    assert!(!reader.in_transaction());
}

#[test]
fn commit_with_hook_not_run_when_commit_fails() {
    commit_with_hook_not_run_when_commit_fails_in(false);
}

/// The same with the commit log.
#[test]
fn commit_with_hook_not_run_when_commit_fails_commit_log() {
    commit_with_hook_not_run_when_commit_fails_in(true);
}

/// Commits a node with `k` fields and returns it (old, committed, not rooted anywhere).
fn committed_node(th: &mut StmThread, ty: TypeId, id: i64, k: usize) -> Ref {
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let r = new_node(tx, ty, id, k)?;
        tx.shadow_stack().set(f, 0, r);
        Ok(())
    });
    let r = th.shadow_stack().get(f, 0);
    th.shadow_stack().pop(f);
    r
}

fn restart_roots_keep_objects_alive_across_major_collections_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    let ty = node_type(&stm);
    let mut th = stm.thread();
    th.collect_major().unwrap();
    let base = stm.allocated_bytes();
    let keep = committed_node(&mut th, ty, 41, 30);
    let size = stm.allocated_bytes() - base;
    assert!(size >= 16 + 8 * 32, "node not counted: {size}");
    // A child reachable only through the rooted node.
    let child = committed_node(&mut th, ty, 42, 2);
    th.run(|tx| tx.write_u64(keep, field(0), child));
    let both = stm.allocated_bytes();
    th.set_restart_roots(&[keep, int(7), value::NONE]);
    assert_eq!(th.restart_roots(), vec![keep, int(7), value::NONE]);
    for round in 0..4 {
        // Garbage in between, and collections from this thread (outside a transaction) and
        // from another thread (while this one is outside a transaction).
        th.run(|tx| {
            for i in 0..50 {
                new_node(tx, ty, 1000 + i, 4)?;
            }
            Ok(())
        });
        if round % 2 == 0 {
            th.collect_major().unwrap();
        } else {
            let s2 = stm.clone();
            std::thread::spawn(move || s2.thread().collect_major().unwrap())
                .join()
                .unwrap();
        }
        assert_eq!(stm.allocated_bytes(), both, "round {round}");
        assert_eq!(stm.stats().live_bytes, both, "round {round}");
        th.run(|tx| {
            let (id, f) = read_node(tx, keep)?;
            assert_eq!(id, 41);
            assert_eq!(f[0], child);
            assert_eq!(read_node(tx, child)?.0, 42);
            Ok(())
        });
    }
    // Also marked while this thread is inside a transaction (stopped at a safe point).
    th.begin();
    th.collect_major().unwrap();
    th.commit().unwrap();
    assert_eq!(stm.allocated_bytes(), both);
    th.set_restart_roots(&[]);
    assert!(th.restart_roots().is_empty());
    th.collect_major().unwrap();
    assert_eq!(
        stm.allocated_bytes(),
        base,
        "restart roots cleared: both nodes freed"
    );
    assert_eq!(stm.stats().live_bytes, base);
}

#[test]
fn restart_roots_keep_objects_alive_across_major_collections() {
    restart_roots_keep_objects_alive_across_major_collections_in(false);
}

/// The same with the commit log.
#[test]
fn restart_roots_keep_objects_alive_across_major_collections_commit_log() {
    restart_roots_keep_objects_alive_across_major_collections_in(true);
}

fn write_read_conflict_info_names_the_winner_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let arr = make_array(&stm, &t, 64, 0);
    // Object.
    let mut reader = stm.thread();
    let mut writer = stm.thread();
    reader.begin();
    writer.begin();
    reader.read_u64(c, 8).unwrap();
    writer.set_site(77);
    writer.write_u64(c, 8, 2).unwrap();
    writer.set_site(78); // the site recorded by the barrier counts, not the latest
    let ws = writer.segment() as u32;
    let wseq = writer.transaction_seq();
    writer.commit().unwrap();
    let e = reader.poll().unwrap_err();
    assert_eq!(e.cause(), AbortCause::WriteRead);
    assert_eq!(
        e.conflict(),
        Some(ConflictInfo {
            kind: ConflictKind::WriteRead,
            object: c,
            addr: c,
            type_id: t.cell.0,
            winner: Side::wrote(77),
            loser: Side::was_at(NO_SITE),
            winner_segment: ws,
            winner_seq: wseq,
        })
    );
    assert_eq!(stm.stats().conflicts.last().unwrap().type_id, t.cell.0);
    // Card: the carded object is named, not the granule.
    reader.begin();
    writer.begin();
    reader.read_elem_u64(arr, elem(40)).unwrap();
    writer.set_site(91);
    writer.write_elem_u64(arr, elem(40), 5).unwrap();
    let ws = writer.segment() as u32;
    let wseq = writer.transaction_seq();
    writer.commit().unwrap();
    let e = reader.poll().unwrap_err();
    assert_eq!(
        e.conflict(),
        Some(ConflictInfo {
            kind: ConflictKind::WriteRead,
            object: arr,
            addr: (arr + elem(40)) & !15,
            type_id: t.array.0,
            winner: Side::wrote(91),
            loser: Side::was_at(NO_SITE),
            winner_segment: ws,
            winner_seq: wseq,
        })
    );
    // The next transaction of the same segment does not inherit it.
    reader.begin();
    assert_eq!(reader.abort().conflict(), None);
}

#[test]
fn write_read_conflict_info_names_the_winner() {
    write_read_conflict_info_names_the_winner_in(false);
}

/// The same with the commit log.
#[test]
fn write_read_conflict_info_names_the_winner_commit_log() {
    write_read_conflict_info_names_the_winner_in(true);
}

fn write_write_conflict_info_names_the_winner_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let arr = make_array(&stm, &t, 64, 0);
    let mut old = stm.thread();
    let mut young = stm.thread();
    // The older transaction takes the lock over and dooms the younger holder.
    old.begin();
    young.begin();
    young.set_site(5);
    young.write_u64(c, 8, 10).unwrap();
    old.set_site(9);
    old.write_u64(c, 8, 20).unwrap();
    let e = young.poll().unwrap_err();
    assert_eq!(e.cause(), AbortCause::WriteWrite);
    assert_eq!(
        e.conflict(),
        Some(ConflictInfo {
            kind: ConflictKind::WriteWrite,
            object: c,
            addr: c,
            type_id: t.cell.0,
            winner: Side::wrote(9),
            // The holder names its own write (site 5) when it aborts.
            loser: Side::wrote(5),
            winner_segment: old.segment() as u32,
            winner_seq: old.transaction_seq(),
        })
    );
    assert_eq!(stm.stats().conflicts.last().unwrap().type_id, t.cell.0);
    // The younger yields (AbortSelf) on a card the older one holds.
    young.begin();
    old.set_site(13);
    old.write_elem_u64(arr, elem(3), 1).unwrap();
    young.set_site(6);
    let e = young.write_elem_u64(arr, elem(3), 2).unwrap_err();
    assert_eq!(
        e.conflict(),
        Some(ConflictInfo {
            kind: ConflictKind::WriteWrite,
            object: arr,
            addr: (arr + elem(3)) & !15,
            type_id: t.array.0,
            winner: Side::was_at(13),
            loser: Side::wrote(6),
            winner_segment: old.segment() as u32,
            winner_seq: old.transaction_seq(),
        })
    );
    old.commit().unwrap();
    assert_eq!(stm.committed_u64(c, 8), 20);
}

#[test]
fn write_write_conflict_info_names_the_winner() {
    write_write_conflict_info_names_the_winner_in(false);
}

/// The same with the commit log.
#[test]
fn write_write_conflict_info_names_the_winner_commit_log() {
    write_write_conflict_info_names_the_winner_in(true);
}

fn explicit_abort_has_no_conflict_info_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut a = stm.thread();
    a.begin();
    a.write_u64(c, 8, 3).unwrap();
    let e = a.abort();
    assert_eq!(e.cause(), AbortCause::Explicit);
    assert_eq!(e.conflict(), None);
}

#[test]
fn explicit_abort_has_no_conflict_info() {
    explicit_abort_has_no_conflict_info_in(false);
}

/// The same with the commit log.
#[test]
fn explicit_abort_has_no_conflict_info_commit_log() {
    explicit_abort_has_no_conflict_info_in(true);
}

fn one_segment_runtime_two_threads_take_turns_in(log: bool) {
    let stm = Stm::new(config_mode(log, 1, WaitPolicy::Wait)).unwrap();
    assert_eq!(stm.num_segments(), 1);
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0])[0];
    let barrier = Arc::new(Barrier::new(2));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let (stm, barrier) = (stm.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut th = stm.thread();
                barrier.wait();
                for _ in 0..1000 {
                    th.run(|tx| {
                        let v = tx.read_u64(c, 8)?;
                        tx.write_u64(c, 8, v + 1)
                    });
                    assert_eq!(th.segment(), 0);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(stm.committed_u64(c, 8), 2000);
    assert_eq!(stm.stats().aborts(), 0);
}

#[test]
fn one_segment_runtime_two_threads_take_turns() {
    one_segment_runtime_two_threads_take_turns_in(false);
}

/// The same with the commit log.
#[test]
fn one_segment_runtime_two_threads_take_turns_commit_log() {
    one_segment_runtime_two_threads_take_turns_in(true);
}

/// With `record_read_sites`, a write/read conflict names where the aborted transaction
/// read the object (the site current at its read barrier), for objects and for cards; a
/// read of an earlier transaction of the same segment is not reported; an inevitable
/// reader that wins is named by its read (without the commit log, where the committer
/// checks the inevitable transaction's reads), or by where it is (with the log, where a
/// writer never appends while another transaction is inevitable, whatever it read).
fn recorded_read_sites_name_the_aborted_read_in(log: bool) {
    let stm = Stm::new(StmConfig {
        record_read_sites: true,
        ..config_mode(log, 2, WaitPolicy::AbortSelf)
    })
    .unwrap();
    assert!(stm.records_read_sites());
    let t = types(&stm);
    let cs = make_cells(&stm, &t, &[1, 2]);
    let (c, d) = (cs[0], cs[1]);
    let arr = make_array(&stm, &t, 64, 0);
    let mut reader = stm.thread();
    let mut writer = stm.thread();
    reader.begin();
    writer.begin();
    reader.set_site(40);
    reader.read_u64(c, 8).unwrap();
    reader.set_site(41); // later sites do not overwrite the read's
    reader.read_u64(d, 8).unwrap();
    writer.set_site(77);
    writer.write_u64(c, 8, 2).unwrap();
    writer.commit().unwrap();
    let e = reader.poll().unwrap_err().conflict().unwrap();
    assert_eq!((e.winner, e.loser), (Side::wrote(77), Side::read(40)));
    assert_eq!(e.loser.access, Access::Read);
    // Cards: the element's granule.
    reader.begin();
    writer.begin();
    reader.set_site(50);
    reader.read_elem_u64(arr, elem(40)).unwrap();
    writer.set_site(91);
    writer.write_elem_u64(arr, elem(40), 5).unwrap();
    writer.commit().unwrap();
    let e = reader.poll().unwrap_err().conflict().unwrap();
    assert_eq!((e.addr, e.loser), ((arr + elem(40)) & !15, Side::read(50)));
    // A read of the previous transaction (same segment, site 60) is not this one's: the
    // transaction that conflicts read `c` again at 61.
    reader.begin();
    reader.set_site(60);
    reader.read_u64(d, 8).unwrap();
    reader.commit().unwrap();
    reader.begin();
    writer.begin();
    reader.set_site(61);
    reader.read_u64(c, 8).unwrap();
    writer.set_site(78);
    writer.write_u64(d, 8, 3).unwrap(); // d: not read in this transaction, no conflict
    writer.write_u64(c, 8, 3).unwrap();
    writer.commit().unwrap();
    let e = reader.poll().unwrap_err().conflict().unwrap();
    assert_eq!((e.object, e.loser), (c, Side::read(61)));
    // An inevitable reader wins over the committer of what it read: where it was is named
    // (no writer commits while another transaction is inevitable, in either mode: it yields
    // whatever the inevitable one read, so no read of it is named), and the committer's
    // write.
    reader.begin();
    writer.begin();
    reader.set_site(70);
    reader.read_u64(c, 8).unwrap();
    reader.set_site(71);
    reader.become_inevitable().unwrap();
    writer.set_site(79);
    writer.write_u64(c, 8, 4).unwrap();
    let e = writer.commit().unwrap_err().conflict().unwrap();
    assert_eq!((e.winner, e.loser), (Side::was_at(71), Side::wrote(79)));
    reader.commit().unwrap();
}

#[test]
fn recorded_read_sites_name_the_aborted_read() {
    recorded_read_sites_name_the_aborted_read_in(false);
}

#[test]
fn recorded_read_sites_name_the_aborted_read_commit_log() {
    recorded_read_sites_name_the_aborted_read_in(true);
}

/// Without `record_read_sites` (the default) the aborted side of a write/read conflict is
/// unknown, and no table is mapped.
#[test]
fn read_sites_are_not_recorded_by_default() {
    let stm = Stm::new(config(2, WaitPolicy::AbortSelf)).unwrap();
    assert!(!stm.records_read_sites());
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut reader = stm.thread();
    let mut writer = stm.thread();
    reader.begin();
    writer.begin();
    reader.set_site(40);
    reader.read_u64(c, 8).unwrap();
    writer.write_u64(c, 8, 2).unwrap();
    writer.commit().unwrap();
    let e = reader.poll().unwrap_err().conflict().unwrap();
    assert_eq!(e.loser, Side::was_at(NO_SITE));
}

// ---- the one-word poll: requests mark `SegmentInfo::budget` ----

/// A read-only view of a segment's budget word, as JIT code sees it.
fn budget_of(stm: &Stm, seg: usize) -> i64 {
    stm.segment_info(seg)
        .budget
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// JIT code's poll on the budget word: a plain decrement (not atomic), `true` when the
/// result is negative (the slow path is due).
fn jit_poll(stm: &Stm, seg: usize) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let b = &stm.segment_info(seg).budget;
    let v = b.load(Relaxed) - 1;
    b.store(v, Relaxed);
    v < 0
}

fn requests_mark_the_budget_once_and_the_slow_path_restores_it_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1, 1]);
    let mut a = stm.thread();
    let mut b = stm.thread();
    b.begin();
    b.set_budget(1000);
    let bs = b.segment();
    for _ in 0..10 {
        assert!(!jit_poll(&stm, bs));
    }
    assert_eq!(budget_of(&stm, bs), 990);
    // b reads c[0]; a writes it: a doom (c7) or a validation request (commit log), and a
    // mark on b's budget, once, however many requests.
    b.read_u64(c[0], 8).unwrap();
    for i in 0..3 {
        a.begin();
        a.write_u64(c[if i == 0 { 0 } else { 1 }], 8, 2 + i)
            .unwrap();
        a.commit().unwrap();
    }
    assert_eq!(budget_of(&stm, bs), 990 + BUDGET_REQUEST, "one mark");
    assert!(jit_poll(&stm, bs), "the next poll takes the slow path");
    assert_eq!(b.take_budget(), 989, "the count survives the mark");
    assert_eq!(budget_of(&stm, bs), 989);
    assert_eq!(b.poll().unwrap_err().cause(), AbortCause::WriteRead);
    // A request pending when the owner stores a new budget stays visible.
    b.begin();
    b.read_u64(c[1], 8).unwrap();
    a.begin();
    a.write_u64(c[1], 8, 9).unwrap();
    a.commit().unwrap();
    b.set_budget(500);
    assert!(budget_of(&stm, bs) < BUDGET_MARKED_BELOW, "marked again");
    assert_eq!(b.take_budget(), 500);
    assert!(b.poll().is_err());
    // An exhausted budget is told apart from a request: no mark, negative count.
    b.begin();
    b.set_budget(0);
    assert!(jit_poll(&stm, bs));
    assert_eq!(b.take_budget(), -1);
    b.poll().unwrap();
    b.commit().unwrap();
}

#[test]
fn requests_mark_the_budget_once_and_the_slow_path_restores_it() {
    requests_mark_the_budget_once_and_the_slow_path_restores_it_in(false);
    requests_mark_the_budget_once_and_the_slow_path_restores_it_in(true);
}

/// A thread that polls only its budget word (no other runtime entry) answers every
/// stop-the-world of another thread's commits, although its plain decrement can overwrite a
/// mark that lands inside it (the committer marks again while it waits), and its count comes
/// out exact: every mark is taken off again.
#[test]
fn a_poll_that_reads_only_the_budget_answers_every_stop_the_world() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    const COMMITS: u64 = 300;
    const START: i64 = 1 << 40;
    let stm = Stm::new(config_mode(false, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0])[0];
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(2));
    let slow = Arc::new(AtomicU64::new(0));
    let poller = {
        let (stm, stop, started, slow) = (stm.clone(), stop.clone(), started.clone(), slow.clone());
        std::thread::spawn(move || {
            let mut th = stm.thread();
            th.begin();
            th.set_budget(START);
            let seg = th.segment();
            started.wait();
            let mut polls = 0i64;
            while !stop.load(SeqCst) {
                polls += 1;
                if jit_poll(&stm, seg) {
                    let left = th.take_budget();
                    assert!(left >= 0, "a budget of 2^40 is never exhausted here");
                    th.poll().unwrap();
                    slow.fetch_add(1, SeqCst);
                }
            }
            assert_eq!(th.take_budget(), START - polls, "exact count");
            th.commit().unwrap();
        })
    };
    started.wait();
    let mut w = stm.thread();
    for i in 0..COMMITS {
        w.begin();
        w.write_u64(c, 8, i).unwrap();
        w.commit().unwrap(); // stops the world: waits for the poller's safe point
    }
    stop.store(true, SeqCst);
    poller.join().unwrap();
    assert!(slow.load(SeqCst) > 0);
    assert_eq!(stm.committed_u64(c, 8), COMMITS - 1);
}
