//! Behaviour specific to the commit log (`StmConfig::commit_log`, `docs/COMMITLOG.md`):
//! snapshots, lock hand-over after a wait, waits for an inevitable transaction, freeing of
//! entries, and entries as roots of the major collection. (Every other runtime test also
//! runs with the log, as its `*_commit_log` variant.)

mod common;
use common::gcnode::*;
use common::*;
use std::sync::mpsc::channel;
use std::sync::Arc;
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
    writers_wait_for_an_inevitable_transaction_in(true);
}

/// The same without the commit log (stop-the-world commits): a writer does not publish
/// while another transaction is inevitable either, also when the inevitable one has no read
/// marker on what it writes. JIT code relies on it: after a call that made a boundary, the
/// caller goes on in an inevitable transaction with the read markers of the one before
/// (`jit/src/compile/barriers.rs`, "Marks across calls"); a writer publishing over its
/// unmarked reads would show it a torn state. (Before, such a writer committed, and the
/// inevitable transaction read the new value of `c[1]` below.)
#[test]
fn writers_wait_for_an_inevitable_transaction_without_the_log() {
    writers_wait_for_an_inevitable_transaction_in(false);
}

fn writers_wait_for_an_inevitable_transaction_in(log: bool) {
    let stm = Stm::new(config_mode(log, 2, WaitPolicy::Wait)).unwrap();
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
    // Safe points of the inevitable transaction: a writer stopping the world would run here.
    inev.poll().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    inev.poll().unwrap();
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

// ---- objects allocated by a committing transaction: their entry carries no bytes ----
//
// An entry holds only the ranges of the objects its transaction allocated; their contents
// are in segment 0 (written through the committer's shared mapping, or copied there from
// its private pages at commit). These tests make each combination of "the page is private
// or shared in the committer / in the reader" happen, publish new objects in an existing
// one, and check that the reader sees every byte of them.

/// Number of nodes each publishing transaction allocates.
const NEW_NODES: usize = 20;

/// Page of a segment offset.
fn page(r: Ref) -> u64 {
    r / 4096
}

/// Makes the page of `r` private in `th`'s segment without committing anything: writes `r`
/// and aborts (the abort restores the bytes; the page stays private). Returns the segment.
fn privatize_by_abort(stm: &Stm, th: &mut StmThread, r: Ref) -> usize {
    th.begin();
    let seg = th.segment();
    let before = stm.private_pages(seg);
    th.write_u64(r, field(0), int(-1)).unwrap();
    assert!(
        stm.private_pages(seg) > before,
        "the write privatized the page"
    );
    th.abort();
    seg
}

/// In one transaction of `w`: allocates [`NEW_NODES`] nodes (ids `base + i`, two fields:
/// a child node and the index), links each into the list held by `holder`'s field 0, and
/// returns the nodes' references (after the commit).
fn publish_nodes(w: &mut StmThread, ty: TypeId, holder: Ref, base: i64) -> Vec<Ref> {
    let f = w.shadow_stack().push(NEW_NODES);
    w.run(|tx| {
        for i in 0..NEW_NODES {
            let child = new_node(tx, ty, base + 1000 + i as i64, 0)?;
            tx.shadow_stack().set(f, i, child);
            let n = new_node(tx, ty, base + i as i64, 2)?;
            let child = tx.shadow_stack().get(f, i);
            tx.write_u64(n, field(0), child)?;
            tx.write_u64(n, field(1), int(i as i64))?;
            tx.shadow_stack().set(f, i, n);
        }
        // Link them: holder -> n[19] -> ... is not needed; each node goes into holder's
        // fields (holder has NEW_NODES fields).
        for i in 0..NEW_NODES {
            let n = tx.shadow_stack().get(f, i);
            tx.write_u64(holder, field(i), n)?;
        }
        Ok(())
    });
    let v = (0..NEW_NODES).map(|i| w.shadow_stack().get(f, i)).collect();
    w.shadow_stack().pop(f);
    v
}

/// Reads every node published in `holder` by [`publish_nodes`] in `r`'s current
/// transaction and checks all of its bytes (ids, check words, child, index).
fn check_published(r: &mut StmThread, holder: Ref, base: i64) -> Result<(), Abort> {
    for i in 0..NEW_NODES {
        let n = r.read_u64(holder, field(i))?;
        let (id, fs) = read_node(r, n)?;
        assert_eq!(id, base + i as i64, "node {i}");
        assert_eq!(fs[1], int(i as i64), "node {i}");
        let (cid, _) = read_node(r, fs[0])?;
        assert_eq!(cid, base + 1000 + i as i64, "child of node {i}");
    }
    Ok(())
}

/// Commits a holder node (NEW_NODES fields) and a neighbour node of the published nodes'
/// size class (so on the page their allocator fills next, in `w`'s segment); both rooted.
fn holder_and_neighbour(stm: &Arc<Stm>, w: &mut StmThread, ty: TypeId) -> (Ref, Ref) {
    let f = w.shadow_stack().push(2);
    w.run(|tx| {
        let h = new_node(tx, ty, 1, NEW_NODES)?;
        tx.shadow_stack().set(f, 0, h);
        let n = new_node(tx, ty, 2, 2)?;
        tx.shadow_stack().set(f, 1, n);
        Ok(())
    });
    let (h, n) = (w.shadow_stack().get(f, 0), w.shadow_stack().get(f, 1));
    w.shadow_stack().pop(f);
    stm.add_root(h);
    stm.add_root(n);
    (h, n)
}

/// The four combinations of private and shared pages, for a reader inside a transaction
/// (it validates at its next runtime entry) and for one that begins after the commit.
#[test]
fn new_objects_reach_segments_with_private_or_shared_pages() {
    for (writer_private, reader_private) in
        [(false, false), (false, true), (true, false), (true, true)]
    {
        for reader_in_tx in [false, true] {
            let what = format!(
                "writer page private {writer_private}, reader page private {reader_private}, \
                 reader in a transaction {reader_in_tx}"
            );
            let stm = Stm::new(config_mode(true, 2, WaitPolicy::AbortSelf)).unwrap();
            let ty = node_type(&stm);
            let mut w = stm.thread();
            let mut r = stm.thread();
            let (holder, neighbour) = holder_and_neighbour(&stm, &mut w, ty);
            assert_ne!(
                page(holder),
                page(neighbour),
                "holder in another size class"
            );
            if writer_private {
                privatize_by_abort(&stm, &mut w, neighbour);
            }
            if reader_private {
                privatize_by_abort(&stm, &mut r, neighbour);
            }
            let privs = (stm.private_pages(1), stm.private_pages(2));
            if reader_in_tx {
                r.begin();
                // Nothing the writer writes: the reader's snapshot stays valid.
                read_node(&mut r, neighbour).unwrap();
            }
            let nodes = publish_nodes(&mut w, ty, holder, 100);
            assert!(
                nodes.iter().any(|&n| page(n) == page(neighbour)),
                "{what}: some new node lies on the neighbour's page"
            );
            // Segment 0 holds the new nodes' bytes (the entry does not).
            for (i, &n) in nodes.iter().enumerate() {
                assert_eq!(stm.segment_u64(0, n, 16), int(100 + i as i64), "{what}");
            }
            if !reader_in_tx {
                r.begin();
            }
            check_published(&mut r, holder, 100).unwrap_or_else(|a| panic!("{what}: {a:?}"));
            r.commit().unwrap();
            // The page states this test meant to set up held until the commit (the holder's
            // page is privatized in the reader by its import, the writer's write of it).
            let now = (stm.private_pages(1), stm.private_pages(2));
            assert!(
                now.0 >= privs.0 && now.1 >= privs.1,
                "{what}: {privs:?} -> {now:?}"
            );
            let st = stm.stats();
            assert!(
                st.log_max_bytes < 4096,
                "{what}: the entry carries only the holder, not {} new nodes: {st:?}",
                2 * NEW_NODES
            );
        }
    }
}

/// An idle segment (its thread between transactions) whose copy of the new objects' page
/// is private is brought up to date by whoever applies the log: it must copy them from
/// segment 0, since the entries carry no bytes for them.
#[test]
fn new_objects_reach_an_idle_segment_with_a_private_page() {
    let stm = Stm::new(config_mode(true, 2, WaitPolicy::AbortSelf)).unwrap();
    let ty = node_type(&stm);
    let mut w = stm.thread();
    let mut r = stm.thread();
    let (holder, neighbour) = holder_and_neighbour(&stm, &mut w, ty);
    let rseg = privatize_by_abort(&stm, &mut r, neighbour);
    let nodes = publish_nodes(&mut w, ty, holder, 100);
    assert!(nodes.iter().any(|&n| page(n) == page(neighbour)));
    // Enough commits for the log to be applied (and the idle segment brought along).
    for round in 0..40 {
        w.run(|tx| tx.write_u64(neighbour, field(1), int(round)));
    }
    let st = stm.stats();
    assert!(st.log_entries < 20, "the log was applied: {st:?}");
    assert!(stm.private_pages(rseg) >= 1);
    r.begin();
    assert_eq!(
        r.segment(),
        rseg,
        "the reader's segment was idle, not used by the writer"
    );
    check_published(&mut r, holder, 100).unwrap();
    assert_eq!(r.read_u64(neighbour, field(1)).unwrap(), int(39));
    r.commit().unwrap();
}

/// A large new object (allocated outside the nursery) whose fields are the only references
/// to other new objects, published while a reader's snapshot keeps its entry in the log:
/// a major collection must find those objects by tracing it in segment 0 (the entry has
/// no copy of its contents to scan), or they are freed and reused.
#[test]
fn major_collection_traces_new_objects_of_kept_entries_in_segment_0() {
    let stm = Stm::new(cfg_mode(true, 2)).unwrap();
    let ty = node_type(&stm);
    let mut w = stm.thread();
    let (holder, neighbour) = holder_and_neighbour(&stm, &mut w, ty);
    let mut r = stm.thread();
    r.begin();
    read_node(&mut r, neighbour).unwrap();
    const K: usize = 300; // 16 + 8 * 302 bytes: above the large-object limit of a 4 KiB nursery
    let f = w.shadow_stack().push(1);
    w.run(|tx| {
        let big = new_node(tx, ty, 7, K)?;
        tx.shadow_stack().set(f, 0, big);
        for i in 0..K {
            let c = new_node(tx, ty, 10_000 + i as i64, 0)?;
            let big = tx.shadow_stack().get(f, 0);
            tx.write_u64(big, field(i), c)?;
        }
        let big = tx.shadow_stack().get(f, 0);
        tx.write_u64(holder, field(0), big)?;
        Ok(())
    });
    w.shadow_stack().pop(f);
    assert!(stm.stats().log_entries >= 1, "the reader keeps the entry");
    w.collect_major().unwrap();
    // Allocate over anything freed, then collect again.
    w.run(|tx| {
        for i in 0..2000 {
            new_node(tx, ty, 50_000 + i, 1)?;
        }
        Ok(())
    });
    w.collect_major().unwrap();
    r.poll().unwrap();
    let big = r.read_u64(holder, field(0)).unwrap();
    let (id, fs) = read_node(&mut r, big).unwrap();
    assert_eq!(id, 7);
    for (i, &c) in fs.iter().enumerate() {
        assert_eq!(
            read_node(&mut r, c).unwrap().0,
            10_000 + i as i64,
            "child {i}"
        );
    }
    r.commit().unwrap();
}

/// Objects of one size that a transaction allocated one after the other are adjacent, and
/// their entry holds them as one merged range (`build_entry`). While the entry is kept, each
/// of them must survive major collections, not only the first of the range: an importer
/// copies the whole range from segment 0, over whatever would have been allocated there.
/// Here nothing references them after the commit, so only the entry keeps them.
#[test]
fn major_collection_keeps_every_object_of_a_merged_new_range() {
    let stm = Stm::new(cfg_mode(true, 2)).unwrap();
    let ty = node_type(&stm);
    let mut w = stm.thread();
    w.collect_major().unwrap();
    let mut r = stm.thread();
    r.begin(); // pins every entry appended from now on
    const K: usize = 64;
    let before = stm.allocated_bytes();
    let f = w.shadow_stack().push(K);
    w.run(|tx| {
        for i in 0..K {
            let n = new_node(tx, ty, 100 + i as i64, 0)?;
            tx.shadow_stack().set(f, i, n);
        }
        Ok(())
    });
    let nodes: Vec<Ref> = (0..K).map(|i| w.shadow_stack().get(f, i)).collect();
    w.shadow_stack().pop(f);
    let adjacent = nodes
        .windows(2)
        .filter(|p| p[1] > p[0] && p[1] - p[0] <= 64)
        .count();
    assert!(
        adjacent >= K / 2,
        "the nodes were allocated next to each other"
    );
    let committed = stm.allocated_bytes();
    assert!(committed > before);
    assert!(stm.stats().log_entries >= 1, "the reader keeps the entry");
    w.collect_major().unwrap();
    assert_eq!(
        stm.allocated_bytes(),
        committed,
        "every object of the kept entry survives"
    );
    for (i, &n) in nodes.iter().enumerate() {
        assert_eq!(
            stm.committed_u64(n, 16),
            int(100 + i as i64),
            "node {i} intact"
        );
    }
    // Once the reader has moved past the entry, nothing keeps them.
    r.commit().unwrap();
    w.run(|_| Ok(()));
    w.collect_major().unwrap();
    assert!(stm.allocated_bytes() < committed, "then they are freed");
}
