//! No torn snapshots: writers keep pairs of values equal (two cells; two elements of a
//! card-marked array on different pages), and every transaction checks the equality of what
//! it read *inside* the transaction, after its reads succeeded. So a runtime that lets a
//! transaction go on after seeing half of a commit (or, with a commit log, a half-imported
//! entry) fails here even when the transaction would later abort. Mixed in: forced aborts
//! after writing, threads moving between segments, an inevitable transaction, major
//! collections. `STMJIT_TORN_TXS=n` sets the transactions per thread (default 20 000).

mod common;
use common::*;
use std::sync::{Arc, Barrier};
use stmjit_runtime::*;

/// Two array elements in different cards and on different pages (16 + 8 * 599 > 4096).
const FAR: u64 = 599;
const PAIRS: usize = 8;

/// Reads every pair and both array ends, checking that each pair is equal.
fn check_all(tx: &mut StmThread, cells: &[Ref], arr: Ref) -> Result<u64, Abort> {
    let mut sum = 0;
    for p in cells.chunks(2) {
        let a = tx.read_u64(p[0], 8)?;
        let b = tx.read_u64(p[1], 8)?;
        assert_eq!(a, b, "torn pair: a transaction saw half of a commit");
        sum += a;
    }
    let x = tx.read_elem_u64(arr, elem(0))?;
    let y = tx.read_elem_u64(arr, elem(FAR))?;
    assert_eq!(x, y, "torn array: a transaction saw half of a commit");
    Ok(sum)
}

fn pairs_stay_equal_in_every_transaction_in(log: bool) {
    let txs: u64 = std::env::var("STMJIT_TORN_TXS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let threads = 4;
    let mut cfg = config_mode(log, 3, WaitPolicy::Wait);
    cfg.move_threads = true;
    let stm = Stm::new(cfg).unwrap();
    let t = types(&stm);
    let cells = Arc::new(make_cells(&stm, &t, &[0; 2 * PAIRS]));
    let arr = make_array(&stm, &t, FAR + 1, 0);
    let start = Arc::new(Barrier::new(threads));
    let hs: Vec<_> = (0..threads)
        .map(|i| {
            let (stm, cells, start) = (stm.clone(), cells.clone(), start.clone());
            std::thread::spawn(move || {
                let mut th = stm.thread();
                start.wait();
                let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ ((i as u64 + 1) * 0x9E37));
                let (mut pair_commits, mut arr_commits) = (0u64, 0u64);
                for n in 0..txs {
                    let op = rng.below(10);
                    let mut forced_abort = rng.below(8) == 0;
                    if i == 0 && n % 500 == 250 {
                        // An inevitable transaction in the middle of the traffic.
                        th.run(|tx| {
                            check_all(tx, &cells, arr)?;
                            tx.become_inevitable()?;
                            check_all(tx, &cells, arr)?;
                            let p = &cells[0..2];
                            let a = tx.read_u64(p[0], 8)?;
                            tx.write_u64(p[0], 8, a + 1)?;
                            tx.write_u64(p[1], 8, a + 1)
                        });
                        pair_commits += 1;
                    } else if op < 5 {
                        let k = 2 * rng.below(PAIRS as u64) as usize;
                        th.run(|tx| {
                            let a = tx.read_u64(cells[k], 8)?;
                            let b = tx.read_u64(cells[k + 1], 8)?;
                            assert_eq!(a, b, "torn pair seen by a writer");
                            tx.write_u64(cells[k], 8, a + 1)?;
                            tx.write_u64(cells[k + 1], 8, b + 1)?;
                            if std::mem::take(&mut forced_abort) {
                                return Err(tx.abort());
                            }
                            Ok(())
                        });
                        pair_commits += 1;
                    } else if op < 6 {
                        th.run(|tx| {
                            let x = tx.read_elem_u64(arr, elem(0))?;
                            tx.write_elem_u64(arr, elem(0), x + 1)?;
                            let y = tx.read_elem_u64(arr, elem(FAR))?;
                            assert_eq!(x, y, "torn array seen by a writer");
                            tx.write_elem_u64(arr, elem(FAR), y + 1)?;
                            if std::mem::take(&mut forced_abort) {
                                return Err(tx.abort());
                            }
                            Ok(())
                        });
                        arr_commits += 1;
                    } else {
                        th.run(|tx| check_all(tx, &cells, arr));
                    }
                    if n % 1000 == 999 {
                        th.collect_major().unwrap();
                    }
                }
                (pair_commits, arr_commits)
            })
        })
        .collect();
    let (mut pairs, mut arrs) = (0, 0);
    for h in hs {
        let (p, a) = h.join().unwrap();
        pairs += p;
        arrs += a;
    }
    let mut th = stm.thread();
    let sum = th.run(|tx| check_all(tx, &cells, arr));
    assert_eq!(sum, pairs, "lost or duplicated pair updates");
    assert_eq!(stm.committed_u64(arr, elem(0)), arrs);
    assert_eq!(stm.committed_u64(arr, elem(FAR)), arrs);
    let st = stm.stats();
    assert!(st.aborts_explicit > 0, "{st:?}");
}

#[test]
fn pairs_stay_equal_in_every_transaction() {
    pairs_stay_equal_in_every_transaction_in(false);
}

/// The same with the commit log.
#[test]
fn pairs_stay_equal_in_every_transaction_commit_log() {
    pairs_stay_equal_in_every_transaction_in(true);
}
