//! The `--stats` report (text on stderr) and `--stats-json FILE` (the same figures as JSON):
//! what a user needs to see why a program does not scale. The runtime's counters (commits,
//! aborts by cause, sync pauses, GC) and the JIT's conflict table, which names *both* sides
//! of each conflict by source position and quotes their lines: where the winner wrote, and
//! where the aborted transaction read the object (read barriers record their site while a
//! report is asked for, see `stmjit_runtime::readsites`), or wrote it; where neither is
//! known, where the aborted transaction learnt of its abort ("noticed"); and the objects by
//! name (`Account.balance`, `dict['sum']`, see `conflict_names.rs`).

use crate::txn::{ConflictCount, ConflictKey};
use crate::{Mode, Runtime};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write;
use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use stmjit_runtime::{Access, MajorPhase, Side, StatsSnapshot};

/// Conflict sites listed in the text report (the ones that lost the most time; the JSON
/// lists all).
const TOP_SITES: usize = 10;

/// What the report means by a conflict, printed with it.
const CONFLICTS_MEAN: &str = "a conflict: two transactions touched one object, one of them \
     writing it; the loser aborts, or waits (some write/write ones)";
/// What the report means by an abort, printed with it.
const ABORTS_MEAN: &str = "an abort: a transaction rolled back and run again, after a conflict \
     or for another cause (STMJIT_ABORT_PROBABILITY, a join that must wait)";

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// The time of each phase of the major collections (`stop 0.1 ms, log 0.0 ms, ...; then
/// with the world running: sweep ...`).
fn major_phases(s: &StatsSnapshot) -> String {
    let list = |running: bool| {
        MajorPhase::ALL
            .iter()
            .filter(|p| p.world_running() == running)
            .map(|&p| format!("{} {}", p.name(), ms(s.major_phase_ns[p as usize])))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{}; then with the world running: {}",
        list(false),
        list(true)
    )
}

fn ms_f(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// One side of a conflict: a source position and its line's text (trimmed).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Place {
    line: u32,
    col: u32,
    text: Option<String>,
}

/// One side of a row: what its site names, and where it is.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SideAt {
    access: Access,
    place: Option<Place>,
}

/// One row of the conflict table after merging rows whose sites are at the same positions
/// (two site ids can share a position, e.g. the calls of one line).
struct Row {
    kind: &'static str,
    type_name: String,
    winner: SideAt,
    loser: SideAt,
    aborts: u64,
    lost_ns: u64,
    /// The objects' names with their aborts, most aborts first (`conflict_names.rs`).
    objects: Vec<(String, u64)>,
    /// Aborts on objects without a name (or past the names kept).
    other_objects: u64,
}

/// Names shown per row of the text report (the JSON has all the kept ones).
const NAMES_SHOWN: usize = 3;

impl Row {
    /// What the row's conflicts are on: its objects' names (the first [`NAMES_SHOWN`])
    /// and its type, or only the type when no name is known.
    fn what(&self) -> String {
        if self.objects.is_empty() {
            return self.type_name.clone();
        }
        let shown: Vec<&str> = self
            .objects
            .iter()
            .take(NAMES_SHOWN)
            .map(|(n, _)| n.as_str())
            .collect();
        let more = self.objects.len().saturating_sub(NAMES_SHOWN);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more} ({})", shown.join(", "), self.type_name)
    }
}

/// Every figure of the report, read once (text and JSON render the same snapshot).
struct Figures {
    s: stmjit_runtime::StatsSnapshot,
    mode: &'static str,
    segments: usize,
    injected: u64,
    lost_ns: u64,
    /// Time threads spent in transactions, committed or aborted (ns).
    tx_ns: u64,
    inevitable: u64,
    rows: Vec<Row>,
}

impl Figures {
    fn read(rt: &Runtime) -> Figures {
        let stats = &rt.info.txn_stats;
        let lost_ns = stats.lost_ns.load(Relaxed);
        Figures {
            s: rt.stm.stats(),
            mode: match rt.mode {
                Mode::Stm => "stm",
                Mode::Gil => "gil",
            },
            segments: rt.stm.num_segments(),
            injected: stats.injected.load(Relaxed),
            lost_ns,
            tx_ns: lost_ns + stats.committed_ns.load(Relaxed),
            inevitable: stats.inevitable.load(Relaxed),
            rows: rows(rt),
        }
    }
}

/// The conflict table, rows with the same kind, type and positions merged, the ones that
/// lost the most time first.
fn rows(rt: &Runtime) -> Vec<Row> {
    let source = stmjit_lang::diag::cached_source(&rt.info.file);
    let place = |id: u32| {
        let site = rt.info.code.sites.get(id as usize)?;
        let (line, col) = (site.span.line, site.span.col);
        let text = source
            .as_deref()
            .and_then(|s| stmjit_lang::diag::source_line(s, line))
            .map(|t| t.trim().to_string());
        Some(Place { line, col, text })
    };
    merge(rt.info.txn_stats.conflicts.lock().unwrap().iter(), place)
}

/// Merges the table's rows whose sites are at the same positions (`place` of a site id),
/// summing their counts; sorted by time lost, then aborts, then positions.
fn merge<'a>(
    table: impl Iterator<Item = (&'a ConflictKey, &'a ConflictCount)>,
    place: impl Fn(u32) -> Option<Place>,
) -> Vec<Row> {
    let side = |s: Side| SideAt {
        access: s.access,
        place: place(s.site),
    };
    let mut merged: HashMap<_, ConflictCount> = HashMap::new();
    for (k, c) in table {
        let key = (k.kind, k.type_name.clone(), side(k.winner), side(k.loser));
        let e = merged.entry(key).or_default();
        e.aborts += c.aborts;
        e.lost_ns += c.lost_ns;
        e.other_objects += c.other_objects;
        for (name, n) in &c.objects {
            match e.objects.iter_mut().find(|(m, _)| m == name) {
                Some(x) => x.1 += n,
                None => e.objects.push((name.clone(), *n)),
            }
        }
    }
    let mut rows: Vec<Row> = merged
        .into_iter()
        .map(|((kind, type_name, winner, loser), mut c)| {
            c.objects
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Row {
                kind,
                type_name,
                winner,
                loser,
                aborts: c.aborts,
                lost_ns: c.lost_ns,
                objects: c.objects,
                other_objects: c.other_objects,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.lost_ns, b.aborts)
            .cmp(&(a.lost_ns, a.aborts))
            .then_with(|| (a.kind, &a.type_name).cmp(&(b.kind, &b.type_name)))
            .then_with(|| (&a.winner, &a.loser).cmp(&(&b.winner, &b.loser)))
    });
    rows
}

/// The winner, in the words of the report: a write/read conflict's winner has committed
/// (or, when it read the object, is the inevitable transaction, which wins over the
/// committer); a write/write conflict's winner holds the object and commits later.
fn winner_words(kind: &str, access: Access) -> &'static str {
    if kind == "write/write" {
        "the winning transaction"
    } else if access == Access::Read {
        "the inevitable transaction"
    } else {
        "the committing transaction"
    }
}

/// The loser, in the words of the report.
const LOSER_WORDS: &str = "the aborted one";

/// What a side's site names, as the report's verb: `written`, `read`, and where only the
/// position of the transaction is known, `noticed` (the aborted side: where it learnt of
/// its abort) or `running` (the winner: where it was).
fn verb(access: Access, loser: bool) -> &'static str {
    match access {
        Access::Wrote => "written",
        Access::Read => "read",
        Access::WasAt if loser => "noticed",
        Access::WasAt => "running",
    }
}

/// The two lines of one side of a row: where, and the source line quoted.
fn side(o: &mut String, verb: &str, file: &str, p: &Option<Place>, who: &str) {
    match p {
        Some(p) => {
            let _ = writeln!(o, "      {verb} at {file}:{}:{} by {who}", p.line, p.col);
            if let Some(t) = &p.text {
                let _ = writeln!(o, "          {t}");
            }
        }
        None => {
            let _ = writeln!(o, "      {verb} at an unknown site by {who}");
        }
    }
}

/// The report, one `key: value` line per figure (stable syntax: benchmarks and tests parse
/// the `commits:`, `aborts:` and `conflicts:` lines), then the conflict sites, each with its
/// two sides labelled and quoted.
pub fn report(rt: &Runtime) -> String {
    let f = Figures::read(rt);
    let s = &f.s;
    let mut o = String::new();
    let _ = writeln!(o, "stats: {} segments, mode {}", f.segments, f.mode);
    let _ = writeln!(o, "  commits: {}", s.commits);
    let _ = writeln!(
        o,
        "  aborts: {} (write-write {}, write-read {}, other {})",
        s.aborts(),
        s.aborts_write_write,
        s.aborts_write_read,
        s.aborts_explicit
    );
    if f.injected > 0 {
        let _ = writeln!(
            o,
            "  injected aborts (STMJIT_ABORT_PROBABILITY): {}",
            f.injected
        );
    }
    let _ = writeln!(
        o,
        "  time lost to aborts: {} ({:.1}% of the {} threads spent in transactions)",
        ms(f.lost_ns),
        percent(f.lost_ns, f.tx_ns),
        ms(f.tx_ns)
    );
    let _ = writeln!(
        o,
        "  sync pause: {} (committers waiting {}, threads paused {}, {} commits stopped others)",
        ms(s.sync_wait_ns + s.paused_ns),
        ms(s.sync_wait_ns),
        ms(s.paused_ns),
        s.syncs
    );
    if s.log_max_entries > 0 {
        // Commit log (the default; off with `STMJIT_COMMIT_LOG=0`): writer commits stop
        // nobody; the sync pause above is then major collections and waits for an
        // inevitable transaction.
        let _ = writeln!(
            o,
            "  commit log: {} validations ({}), {} entries imported ({} KiB), {} waits for an inevitable transaction; log now {} entries ({} KiB), at most {} ({} KiB)",
            s.validations,
            ms(s.validate_ns),
            s.imported_entries,
            s.imported_bytes / 1024,
            s.inevitable_waits,
            s.log_entries,
            s.log_bytes / 1024,
            s.log_max_entries,
            s.log_max_bytes / 1024
        );
    }
    let _ = writeln!(o, "  inevitable transactions: {}", f.inevitable);
    o.push_str(&crate::serve::stats_lines(&rt.info));
    let _ = writeln!(
        o,
        "  gc: {} minor ({}, longest {}, {} KiB promoted), {} major ({} when idle, {}, longest {}), {} KiB live",
        s.minor_collections,
        ms(s.minor_ns),
        ms(s.minor_max_ns),
        s.bytes_promoted / 1024,
        s.major_collections,
        s.major_idle,
        ms(s.major_ns),
        ms(s.major_max_ns),
        s.live_bytes / 1024
    );
    if s.major_collections > 0 {
        let _ = writeln!(o, "    major collections: {}", major_phases(s));
    }
    let _ = writeln!(
        o,
        "  shadow stack: up to {} slots at a minor collection",
        s.shadow_max_slots
    );
    let _ = writeln!(o, "  pages privatized: {}", s.pages_privatized);
    let _ = writeln!(
        o,
        "  segment hand-offs: {} wake-ups of a waiting thread, {} segments taken over from an idle keeper",
        s.segment_wakeups, s.segment_takeovers
    );
    let th = &rt.info.threads;
    let _ = writeln!(
        o,
        "  threads: {} spawned, {} OS threads started for them, {} put off while others waited for a segment",
        th.spawned_total.load(Relaxed),
        th.os_threads.load(Relaxed),
        th.deferred_total.load(Relaxed)
    );
    let c = &rt.info.code.compiled;
    let _ = writeln!(
        o,
        "  jit: {} of {} functions compiled ({}, CPU {}, {} KiB of code{})",
        c.functions.load(Relaxed),
        rt.info.func_names.len(),
        ms(c.nanos.load(Relaxed)),
        ms(c.cpu_nanos.load(Relaxed)),
        c.code_bytes.load(Relaxed) / 1024,
        match c.code_freed.load(Relaxed) / 1024 {
            0 => String::new(),
            kib => format!(", {kib} KiB of it freed after it ran"),
        }
    );
    let _ = writeln!(o, "  conflicts: {}", s.conflicts_total);
    let _ = writeln!(o, "    ({CONFLICTS_MEAN};");
    let _ = writeln!(o, "    {ABORTS_MEAN})");
    let file = &rt.info.file;
    for r in f.rows.iter().take(TOP_SITES) {
        let _ = writeln!(
            o,
            "    {} conflict on {}: {} aborts, {} lost ({:.1}%)",
            r.kind,
            r.what(),
            r.aborts,
            ms(r.lost_ns),
            percent(r.lost_ns, f.tx_ns)
        );
        let (w, l) = (&r.winner, &r.loser);
        let who = winner_words(r.kind, w.access);
        side(&mut o, verb(w.access, false), file, &w.place, who);
        side(&mut o, verb(l.access, true), file, &l.place, LOSER_WORDS);
    }
    if f.rows.len() > TOP_SITES {
        let _ = writeln!(o, "    ... {} more sites", f.rows.len() - TOP_SITES);
    }
    let shown = &f.rows[..f.rows.len().min(TOP_SITES)];
    if shown.iter().any(|r| r.loser.access == Access::WasAt) {
        let _ = writeln!(
            o,
            "    (\"noticed\" is where the aborted transaction learnt of the abort: its read or \
             write of the object was not recorded)"
        );
    }
    o
}

fn place_json(file: &str, p: &Option<Place>) -> Value {
    match p {
        Some(p) => json!({ "file": file, "line": p.line, "col": p.col, "text": p.text }),
        None => Value::Null,
    }
}

/// One side of a conflict site in JSON: `access` is the text report's verb (`written`,
/// `read`, `noticed`, `running`), `at` the place (null when unknown), `by` who.
fn side_json(file: &str, s: &SideAt, loser: bool, kind: &str) -> Value {
    let by = if loser {
        LOSER_WORDS
    } else {
        winner_words(kind, s.access)
    };
    json!({ "access": verb(s.access, loser), "at": place_json(file, &s.place), "by": by })
}

/// The figures of [`report`] as JSON (`--stats-json`): every conflict site, not only the
/// top ones; times in milliseconds, shares in percent of the time threads spent in
/// transactions.
pub fn report_json(rt: &Runtime) -> Value {
    let f = Figures::read(rt);
    let s = &f.s;
    let file = &rt.info.file;
    let sites: Vec<Value> = f
        .rows
        .iter()
        .map(|r| {
            json!({
                "kind": r.kind,
                "type": r.type_name,
                "objects": r.objects.iter().map(|(n, a)| json!({ "name": n, "aborts": a })).collect::<Vec<_>>(),
                "unnamed_object_aborts": r.other_objects,
                "aborts": r.aborts,
                "lost_ms": ms_f(r.lost_ns),
                "lost_percent": percent(r.lost_ns, f.tx_ns),
                "winner": side_json(file, &r.winner, false, r.kind),
                "loser": side_json(file, &r.loser, true, r.kind),
            })
        })
        .collect();
    json!({
        "file": file,
        "segments": f.segments,
        "mode": f.mode,
        "commits": s.commits,
        "aborts": s.aborts(),
        "aborts_by_cause": {
            "write_write": s.aborts_write_write,
            "write_read": s.aborts_write_read,
            "other": s.aborts_explicit,
        },
        "injected_aborts": f.injected,
        "abort_lost_ms": ms_f(f.lost_ns),
        "transaction_ms": ms_f(f.tx_ns),
        "abort_lost_percent": percent(f.lost_ns, f.tx_ns),
        "sync_pause_ms": ms_f(s.sync_wait_ns + s.paused_ns),
        "sync_wait_ms": ms_f(s.sync_wait_ns),
        "paused_ms": ms_f(s.paused_ns),
        "syncs": s.syncs,
        "commit_log": {
            "validations": s.validations,
            "validate_ms": ms_f(s.validate_ns),
            "imported_entries": s.imported_entries,
            "imported_bytes": s.imported_bytes,
            "inevitable_waits": s.inevitable_waits,
            "entries": s.log_entries,
            "bytes": s.log_bytes,
            "max_entries": s.log_max_entries,
            "max_bytes": s.log_max_bytes,
        },
        "inevitable_transactions": f.inevitable,
        "gc": {
            "minor_collections": s.minor_collections,
            "minor_ms": ms_f(s.minor_ns),
            "minor_max_ms": ms_f(s.minor_max_ns),
            "promoted_bytes": s.bytes_promoted,
            "major_collections": s.major_collections,
            "major_idle": s.major_idle,
            "major_ms": ms_f(s.major_ns),
            "major_max_ms": ms_f(s.major_max_ns),
            "major_phase_ms": MajorPhase::ALL
                .iter()
                .map(|&p| (p.name().to_string(), json!(ms_f(s.major_phase_ns[p as usize]))))
                .collect::<serde_json::Map<_, _>>(),
            "live_bytes": s.live_bytes,
            "shadow_stack_max_slots": s.shadow_max_slots,
        },
        "pages_privatized": s.pages_privatized,
        "jit": {
            "functions_compiled": rt.info.code.compiled.functions.load(Relaxed),
            "functions": rt.info.func_names.len(),
            "compile_ms": ms_f(rt.info.code.compiled.nanos.load(Relaxed)),
            "compile_cpu_ms": ms_f(rt.info.code.compiled.cpu_nanos.load(Relaxed)),
            "code_bytes": rt.info.code.compiled.code_bytes.load(Relaxed),
            "code_freed_bytes": rt.info.code.compiled.code_freed.load(Relaxed),
            "compiled_inevitable": rt.info.code.compiled.inevitable.load(Relaxed),
        },
        "conflicts": s.conflicts_total,
        "definitions": { "conflicts": CONFLICTS_MEAN, "aborts": ABORTS_MEAN },
        "conflict_sites": sites,
    })
}

/// `--stats`: the report on stderr (see [`report`]); `--stats-json FILE`: the JSON figures
/// (see [`report_json`]) written to FILE (a failure to write it is reported, not fatal).
pub fn print_stats_if_asked(rt: &Runtime) {
    if rt.info.settings.stats {
        let text = report(rt);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    if let Some(path) = &rt.info.stats_json {
        let mut text = report_json(rt).to_string();
        text.push('\n');
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &'static str, w: u32, r: u32) -> ConflictKey {
        ConflictKey {
            kind,
            type_name: "list".into(),
            winner: Side::wrote(w),
            loser: if r == 7 {
                Side::read(r)
            } else {
                Side::was_at(r)
            },
        }
    }

    /// Sites 1 and 2 are both at 3:5 (say, two calls of one line): their rows merge, and the
    /// merged row sums their counts; a row of another kind stays apart; an unknown site is
    /// kept as such.
    #[test]
    fn rows_at_the_same_positions_merge() {
        let place = |id: u32| match id {
            1 | 2 => Some(Place {
                line: 3,
                col: 5,
                text: Some("x[0] = 1".into()),
            }),
            7 => Some(Place {
                line: 9,
                col: 1,
                text: None,
            }),
            _ => None,
        };
        let count = |aborts, lost_ns, names: &[(&str, u64)]| ConflictCount {
            aborts,
            lost_ns,
            objects: names.iter().map(|&(n, a)| (n.to_string(), a)).collect(),
            other_objects: 0,
        };
        let table = [
            (key("write/write", 1, 7), count(2, 100, &[("xs[0]", 2)])),
            (
                key("write/write", 2, 7),
                count(3, 50, &[("xs[0]", 1), ("xs[1]", 2)]),
            ),
            (key("write/read", 1, 7), count(1, 400, &[])),
            (key("write/write", 1, u32::MAX), count(1, 1, &[])),
        ];
        let rows = merge(table.iter().map(|(k, v)| (k, v)), place);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].kind, rows[0].aborts, rows[0].lost_ns),
            ("write/read", 1, 400)
        );
        assert_eq!(
            (rows[1].kind, rows[1].aborts, rows[1].lost_ns),
            ("write/write", 5, 150)
        );
        assert_eq!(rows[1].winner.place.as_ref().map(|p| p.line), Some(3));
        assert_eq!(rows[1].winner.access, Access::Wrote);
        assert_eq!(rows[1].loser.place.as_ref().map(|p| p.line), Some(9));
        assert_eq!(rows[1].loser.access, Access::Read);
        assert_eq!(
            rows[1].objects,
            [("xs[0]".to_string(), 3), ("xs[1]".to_string(), 2)]
        );
        assert_eq!(rows[1].what(), "xs[0], xs[1] (list)");
        assert_eq!(rows[0].what(), "list");
        assert!(rows[2].loser.place.is_none());
        assert_eq!(verb(rows[2].loser.access, true), "noticed");
    }
}
