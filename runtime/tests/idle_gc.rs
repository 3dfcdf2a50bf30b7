//! The idle collector (`StmConfig::idle_collect`, `major.rs` "Idle collection"): a runtime
//! whose program stops committing with garbage left below the major-collection threshold
//! collects it and gives back its pages; not while transactions commit or run, and not again
//! without new garbage. Before it, such garbage stayed until the threshold was reached, which
//! an idle program never does: the soak benchmark's idle server kept 50 to 84 MiB where it
//! had run in 27.

mod common;
use common::gcnode::*;
use std::time::{Duration, Instant};
use stmjit_runtime::value::NONE;
use stmjit_runtime::*;

/// Promotes a chain of `n` nodes into slot `s` of frame `f` (one transaction), dropping the
/// chain that was there: the old chain is old garbage.
fn replace_chain(th: &mut StmThread, ty: TypeId, f: Frame, s: usize, n: i64) {
    th.run(|tx| {
        tx.shadow_stack().set(f, s, NONE);
        for i in 0..n {
            let node = new_node(tx, ty, i, 1)?;
            let head = tx.shadow_stack().get(f, s);
            tx.write_u64(node, field(0), head)?;
            tx.shadow_stack().set(f, s, node);
        }
        Ok(())
    });
}

/// Length of the chain in slot `s` (checking every node).
fn chain_len(th: &mut StmThread, f: Frame, s: usize) -> usize {
    th.run(|tx| {
        let mut r = tx.shadow_stack().get(f, s);
        let mut n = 0;
        while r != NONE {
            r = read_node(tx, r)?.1[0];
            n += 1;
        }
        Ok(n)
    })
}

#[test]
fn idle_checks_collect_once_when_nothing_committed_or_ran_in_between() {
    for log in [false, true] {
        let stm = Stm::new(StmConfig {
            nursery_size: 64 << 10,
            ..cfg_mode(log, 2)
        })
        .unwrap();
        let ty = node_type(&stm);
        let mut th = stm.thread();
        let f = th.shadow_stack().push(2);
        let mut last = stm.idle_check(None);
        assert!(last.is_some());
        for _ in 0..50 {
            replace_chain(&mut th, ty, f, 0, 200);
            // A commit since the previous check: not idle.
            last = stm.idle_check(last);
            assert_eq!(stm.stats().major_idle, 0, "log {log}");
        }
        // A committed node written again by a later transaction: a private page.
        th.run(|tx| {
            let n = new_node(tx, ty, -1, 1)?;
            tx.shadow_stack().set(f, 1, n);
            Ok(())
        });
        th.run(|tx| {
            let n = tx.shadow_stack().get(f, 1);
            tx.write_u64(n, field(0), int(7))
        });
        let private = |stm: &Stm| (1..=2).map(|k| stm.private_pages(k)).sum::<u64>();
        assert_eq!(stm.stats().major_collections, 0, "below the threshold");
        let pages_busy = stm.old_pages_in_use();
        assert!(pages_busy > 100, "{pages_busy} old pages in use");
        if !log {
            assert!(private(&stm) > 0);
        }
        // A transaction running: not idle, whatever the commit count says.
        last = stm.idle_check(last);
        th.begin();
        assert_eq!(stm.idle_check(last), None);
        assert_eq!(stm.idle_check(last), None);
        th.commit().unwrap();
        assert_eq!(stm.stats().major_idle, 0, "log {log}");
        // Idle: two checks with nothing in between collect, freeing the dead chains and
        // re-sharing the private page.
        last = stm.idle_check(stm.idle_check(None));
        let s = stm.stats();
        assert_eq!((s.major_idle, s.major_collections), (1, 1), "log {log}");
        let pages_idle = stm.old_pages_in_use();
        assert!(
            pages_idle * 10 < pages_busy,
            "old pages {pages_busy} -> {pages_idle} (log {log})"
        );
        assert_eq!(private(&stm), 0, "log {log}");
        // Nothing new to collect: no second collection.
        for _ in 0..3 {
            last = stm.idle_check(last);
        }
        assert_eq!(stm.stats().major_collections, 1, "log {log}");
        // What is live is intact.
        assert_eq!(chain_len(&mut th, f, 0), 200);
        th.run(|tx| {
            let n = tx.shadow_stack().get(f, 1);
            assert_eq!(read_node(tx, n)?.1, vec![int(7)]);
            Ok(())
        });
        th.shadow_stack().pop(f);
    }
}

#[test]
fn the_idle_collector_thread_collects_and_ends_with_the_runtime() {
    let stm = Stm::new(StmConfig {
        nursery_size: 64 << 10,
        idle_collect: Some(Duration::from_millis(20)),
        ..cfg(2)
    })
    .unwrap();
    let ty = node_type(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    for _ in 0..20 {
        replace_chain(&mut th, ty, f, 0, 200);
    }
    let t0 = Instant::now();
    while stm.stats().major_idle == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no idle collection");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(chain_len(&mut th, f, 0), 200);
    th.shadow_stack().pop(f);
    drop(th);
    // The thread holds the runtime only during a check: it is freed with the last handle.
    let weak = std::sync::Arc::downgrade(&stm);
    drop(stm);
    let t0 = Instant::now();
    while weak.upgrade().is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "runtime never freed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
