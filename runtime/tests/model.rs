//! Model-based random test in the manner of stmgc's `test_random.py`: several segments driven
//! from one OS thread (each operation switches `%gs`), random reads, writes (objects and
//! cards), commits, aborts and inevitability, checked against a simple model that predicts
//! every value read, every abort and its cause, the lock owners, each segment's view of every
//! location, segment 0, and the final statistics.
//!
//! `STMJIT_RANDOM_SEEDS=n` runs n seeds (default 1000) of `STMJIT_RANDOM_OPS` operations
//! (default 200).

#![allow(clippy::needless_range_loop)]

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use stmjit_runtime::*;

const K: usize = 3; // handles = segments
const CELLS: usize = 5;
const ELEMS: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Loc {
    Cell(usize),
    Elem(u64),
}

#[derive(Default, Clone)]
struct MTx {
    in_tx: bool,
    doomed: Option<AbortCause>,
    inevitable: bool,
    start: u64,
    retained: Option<u64>,
    reads: BTreeSet<u64>, // marker granules read (writes count as reads)
    locks: BTreeSet<u64>, // lock granules held
    writes: BTreeMap<Loc, u64>,
    // Commit log only: the committed state at the last validation (the segment's view),
    // the granules written by commits since, and whether one happened (the next runtime
    // entry then validates).
    snap: BTreeMap<Loc, u64>,
    since: BTreeSet<u64>,
    pending: bool,
}

struct World {
    log: bool,
    cells: Vec<Ref>,
    arr: Ref,
    clock: u64,
    committed: BTreeMap<Loc, u64>,
    tx: Vec<MTx>,
    lock_owner: BTreeMap<u64, usize>,
    commits: u64,
    aborts: BTreeMap<AbortCause, u64>,
}

impl World {
    fn addr(&self, l: Loc) -> (Ref, u64) {
        match l {
            Loc::Cell(i) => (self.cells[i], 8),
            Loc::Elem(i) => (self.arr, elem(i)),
        }
    }
    /// The granule of the read marker and of the write lock of a location.
    fn key(&self, l: Loc) -> u64 {
        match l {
            Loc::Cell(i) => self.cells[i],
            Loc::Elem(i) => (self.arr + elem(i)) & !15,
        }
    }
    fn model_abort(&mut self, h: usize, cause: AbortCause) {
        let t = &mut self.tx[h];
        assert!(!t.inevitable);
        for g in std::mem::take(&mut t.locks) {
            if self.lock_owner.get(&g) == Some(&h) {
                self.lock_owner.remove(&g);
            }
        }
        let t = &mut self.tx[h];
        t.in_tx = false;
        t.doomed = None;
        t.reads.clear();
        t.writes.clear();
        t.retained = Some(t.start);
        *self.aborts.entry(cause).or_default() += 1;
    }
    /// Commit log: the validation at `h`'s next runtime entry; `true` if it aborts (it read
    /// a granule written by a commit since its snapshot).
    fn validate(&mut self, h: usize) -> bool {
        let t = &mut self.tx[h];
        if !self.log || !t.pending {
            return false;
        }
        if !t.since.is_disjoint(&t.reads) {
            return true;
        }
        t.snap = self.committed.clone();
        t.since.clear();
        t.pending = false;
        false
    }
    /// What `h` reads at `l` when it has not written it.
    fn view(&self, h: usize, l: Loc) -> u64 {
        if self.log {
            self.tx[h].snap[&l]
        } else {
            self.committed[&l]
        }
    }
    fn doom(&mut self, h: usize, cause: AbortCause) {
        let t = &mut self.tx[h];
        if t.in_tx && !t.inevitable && t.doomed.is_none() {
            t.doomed = Some(cause);
        }
    }
}

fn expect_abort<T: std::fmt::Debug>(r: Result<T, Abort>, cause: AbortCause, ctx: &str) {
    match r {
        Err(a) => assert_eq!(a.cause(), cause, "{ctx}"),
        Ok(v) => panic!("{ctx}: expected abort {cause:?}, got Ok({v:?})"),
    }
}

fn run_seed(seed: u64, ops: usize, log: bool) -> [u64; 4] {
    let mut cfg = config(K, WaitPolicy::AbortSelf);
    cfg.commit_log = log;
    let stm = Stm::new(cfg).unwrap();
    let t = types(&stm);
    let init: Vec<u64> = (0..CELLS as u64).map(|i| 100 + i).collect();
    let cells = make_cells(&stm, &t, &init);
    let arr = make_array(&stm, &t, ELEMS, 7);
    let mut committed = BTreeMap::new();
    for (i, v) in init.iter().enumerate() {
        committed.insert(Loc::Cell(i), *v);
    }
    for i in 0..ELEMS {
        committed.insert(Loc::Elem(i), 7);
    }
    let base = stm.stats();
    let mut w = World {
        log,
        clock: 3, // two set-up transactions took timestamps 1 and 2
        cells,
        arr,
        committed,
        tx: vec![MTx::default(); K],
        lock_owner: BTreeMap::new(),
        commits: 0,
        aborts: BTreeMap::new(),
    };
    let mut hs: Vec<StmThread> = (0..K).map(|_| stm.thread()).collect();
    let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let locs: Vec<Loc> = (0..CELLS)
        .map(Loc::Cell)
        .chain((0..ELEMS).map(Loc::Elem))
        .collect();
    for step in 0..ops {
        let h = rng.below(K as u64) as usize;
        let ctx = format!("seed {seed} step {step} handle {h}");
        if !w.tx[h].in_tx {
            hs[h].begin();
            let snap = w.committed.clone();
            let t = &mut w.tx[h];
            t.snap = snap;
            t.since.clear();
            t.pending = false;
            t.in_tx = true;
            t.start = t.retained.take().unwrap_or_else(|| {
                w.clock += 1;
                w.clock - 1
            });
        } else {
            let r = rng.below(100);
            let doomed = w.tx[h].doomed;
            if (90..95).contains(&r) {
                if w.tx[h].inevitable {
                    continue;
                }
                let a = hs[h].abort();
                assert_eq!(a.cause(), AbortCause::Explicit);
                w.model_abort(h, AbortCause::Explicit);
                continue;
            }
            // Every other operation enters the runtime: a doomed transaction aborts, then
            // (commit log) a pending validation runs.
            if doomed.is_none() && w.validate(h) {
                let res = match r {
                    0..40 => hs[h].read_u64(w.cells[0], 8).map(|_| ()),
                    40..75 => hs[h].poll(),
                    75..90 => hs[h].commit(),
                    95..97 => hs[h].poll(),
                    _ => hs[h].become_inevitable(),
                };
                expect_abort(res, AbortCause::WriteRead, &ctx);
                w.model_abort(h, AbortCause::WriteRead);
            } else if r < 40 {
                let l = locs[rng.below(locs.len() as u64) as usize];
                let (o, off) = w.addr(l);
                let res = match l {
                    Loc::Cell(_) => hs[h].read_u64(o, off),
                    Loc::Elem(_) => hs[h].read_elem_u64(o, off),
                };
                if let Some(c) = doomed {
                    expect_abort(res, c, &ctx);
                    w.model_abort(h, c);
                } else {
                    let exp = *w.tx[h].writes.get(&l).unwrap_or(&w.view(h, l));
                    assert_eq!(res.unwrap(), exp, "{ctx}: read {l:?}");
                    let k = w.key(l);
                    w.tx[h].reads.insert(k);
                }
            } else if r < 75 {
                let l = locs[rng.below(locs.len() as u64) as usize];
                let (o, off) = w.addr(l);
                let v = rng.below(1000);
                let res = match l {
                    Loc::Cell(_) => hs[h].write_u64(o, off, v),
                    Loc::Elem(_) => hs[h].write_elem_u64(o, off, v),
                };
                if let Some(c) = doomed {
                    expect_abort(res, c, &ctx);
                    w.model_abort(h, c);
                } else {
                    let k = w.key(l);
                    let holder = w.lock_owner.get(&k).copied();
                    let ok = match holder {
                        None => true,
                        Some(x) if x == h => true,
                        Some(o) => {
                            let me = &w.tx[h];
                            let ot = &w.tx[o];
                            let older = me.inevitable
                                || (!ot.inevitable && (ot.doomed.is_some() || me.start < ot.start));
                            if older {
                                w.doom(o, AbortCause::WriteWrite);
                            }
                            older
                        }
                    };
                    if ok {
                        res.unwrap_or_else(|e| panic!("{ctx}: write {l:?}: {e}"));
                        w.tx[h].reads.insert(k);
                        w.lock_owner.insert(k, h);
                        w.tx[h].locks.insert(k);
                        w.tx[h].writes.insert(l, v);
                    } else {
                        expect_abort(res, AbortCause::WriteWrite, &ctx);
                        w.model_abort(h, AbortCause::WriteWrite);
                    }
                }
            } else if r < 90 {
                let res = hs[h].commit();
                if let Some(c) = doomed {
                    expect_abort(res, c, &ctx);
                    w.model_abort(h, c);
                } else {
                    let mine = w.tx[h].locks.clone();
                    // A writer never commits while another transaction is inevitable, in
                    // either mode, whatever that one read (this policy aborts instead of
                    // waiting).
                    let inev_reader = (0..K).find(|&k| {
                        k != h && w.tx[k].in_tx && w.tx[k].inevitable && !mine.is_empty()
                    });
                    if inev_reader.is_some() {
                        expect_abort(res, AbortCause::WriteRead, &ctx);
                        w.model_abort(h, AbortCause::WriteRead);
                    } else {
                        res.unwrap_or_else(|e| panic!("{ctx}: commit: {e}"));
                        for k in 0..K {
                            if k == h || !w.tx[k].in_tx || mine.is_empty() {
                                continue;
                            }
                            if log {
                                let t = &mut w.tx[k];
                                t.since.extend(mine.iter().copied());
                                t.pending = true;
                            } else if !w.tx[k].reads.is_disjoint(&mine) {
                                w.doom(k, AbortCause::WriteRead);
                            }
                        }
                        let t = std::mem::take(&mut w.tx[h]);
                        for (l, v) in t.writes {
                            w.committed.insert(l, v);
                        }
                        for g in t.locks {
                            assert_eq!(w.lock_owner.remove(&g), Some(h));
                        }
                        w.commits += 1;
                    }
                }
            } else if r < 97 {
                let res = hs[h].poll();
                if let Some(c) = doomed {
                    expect_abort(res, c, &ctx);
                    w.model_abort(h, c);
                } else {
                    res.unwrap();
                }
            } else {
                let res = hs[h].become_inevitable();
                if let Some(c) = doomed {
                    expect_abort(res, c, &ctx);
                    w.model_abort(h, c);
                } else if (0..K).any(|k| k != h && w.tx[k].in_tx && w.tx[k].inevitable) {
                    expect_abort(res, AbortCause::WriteWrite, &ctx);
                    w.model_abort(h, AbortCause::WriteWrite);
                } else {
                    res.unwrap();
                    w.tx[h].inevitable = true;
                }
            }
        }
        // Check the whole state against the model.
        for &l in &locs {
            let (o, off) = w.addr(l);
            assert_eq!(
                stm.committed_u64(o, off),
                w.committed[&l],
                "{ctx}: segment 0 {l:?}"
            );
            for k in 0..K {
                let t = &w.tx[k];
                if t.in_tx && t.doomed.is_none() {
                    let exp = *t.writes.get(&l).unwrap_or(&w.view(k, l));
                    let seg = hs[k].segment();
                    assert_eq!(
                        stm.segment_u64(seg, o, off),
                        exp,
                        "{ctx}: view of {k} {l:?}"
                    );
                }
            }
            let g = w.key(l);
            let exp = w
                .lock_owner
                .get(&g)
                .map(|&k| hs[k].segment() as u8)
                .unwrap_or(0);
            assert_eq!(stm.lock_owner(g), exp, "{ctx}: lock owner of {l:?}");
        }
        for k in 0..K {
            assert_eq!(hs[k].in_transaction(), w.tx[k].in_tx, "{ctx}: in_tx of {k}");
        }
    }
    let st = stm.stats();
    let a = |c| *w.aborts.get(&c).unwrap_or(&0);
    assert_eq!(st.commits - base.commits, w.commits, "seed {seed}: commits");
    assert_eq!(
        st.aborts_write_write,
        a(AbortCause::WriteWrite),
        "seed {seed}: ww"
    );
    assert_eq!(
        st.aborts_write_read,
        a(AbortCause::WriteRead),
        "seed {seed}: wr"
    );
    assert_eq!(
        st.aborts_explicit,
        a(AbortCause::Explicit),
        "seed {seed}: explicit"
    );
    for (k, h) in hs.iter_mut().enumerate() {
        if w.tx[k].in_tx && w.tx[k].inevitable {
            h.commit().unwrap();
        }
    }
    [
        w.commits,
        a(AbortCause::WriteWrite),
        a(AbortCause::WriteRead),
        a(AbortCause::Explicit),
    ]
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn model_random() {
    model(false);
}

/// The same with the commit log: each segment sees its snapshot until it validates.
#[test]
fn model_random_commit_log() {
    model(true);
}

fn model(log: bool) {
    let seeds = env("STMJIT_RANDOM_SEEDS", 1000);
    let ops = env("STMJIT_RANDOM_OPS", 200);
    let mut tot = [0u64; 4];
    for seed in 0..seeds as u64 {
        let r = run_seed(seed, ops, log);
        for i in 0..4 {
            tot[i] += r[i];
        }
    }
    eprintln!(
        "model: {seeds} seeds x {ops} ops: commits {}, aborts ww {} wr {} explicit {}",
        tot[0], tot[1], tot[2], tot[3]
    );
    // The generator must really exercise both conflict kinds.
    assert!(tot[1] > 0 && tot[2] > 0 && tot[0] > 0);
}
