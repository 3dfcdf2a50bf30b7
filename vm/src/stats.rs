//! The `--stats` report: what a user needs to see why a program does not scale. The
//! runtime's counters (commits, aborts by cause, sync pauses, GC) and the JIT's conflict
//! table, which names *both* sides of each conflict by source position: where the winner
//! wrote, and where the aborted transaction was when it learnt of the abort.

use crate::{Mode, Runtime};
use std::fmt::Write;
use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;

/// Conflict sites listed (the ones that lost the most time).
const TOP_SITES: usize = 10;

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// The report, one `key: value` line per figure (stable syntax: benchmarks and tests parse
/// the `commits:`, `aborts:` and `conflicts:` lines).
pub fn report(rt: &Runtime) -> String {
    let s = rt.stm.stats();
    let stats = &rt.info.txn_stats;
    let mut o = String::new();
    let mode = match rt.mode {
        Mode::Stm => "stm",
        Mode::Gil => "gil",
    };
    let _ = writeln!(o, "stats: {} segments, mode {mode}", rt.stm.num_segments());
    let _ = writeln!(o, "  commits: {}", s.commits);
    let _ = writeln!(
        o,
        "  aborts: {} (write-write {}, write-read {}, other {})",
        s.aborts(),
        s.aborts_write_write,
        s.aborts_write_read,
        s.aborts_explicit
    );
    let injected = stats.injected.load(Relaxed);
    if injected > 0 {
        let _ = writeln!(
            o,
            "  injected aborts (STMJIT_ABORT_PROBABILITY): {injected}"
        );
    }
    let _ = writeln!(
        o,
        "  time lost to aborts: {}",
        ms(stats.lost_ns.load(Relaxed))
    );
    let _ = writeln!(
        o,
        "  sync pause: {} (committers waiting {}, threads paused {}, {} commits stopped others)",
        ms(s.sync_wait_ns + s.paused_ns),
        ms(s.sync_wait_ns),
        ms(s.paused_ns),
        s.syncs
    );
    let _ = writeln!(
        o,
        "  inevitable transactions: {}",
        stats.inevitable.load(Relaxed)
    );
    o.push_str(&crate::serve::stats_lines(&rt.info));
    let _ = writeln!(
        o,
        "  gc: {} minor ({}, longest {}, {} KiB promoted), {} major ({}, longest {}), {} KiB live",
        s.minor_collections,
        ms(s.minor_ns),
        ms(s.minor_max_ns),
        s.bytes_promoted / 1024,
        s.major_collections,
        ms(s.major_ns),
        ms(s.major_max_ns),
        s.live_bytes / 1024
    );
    let _ = writeln!(o, "  pages privatized: {}", s.pages_privatized);
    let _ = writeln!(o, "  conflicts: {}", s.conflicts_total);
    let table = stats.conflicts.lock().unwrap();
    let mut rows: Vec<_> = table.iter().collect();
    rows.sort_by(|a, b| {
        b.1 .1
            .cmp(&a.1 .1)
            .then(b.1 .0.cmp(&a.1 .0))
            .then(a.0.cmp(b.0))
    });
    let site = |id: u32| match rt.info.code.sites.get(id as usize) {
        Some(s) => format!("{}:{}:{}", rt.info.file, s.span.line, s.span.col),
        None => "?".to_string(),
    };
    for (k, (n, lost)) in rows.iter().take(TOP_SITES) {
        let _ = writeln!(
            o,
            "    {} conflict on {} at {} vs {}: {} aborts, {} lost",
            k.kind,
            k.type_name,
            site(k.writer_site),
            site(k.reader_site),
            n,
            ms(*lost)
        );
    }
    if rows.len() > TOP_SITES {
        let _ = writeln!(o, "    ... {} more sites", rows.len() - TOP_SITES);
    }
    o
}

/// `--stats`: the report on stderr (see [`report`]).
pub fn print_stats_if_asked(rt: &Runtime) {
    if rt.info.settings.stats {
        let text = report(rt);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
