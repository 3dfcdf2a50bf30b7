//! Isolation, conflicts, inevitability, misuse.

mod common;
use common::*;
use stmjit_runtime::*;

fn gs_points_at_segment_during_transaction_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[7]);
    let mut a = stm.thread();
    a.begin();
    assert_eq!(a.read_u64(c[0], 8).unwrap(), 7);
    assert_eq!(gs::get_gs_base(), stm.segment_base(a.segment()));
    // The read marker was really stored through %gs into our segment.
    assert_eq!(
        stm.read_marker(a.segment(), c[0]),
        stm.segment_info(a.segment())
            .read_version
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    a.commit().unwrap();
}

#[test]
fn gs_points_at_segment_during_transaction() {
    gs_points_at_segment_during_transaction_in(false);
}

/// The same with the commit log.
#[test]
fn gs_points_at_segment_during_transaction_commit_log() {
    gs_points_at_segment_during_transaction_in(true);
}

fn isolation_write_invisible_until_commit_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut a = stm.thread();
    let mut b = stm.thread();
    a.begin();
    b.begin();
    a.write_u64(c, 8, 42).unwrap();
    assert_eq!(a.read_u64(c, 8).unwrap(), 42);
    assert_eq!(
        stm.committed_u64(c, 8),
        1,
        "segment 0 unchanged before commit"
    );
    assert_eq!(stm.segment_u64(b.segment(), c, 8), 1);
    assert_eq!(
        b.read_u64(c, 8).unwrap(),
        1,
        "other segment sees the old value"
    );
    b.commit().unwrap();
    a.commit().unwrap();
    assert_eq!(stm.committed_u64(c, 8), 42);
    b.begin();
    assert_eq!(b.read_u64(c, 8).unwrap(), 42, "visible after commit");
    b.commit().unwrap();
    // The flag is set again everywhere, and the page was privatized once.
    for s in 0..=2 {
        assert_eq!(stm.segment_header(s, c).flags as u8 & WRITE_BARRIER_FLAG, 1);
    }
    // With the commit log, `b` also imports the commit into a private copy of its own when
    // it validates (its shared page, segment 0, does not hold the new bytes yet).
    let copies = if stm.config().commit_log { 2 } else { 1 };
    assert_eq!(stm.stats().pages_privatized, copies);
}

#[test]
fn isolation_write_invisible_until_commit() {
    isolation_write_invisible_until_commit_in(false);
}

/// The same with the commit log.
#[test]
fn isolation_write_invisible_until_commit_commit_log() {
    isolation_write_invisible_until_commit_in(true);
}

fn write_read_conflict_aborts_the_reader_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut reader = stm.thread();
    let mut writer = stm.thread();
    reader.begin();
    writer.begin();
    assert_eq!(reader.read_u64(c, 8).unwrap(), 1);
    writer.set_site(77);
    writer.write_u64(c, 8, 2).unwrap();
    let (rs, ws) = (reader.segment(), writer.segment());
    writer.commit().unwrap();
    let e = reader.read_u64(c, 8).unwrap_err();
    assert_eq!(e.cause(), AbortCause::WriteRead);
    assert!(!reader.in_transaction());
    let st = stm.stats();
    assert_eq!(st.aborts_write_read, 1);
    assert_eq!(st.commits, 2);
    assert_eq!(
        st.conflicts,
        vec![Conflict {
            kind: ConflictKind::WriteRead,
            winner_segment: ws as u32,
            loser_segment: rs as u32,
            object: c,
            site: 77,
            type_id: t.cell.0,
        }]
    );
    reader.begin();
    assert_eq!(reader.read_u64(c, 8).unwrap(), 2);
    reader.commit().unwrap();
}

#[test]
fn write_read_conflict_aborts_the_reader() {
    write_read_conflict_aborts_the_reader_in(false);
}

/// The same with the commit log.
#[test]
fn write_read_conflict_aborts_the_reader_commit_log() {
    write_read_conflict_aborts_the_reader_in(true);
}

fn no_conflict_when_reader_did_not_read_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1, 2]);
    let mut a = stm.thread();
    let mut b = stm.thread();
    a.begin();
    b.begin();
    a.read_u64(c[0], 8).unwrap();
    b.write_u64(c[1], 8, 5).unwrap();
    b.commit().unwrap();
    // a sees b's commit of an object it had not read (it serializes after b).
    assert_eq!(a.read_u64(c[1], 8).unwrap(), 5);
    a.commit().unwrap();
    assert_eq!(stm.stats().aborts(), 0);
}

#[test]
fn no_conflict_when_reader_did_not_read() {
    no_conflict_when_reader_did_not_read_in(false);
}

/// The same with the commit log.
#[test]
fn no_conflict_when_reader_did_not_read_commit_log() {
    no_conflict_when_reader_did_not_read_in(true);
}

fn write_write_conflict_younger_yields_older_takes_over_in(log: bool) {
    let stm = Stm::new(config_mode(log, 3, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut old = stm.thread();
    let mut young = stm.thread();
    old.begin();
    young.begin();
    // Younger attacker against an older holder: the younger aborts.
    old.write_u64(c, 8, 10).unwrap();
    let e = young.write_u64(c, 8, 20).unwrap_err();
    assert_eq!(e.cause(), AbortCause::WriteWrite);
    old.abort();
    // Now the old one (retried, keeps its age) attacks the younger holder: it takes over.
    old.begin();
    young.begin(); // keeps its timestamp too, still younger than old
    young.write_u64(c, 8, 20).unwrap();
    assert_eq!(stm.lock_owner(c) as usize, young.segment());
    old.write_u64(c, 8, 10).unwrap();
    assert_eq!(stm.lock_owner(c) as usize, old.segment());
    assert_eq!(
        young.read_u64(c, 8).unwrap_err().cause(),
        AbortCause::WriteWrite
    );
    old.commit().unwrap();
    assert_eq!(stm.committed_u64(c, 8), 10);
    let st = stm.stats();
    assert_eq!(st.aborts_write_write, 2);
    assert_eq!(st.aborts_explicit, 1);
    assert_eq!(stm.lock_owner(c), 0);
}

#[test]
fn write_write_conflict_younger_yields_older_takes_over() {
    write_write_conflict_younger_yields_older_takes_over_in(false);
}

/// The same with the commit log.
#[test]
fn write_write_conflict_younger_yields_older_takes_over_commit_log() {
    write_write_conflict_younger_yields_older_takes_over_in(true);
}

fn doomed_transaction_cannot_commit_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut a = stm.thread();
    let mut b = stm.thread();
    a.begin();
    b.begin();
    a.read_u64(c, 8).unwrap();
    b.write_u64(c, 8, 3).unwrap();
    b.commit().unwrap();
    assert_eq!(a.commit().unwrap_err().cause(), AbortCause::WriteRead);
}

#[test]
fn doomed_transaction_cannot_commit() {
    doomed_transaction_cannot_commit_in(false);
}

/// The same with the commit log.
#[test]
fn doomed_transaction_cannot_commit_commit_log() {
    doomed_transaction_cannot_commit_in(true);
}

fn inevitable_reader_wins_write_read_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut inev = stm.thread();
    let mut w = stm.thread();
    inev.begin();
    w.begin();
    inev.read_u64(c, 8).unwrap();
    inev.become_inevitable().unwrap();
    w.write_u64(c, 8, 9).unwrap();
    assert_eq!(w.commit().unwrap_err().cause(), AbortCause::WriteRead);
    assert_eq!(inev.read_u64(c, 8).unwrap(), 1);
    inev.commit().unwrap();
    assert_eq!(stm.committed_u64(c, 8), 1);
}

#[test]
fn inevitable_reader_wins_write_read() {
    inevitable_reader_wins_write_read_in(false);
}

/// The same with the commit log.
#[test]
fn inevitable_reader_wins_write_read_commit_log() {
    inevitable_reader_wins_write_read_in(true);
}

fn inevitable_wins_write_write_both_ways_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1, 1]);
    let mut older = stm.thread();
    let mut inev = stm.thread();
    older.begin();
    inev.begin();
    inev.become_inevitable().unwrap();
    // The inevitable (younger by timestamp) takes the older one's lock over.
    older.write_u64(c[0], 8, 5).unwrap();
    inev.write_u64(c[0], 8, 6).unwrap();
    assert_eq!(older.poll().unwrap_err().cause(), AbortCause::WriteWrite);
    // And an attacker against the inevitable holder yields.
    older.begin();
    inev.write_u64(c[1], 8, 7).unwrap();
    assert_eq!(
        older.write_u64(c[1], 8, 8).unwrap_err().cause(),
        AbortCause::WriteWrite
    );
    inev.commit().unwrap();
    assert_eq!(stm.committed_u64(c[0], 8), 6);
    assert_eq!(stm.committed_u64(c[1], 8), 7);
}

#[test]
fn inevitable_wins_write_write_both_ways() {
    inevitable_wins_write_write_both_ways_in(false);
}

/// The same with the commit log.
#[test]
fn inevitable_wins_write_write_both_ways_commit_log() {
    inevitable_wins_write_write_both_ways_in(true);
}

fn only_one_inevitable_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let mut a = stm.thread();
    let mut b = stm.thread();
    a.begin();
    b.begin();
    a.become_inevitable().unwrap();
    assert!(b.become_inevitable().is_err());
    a.commit().unwrap();
    b.begin();
    b.become_inevitable().unwrap();
    b.commit().unwrap();
}

#[test]
fn only_one_inevitable() {
    only_one_inevitable_in(false);
}

/// The same with the commit log.
#[test]
fn only_one_inevitable_commit_log() {
    only_one_inevitable_in(true);
}

fn abort_restores_and_unlocks_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut a = stm.thread();
    a.begin();
    a.write_u64(c, 8, 99).unwrap();
    let seg = a.segment();
    assert_eq!(stm.segment_u64(seg, c, 8), 99);
    assert_eq!(a.abort().cause(), AbortCause::Explicit);
    assert_eq!(stm.segment_u64(seg, c, 8), 1);
    assert_eq!(
        stm.segment_header(seg, c).flags as u8 & WRITE_BARRIER_FLAG,
        1
    );
    assert_eq!(stm.lock_owner(c), 0);
    assert_eq!(stm.stats().aborts_explicit, 1);
}

#[test]
fn abort_restores_and_unlocks() {
    abort_restores_and_unlocks_in(false);
}

/// The same with the commit log.
#[test]
fn abort_restores_and_unlocks_commit_log() {
    abort_restores_and_unlocks_in(true);
}

fn cards_do_not_conflict_on_different_elements_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let arr = make_array(&stm, &t, 4096, 1); // 32 KiB: 9 pages
    let before = stm.stats().pages_privatized;
    let mut a = stm.thread();
    let mut b = stm.thread();
    a.begin();
    b.begin();
    assert_eq!(a.read_elem_u64(arr, elem(0)).unwrap(), 1);
    assert_eq!(b.read_elem_u64(arr, elem(4000)).unwrap(), 1);
    a.write_elem_u64(arr, elem(0), 2).unwrap();
    b.write_elem_u64(arr, elem(4000), 3).unwrap();
    b.write_elem_u64(arr, elem(4001), 3).unwrap();
    // Reading the header (length) does not conflict with element writes either.
    assert_eq!(a.read_u64(arr, 8).unwrap(), 4096);
    a.commit().unwrap();
    b.commit().unwrap();
    assert_eq!(stm.committed_u64(arr, elem(0)), 2);
    assert_eq!(stm.committed_u64(arr, elem(4000)), 3);
    assert_eq!(stm.committed_u64(arr, elem(4001)), 3);
    assert_eq!(stm.committed_u64(arr, elem(2000)), 1);
    let st = stm.stats();
    assert_eq!(st.aborts(), 0);
    assert_eq!(st.conflicts_total, 0);
    // One page each, not the whole 9-page array (with the commit log, `b` validating at its
    // commit also imports `a`'s card into a private copy of that page).
    let copies = if stm.config().commit_log { 3 } else { 2 };
    assert_eq!(st.pages_privatized - before, copies);
    // Same card: conflict.
    a.begin();
    b.begin();
    a.read_elem_u64(arr, elem(10)).unwrap();
    b.write_elem_u64(arr, elem(11), 5).unwrap(); // elements 10 and 11 share a 16-byte card
    b.commit().unwrap();
    assert_eq!(a.poll().unwrap_err().cause(), AbortCause::WriteRead);
}

#[test]
fn cards_do_not_conflict_on_different_elements() {
    cards_do_not_conflict_on_different_elements_in(false);
}

/// The same with the commit log.
#[test]
fn cards_do_not_conflict_on_different_elements_commit_log() {
    cards_do_not_conflict_on_different_elements_in(true);
}

fn commit_without_transaction_panics_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let mut a = stm.thread();
    let _ = a.commit();
}

#[test]
#[should_panic(expected = "commit() called outside a transaction")]
fn commit_without_transaction_panics() {
    commit_without_transaction_panics_in(false);
}

/// The same with the commit log.
#[test]
#[should_panic(expected = "commit() called outside a transaction")]
fn commit_without_transaction_panics_commit_log() {
    commit_without_transaction_panics_in(true);
}

fn barrier_without_transaction_panics_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let mut a = stm.thread();
    let _ = a.read_barrier(stm.layout().old_start);
}

#[test]
#[should_panic(expected = "outside a transaction")]
fn barrier_without_transaction_panics() {
    barrier_without_transaction_panics_in(false);
}

/// The same with the commit log.
#[test]
#[should_panic(expected = "outside a transaction")]
fn barrier_without_transaction_panics_commit_log() {
    barrier_without_transaction_panics_in(true);
}

fn reference_outside_heap_panics_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let mut a = stm.thread();
    a.begin();
    // Slow-path checks run in every build; the fast-path check only in debug builds.
    let _ = a.write_elem_barrier(0x100, 0);
}

#[test]
#[should_panic(expected = "outside the object space")]
fn reference_outside_heap_panics() {
    reference_outside_heap_panics_in(false);
}

/// The same with the commit log.
#[test]
#[should_panic(expected = "outside the object space")]
fn reference_outside_heap_panics_commit_log() {
    reference_outside_heap_panics_in(true);
}

fn ffi_entry_points_report_status_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut a = stm.thread();
    let mut b = stm.thread();
    a.begin();
    b.begin();
    // SAFETY: the handles are valid and used from this thread only.
    unsafe {
        assert_eq!(ffi::stmjit_write_barrier_slow(&mut a, c), ffi::STATUS_OK);
        a.store_u64(c, 8, 5);
        let n = ffi::stmjit_alloc(&mut b, t.cell.0, 16);
        assert_ne!(n, 0);
        b.read_u64(c, 8).unwrap();
        a.commit().unwrap();
        assert_eq!(ffi::stmjit_poll(&mut b), ffi::STATUS_ABORTED);
        assert!(!b.in_transaction());
    }
    assert_eq!(stm.committed_u64(c, 8), 5);
}

#[test]
fn ffi_entry_points_report_status() {
    ffi_entry_points_report_status_in(false);
}

/// The same with the commit log.
#[test]
fn ffi_entry_points_report_status_commit_log() {
    ffi_entry_points_report_status_in(true);
}

fn default_config_reserves_large_segments_in(log: bool) {
    let cfg = StmConfig {
        commit_log: log,
        ..StmConfig::default()
    };
    assert!(cfg.num_segments >= 2);
    let stm = Stm::new(cfg).unwrap();
    let l = *stm.layout();
    assert_eq!(l.segment_size, default_segment_size());
    // The largest power of two not above the machine's memory, clamped.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let mut want = MIN_DEFAULT_SEGMENT;
    while want * 2 <= (kib << 10) && want < MAX_DEFAULT_SEGMENT {
        want *= 2;
    }
    assert_eq!(l.segment_size, want, "MemTotal {kib} kB");
    assert!(l.segment_size.is_power_of_two());
    assert_eq!(l.read_markers_start, l.object_start >> 4);
    assert_eq!(l.card_marker_disp, l.segment_size / 16);
    assert!(l.old_start >= l.nursery_end && l.read_markers_end <= l.segment_size / 16);
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[3])[0];
    let mut th = stm.thread();
    assert_eq!(th.run(|tx| tx.read_u64(c, 8)), 3);
    // The segment-info page is where the docs say, with the segment's own number and base.
    let info = stm.segment_info(1);
    assert_eq!(info.segment_num, 1);
    assert_eq!(
        info.segment_base.load(std::sync::atomic::Ordering::Relaxed),
        stm.segment_base(1)
    );
    assert_eq!(
        info as *const SegmentInfo as u64,
        stm.segment_base(1) + INFO_OFFSET
    );
}

#[test]
fn default_config_reserves_large_segments() {
    default_config_reserves_large_segments_in(false);
}

/// The same with the commit log.
#[test]
fn default_config_reserves_large_segments_commit_log() {
    default_config_reserves_large_segments_in(true);
}

/// One committed cell and two transactions begun in that order (the first is the older).
fn cell_and_two_transactions(
    log: bool,
    policy: WaitPolicy,
) -> (std::sync::Arc<Stm>, u64, StmThread, StmThread) {
    let stm = Stm::new(config_mode(log, 2, policy)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let mut first = stm.thread();
    let mut second = stm.thread();
    first.begin();
    second.begin();
    (stm, c, first, second)
}

/// A transaction in its commit phase is about to commit: an older writer of the same object
/// yields to it (here, with `AbortSelf`, by aborting itself) instead of dooming it.
fn commit_phase_is_not_doomed_by_an_older_writer_in(log: bool) {
    let (stm, c, mut older, mut younger) = cell_and_two_transactions(log, WaitPolicy::AbortSelf);
    younger.enter_commit_phase().unwrap();
    younger.write_u64(c, 8, 2).unwrap();
    assert!(
        older.write_u64(c, 8, 3).is_err(),
        "the older writer must yield to the transaction in its commit phase"
    );
    younger.commit().unwrap();
    assert_eq!(stm.committed_u64(c, 8), 2);
}

#[test]
fn commit_phase_is_not_doomed_by_an_older_writer() {
    commit_phase_is_not_doomed_by_an_older_writer_in(false);
}

/// The same with the commit log.
#[test]
fn commit_phase_is_not_doomed_by_an_older_writer_commit_log() {
    commit_phase_is_not_doomed_by_an_older_writer_in(true);
}

/// A transaction in its commit phase never waits for a lock: it takes it over from an
/// older holder (which is doomed), and another transaction can enter the phase after its
/// commit.
fn commit_phase_takes_locks_from_older_holders_in(log: bool) {
    let (stm, c, mut older, mut younger) = cell_and_two_transactions(log, WaitPolicy::AbortSelf);
    older.write_u64(c, 8, 3).unwrap();
    younger.enter_commit_phase().unwrap();
    younger.write_u64(c, 8, 2).unwrap();
    younger.commit().unwrap();
    assert!(older.poll().is_err(), "the older holder was doomed");
    assert_eq!(stm.committed_u64(c, 8), 2);
    older.begin();
    older.enter_commit_phase().unwrap();
    older.write_u64(c, 8, 4).unwrap();
    older.commit().unwrap();
    assert_eq!(stm.committed_u64(c, 8), 4);
}

#[test]
fn commit_phase_takes_locks_from_older_holders() {
    commit_phase_takes_locks_from_older_holders_in(false);
}

/// The same with the commit log.
#[test]
fn commit_phase_takes_locks_from_older_holders_commit_log() {
    commit_phase_takes_locks_from_older_holders_in(true);
}

/// The commit phase does not wait for an inevitable holder (which cannot be doomed, and
/// may itself be waiting to enter the phase): it aborts itself. (A transaction asking for the
/// phase while another is inevitable waits for it first: this one entered it before.)
fn commit_phase_yields_to_an_inevitable_holder_in(log: bool) {
    let (stm, c, mut inev, mut other) = cell_and_two_transactions(log, WaitPolicy::Wait);
    other.enter_commit_phase().unwrap();
    inev.become_inevitable().unwrap();
    inev.write_u64(c, 8, 5).unwrap();
    assert!(other.write_u64(c, 8, 6).is_err());
    inev.commit().unwrap();
    assert_eq!(stm.committed_u64(c, 8), 5);
}

#[test]
fn commit_phase_yields_to_an_inevitable_holder() {
    commit_phase_yields_to_an_inevitable_holder_in(false);
}

/// The same with the commit log.
#[test]
fn commit_phase_yields_to_an_inevitable_holder_commit_log() {
    commit_phase_yields_to_an_inevitable_holder_in(true);
}
