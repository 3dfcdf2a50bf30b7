//! Page sharing is real: reading a big committed structure from N segments does not grow
//! the process's proportional set size N times, and writing privatizes only touched pages.
//! (Alone in its test binary so that no other test disturbs the memory figures. PSS is used
//! rather than RSS because RSS counts a shared page once per mapping, i.e. N times.)

mod common;
use common::*;
use stmjit_runtime::*;

fn smaps_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    for l in s.lines() {
        if let Some(rest) = l.strip_prefix(field) {
            return rest.trim().trim_end_matches("kB").trim().parse().unwrap();
        }
    }
    panic!("no {field} in smaps_rollup");
}

#[test]
fn reading_shares_pages_and_writing_privatizes_only_touched_pages() {
    const N: usize = 4;
    const ELEMS: u64 = 4 << 20; // 32 MiB of u64
    let mut cfg = config(N, WaitPolicy::AbortSelf);
    cfg.segment_size = 256 << 20;
    let stm = Stm::new(cfg).unwrap();
    let t = types(&stm);
    let mut th = stm.thread();
    let f = th.shadow_stack().push(1);
    th.run(|tx| {
        let r = tx.alloc(t.array, 16 + 8 * ELEMS)?;
        tx.store_u64(r, 8, ELEMS);
        for i in 0..ELEMS {
            tx.store_u64(r, elem(i), i);
        }
        tx.shadow_stack().set(f, 0, r);
        Ok(())
    });
    let arr = th.shadow_stack().get(f, 0);
    th.shadow_stack().pop(f);
    stm.add_root(arr);
    drop(th);
    let data_kb = 8 * ELEMS / 1024;
    let pss0 = smaps_kb("Pss:");
    let rss0 = smaps_kb("Rss:");
    let mut hs: Vec<StmThread> = (0..N).map(|_| stm.thread()).collect();
    for h in hs.iter_mut() {
        h.begin();
    }
    for h in hs.iter_mut() {
        let mut sum = 0u64;
        for i in (0..ELEMS).step_by(4) {
            sum = sum.wrapping_add(h.read_elem_u64(arr, elem(i)).unwrap());
        }
        assert_eq!(sum, (0..ELEMS).step_by(4).sum::<u64>());
    }
    let pss1 = smaps_kb("Pss:");
    let rss1 = smaps_kb("Rss:");
    eprintln!(
        "data {data_kb} KiB; after reading from {N} segments: PSS +{} KiB, RSS +{} KiB",
        pss1 as i64 - pss0 as i64,
        rss1 as i64 - rss0 as i64
    );
    // Private copies would cost N * data; markers cost N * data / 16.
    assert!(
        pss1 < pss0 + data_kb / 2,
        "PSS grew from {pss0} to {pss1} KiB for {data_kb} KiB of data"
    );
    assert_eq!(stm.stats().pages_privatized, 0);
    // Writing 10 elements on 10 distinct pages privatizes exactly those pages.
    let h = &mut hs[0];
    let seg = h.segment();
    let before = stm.private_pages(seg);
    for k in 0..10u64 {
        let i = k * 100_000 + 2;
        h.write_elem_u64(arr, elem(i), 0).unwrap();
    }
    let pss2 = smaps_kb("Pss:");
    assert_eq!(stm.private_pages(seg) - before, 10);
    assert_eq!(stm.stats().pages_privatized, 10);
    assert!(pss2 < pss1 + 1024, "PSS grew from {pss1} to {pss2} KiB");
    h.commit().unwrap();
    for h in hs.iter_mut().skip(1) {
        // Other segments read only elements 4m (other cards); they see the committed 4m+2.
        assert_eq!(h.read_elem_u64(arr, elem(100_002)).unwrap(), 0);
        h.commit().unwrap();
    }
    assert_eq!(stm.committed_u64(arr, elem(100_002)), 0);
    assert_eq!(stm.committed_u64(arr, elem(100_003)), 100_003);
}
