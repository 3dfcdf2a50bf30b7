//! A segment's nursery is asked for transparent huge pages past its first 2 MiB (issue 14:
//! faulting a second segment's 16 MiB nursery in 4 KiB at a time cost one thread about 3% of
//! binarytrees' CPU over `--gil`), and the reservation starts on a huge-page boundary so
//! that they line up. Read back from the kernel's own account of the mappings
//! (`/proc/self/smaps`: `hg` in `VmFlags` is `MADV_HUGEPAGE`).

mod common;
use common::*;
use stmjit_runtime::*;

const HUGE: u64 = 2 << 20;

/// The `VmFlags` of the mapping of this process that contains `addr`.
fn vm_flags(addr: u64) -> Vec<String> {
    let s = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for l in s.lines() {
        let range = l.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = range.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                inside = (a..b).contains(&addr);
                continue;
            }
        }
        if let Some(f) = l.strip_prefix("VmFlags:") {
            if inside {
                return f.split_whitespace().map(String::from).collect();
            }
        }
    }
    panic!("no mapping holds {addr:#x}");
}

#[test]
fn nurseries_past_their_first_huge_page_ask_for_huge_pages() {
    let mut cfg = config(2, WaitPolicy::AbortSelf);
    cfg.nursery_size = 16 << 20;
    let stm = Stm::new(cfg).unwrap();
    let l = *stm.layout();
    assert_eq!(l.base % HUGE, 0, "reservation at {:#x}", l.base);
    // Where the kernel has no transparent huge pages the advice fails and changes nothing.
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        return;
    }
    for seg in 1..=2 {
        let b = stm.segment_base(seg);
        let first = vm_flags(b + l.nursery_start);
        let rest = vm_flags(b + l.nursery_start + 4 * HUGE);
        let last = vm_flags(b + l.nursery_end - 1);
        assert!(
            !first.contains(&"hg".into()),
            "segment {seg}, start: {first:?}"
        );
        assert!(
            rest.contains(&"hg".into()),
            "segment {seg}, middle: {rest:?}"
        );
        assert!(last.contains(&"hg".into()), "segment {seg}, end: {last:?}");
    }
    // Segment 0 (committed state) has no nursery; small nurseries keep small pages.
    let mut small = config(1, WaitPolicy::AbortSelf);
    small.nursery_size = 1 << 20;
    let stm = Stm::new(small).unwrap();
    let l = *stm.layout();
    let f = vm_flags(stm.segment_base(1) + l.nursery_start);
    assert!(!f.contains(&"hg".into()), "1 MiB nursery: {f:?}");
}
