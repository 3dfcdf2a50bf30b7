//! Read-version wrap-around: markers are reset in bulk, so a marker left by a transaction 255
//! versions ago never causes a spurious conflict, and markers keep working after the reset.

mod common;
use common::*;
use stmjit_runtime::*;

fn read_version_wraps_around_over_600_transactions_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[0])[0];
    let arr = make_array(&stm, &t, 64, 0);
    let mut a = stm.thread();
    let mut b = stm.thread();
    // Leave markers with every version value on c and on one card.
    a.begin();
    let seg = a.segment();
    a.read_u64(c, 8).unwrap();
    a.read_elem_u64(arr, elem(3)).unwrap();
    a.commit().unwrap();
    let mut seen_versions = std::collections::BTreeSet::new();
    for i in 0..600u64 {
        a.begin();
        assert_eq!(a.segment(), seg);
        let rv = stm
            .segment_info(seg)
            .read_version
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_ne!(rv, 0, "read version 0 is never used");
        seen_versions.insert(rv);
        b.begin();
        b.write_u64(c, 8, i + 1).unwrap();
        b.write_elem_u64(arr, elem(3), i + 1).unwrap();
        b.commit().unwrap();
        // a did not read c in this transaction: no conflict, whatever its read version.
        a.poll().unwrap();
        if i % 7 == 0 {
            // Markers still work after resets: a read followed by a commit conflicts.
            assert_eq!(a.read_u64(c, 8).unwrap(), i + 1);
            b.begin();
            b.write_u64(c, 8, i + 1).unwrap();
            b.commit().unwrap();
            assert_eq!(a.poll().unwrap_err().cause(), AbortCause::WriteRead);
        } else {
            a.commit().unwrap();
        }
    }
    assert_eq!(seen_versions.len(), 255);
    let st = stm.stats();
    assert!(st.marker_resets >= 2, "{st:?}");
    assert_eq!(st.aborts(), 86); // i % 7 == 0 for i in 0..600
}

#[test]
fn read_version_wraps_around_over_600_transactions() {
    read_version_wraps_around_over_600_transactions_in(false);
}

/// The same with the commit log.
#[test]
fn read_version_wraps_around_over_600_transactions_commit_log() {
    read_version_wraps_around_over_600_transactions_in(true);
}

/// After a wrap-around every read and card marker a transaction set is 0 again, whether the
/// reset clears the few marker pages in use (2 arrays) or drops the whole marker area (80
/// arrays of 64 KiB: 80 marker pages of each kind, more than a reset clears one by one).
fn markers_are_clear_after_a_wrap_in(log: bool, arrays: u64) {
    let stm = Stm::new(config_mode(log, 1, WaitPolicy::AbortSelf)).unwrap();
    let t = types(&stm);
    let n = 8190; // 16 + 8 * 8190 = 64 KiB: one marker page of each kind per array
    let arrs: Vec<Ref> = (0..arrays).map(|_| make_array(&stm, &t, n, 0)).collect();
    let spots = [0, n / 2, n - 1];
    let mut a = stm.thread();
    a.begin();
    let seg = a.segment();
    let rv = |stm: &Stm| {
        stm.segment_info(seg)
            .read_version
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for &r in &arrs {
        for &i in &spots {
            a.read_elem_u64(r, elem(i)).unwrap();
            a.write_elem_u64(r, elem(i), i + 1).unwrap();
        }
    }
    for &r in &arrs {
        for &i in &spots {
            let v = rv(&stm);
            assert_eq!(stm.read_marker(seg, r + elem(i)), v);
            assert_eq!(stm.card_marker(seg, r + elem(i)), v);
        }
    }
    a.commit().unwrap();
    let resets = stm.stats().marker_resets;
    loop {
        a.begin();
        assert_eq!(a.segment(), seg);
        if rv(&stm) == 1 {
            break;
        }
        a.commit().unwrap();
    }
    assert_eq!(stm.stats().marker_resets, resets + 1);
    for &r in &arrs {
        for &i in &spots {
            assert_eq!(stm.read_marker(seg, r + elem(i)), 0, "array {r:#x} [{i}]");
            assert_eq!(stm.card_marker(seg, r + elem(i)), 0, "array {r:#x} [{i}]");
        }
    }
    // The markers work after the reset: the writes of the earlier transaction committed.
    for &r in &arrs {
        assert_eq!(a.read_elem_u64(r, elem(n - 1)).unwrap(), n);
        assert_eq!(stm.read_marker(seg, r + elem(n - 1)), 1);
    }
    a.commit().unwrap();
}

#[test]
fn markers_are_clear_after_a_wrap_few_pages() {
    markers_are_clear_after_a_wrap_in(false, 2);
    markers_are_clear_after_a_wrap_in(true, 2);
}

#[test]
fn markers_are_clear_after_a_wrap_many_pages() {
    markers_are_clear_after_a_wrap_in(false, 80);
    markers_are_clear_after_a_wrap_in(true, 80);
}
