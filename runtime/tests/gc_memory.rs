//! Memory bound of a long allocation loop with a small live set, and page re-sharing after a
//! major collection. In its own test binary so that the RSS it measures is its own.

mod common;
use common::gcnode::*;
use common::Rng;
use stmjit_runtime::value::NONE;
use stmjit_runtime::*;

#[test]
fn long_allocation_loop_keeps_memory_bounded_and_pages_are_reshared() {
    let stm = Stm::new(StmConfig {
        nursery_size: 64 << 10,
        ..cfg(2)
    })
    .unwrap();
    stm.set_major_threshold(1 << 20);
    let ty = node_type(&stm);
    let mut th = stm.thread();
    const LIVE: usize = 64;
    let f = th.shadow_stack().push(LIVE);
    let mut rng = Rng(7);
    let mut max_pages = 0;
    let mut max_in_use = 0;
    let rss0 = rss_kb();
    for t in 0..20000 {
        th.run(|tx| {
            // A chain of 100 nodes replaces a random live one: everything survives the
            // commit's minor collection, and the replaced chain is old garbage.
            let s = (rng.next() % LIVE as u64) as usize;
            tx.shadow_stack().set(f, s, NONE);
            for i in 0..100 {
                let n = new_node(tx, ty, t * 100 + i, 4)?;
                let head = tx.shadow_stack().get(f, s);
                tx.write_u64(n, field(0), head)?;
                tx.shadow_stack().set(f, s, n);
            }
            Ok(())
        });
        max_pages = max_pages.max(stm.old_pages_in_use());
        max_in_use = max_in_use.max(stm.allocated_bytes());
    }
    let s = stm.stats();
    let rss1 = rss_kb();
    let total = 20000 * 100 * 64u64;
    eprintln!(
        "allocated {} MiB in total; old space at most {} pages ({} KiB in use at most); \
         {} majors, {} minors, RSS {} -> {} KiB",
        total >> 20,
        max_pages,
        max_in_use >> 10,
        s.major_collections,
        s.minor_collections,
        rss0,
        rss1
    );
    assert!(s.major_collections >= 3, "{s:?}");
    assert!(
        max_pages < 1024,
        "old space stays under 4 MiB: {max_pages} pages"
    );
    assert!(
        rss1 < rss0 + 16 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
    // Every live node is intact.
    th.run(|tx| {
        for i in 0..LIVE {
            let r = tx.shadow_stack().get(f, i);
            if r != NONE {
                read_node(tx, r)?;
            }
        }
        Ok(())
    });
    // Private pages: write committed nodes from two segments, then a major collection
    // re-shares the pages no running transaction modifies.
    let mut hs = [stm.thread(), stm.thread()];
    for h in hs.iter_mut() {
        h.begin();
    }
    let seg: Vec<usize> = hs.iter().map(|h| h.segment()).collect();
    for i in 0..LIVE {
        let r = th.shadow_stack().get(f, i);
        if r != NONE {
            let h = &mut hs[i % 2];
            h.write_u64(r, field(3), int(i as i64)).unwrap();
        }
    }
    for h in hs.iter_mut() {
        h.commit().unwrap();
    }
    let priv_before: u64 = seg.iter().map(|&k| stm.private_pages(k)).sum();
    assert!(priv_before > 0);
    // One transaction stays open with one modified object: its page stays private.
    let keep = th.shadow_stack().get(f, 0);
    let keep = if keep == NONE {
        th.shadow_stack().get(f, 1)
    } else {
        keep
    };
    hs[0].begin();
    let k0 = hs[0].segment();
    hs[0].write_u64(keep, field(2), int(99)).unwrap();
    th.collect_major().unwrap();
    let priv_after: u64 = (1..=2).map(|k| stm.private_pages(k)).sum();
    eprintln!("private pages {priv_before} -> {priv_after} after a major collection");
    assert_eq!(
        stm.private_pages(k0),
        1,
        "the open transaction's page stays private"
    );
    assert_eq!(priv_after, 1);
    assert!(stm.stats().pages_reshared >= priv_before - 1);
    hs[0].commit().unwrap();
    th.run(|tx| {
        assert_eq!(tx.read_u64(keep, field(2))?, int(99));
        for i in 0..LIVE {
            let r = tx.shadow_stack().get(f, i);
            if r != NONE && r != keep {
                assert_eq!(tx.read_u64(r, field(3))?, int(i as i64));
            }
        }
        Ok(())
    });
    th.shadow_stack().pop(f);
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}
