//! Behaviour specific to the commit log (`StmConfig::commit_log`, `docs/COMMITLOG.md`):
//! snapshots, lock hand-over after a wait, waits for an inevitable transaction, freeing of
//! entries, and entries as roots of the major collection. (Every other runtime test also
//! runs with the log, as its `*_commit_log` variant.)

mod common;
use common::gcnode::*;
use common::*;
use std::sync::mpsc::channel;
use std::time::Duration;
use stmjit_runtime::*;

/// A segment keeps its snapshot until it validates: another segment's commit changes
/// neither its memory nor what it reads, until its next runtime entry.
#[test]
fn a_segment_sees_its_snapshot_until_it_validates() {
    let stm = Stm::new(config_mode(true, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1, 10]);
    let mut a = stm.thread();
    let mut b = stm.thread();
    a.begin();
    b.begin();
    assert_eq!(b.read_u64(c[1], 8).unwrap(), 10);
    a.write_u64(c[0], 8, 2).unwrap();
    a.commit().unwrap();
    assert_eq!(stm.committed_u64(c[0], 8), 2);
    assert_eq!(stm.segment_u64(b.segment(), c[0], 8), 1, "b's snapshot");
    assert_ne!(
        stm.segment_info(b.segment())
            .safe_point_request
            .load(std::sync::atomic::Ordering::SeqCst)
            & REQUEST_VALIDATE,
        0
    );
    // b's next runtime entry validates (no conflict: it did not read c[0]) and imports.
    b.poll().unwrap();
    assert_eq!(stm.segment_u64(b.segment(), c[0], 8), 2);
    assert_eq!(b.read_u64(c[0], 8).unwrap(), 2);
    b.commit().unwrap();
    let st = stm.stats();
    assert_eq!(st.syncs, 0, "nobody was stopped");
    assert!(st.imported_entries >= 1, "{st:?}");
}

/// A transaction that waited for a write lock and then finds, validating, that the lock's
/// previous holder overwrote what it had read, aborts and releases that lock (it held it
/// without a record yet). Without the release, the next writer of the cell spun forever.
#[test]
fn a_lock_taken_after_a_wait_is_released_when_validation_aborts() {
    let stm = Stm::new(config_mode(true, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0, 0]);
    let (x, y) = (c[0], c[1]);
    let (held_tx, held) = channel();
    let (go_tx, go) = channel::<()>();
    let s1 = stm.clone();
    // The older transaction holds y and x, and commits when told.
    let t1 = std::thread::spawn(move || {
        let mut th = s1.thread();
        th.begin();
        th.write_u64(y, 8, 1).unwrap();
        th.write_u64(x, 8, 1).unwrap();
        held_tx.send(()).unwrap();
        go.recv().unwrap();
        th.commit().unwrap();
    });
    held.recv().unwrap();
    let s2 = stm.clone();
    // The younger one reads x, then waits for y's lock.
    let t2 = std::thread::spawn(move || {
        let mut th = s2.thread();
        th.begin();
        assert_eq!(th.read_u64(x, 8).unwrap(), 0);
        th.write_u64(y, 8, 2).unwrap_err().cause()
    });
    std::thread::sleep(Duration::from_millis(200));
    go_tx.send(()).unwrap();
    t1.join().unwrap();
    assert_eq!(t2.join().unwrap(), AbortCause::WriteRead);
    assert_eq!(stm.lock_owner(y), 0, "lock released by the abort");
    let mut th = stm.thread();
    th.run(|tx| tx.write_u64(y, 8, 3));
    assert_eq!(stm.committed_u64(y, 8), 3);
    assert_eq!(stm.committed_u64(x, 8), 1);
}

/// While a transaction is inevitable, writers wait to append (an entry over its snapshot
/// could make it abort); it is never aborted, and the writers go on once it commits.
#[test]
fn writers_wait_for_an_inevitable_transaction() {
    let stm = Stm::new(config_mode(true, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0, 0]);
    let mut inev = stm.thread();
    inev.begin();
    inev.become_inevitable().unwrap();
    assert_eq!(inev.read_u64(c[0], 8).unwrap(), 0);
    let s2 = stm.clone();
    let c1 = c[1];
    let w = std::thread::spawn(move || {
        let mut th = s2.thread();
        th.run(|tx| tx.write_u64(c1, 8, 7));
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(stm.committed_u64(c[1], 8), 0, "the writer waits");
    assert_eq!(inev.read_u64(c[1], 8).unwrap(), 0);
    inev.write_u64(c[0], 8, 5).unwrap();
    inev.commit().unwrap();
    w.join().unwrap();
    assert_eq!(stm.committed_u64(c[0], 8), 5);
    assert_eq!(stm.committed_u64(c[1], 8), 7);
    let st = stm.stats();
    assert!(st.inevitable_waits >= 1, "{st:?}");
    assert!(st.paused_ns > 0, "the wait counts as sync pause: {st:?}");
    assert_eq!(st.aborts(), 0, "{st:?}");
}

/// Entries are applied to segment 0 and freed as commits go on, even with idle segments
/// (brought up to date by whoever frees).
#[test]
fn the_log_stays_short_with_idle_segments() {
    let stm = Stm::new(config_mode(true, 4, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0; 8]);
    // Segment 2 holds a private copy of the cells' page, so the idle import has work.
    let mut other = stm.thread();
    other.begin();
    let _ = other.segment();
    other.write_u64(c[7], 8, 1).unwrap();
    other.commit().unwrap();
    let mut th = stm.thread();
    for i in 0..1000u64 {
        th.run(|tx| tx.write_u64(c[(i % 7) as usize], 8, i));
    }
    let st = stm.stats();
    assert!(st.log_entries < 20, "{st:?}");
    assert!(st.log_max_entries < 40, "{st:?}");
    for k in 0..7 {
        let last = (0..1000u64).filter(|i| i % 7 == k).max().unwrap();
        assert_eq!(stm.committed_u64(c[k as usize], 8), last);
    }
    // The idle segment sees the committed values once it begins again.
    other.begin();
    for k in 0..7 {
        let last = (0..1000u64).filter(|i| i % 7 == k).max().unwrap();
        assert_eq!(other.read_u64(c[k as usize], 8).unwrap(), last);
    }
    other.commit().unwrap();
}

/// A few large entries are applied and freed once every segment has them, without waiting
/// for the log to reach 16 entries (before, three entries of 1.6 MB each were all kept
/// after their commits, with the other segment idle).
#[test]
fn large_entries_are_freed_without_waiting_for_more() {
    let stm = Stm::new(config_mode(true, 2, WaitPolicy::Wait)).unwrap();
    let t = types(&stm);
    const N: u64 = 200_000;
    let arr = make_array(&stm, &t, N, 0);
    let mut th = stm.thread();
    for round in 1..=3u64 {
        th.run(|tx| {
            for i in 0..N {
                tx.write_elem_u64(arr, elem(i), round)?;
            }
            Ok(())
        });
        let st = stm.stats();
        assert_eq!(st.log_entries, 0, "round {round}: {st:?}");
        assert!(
            st.log_max_bytes >= 8 * N,
            "the entry held the array: {st:?}"
        );
        assert_eq!(stm.committed_u64(arr, elem(N - 1)), round);
    }
}

/// An object reachable only through an entry not yet applied to segment 0 (a transaction
/// still sees an older snapshot, so the entry is kept) survives a major collection, and so
/// does the old one that the snapshot still reaches.
#[test]
fn major_collection_keeps_what_kept_entries_reach() {
    let stm = Stm::new(cfg_mode(true, 2)).unwrap();
    let ty = node_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let holder = new_node(tx, ty, 1, 1)?;
        let old = new_node(tx, ty, 2, 0)?;
        tx.write_u64(holder, field(0), old)?;
        tx.shadow_stack().set(f, 0, holder);
        Ok(())
    });
    let holder = th.shadow_stack().get(f, 0);
    th.shadow_stack().pop(f);
    stm.add_root(holder);
    // A reader pins the snapshot where holder -> old.
    let mut reader = stm.thread();
    reader.begin();
    let old = reader.read_u64(holder, field(0)).unwrap();
    // A writer replaces it with a fresh node, reachable only through its entry.
    th.run(|tx| {
        let new = new_node(tx, ty, 3, 0)?;
        tx.write_u64(holder, field(0), new)?;
        Ok(())
    });
    assert!(stm.stats().log_entries >= 1);
    th.collect_major().unwrap();
    // Allocate over any freed memory, then check both versions.
    th.run(|tx| {
        for i in 0..200 {
            new_node(tx, ty, 1000 + i, 3)?;
        }
        Ok(())
    });
    th.collect_major().unwrap();
    // JIT code reads fields with plain loads until its next runtime entry: the old node, in
    // the reader's snapshot, must still be there.
    assert_eq!(reader.load_u64(old, 16), int(2), "old version intact");
    assert_eq!(reader.load_u64(old, 24), int(2 ^ MAGIC));
    // Its next runtime entry finds the overwrite of what it read.
    assert_eq!(reader.commit().unwrap_err().cause(), AbortCause::WriteRead);
    let new = th.run(|tx| tx.read_u64(holder, field(0)));
    assert_eq!(th.run(|tx| read_node(tx, new)).0, 3, "new version intact");
}
