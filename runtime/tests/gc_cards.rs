//! Card markers and address reuse: the card write barrier's fast path skips the slow path when
//! the card marker already holds the current read version. These tests guard the invariant
//! that makes this safe for objects promoted by the running transaction (see `barrier.rs`,
//! "Card markers and reused memory"): no old-space address whose card marker holds the
//! current read version of a segment is ever handed to that segment's promotions.

mod common;
use std::sync::atomic::Ordering::SeqCst;
use stmjit_runtime::value::{self, NONE};
use stmjit_runtime::*;

use common::gcnode::*;

/// A card-marked vector of values: header, length (tagged int) at 8, elements from 16.
fn vec_size(obj: *const u8) -> usize {
    // SAFETY: called by the runtime on a mapped object whose length word is initialised.
    let w = unsafe { *(obj.add(8) as *const u64) };
    16 + 8
        * (if value::is_int(w) {
            value::to_int(w) as usize
        } else {
            0
        })
}

fn vec_trace(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    for i in 0..(vec_size(obj) - 16) / 8 {
        // SAFETY: the words lie inside the object.
        visit(unsafe { obj.add(16 + 8 * i) } as *mut u64);
    }
}

fn vec_type(stm: &Stm) -> TypeId {
    stm.register_type(TypeInfo {
        name: "vec",
        size: vec_size,
        trace: vec_trace,
        carded: true,
        trace_card: None,
    })
}

/// Elements per vector: 80-byte objects, a size class no node of these tests uses.
const LEN: u64 = 8;
/// The element the tests write (its card is not the header's).
const E: u64 = 16 + 8 * 3;
/// Vectors promoted per batch: more than one 4 KiB page of 80-byte slots (51).
const BATCH: usize = 60;

/// Allocates a young vector of `LEN` elements (length stored before anything can collect).
fn new_vec(tx: &mut StmThread, vt: TypeId) -> Ref {
    let v = tx.alloc(vt, 16 + 8 * LEN).unwrap();
    tx.store_u64(v, 8, int(LEN as i64));
    v
}

fn rv(stm: &Stm, seg: usize) -> u8 {
    stm.segment_info(seg).read_version.load(SeqCst)
}

/// Fills slots `[s0, s0 + BATCH)` of frame `f` with young vectors and promotes them.
fn promote_batch(th: &mut StmThread, vt: TypeId, f: Frame, s0: usize) -> Vec<Ref> {
    for i in 0..BATCH {
        let v = new_vec(th, vt);
        th.shadow_stack().set(f, s0 + i, v);
    }
    th.collect_minor().unwrap();
    (0..BATCH)
        .map(|i| th.shadow_stack().get(f, s0 + i))
        .collect()
}

/// Writes a fresh young node (id `base + i`) through the card barrier into element `E` of
/// each promoted vector of slots `[s0, s0 + n)`, runs a minor collection, overwrites the
/// nursery with other nodes, and checks that every node was promoted and is intact (a write
/// the barrier failed to record would leave a dangling nursery reference behind).
fn store_young_and_check(th: &mut StmThread, ty: TypeId, f: Frame, s0: usize, n: usize, base: i64) {
    let l = *th.stm().layout();
    for i in 0..n {
        let node = new_node(th, ty, base + i as i64, 0).unwrap();
        let v = th.shadow_stack().get(f, s0 + i);
        th.write_elem_u64(v, E, node).unwrap();
    }
    th.collect_minor().unwrap();
    for k in 0..40 {
        new_node(th, ty, -1 - k, 2).unwrap();
    }
    for i in 0..n {
        let v = th.shadow_stack().get(f, s0 + i);
        let node = th.read_elem_u64(v, E).unwrap();
        assert!(
            !(l.nursery_start..l.nursery_end).contains(&node),
            "vec {v:#x}: element still refers to the nursery ({node:#x}): write not recorded"
        );
        assert_eq!(read_node(th, node).unwrap().0, base + i as i64);
    }
}

/// Freed memory whose card marker still holds an old read version, reused by a promotion in
/// a later transaction of the same segment that runs with that very read version again (after
/// a read-version wrap-around): the first card write to the new object must still be recorded.
fn reused_address_with_stale_card_marker_records_first_write_after_promotion_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let ty = node_type(&stm);
    let vt = vec_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(2 * BATCH);
    // The victim: a committed vector, first of its size class.
    th.run(|tx| {
        let v = new_vec(tx, vt);
        tx.shadow_stack().set(f, 0, v);
        Ok(())
    });
    let x = th.shadow_stack().get(f, 0);
    // Card-mark it in a transaction, then let it die.
    th.begin();
    let seg = th.segment();
    let rv1 = rv(&stm, seg);
    th.read_elem_u64(x, E).unwrap();
    th.write_elem_u64(x, E, int(7)).unwrap();
    assert_eq!(
        stm.card_marker(seg, x + E),
        rv1,
        "slow path marked the card"
    );
    th.commit().unwrap();
    th.shadow_stack().set(f, 0, NONE);
    let freed = stm.stats().major_freed_bytes;
    th.collect_major().unwrap();
    assert!(stm.stats().major_freed_bytes > freed, "the vector died");
    assert_eq!(
        stm.read_marker(seg, x + E),
        0,
        "the sweep clears the read markers of freed objects"
    );
    // Come back to the same read version in the same segment (255 transactions later, with a
    // marker reset at the wrap-around in between).
    let mut n = 0;
    loop {
        th.begin();
        assert_eq!(th.segment(), seg);
        if rv(&stm, seg) == rv1 {
            break;
        }
        th.commit().unwrap();
        n += 1;
    }
    assert_eq!(n, 254, "one full read-version cycle");
    assert!(stm.stats().marker_resets >= 1);
    // Promote vectors until one lands on the victim's address.
    let vs = promote_batch(&mut th, vt, f, 0);
    assert!(
        vs.contains(&x),
        "a promotion reused the freed address {x:#x}"
    );
    for &v in &vs {
        assert_ne!(
            stm.card_marker(seg, v + E),
            rv1,
            "promoted {v:#x}: card marker holds the current read version"
        );
        assert_eq!(th.read_elem_u64(v, E).unwrap(), NONE, "zeroed young copy");
    }
    // Twice: the minor collection in between re-sets the write-barrier flags of the written
    // new objects, and their next card write must be recorded again.
    store_young_and_check(&mut th, ty, f, 0, BATCH, 1000);
    store_young_and_check(&mut th, ty, f, 0, BATCH, 2000);
    th.commit().unwrap();
    th.run(|tx| {
        for i in 0..BATCH {
            let v = tx.shadow_stack().get(f, i);
            let node = tx.read_elem_u64(v, E)?;
            assert_eq!(read_node(tx, node)?.0, 2000 + i as i64);
        }
        Ok(())
    });
    th.collect_major().unwrap();
    let mut t2 = stm.thread();
    let vs: Vec<Ref> = (0..BATCH).map(|i| th.shadow_stack().get(f, i)).collect();
    t2.run(|tx| {
        for (i, &v) in vs.iter().enumerate() {
            let node = tx.read_elem_u64(v, E)?;
            assert_eq!(read_node(tx, node)?.0, 2000 + i as i64);
        }
        Ok(())
    });
}

#[test]
fn reused_address_with_stale_card_marker_records_first_write_after_promotion() {
    reused_address_with_stale_card_marker_records_first_write_after_promotion_in(false);
}

/// The same with the commit log.
#[test]
fn reused_address_with_stale_card_marker_records_first_write_after_promotion_commit_log() {
    reused_address_with_stale_card_marker_records_first_write_after_promotion_in(true);
}

/// An object card-marked by the running transaction cannot be freed before the transaction
/// ends (its `Card` record is a root of the major collection), so its address, whose card
/// marker holds the current read version, is not reused by this transaction's promotions even
/// after a major collection in the middle of the transaction drops every other reference.
fn card_marked_object_is_not_reused_within_its_transaction_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let ty = node_type(&stm);
    let vt = vec_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(2 * BATCH);
    th.run(|tx| {
        let v = new_vec(tx, vt);
        tx.shadow_stack().set(f, 0, v);
        Ok(())
    });
    let x = th.shadow_stack().get(f, 0);
    th.begin();
    let seg = th.segment();
    let rv1 = rv(&stm, seg);
    th.write_elem_u64(x, E, int(7)).unwrap();
    assert_eq!(stm.card_marker(seg, x + E), rv1);
    // No reference to x is left but this transaction's card record.
    th.shadow_stack().set(f, 0, NONE);
    th.collect_major().unwrap();
    let mut all = Vec::new();
    for round in 0..2 {
        let vs = promote_batch(&mut th, vt, f, round * BATCH);
        for &v in &vs {
            assert_ne!(
                v, x,
                "promotion reused an object card-marked by this transaction"
            );
            assert_ne!(stm.card_marker(seg, v + E), rv1);
        }
        all.extend(vs);
        store_young_and_check(&mut th, ty, f, 0, all.len(), 100 * round as i64);
        th.collect_major().unwrap();
    }
    assert_eq!(stm.segment_u64(seg, x, E), int(7), "x intact");
    th.commit().unwrap();
    assert_eq!(stm.committed_u64(x, E), int(7));
    let mut t2 = stm.thread();
    t2.run(|tx| {
        for (i, &v) in all.iter().enumerate() {
            let node = tx.read_elem_u64(v, E)?;
            assert_eq!(read_node(tx, node)?.0, 100 + i as i64);
        }
        Ok(())
    });
}

#[test]
fn card_marked_object_is_not_reused_within_its_transaction() {
    card_marked_object_is_not_reused_within_its_transaction_in(false);
}

/// The same with the commit log.
#[test]
fn card_marked_object_is_not_reused_within_its_transaction_commit_log() {
    card_marked_object_is_not_reused_within_its_transaction_in(true);
}

/// Calls of [`counted_vec_trace`] (only the test below registers that type; its two modes
/// take [`COUNTED_LOCK`] so they do not count each other's calls).
static COUNTED_TRACES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static COUNTED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn counted_vec_trace(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    COUNTED_TRACES.fetch_add(1, SeqCst);
    vec_trace(obj, visit);
}

/// The card-marked vector type whose traces [`COUNTED_TRACES`] counts, with or without a
/// card trace hook.
fn counted_vec_type(stm: &Stm, trace_card: Option<CardTraceFn>) -> TypeId {
    stm.register_type(TypeInfo {
        name: "counted_vec",
        size: vec_size,
        trace: counted_vec_trace,
        carded: true,
        trace_card,
    })
}

/// A major collection in the middle of a transaction that wrote every card of a big
/// card-marked vector (one modified record per 16-byte card) traces the vector's transaction
/// version once, not once per card record: per record, a major collection was quadratic in
/// the object's size (a 1.5 M-element dict built in one transaction spent minutes in
/// `Marker::trace`). The single trace must still keep alive what only the transaction's
/// version references.
fn big_card_marked_object_traced_once_per_view_in(log: bool) {
    let _serial = COUNTED_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    const N: u64 = 4096;
    const NODES: usize = 64;
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let ty = node_type(&stm);
    let vt = counted_vec_type(&stm, None);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1 + NODES);
    // A committed vector of N elements and NODES committed nodes held only by the frame.
    th.run(|tx| {
        let v = tx.alloc(vt, 16 + 8 * N)?;
        tx.store_u64(v, 8, int(N as i64));
        tx.shadow_stack().set(f, 0, v);
        for i in 0..NODES {
            let node = new_node(tx, ty, 500 + i as i64, 0)?;
            tx.shadow_stack().set(f, 1 + i, node);
        }
        Ok(())
    });
    let v = th.shadow_stack().get(f, 0);
    th.begin();
    // Every element written: N/2 card records. The nodes go to elements spread over the
    // vector, and their frame slots are cleared: only the transaction's version of the vector
    // references them now.
    for i in 0..N {
        th.write_elem_u64(v, 16 + 8 * i, int(i as i64)).unwrap();
    }
    let step = N as usize / NODES;
    for i in 0..NODES {
        let node = th.shadow_stack().get(f, 1 + i);
        th.write_elem_u64(v, 16 + 8 * (i * step) as u64, node)
            .unwrap();
        th.shadow_stack().set(f, 1 + i, NONE);
    }
    let before = COUNTED_TRACES.load(SeqCst);
    th.collect_major().unwrap();
    let traces = COUNTED_TRACES.load(SeqCst) - before;
    assert!(
        (1..=2).contains(&traces),
        "the vector was traced {traces} times by one major collection (at most once per \
         view: committed and the transaction's; {} card records)",
        N / 2
    );
    // Reuse the memory of anything the collection freed, then check the nodes.
    for _ in 0..4 {
        for k in 0..NODES {
            let r = new_node(&mut th, ty, -1 - k as i64, 0).unwrap();
            th.shadow_stack().set(f, 1 + k, r);
        }
        th.collect_minor().unwrap();
    }
    th.commit().unwrap();
    th.run(|tx| {
        for i in 0..NODES {
            let node = tx.read_elem_u64(v, 16 + 8 * (i * step) as u64)?;
            assert_eq!(read_node(tx, node)?.0, 500 + i as i64, "node {i} survived");
        }
        for i in 0..N as usize {
            if i % step != 0 {
                assert_eq!(tx.read_elem_u64(v, 16 + 8 * i as u64)?, int(i as i64));
            }
        }
        Ok(())
    });
}

#[test]
fn big_card_marked_object_traced_once_per_view() {
    big_card_marked_object_traced_once_per_view_in(false);
}

/// The same with the commit log.
#[test]
fn big_card_marked_object_traced_once_per_view_commit_log() {
    big_card_marked_object_traced_once_per_view_in(true);
}

/// The card trace hook of the counted vectors: the element words of the card at `card`.
fn vec_trace_card(obj: *mut u8, card: u64, visit: &mut dyn FnMut(*mut u64)) {
    let hi = (card as usize + 16).min(vec_size(obj));
    for off in (card.max(16) as usize..hi).step_by(8) {
        // SAFETY: the words lie inside the object.
        visit(unsafe { obj.add(off) } as *mut u64);
    }
}

/// A minor collection traces only the written cards of a committed card-marked object whose
/// type has a card trace hook, never the whole object: a commit that wrote a few entries of
/// a dict table of 1 000 000 traced the whole table (up to 73 ms per minor collection on a
/// loaded machine, dictfill 1000000 on 2 threads). The young objects written into those
/// cards are promoted and the elements updated.
fn minor_collection_traces_only_the_written_cards_in(log: bool) {
    let _serial = COUNTED_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    const N: u64 = 4096;
    let stm = Stm::new(cfg_mode(log, 1)).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let ty = node_type(&stm);
    let vt = counted_vec_type(&stm, Some(vec_trace_card));
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let v = tx.alloc(vt, 16 + 8 * N)?;
        tx.store_u64(v, 8, int(N as i64));
        tx.shadow_stack().set(f, 0, v);
        Ok(())
    });
    let v = th.shadow_stack().get(f, 0);
    let before = COUNTED_TRACES.load(SeqCst);
    let at = |i: u64| 16 + 8 * (i * 97 % N);
    th.begin();
    // Young nodes held only by elements: each minor collection (a 4 KiB nursery fills every
    // few nodes) must find them through their cards.
    for i in 0..200 {
        let node = new_node(&mut th, ty, 1000 + i as i64, 30).unwrap();
        th.write_elem_u64(v, at(i), node).unwrap();
    }
    th.commit().unwrap();
    assert!(stm.stats().minor_collections > 5);
    assert_eq!(
        COUNTED_TRACES.load(SeqCst) - before,
        0,
        "a minor collection traced the whole vector"
    );
    th.run(|tx| {
        for i in 0..200 {
            let node = tx.read_elem_u64(v, at(i))?;
            assert!(node >= tx.stm().layout().old_start, "element {i} promoted");
            assert_eq!(read_node(tx, node)?.0, 1000 + i as i64, "node {i}");
        }
        Ok(())
    });
}

#[test]
fn minor_collection_traces_only_the_written_cards() {
    minor_collection_traces_only_the_written_cards_in(false);
}

/// The same with the commit log.
#[test]
fn minor_collection_traces_only_the_written_cards_commit_log() {
    minor_collection_traces_only_the_written_cards_in(true);
}
