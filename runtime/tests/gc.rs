//! Generational GC tests: shadow-stack roots, minor collections with a 4 KiB nursery, aborts
//! after minor collections, major collections while other threads are inside transactions,
//! bounded memory with page re-sharing, and conflict-free allocation in two threads.
//!
//! `STMJIT_GC_TXS=n` sets the transactions per thread of the random test (default 1500).

mod common;
use common::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use stmjit_runtime::value::{self, NONE};
use stmjit_runtime::*;

use common::gcnode::*;

fn shadow_stack_frames_and_jit_style_pointer_use_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    let mut th = stm.thread();
    let p = th.shadow_stack_ptr();
    let f = th.shadow_stack().push(3);
    assert_eq!(th.shadow_stack().depth(), 3);
    assert_eq!(th.shadow_stack().get(f, 2), NONE);
    th.shadow_stack().set(f, 1, int(5));
    // A hand-built "JIT" frame: frame = top; zero; top += 2; ...; top = frame.
    // SAFETY: p is this handle's shadow stack; 2 slots fit below limit.
    unsafe {
        let frame = (*p).top;
        assert!(frame.add(2) <= (*p).limit);
        *frame = 0;
        *frame.add(1) = 0;
        (*p).top = frame.add(2);
        assert_eq!(th.shadow_stack().depth(), 5);
        *frame.add(1) = int(7);
        (*p).top = frame;
    }
    assert_eq!(th.shadow_stack().get(f, 1), int(5));
    th.shadow_stack().pop(f);
    assert_eq!(th.shadow_stack().depth(), 0);
    let l = *stm.layout();
    assert_eq!(
        th.shadow_stack().capacity(),
        shadowstack::slots_for_objects(l.old_end - l.object_start),
        "a slot per granule of the object space"
    );
    assert_eq!(p, th.shadow_stack_ptr(), "stable address");
}

#[test]
fn shadow_stack_frames_and_jit_style_pointer_use() {
    shadow_stack_frames_and_jit_style_pointer_use_in(false);
}

/// The same with the commit log.
#[test]
fn shadow_stack_frames_and_jit_style_pointer_use_commit_log() {
    shadow_stack_frames_and_jit_style_pointer_use_in(true);
}

fn shadow_stack_overflow_panics_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    let mut th = stm.thread();
    let cap = th.shadow_stack().capacity();
    th.shadow_stack().push(cap + 1);
}

#[test]
#[should_panic(expected = "shadow stack overflow")]
fn shadow_stack_overflow_panics() {
    shadow_stack_overflow_panics_in(false);
}

/// The same with the commit log.
#[test]
#[should_panic(expected = "shadow stack overflow")]
fn shadow_stack_overflow_panics_commit_log() {
    shadow_stack_overflow_panics_in(true);
}

/// The shadow stack holds a slot per granule of the object space: far more than the
/// million slots it had when it was a fixed 8 MiB (a sort of 1.1 M strings failed).
#[test]
fn shadow_stack_is_sized_from_the_heap() {
    let stm = Stm::new(StmConfig {
        segment_size: 1 << 30,
        ..cfg(2)
    })
    .unwrap();
    let mut th = stm.thread();
    let cap = th.shadow_stack().capacity();
    assert!(cap >= (7 << 30) / 8 / 16, "{cap} slots for a 1 GiB segment");
    assert!(cap > shadowstack::MIN_STACK_BYTES / 8);
}

/// The shadow stack is capped at 2 GiB (256 M slots) however large the segment: it is
/// address space per thread, and at 8 GiB a tree of 16 K threads exhausted the process's.
#[test]
fn shadow_stack_is_capped_for_large_segments() {
    let stm = Stm::new(StmConfig {
        segment_size: 16 << 30,
        ..cfg(2)
    })
    .unwrap();
    let mut th = stm.thread();
    assert_eq!(
        th.shadow_stack().capacity(),
        shadowstack::MAX_STACK_BYTES / 8
    );
    assert_eq!(
        shadowstack::slots_for_objects(4 << 30),
        (4usize << 30) / 16,
        "a slot per granule up to the cap"
    );
}

/// The shadow stack of an ended thread handle serves the next one (issue 20: mapping and
/// unmapping one per thread was a system call pair per thread of a spawn tree), empty, and
/// with no more than its bottom megabyte resident, however deep the ended thread went.
#[test]
fn an_ended_threads_shadow_stack_serves_the_next_one() {
    let stm = Stm::new(cfg(2)).unwrap();
    let mut a = stm.thread();
    let ss = a.shadow_stack();
    let base = ss.base;
    let f = ss.push(3 << 20); // 24 MiB of slots, left pushed
    ss.set(f, 0, int(42));
    assert!(ss.resident_bytes() >= 23 << 20);
    drop(a);
    let mut b = stm.thread();
    let ss = b.shadow_stack();
    assert_eq!(ss.base, base, "not the ended thread's stack");
    assert_eq!(ss.depth(), 0);
    assert_eq!(ss.capacity(), stm.thread_reserve_bytes() / 8);
    // SAFETY: the slot lies in the mapping (read only): what the ended thread left there.
    let stale = unsafe { *ss.base };
    assert_eq!(
        stale,
        int(42),
        "a new mapping (zeroed), not the ended thread's stack"
    );
    let r = ss.resident_bytes();
    assert!(r <= shadowstack::KEEP_RESIDENT_BYTES, "{r} bytes resident");
    // Two at once: the second one maps its own.
    let mut c = stm.thread();
    assert_ne!(c.shadow_stack().base, base);
}

/// Releasing a deep stack gives its memory back; a small release on a deep stack, and the
/// bottom megabyte, stay resident.
#[test]
fn shadow_stack_release_gives_memory_back() {
    let stm = Stm::new(cfg(2)).unwrap();
    let mut th = stm.thread();
    let ss = th.shadow_stack();
    let base = ss.top;
    let before = ss.resident_bytes();
    let f = ss.push(3 << 20); // 24 MiB of slots, written (zeroed) by the push
    let deep = ss.resident_bytes();
    assert!(deep >= before + (23 << 20), "resident {before} -> {deep}");
    // A small release high up: nothing given back.
    let top = ss.top;
    let g = ss.push(100);
    ss.release_to(top);
    assert!(ss.resident_bytes() >= deep);
    let _ = (f, g);
    ss.release_to(base);
    assert_eq!(ss.depth(), 0);
    let after = ss.resident_bytes();
    assert!(
        after <= shadowstack::KEEP_RESIDENT_BYTES + 4096,
        "resident after release: {after} bytes"
    );
    // Pushed again, the pages read as zeros and work as before.
    let f = ss.push(2 << 20);
    ss.set(f, (2 << 20) - 1, int(9));
    assert_eq!(ss.get(f, (2 << 20) - 1), int(9));
    assert_eq!(ss.get(f, 3 << 19), NONE);
    ss.pop(f);
}

/// A thread's shadow stack is one mapping, readable and writable to its limit (no guard
/// page, which would split it in two): a tree of thousands of threads must stay far below
/// `vm.max_map_count`.
#[test]
fn a_shadow_stack_is_one_mapping() {
    let stm = Stm::new(cfg(2)).unwrap();
    let mut handles: Vec<StmThread> = (0..20).map(|_| stm.thread()).collect();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for th in &mut handles {
        let ss = th.shadow_stack();
        let (base, limit) = (ss.base as usize, ss.limit as usize);
        let line = maps
            .lines()
            .find(|l| {
                let (range, _) = l.split_once(' ').unwrap();
                let (a, b) = range.split_once('-').unwrap();
                let (a, b) = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                a <= base && base < b
            })
            .expect("the shadow stack is mapped");
        let end = usize::from_str_radix(line.split(['-', ' ']).nth(1).unwrap(), 16).unwrap();
        assert!(end >= limit, "the stack is split: {line}");
        assert!(line.contains(" rw-p "), "{line}");
    }
}

fn young_objects_move_and_roots_are_updated_in_place_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    let ty = node_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(2);
    th.begin();
    // A two-node chain held by slot 0, then enough garbage to fill the 4 KiB nursery many
    // times over: each fill is a minor collection.
    let a = new_node(&mut th, ty, 1, 1).unwrap();
    th.shadow_stack().set(f, 0, a);
    let b = new_node(&mut th, ty, 2, 1).unwrap();
    th.write_u64(a, field(0), b).unwrap();
    let l = *stm.layout();
    assert!(
        (l.nursery_start..l.nursery_end).contains(&a),
        "young in the nursery"
    );
    assert_eq!(stm.segment_header(0, l.old_start).flags, 0);
    for i in 0..1000 {
        new_node(&mut th, ty, 100 + i, 3).unwrap();
    }
    let a2 = th.shadow_stack().get(f, 0);
    assert_ne!(a2, a, "moved");
    assert!(a2 >= l.old_start, "promoted to the old space");
    let (id, fl) = read_node(&mut th, a2).unwrap();
    assert_eq!(id, 1);
    assert_eq!(read_node(&mut th, fl[0]).unwrap().0, 2);
    // Promoted objects are NEW: writing them records them for the next minor collection.
    let c = new_node(&mut th, ty, 3, 0).unwrap();
    th.write_u64(a2, field(0), c).unwrap();
    th.collect_minor().unwrap();
    let a3 = th.shadow_stack().get(f, 0);
    assert_eq!(a3, a2, "old objects do not move");
    let c2 = th.read_u64(a3, field(0)).unwrap();
    assert!(c2 >= l.old_start);
    assert_eq!(read_node(&mut th, c2).unwrap().0, 3);
    // A large object is young outside the nursery; it survives in place.
    let big = new_node(&mut th, ty, 4, 300).unwrap();
    assert!(big >= l.old_start);
    th.shadow_stack().set(f, 1, big);
    th.commit().unwrap();
    assert_eq!(th.shadow_stack().get(f, 1), big);
    let s = stm.stats();
    assert!(s.minor_collections >= 10, "{s:?}");
    assert!(s.bytes_promoted > 0);
    let mut t2 = stm.thread();
    t2.begin();
    assert_eq!(read_node(&mut t2, big).unwrap().0, 4);
    assert_eq!(read_node(&mut t2, a3).unwrap().0, 1);
    t2.commit().unwrap();
    th.shadow_stack().pop(f);
}

#[test]
fn young_objects_move_and_roots_are_updated_in_place() {
    young_objects_move_and_roots_are_updated_in_place_in(false);
}

/// The same with the commit log.
#[test]
fn young_objects_move_and_roots_are_updated_in_place_commit_log() {
    young_objects_move_and_roots_are_updated_in_place_in(true);
}

fn minor_collection_inside_a_transaction_that_aborts_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    let ty = node_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(3);
    // Committed: slot 0 = X(id 1) -> Y(id 2).
    th.run(|tx| {
        let x = new_node(tx, ty, 1, 2)?;
        tx.shadow_stack().set(f, 0, x);
        let y = new_node(tx, ty, 2, 0)?;
        let x = tx.shadow_stack().get(f, 0);
        tx.write_u64(x, field(0), y)?;
        Ok(())
    });
    let x = th.shadow_stack().get(f, 0);
    let y = th.read_committed(x);
    th.begin();
    // Many minor collections: new objects get promoted, linked into the committed X.
    for i in 0..600 {
        let n = new_node(&mut th, ty, 1000 + i, 1).unwrap();
        let prev = th.shadow_stack().get(f, 1);
        th.write_u64(n, field(0), prev).unwrap();
        th.shadow_stack().set(f, 1, n);
        th.write_u64(x, field(1), n).unwrap();
    }
    th.shadow_stack().set(f, 2, x);
    th.collect_minor().unwrap();
    assert!(stm.stats().minor_collections > 3);
    let head = th.shadow_stack().get(f, 1);
    assert!(
        head >= stm.layout().old_start,
        "promoted during the transaction"
    );
    th.abort();
    // Slots to objects of the aborted transaction read NONE, the others are untouched.
    assert_eq!(th.shadow_stack().get(f, 1), NONE);
    assert_eq!(th.shadow_stack().get(f, 2), x);
    assert_eq!(th.shadow_stack().get(f, 0), x);
    // Every view is the committed one.
    let mut t2 = stm.thread();
    for h in [&mut th, &mut t2] {
        h.begin();
        let (id, fl) = read_node(h, x).unwrap();
        assert_eq!((id, fl[0], fl[1]), (1, y, NONE));
        assert_eq!(read_node(h, y).unwrap().0, 2);
        h.commit().unwrap();
    }
    // The garbage of the aborted transaction is reclaimed; the committed graph survives.
    th.collect_major().unwrap();
    th.begin();
    assert_eq!(read_node(&mut th, y).unwrap().0, 2);
    let n = new_node(&mut th, ty, 7, 0).unwrap();
    th.write_u64(x, field(1), n).unwrap();
    th.commit().unwrap();
    th.begin();
    let n = th.read_u64(x, field(1)).unwrap();
    assert_eq!(read_node(&mut th, n).unwrap().0, 7);
    th.commit().unwrap();
    th.shadow_stack().pop(f);
}

#[test]
fn minor_collection_inside_a_transaction_that_aborts() {
    minor_collection_inside_a_transaction_that_aborts_in(false);
}

/// The same with the commit log.
#[test]
fn minor_collection_inside_a_transaction_that_aborts_commit_log() {
    minor_collection_inside_a_transaction_that_aborts_in(true);
}

trait Committed {
    fn read_committed(&mut self, x: Ref) -> Ref;
}
impl Committed for StmThread {
    fn read_committed(&mut self, x: Ref) -> Ref {
        self.run(|tx| tx.read_u64(x, field(0)))
    }
}

fn major_collection_while_other_threads_are_inside_transactions_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 3)).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let ty = node_type(&stm);
    // G (global root) -> O1, and a garbage node.
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let g = new_node(tx, ty, 1, 2)?;
        tx.shadow_stack().set(f, 0, g);
        let o1 = new_node(tx, ty, 2, 0)?;
        let g = tx.shadow_stack().get(f, 0);
        tx.write_u64(g, field(0), o1)?;
        let garbage = new_node(tx, ty, 3, 50)?;
        let g = tx.shadow_stack().get(f, 0);
        tx.write_u64(g, field(1), garbage)?;
        Ok(())
    });
    let g = th.shadow_stack().get(f, 0);
    th.shadow_stack().pop(f);
    stm.add_root(g);
    // The garbage node is old now; unlink it.
    th.run(|tx| tx.write_u64(g, field(1), NONE));
    let o1 = th.run(|tx| tx.read_u64(g, field(0)));
    drop(th);
    let go = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let (stm2, go2, done2, ready2) = (stm.clone(), go.clone(), done.clone(), ready.clone());
    let b = std::thread::spawn(move || {
        let mut tx = stm2.thread();
        let sf = tx.shadow_stack().push(1);
        tx.begin();
        // p: promoted (New) object, reachable only from the shadow stack.
        let p = new_node(&mut tx, ty, 11, 0).unwrap();
        tx.shadow_stack().set(sf, 0, p);
        tx.collect_minor().unwrap();
        let p = tx.shadow_stack().get(sf, 0);
        // y: young, held only in a Rust local and the nursery, points to O1 (no collection
        // in this thread from here on, so plain locals stay valid).
        let y = new_node(&mut tx, ty, 10, 1).unwrap();
        let o1b = tx.read_u64(g, field(0)).unwrap();
        tx.write_u64(y, field(0), o1b).unwrap();
        // z: young, reachable only from B's modified version of G; G's committed version
        // still points to O1 (both versions are roots).
        let z = new_node(&mut tx, ty, 12, 0).unwrap();
        tx.write_u64(g, field(0), z).unwrap();
        ready2.wait();
        while !go2.load(SeqCst) {
            tx.poll().unwrap(); // safe points: the major collection runs in here
        }
        // Nothing moved, nothing freed.
        assert_eq!(read_node(&mut tx, y).unwrap().0, 10);
        assert_eq!(read_node(&mut tx, o1b).unwrap().0, 2);
        assert_eq!(read_node(&mut tx, p).unwrap().0, 11);
        assert_eq!(read_node(&mut tx, z).unwrap().0, 12);
        assert_eq!(tx.read_u64(g, field(0)).unwrap(), z);
        tx.commit().unwrap();
        done2.store(true, SeqCst);
        tx.shadow_stack().pop(sf);
    });
    ready.wait();
    let before = stm.stats();
    let mut a = stm.thread();
    // A's own transaction is in progress too while it collects.
    a.begin();
    assert_eq!(
        a.read_u64(g, field(0)).unwrap(),
        o1,
        "A sees the committed G"
    );
    a.collect_major().unwrap();
    assert_eq!(read_node(&mut a, o1).unwrap().0, 2);
    a.commit().unwrap();
    let s = stm.stats();
    assert_eq!(s.major_collections, before.major_collections + 1);
    assert!(s.major_freed_bytes > 0, "the garbage node was freed");
    go.store(true, SeqCst);
    b.join().unwrap();
    assert!(done.load(SeqCst));
    // After B's commit, G -> z; O1 is unreachable and goes at the next major collection.
    let live0 = stm.stats().live_bytes;
    a.collect_major().unwrap();
    let z = a.run(|tx| tx.read_u64(g, field(0)));
    a.run(|tx| {
        assert_eq!(read_node(tx, z)?.0, 12);
        Ok(())
    });
    assert!(stm.stats().live_bytes < live0, "O1, y and p were freed");
}

#[test]
fn major_collection_while_other_threads_are_inside_transactions() {
    major_collection_while_other_threads_are_inside_transactions_in(false);
}

/// The same with the commit log.
#[test]
fn major_collection_while_other_threads_are_inside_transactions_commit_log() {
    major_collection_while_other_threads_are_inside_transactions_in(true);
}

/// `--stats` says where a major collection's time went: every phase is timed, and those
/// after the stop and before the world resumes make `major_ns` (what the other threads wait
/// for); the sweep runs after the world resumed.
#[test]
fn major_collection_phases_add_up_to_its_time() {
    let stm = Stm::new(cfg(2)).unwrap();
    let ty = node_type(&stm);
    let mut th = stm.thread();
    // Garbage to sweep: a chain of old nodes, then dropped.
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        for i in 0..2000 {
            let n = new_node(tx, ty, i, 1)?;
            let head = tx.shadow_stack().get(f, 0);
            tx.write_u64(n, field(0), head)?;
            tx.shadow_stack().set(f, 0, n);
        }
        Ok(())
    });
    th.shadow_stack().pop(f);
    th.collect_major().unwrap();
    let s = stm.stats();
    assert_eq!(s.major_collections, 1);
    assert!(s.major_freed_bytes > 0, "{s:?}");
    let ph = |p: MajorPhase| s.major_phase_ns[p as usize];
    let stopped: u64 = MajorPhase::ALL
        .iter()
        .filter(|&&p| p != MajorPhase::Stop && !p.world_running())
        .map(|&p| ph(p))
        .sum();
    assert_eq!(stopped, s.major_ns, "{s:?}");
    assert!(MajorPhase::Sweep.world_running() && !MajorPhase::Mark.world_running());
    assert!(
        ph(MajorPhase::Mark) > 0 && ph(MajorPhase::Sweep) > 0,
        "{s:?}"
    );
}

fn allocation_heavy_work_in_two_threads_does_not_conflict_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    stm.set_major_threshold(256 << 10);
    let ty = node_type(&stm);
    let hs: Vec<_> = (0..2)
        .map(|t| {
            let stm = stm.clone();
            std::thread::spawn(move || {
                let mut th = stm.thread();
                let f = th.shadow_stack().push(1);
                for i in 0..2000 {
                    th.run(|tx| {
                        for j in 0..50 {
                            // A list of the last 50 nodes of this transaction.
                            let n = new_node(tx, ty, t * 1_000_000 + i * 50 + j, 1)?;
                            let head = tx.shadow_stack().get(f, 0);
                            let head = if j == 0 { NONE } else { head };
                            tx.write_u64(n, field(0), head)?;
                            tx.shadow_stack().set(f, 0, n);
                        }
                        Ok(())
                    });
                }
                let mut n = th.shadow_stack().get(f, 0);
                let mut count = 0;
                th.run(|tx| {
                    count = 0;
                    while n != NONE {
                        let (_, fl) = read_node(tx, n)?;
                        n = fl[0];
                        count += 1;
                    }
                    Ok(())
                });
                assert_eq!(count, 50);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let s = stm.stats();
    eprintln!(
        "{} commits, {} minors, {} majors, {} aborts",
        s.commits,
        s.minor_collections,
        s.major_collections,
        s.aborts()
    );
    assert_eq!(s.aborts(), 0);
    assert_eq!(s.conflicts_total, 0);
    assert!(s.major_collections >= 1);
}

#[test]
fn allocation_heavy_work_in_two_threads_does_not_conflict() {
    allocation_heavy_work_in_two_threads_does_not_conflict_in(false);
}

/// The same with the commit log.
#[test]
fn allocation_heavy_work_in_two_threads_does_not_conflict_commit_log() {
    allocation_heavy_work_in_two_threads_does_not_conflict_in(true);
}

// ---------------------------------------------------------------------------------------
// Random object graphs checked against a model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MVal {
    None,
    Int(i64),
    Node(i64),
}

#[derive(Clone, Default)]
struct Model {
    nodes: HashMap<i64, Vec<MVal>>,
    roots: Vec<Option<i64>>,
}

const ROOTS: usize = 8;
const BOARD: usize = 8;

/// Compares the heap reachable from the root frame with the model: same ids, same fields,
/// one object per id.
fn check(tx: &mut StmThread, f: Frame, m: &Model) -> Result<(), Abort> {
    let mut seen: HashMap<i64, Ref> = HashMap::new();
    let mut stack = Vec::new();
    for i in 0..ROOTS {
        let w = tx.shadow_stack().get(f, i);
        match m.roots[i] {
            None => assert_eq!(w, NONE, "root {i}"),
            Some(id) => stack.push((w, id)),
        }
    }
    while let Some((r, id)) = stack.pop() {
        assert!(value::is_ref(r), "expected node {id}, got {r:#x}");
        if let Some(&r0) = seen.get(&id) {
            assert_eq!(r0, r, "node {id} duplicated (moved under a live root?)");
            continue;
        }
        seen.insert(id, r);
        let (rid, fl) = read_node(tx, r)?;
        assert_eq!(rid, id, "object {r:#x}");
        let mf = &m.nodes[&id];
        assert_eq!(fl.len(), mf.len());
        for (w, mv) in fl.iter().zip(mf) {
            match *mv {
                MVal::None => assert_eq!(*w, NONE),
                MVal::Int(n) => assert_eq!(*w, int(n)),
                MVal::Node(c) => stack.push((*w, c)),
            }
        }
    }
    Ok(())
}

/// Walks a few levels from a board entry (other threads' nodes), checking integrity only.
fn walk(tx: &mut StmThread, w: u64, depth: u32) -> Result<(), Abort> {
    if depth == 0 || !value::is_ref(w) {
        return Ok(());
    }
    let (_, fl) = read_node(tx, w)?;
    for c in fl.into_iter().take(3) {
        walk(tx, c, depth - 1)?;
    }
    Ok(())
}

fn random_thread(stm: Arc<Stm>, ty: TypeId, board: Ref, t: i64, txs: usize) {
    let mut th = stm.thread();
    let roots = th.shadow_stack().push(ROOTS);
    let snap = th.shadow_stack().push(ROOTS);
    let mut model = Model {
        roots: vec![None; ROOTS],
        ..Default::default()
    };
    let mut rng = Rng(0x1234_5678 ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let next_id = AtomicU64::new(1);
    for n in 0..txs {
        let seed = rng.next();
        let mut attempt = 0;
        let new_model = th.run(|tx| {
            attempt += 1;
            // Restart snapshot: the roots as of the transaction start.
            for i in 0..ROOTS {
                let v = tx.shadow_stack().get(snap, i);
                tx.shadow_stack().set(roots, i, v);
            }
            let mut m = model.clone();
            let mut r = Rng(seed | 1);
            let ops = 1 + r.below(12);
            for _ in 0..ops {
                let i = r.below(ROOTS as u64) as usize;
                let j = r.below(ROOTS as u64) as usize;
                let fi = r.below(4) as usize;
                let root = |tx: &mut StmThread, i: usize| tx.shadow_stack().get(roots, i);
                let nf = |m: &Model, i: usize| m.roots[i].map(|id| m.nodes[&id].len()).unwrap_or(0);
                match r.below(100) {
                    0..=19 => {
                        let k = if r.below(20) == 0 {
                            200
                        } else {
                            1 + r.below(5) as usize
                        };
                        let id = t * 1_000_000_000 + next_id.fetch_add(1, SeqCst) as i64;
                        let nr = new_node(tx, ty, id, k)?;
                        tx.shadow_stack().set(roots, i, nr);
                        m.nodes.insert(id, vec![MVal::None; k]);
                        m.roots[i] = Some(id);
                    }
                    20..=34 if fi < nf(&m, i) => {
                        let k = 1 + r.below(3) as usize;
                        let id = t * 1_000_000_000 + next_id.fetch_add(1, SeqCst) as i64;
                        let c = new_node(tx, ty, id, k)?;
                        let p = root(tx, i);
                        tx.write_u64(p, field(fi), c)?;
                        m.nodes.insert(id, vec![MVal::None; k]);
                        let pid = m.roots[i].unwrap();
                        m.nodes.get_mut(&pid).unwrap()[fi] = MVal::Node(id);
                    }
                    35..=49 if fi < nf(&m, i) => {
                        let p = root(tx, i);
                        let v = root(tx, j);
                        tx.write_u64(p, field(fi), v)?;
                        let mv = m.roots[j].map(MVal::Node).unwrap_or(MVal::None);
                        let pid = m.roots[i].unwrap();
                        m.nodes.get_mut(&pid).unwrap()[fi] = mv;
                    }
                    50..=59 => {
                        // roots[i] = roots[j].field[fi] (if a node)
                        if let Some(jid) = m.roots[j] {
                            if let Some(MVal::Node(c)) = m.nodes[&jid].get(fi).copied() {
                                let p = root(tx, j);
                                let w = tx.read_u64(p, field(fi))?;
                                tx.shadow_stack().set(roots, i, w);
                                m.roots[i] = Some(c);
                            }
                        }
                    }
                    60..=64 => {
                        tx.shadow_stack().set(roots, i, NONE);
                        m.roots[i] = None;
                    }
                    65..=72 if fi < nf(&m, i) => {
                        let v = r.below(1000) as i64 - 500;
                        let p = root(tx, i);
                        tx.write_u64(p, field(fi), int(v))?;
                        let pid = m.roots[i].unwrap();
                        m.nodes.get_mut(&pid).unwrap()[fi] = MVal::Int(v);
                    }
                    73..=77 => {
                        let v = root(tx, i);
                        tx.write_u64(board, field(j % BOARD), v)?;
                    }
                    78..=85 => {
                        let w = tx.read_u64(board, field(j % BOARD))?;
                        walk(tx, w, 3)?;
                    }
                    86..=94 => {
                        for _ in 0..r.below(40) {
                            new_node(tx, ty, -1, 2)?;
                        }
                    }
                    95..=96 if attempt == 1 => return Err(tx.abort()),
                    97 => tx.collect_minor()?,
                    98 if n % 50 == 0 => tx.collect_major()?,
                    _ => {}
                }
            }
            Ok(m)
        });
        model = new_model;
        for i in 0..ROOTS {
            let v = th.shadow_stack().get(roots, i);
            th.shadow_stack().set(snap, i, v);
        }
        // Drop model nodes no longer reachable from the roots (garbage for the GC too).
        let mut live = HashMap::new();
        let mut st: Vec<i64> = model.roots.iter().flatten().copied().collect();
        while let Some(id) = st.pop() {
            if live.contains_key(&id) {
                continue;
            }
            let f = model.nodes[&id].clone();
            for v in &f {
                if let MVal::Node(c) = v {
                    st.push(*c);
                }
            }
            live.insert(id, f);
        }
        model.nodes = live;
        th.run(|tx| check(tx, roots, &model));
    }
    th.shadow_stack().pop(snap);
    th.shadow_stack().pop(roots);
}

fn random_graphs_in_four_threads_match_the_model_in(log: bool) {
    random_graphs(log, 4, 4);
}

#[test]
fn random_graphs_in_four_threads_match_the_model() {
    random_graphs_in_four_threads_match_the_model_in(false);
}

/// The same with the commit log.
#[test]
fn random_graphs_in_four_threads_match_the_model_commit_log() {
    random_graphs_in_four_threads_match_the_model_in(true);
}

/// More threads than segments: threads waiting for a segment hold committed references in
/// their shadow stacks while others run major collections.
fn random_graphs_six_threads_on_three_segments_in(log: bool) {
    random_graphs(log, 6, 3);
}

#[test]
fn random_graphs_six_threads_on_three_segments() {
    random_graphs_six_threads_on_three_segments_in(false);
}

/// The same with the commit log.
#[test]
fn random_graphs_six_threads_on_three_segments_commit_log() {
    random_graphs_six_threads_on_three_segments_in(true);
}

fn random_graphs(log: bool, threads: i64, segments: usize) {
    let stm = Stm::new(cfg_mode(log, segments)).unwrap();
    stm.set_major_threshold(128 << 10);
    let ty = node_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let b = new_node(tx, ty, 0, BOARD)?;
        tx.shadow_stack().set(f, 0, b);
        Ok(())
    });
    let board = th.shadow_stack().get(f, 0);
    th.shadow_stack().pop(f);
    stm.add_root(board);
    let txs: usize = std::env::var("STMJIT_GC_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let stm = stm.clone();
            std::thread::spawn(move || random_thread(stm, ty, board, t, txs))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let s = stm.stats();
    eprintln!(
        "{} commits, {} aborts, {} minors ({} KiB promoted), {} majors, {} pages re-shared",
        s.commits,
        s.aborts(),
        s.minor_collections,
        s.bytes_promoted >> 10,
        s.major_collections,
        s.pages_reshared
    );
    assert!(s.minor_collections > 100);
    assert!(s.major_collections > 2);
    th.run(|tx| walk(tx, board, 6));
}

fn jit_style_inline_allocation_and_nursery_end_request_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    let ty = node_type(&stm);
    let c = {
        let mut th = stm.thread();
        let f = th.shadow_stack().push(1);
        th.run(|tx| {
            let r = new_node(tx, ty, 1, 1)?;
            tx.shadow_stack().set(f, 0, r);
            Ok(())
        });
        let r = th.shadow_stack().get(f, 0);
        stm.add_root(r);
        r
    };
    let mut a = stm.thread();
    let f = a.shadow_stack().push(1);
    a.begin();
    let seg = a.segment();
    let info = stm.segment_info(seg);
    // The inline sequence, done by hand on the segment's info block.
    let size = 16 + 8 * 3;
    let r = info.nursery_current.load(SeqCst);
    let n = r + size;
    assert!(n <= info.nursery_end.load(SeqCst));
    info.nursery_current.store(n, SeqCst);
    let p = (stm.segment_base(seg) + r) as *mut u64;
    // SAFETY: [r, n) is fresh nursery of our running segment.
    unsafe {
        assert!(
            (0..size as usize / 8).all(|i| *p.add(i) == 0),
            "nursery is zeroed"
        );
        *p = (ty.0 as u64) << 32;
        *p.add(1) = int(3);
        *p.add(2) = int(42);
        *p.add(3) = int(42 ^ MAGIC);
    }
    a.shadow_stack().set(f, 0, r);
    a.collect_minor().unwrap();
    let r2 = a.shadow_stack().get(f, 0);
    assert!(r2 >= stm.layout().old_start);
    assert_eq!(read_node(&mut a, r2).unwrap(), (42, vec![NONE]));
    // A conflict dooms `a`: its nursery_end drops to 0 and the next allocation aborts. (With
    // the commit log only the request word is set: `a` finds the conflict when it validates
    // at its next runtime entry.)
    a.read_u64(c, field(0)).unwrap();
    let mut b = stm.thread();
    b.begin();
    b.write_u64(c, field(0), int(5)).unwrap();
    b.commit().unwrap();
    assert_ne!(info.safe_point_request.load(SeqCst), 0);
    if !stm.config().commit_log {
        assert_eq!(info.nursery_end.load(SeqCst), 0);
    }
    assert!(a.alloc(ty, 32).is_err());
    assert_eq!(
        a.shadow_stack().get(f, 0),
        NONE,
        "object of the aborted transaction"
    );
    a.begin();
    assert_eq!(a.segment(), seg);
    assert_eq!(
        info.nursery_end.load(SeqCst),
        stm.layout().nursery_end,
        "the abort emptied the nursery and restored its limit"
    );
    let r = a.alloc(ty, 32).unwrap();
    assert_eq!(r, stm.layout().nursery_start);
    assert_eq!(info.nursery_end.load(SeqCst), stm.layout().nursery_end);
    a.commit().unwrap();
}

#[test]
fn jit_style_inline_allocation_and_nursery_end_request() {
    jit_style_inline_allocation_and_nursery_end_request_in(false);
}

/// The same with the commit log.
#[test]
fn jit_style_inline_allocation_and_nursery_end_request_commit_log() {
    jit_style_inline_allocation_and_nursery_end_request_in(true);
}

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

fn card_marked_vector_holds_young_objects_across_minor_and_major_collections_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let ty = node_type(&stm);
    let vt = stm.register_type(TypeInfo {
        name: "vec",
        size: vec_size,
        trace: vec_trace,
        carded: true,
        trace_card: None,
    });
    const N: u64 = 2000; // 16 KiB: old (young large, promoted in place at commit)
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let v = tx.alloc(vt, 16 + 8 * N)?;
        tx.store_u64(v, 8, int(N as i64));
        tx.shadow_stack().set(f, 0, v);
        Ok(())
    });
    let v = th.shadow_stack().get(f, 0);
    th.shadow_stack().pop(f);
    stm.add_root(v);
    let elem = |i: u64| 16 + 8 * i;
    th.begin();
    // Young nodes stored through the card barrier into every 100th element, with enough
    // allocation in between for many minor collections.
    for i in (0..N).step_by(100) {
        let n = new_node(&mut th, ty, i as i64, 0).unwrap();
        th.write_elem_u64(v, elem(i), n).unwrap();
        for _ in 0..20 {
            new_node(&mut th, ty, -1, 4).unwrap();
        }
    }
    // A major collection by another thread while this transaction is open: the nodes are
    // reachable only from this transaction's version of the cards.
    std::thread::scope(|s| {
        s.spawn(|| stm.thread().collect_major().unwrap());
        while stm.stats().major_collections == 0 {
            th.poll().unwrap();
        }
    });
    assert!(stm.stats().minor_collections > 5);
    for i in (0..N).step_by(100) {
        let n = th.read_elem_u64(v, elem(i)).unwrap();
        assert_eq!(read_node(&mut th, n).unwrap().0, i as i64);
    }
    th.commit().unwrap();
    th.collect_major().unwrap();
    let mut t2 = stm.thread();
    t2.run(|tx| {
        for i in 0..N {
            let n = tx.read_elem_u64(v, elem(i))?;
            if i % 100 == 0 {
                assert_eq!(read_node(tx, n)?.0, i as i64);
            } else {
                assert_eq!(n, NONE);
            }
        }
        Ok(())
    });
}

#[test]
fn card_marked_vector_holds_young_objects_across_minor_and_major_collections() {
    card_marked_vector_holds_young_objects_across_minor_and_major_collections_in(false);
}

/// The same with the commit log.
#[test]
fn card_marked_vector_holds_young_objects_across_minor_and_major_collections_commit_log() {
    card_marked_vector_holds_young_objects_across_minor_and_major_collections_in(true);
}

fn no_nursery_at_all_still_works_in(log: bool) {
    let stm = Stm::new(StmConfig {
        nursery_size: 0,
        ..cfg_mode(log, 2)
    })
    .unwrap();
    let ty = node_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let a = new_node(tx, ty, 1, 1)?;
        tx.shadow_stack().set(f, 0, a);
        let b = new_node(tx, ty, 2, 0)?;
        let a = tx.shadow_stack().get(f, 0);
        tx.write_u64(a, field(0), b)?;
        Ok(())
    });
    let a = th.shadow_stack().get(f, 0);
    th.collect_major().unwrap();
    th.run(|tx| {
        let (_, fl) = read_node(tx, a)?;
        assert_eq!(read_node(tx, fl[0])?.0, 2);
        Ok(())
    });
}

#[test]
fn no_nursery_at_all_still_works() {
    no_nursery_at_all_still_works_in(false);
}

/// The same with the commit log.
#[test]
fn no_nursery_at_all_still_works_commit_log() {
    no_nursery_at_all_still_works_in(true);
}

/// `remove_roots` drops one registration per occurrence (roots form a multiset): an object
/// registered twice and removed once stays alive. (It replaced one `remove_root` per call of a
/// TransactionQueue round, which was quadratic: 500 000 queued calls took 15 s.)
fn remove_roots_drops_one_registration_per_occurrence_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 2)).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let ty = node_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(3);
    th.run(|tx| {
        for k in 0..3 {
            let r = new_node(tx, ty, k as i64, 0)?;
            tx.shadow_stack().set(f, k, r);
        }
        Ok(())
    });
    let [a, b, c] = [0, 1, 2].map(|k| th.shadow_stack().get(f, k));
    th.shadow_stack().pop(f);
    for r in [a, a, b, c] {
        stm.add_root(r);
    }
    th.collect_major().unwrap();
    let all = stm.allocated_bytes();
    stm.remove_roots(&[a, b]);
    th.collect_major().unwrap();
    let one = all - stm.allocated_bytes();
    assert!(one > 0, "b was freed");
    th.run(|tx| {
        assert_eq!(read_node(tx, a)?.0, 0);
        assert_eq!(read_node(tx, c)?.0, 2);
        Ok(())
    });
    stm.remove_roots(&[a, c]);
    th.collect_major().unwrap();
    // Same-sized nodes: the second removal frees two, so the first freed exactly one.
    assert_eq!(all - stm.allocated_bytes(), 3 * one, "a and c freed too");
}

#[test]
fn remove_roots_drops_one_registration_per_occurrence() {
    remove_roots_drops_one_registration_per_occurrence_in(false);
}

/// The same with the commit log.
#[test]
fn remove_roots_drops_one_registration_per_occurrence_commit_log() {
    remove_roots_drops_one_registration_per_occurrence_in(true);
}

/// Young large objects freed before they were published (their transaction aborted, or
/// they died young at a minor collection) are taken off the volume that makes a major
/// collection due: only old garbage needs one. A shared dict whose growth conflicted
/// allocated its new table again at every retry; those freed tables alone made dictfill
/// (1 000 000 keys, 2 threads) run two stop-the-world major collections.
fn freed_young_large_objects_do_not_make_a_major_collection_due_in(log: bool) {
    let stm = Stm::new(cfg_mode(log, 1)).unwrap();
    stm.set_major_threshold(1 << 20);
    let ty = node_type(&stm);
    // A node of 64 KiB: larger than the large-object limit, young outside the nursery.
    let k = (64 << 10) / 8;
    assert!(16 + 8 * (2 + k as u64) > stm.large_object_limit());
    let mut th = stm.thread();
    // 16 MiB in all, 16 times the threshold.
    for i in 0..128 {
        th.begin();
        new_node(&mut th, ty, i, k).unwrap();
        if i % 2 == 0 {
            th.abort();
        } else {
            // Not rooted: it dies young at the commit's minor collection.
            th.commit().unwrap();
        }
    }
    let s = stm.stats();
    assert_eq!(s.major_collections, 0, "no old garbage was made");
    // Promoted large objects still count: the same volume kept alive until its
    // transaction commits makes one due.
    let f = th.shadow_stack().push(1);
    for i in 0..32 {
        th.run(|tx| {
            let n = new_node(tx, ty, i, k)?;
            tx.shadow_stack().set(f, 0, n);
            Ok(())
        });
    }
    th.shadow_stack().pop(f);
    assert!(stm.stats().major_collections >= 1);
}

#[test]
fn freed_young_large_objects_do_not_make_a_major_collection_due() {
    freed_young_large_objects_do_not_make_a_major_collection_due_in(false);
}

/// The same with the commit log.
#[test]
fn freed_young_large_objects_do_not_make_a_major_collection_due_commit_log() {
    freed_young_large_objects_do_not_make_a_major_collection_due_in(true);
}
