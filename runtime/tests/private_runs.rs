//! Runs of private pages (each a mapping of its own, splitting the shared one around it)
//! are counted as privatization makes them, and a commit runs a major collection, whose
//! re-sharing maps them back, when they grow past a budget (an eighth of
//! `vm.max_map_count` by default): scattered writes to a big structure over many
//! transactions (a 20 M-entry dict's index) used to exhaust the process's mappings and abort
//! it ("mmap privatize: Cannot allocate memory").

mod common;
use common::*;
use stmjit_runtime::*;

const PAGE: u64 = 4096;
/// Pages of the committed array the test writes into.
const PAGES: u64 = 1024;

fn elem_on_page(p: u64) -> u64 {
    elem(p * PAGE / 8)
}

fn run_in(log: bool) {
    let mut cfg = config_mode(log, 2, WaitPolicy::Wait);
    cfg.segment_size = 256 << 20;
    let stm = Stm::new(cfg).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    let t = types(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    let elems = PAGES * PAGE / 8;
    th.run(|tx| {
        let r = tx.alloc(t.array, 16 + 8 * elems)?;
        tx.store_u64(r, 8, elems);
        tx.shadow_stack().set(f, 0, r);
        Ok(())
    });
    let arr = th.shadow_stack().get(f, 0);
    let majors = stm.stats().major_collections;
    // Every other page: runs that cannot merge, one per write.
    th.begin();
    for p in (0..100).map(|i| 2 * i + 1) {
        th.write_elem_u64(arr, elem_on_page(p), p).unwrap();
    }
    assert_eq!(stm.private_runs(), 100, "one run per isolated page");
    // The pages in between: each joins its two neighbours into one run.
    for p in (0..99).map(|i| 2 * i + 2) {
        th.write_elem_u64(arr, elem_on_page(p), p).unwrap();
    }
    assert_eq!(stm.private_runs(), 1, "199 consecutive pages are one run");
    th.commit().unwrap();
    assert_eq!(
        stm.stats().major_collections,
        majors,
        "within the default budget: no collection"
    );
    // A small budget: scattered writes over many transactions collect every ~budget runs
    // and never hold many more private runs than that.
    const BUDGET: u64 = 50;
    stm.set_map_runs_budget(BUDGET);
    let mut most = 0;
    for round in 0..40u64 {
        th.begin();
        for i in 0..20u64 {
            // Pages 300.. apart by 2, moving on each round, wrapping inside the array.
            let p = 300 + (2 * (round * 20 + i)) % (PAGES - 300);
            th.write_elem_u64(arr, elem_on_page(p), round).unwrap();
        }
        th.commit().unwrap();
        most = most.max(stm.private_runs());
    }
    let collected = stm.stats().major_collections - majors;
    assert!(
        (5..=40).contains(&collected),
        "{collected} major collections for 800 scattered runs with a budget of {BUDGET}"
    );
    assert!(
        most <= BUDGET + 20 + 1,
        "{most} private runs after a commit (budget {BUDGET})"
    );
    // The data survived the re-sharing.
    let mut t2 = stm.thread();
    t2.run(|tx| {
        for p in (0..199).map(|i| i + 1) {
            assert_eq!(tx.read_elem_u64(arr, elem_on_page(p))?, p);
        }
        Ok(())
    });
}

/// Under pressure (more runs than the budget; 0 here), scattered writes widen each new run
/// over the shared pages between it and a private neighbour: one run however many pages,
/// and the pages privatized without being written keep the committed contents.
fn widened_in(log: bool) {
    let mut cfg = config_mode(log, 2, WaitPolicy::Wait);
    cfg.segment_size = 256 << 20;
    let stm = Stm::new(cfg).unwrap();
    stm.set_major_threshold(u64::MAX / 4);
    stm.set_map_runs_budget(0);
    let t = types(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    let elems = PAGES * PAGE / 8;
    th.run(|tx| {
        let r = tx.alloc(t.array, 16 + 8 * elems)?;
        tx.store_u64(r, 8, elems);
        for p in 0..PAGES {
            tx.store_u64(r, elem_on_page(p), 1000 + p);
        }
        tx.shadow_stack().set(f, 0, r);
        Ok(())
    });
    let arr = th.shadow_stack().get(f, 0);
    let before = stm.stats().pages_privatized;
    th.begin();
    // Pages 10, 14, 18, ...: 3 shared pages between two writes, within the merge gap.
    for i in 0..50 {
        th.write_elem_u64(arr, elem_on_page(10 + 4 * i), i).unwrap();
    }
    assert_eq!(
        stm.private_runs(),
        1,
        "every new run joined the previous one"
    );
    assert_eq!(
        stm.stats().pages_privatized - before,
        1 + 4 * 49,
        "the gaps were privatized too"
    );
    for p in 10..10 + 4 * 49 {
        let want = if (p - 10) % 4 == 0 {
            (p - 10) / 4
        } else {
            1000 + p
        };
        assert_eq!(
            th.read_elem_u64(arr, elem_on_page(p)).unwrap(),
            want,
            "page {p}"
        );
    }
    th.commit().unwrap();
    let mut t2 = stm.thread();
    t2.run(|tx| {
        for p in 0..PAGES {
            let want = if (10..10 + 4 * 50).contains(&p) && (p - 10) % 4 == 0 {
                (p - 10) / 4
            } else {
                1000 + p
            };
            assert_eq!(tx.read_elem_u64(arr, elem_on_page(p))?, want, "page {p}");
        }
        Ok(())
    });
}

#[test]
fn under_pressure_new_runs_join_their_neighbours() {
    widened_in(false);
}

/// The same with the commit log.
#[test]
fn under_pressure_new_runs_join_their_neighbours_commit_log() {
    widened_in(true);
}

#[test]
fn private_runs_are_counted_and_bounded_by_major_collections() {
    run_in(false);
}

/// The same with the commit log.
#[test]
fn private_runs_are_counted_and_bounded_by_major_collections_commit_log() {
    run_in(true);
}
