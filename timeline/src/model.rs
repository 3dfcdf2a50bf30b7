//! Reading a trace: the Chrome trace-event JSON that `stmjit run --trace` writes
//! (`stmjit_vm::trace_json` documents the format) into rows of blocks. Lenient: events of
//! other kinds or categories are skipped, so a trace edited by hand or by a newer writer
//! still draws.

use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;

/// One transaction, from its begin to its commit or abort (times in µs, the format's unit).
#[derive(Clone, Debug, PartialEq)]
pub struct Tx {
    /// Begin.
    pub start: f64,
    /// Commit or abort.
    pub end: f64,
    /// Rolled back (and run again).
    pub aborted: bool,
    /// When it became inevitable, if it did.
    pub inevitable_from: Option<f64>,
    /// Its slice's name (outcome and abort cause), for the block's tooltip: borrowed when
    /// the trace is drawn from a run's records (a few names for a million transactions).
    pub name: Cow<'static, str>,
}

/// A wait or a collection (times in µs).
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Start.
    pub start: f64,
    /// End.
    pub end: f64,
    /// Garbage collection (otherwise a wait).
    pub gc: bool,
    /// What it was (`minor collection`, `waiting for a segment`, ...).
    pub name: Cow<'static, str>,
}

/// One thread's track.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// The track's id in the trace.
    pub tid: u64,
    /// The thread's name (`main`, `thread 3`).
    pub name: String,
    /// Its transactions, in the order of the file.
    pub txs: Vec<Tx>,
    /// Its waits and collections.
    pub spans: Vec<Span>,
    /// Transactions the writer did not keep (past its caps): commits, aborts.
    pub dropped: (u64, u64),
}

impl Row {
    /// Committed transactions kept.
    pub fn commits(&self) -> usize {
        self.txs.iter().filter(|t| !t.aborted).count()
    }

    /// Aborted transactions kept.
    pub fn aborts(&self) -> usize {
        self.txs.iter().filter(|t| t.aborted).count()
    }
}

/// A conflict: the winning transaction's thread and time, and the thread and time where
/// the transaction it aborted ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conflict {
    /// Index in [`Trace::rows`] of the winner's row.
    pub from_row: usize,
    /// Time on the winner's row (µs).
    pub from_t: f64,
    /// Index of the aborted transaction's row.
    pub to_row: usize,
    /// Time of the abort (µs).
    pub to_t: f64,
}

impl Conflict {
    /// The order in which they are drawn (and sampled): by the time of the abort, then by
    /// every other field, so that the same conflicts give the same picture whatever order
    /// they were found in (from a file's flow events, or from a run's records).
    pub fn order(a: &Conflict, b: &Conflict) -> std::cmp::Ordering {
        a.to_t
            .total_cmp(&b.to_t)
            .then(a.to_row.cmp(&b.to_row))
            .then(a.from_row.cmp(&b.from_row))
            .then(a.from_t.total_cmp(&b.from_t))
    }
}

/// A whole trace, ready to draw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// The program (from the metadata), or empty.
    pub program: String,
    /// Segments: transactions that could run in parallel (0 when not said).
    pub segments: u64,
    /// One row per thread, in the order of their sort index (then id).
    pub rows: Vec<Row>,
    /// Conflict arrows whose two ends are known.
    pub conflicts: Vec<Conflict>,
    /// Events kept per thread at most (0 when not said).
    pub cap: u64,
    /// Events kept by all threads together at most (0 when not said).
    pub cap_in_all: u64,
}

impl Trace {
    /// Earliest and latest time of any block, or `None` for a trace without one.
    pub fn time_range(&self) -> Option<(f64, f64)> {
        let mut r: Option<(f64, f64)> = None;
        let mut see = |a: f64, b: f64| {
            r = Some(r.map_or((a, b), |(lo, hi)| (lo.min(a), hi.max(b))));
        };
        for row in &self.rows {
            row.txs.iter().for_each(|t| see(t.start, t.end));
            row.spans.iter().for_each(|s| see(s.start, s.end));
        }
        r
    }
}

/// One event of the file, only the fields drawn (others are skipped unread). Strings are
/// borrowed from the file where they have no escapes: a trace of a million events reads in
/// tens of MB, not the GB of a `serde_json::Value` tree.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(default, borrow)]
    ph: Cow<'a, str>,
    #[serde(default, borrow)]
    cat: Cow<'a, str>,
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    tid: Option<u64>,
    ts: Option<f64>,
    dur: Option<f64>,
    id: Option<u64>,
    #[serde(default, borrow)]
    args: Option<RawArgs<'a>>,
}

/// The `args` fields drawn: a transaction's outcome (absent: committed, its default, which
/// the writer leaves out), a track's name and sort index.
#[derive(Deserialize)]
struct RawArgs<'a> {
    #[serde(default, borrow)]
    outcome: Option<Cow<'a, str>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sort_index: Option<i64>,
}

/// What the cap dropped on one track.
#[derive(Deserialize)]
struct RawDropped {
    tid: u64,
    #[serde(default)]
    commits: u64,
    #[serde(default)]
    aborts: u64,
}

/// The run's metadata.
#[derive(Deserialize, Default)]
struct RawOther {
    #[serde(default)]
    program: String,
    #[serde(default)]
    segments: u64,
    #[serde(default)]
    events_per_thread_cap: u64,
    #[serde(default)]
    events_cap: u64,
    #[serde(default)]
    dropped: Vec<RawDropped>,
}

/// The file: events and metadata.
#[derive(Deserialize)]
struct RawFile<'a> {
    #[serde(rename = "traceEvents", borrow)]
    events: Vec<RawEvent<'a>>,
    #[serde(rename = "otherData", default)]
    other: Option<RawOther>,
}

/// Reads a trace from the bytes of its JSON file. Errors say what is wrong.
pub fn read(json: &[u8]) -> Result<Trace, String> {
    let file: RawFile = serde_json::from_slice(json).map_err(|e| {
        if e.is_data() {
            format!("not a trace ({e}); expected an object with a `traceEvents` array")
        } else {
            format!("not JSON: {e}")
        }
    })?;
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut sort: HashMap<u64, i64> = HashMap::new();
    let mut row_of = |tid: u64, rows: &mut Vec<Row>| -> usize {
        *index.entry(tid).or_insert_with(|| {
            rows.push(Row {
                tid,
                name: format!("thread {tid}"),
                ..Row::default()
            });
            rows.len() - 1
        })
    };
    // Flow ends by id: start (tid, ts), finish (tid, ts).
    type End = Option<(u64, f64)>;
    let mut flows: HashMap<u64, (End, End)> = HashMap::new();
    for e in file.events {
        let Some(tid) = e.tid else {
            continue;
        };
        let ts = e.ts.filter(|t| t.is_finite());
        match (&*e.ph, &*e.cat) {
            ("M", _) if e.name == "thread_name" => {
                let r = row_of(tid, &mut rows);
                if let Some(n) = e.args.and_then(|a| a.name) {
                    rows[r].name = n;
                }
            }
            ("M", _) if e.name == "thread_sort_index" => {
                row_of(tid, &mut rows);
                if let Some(i) = e.args.and_then(|a| a.sort_index) {
                    sort.insert(tid, i);
                }
            }
            ("X", cat @ ("transaction" | "inevitable" | "gc" | "wait")) => {
                let (Some(start), Some(dur)) = (ts, e.dur.filter(|d| d.is_finite())) else {
                    continue;
                };
                let end = start + dur.max(0.0);
                let r = row_of(tid, &mut rows);
                let row = &mut rows[r];
                match cat {
                    "transaction" => row.txs.push(Tx {
                        start,
                        end,
                        aborted: e
                            .args
                            .as_ref()
                            .and_then(|a| a.outcome.as_deref())
                            .is_some_and(|o| o == "aborted"),
                        inevitable_from: None,
                        name: Cow::Owned(e.name.into_owned()),
                    }),
                    // The inevitable period of the transaction just before it on its track.
                    "inevitable" => {
                        if let Some(t) = row.txs.last_mut() {
                            if start >= t.start && start <= t.end {
                                t.inevitable_from = Some(start);
                            }
                        }
                    }
                    _ => row.spans.push(Span {
                        start,
                        end,
                        gc: cat == "gc",
                        name: Cow::Owned(e.name.into_owned()),
                    }),
                }
            }
            (ph @ ("s" | "f"), "conflict") => {
                let (Some(id), Some(ts)) = (e.id, ts) else {
                    continue;
                };
                let f = flows.entry(id).or_default();
                if ph == "s" {
                    f.0 = Some((tid, ts));
                } else {
                    f.1 = Some((tid, ts));
                }
            }
            _ => {}
        }
    }
    let other = file.other.unwrap_or_default();
    for d in &other.dropped {
        if let Some(r) = index.get(&d.tid) {
            rows[*r].dropped = (d.commits, d.aborts);
        }
    }
    // Sort rows; then map the flows' thread ids to the sorted rows.
    rows.sort_by_key(|r| (sort.get(&r.tid).copied().unwrap_or(i64::MAX), r.tid));
    let at: HashMap<u64, usize> = rows.iter().enumerate().map(|(i, r)| (r.tid, i)).collect();
    let mut conflicts: Vec<Conflict> = flows
        .into_values()
        .filter_map(|(s, f)| {
            let ((st, sts), (ft, fts)) = (s?, f?);
            Some(Conflict {
                from_row: *at.get(&st)?,
                from_t: sts,
                to_row: *at.get(&ft)?,
                to_t: fts,
            })
        })
        .collect();
    conflicts.sort_by(Conflict::order);
    Ok(Trace {
        program: other.program,
        segments: other.segments,
        rows,
        conflicts,
        cap: other.events_per_thread_cap,
        cap_in_all: other.events_cap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Rows follow the sort index; an inevitable slice marks its transaction; a flow whose
    /// two ends are known is a conflict between the sorted rows; the cap's drops are read.
    #[test]
    fn reads_rows_blocks_and_conflicts() {
        let v = json!({"traceEvents": [
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "main"}},
            {"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": 7, "args": {"sort_index": 2}},
            {"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": 9, "args": {"sort_index": 1}},
            {"ph": "X", "cat": "transaction", "name": "committed", "tid": 7, "ts": 1.0,
             "dur": 4.0, "args": {"outcome": "committed"}},
            {"ph": "X", "cat": "inevitable", "name": "inevitable", "tid": 7, "ts": 3.0, "dur": 2.0},
            {"ph": "X", "cat": "transaction", "name": "aborted", "tid": 9, "ts": 2.0,
             "dur": 2.5, "args": {"outcome": "aborted"}},
            {"ph": "X", "cat": "gc", "name": "minor collection", "tid": 9, "ts": 4.0, "dur": 0.5},
            {"ph": "s", "cat": "conflict", "id": 1, "tid": 7, "ts": 4.4},
            {"ph": "f", "cat": "conflict", "id": 1, "tid": 9, "ts": 4.5},
            {"ph": "s", "cat": "conflict", "id": 2, "tid": 7, "ts": 4.4},
            {"ph": "i", "cat": "output", "name": "print", "tid": 7, "ts": 5.0},
        ], "otherData": {"program": "p.lang", "segments": 2, "events_per_thread_cap": 10,
                         "events_cap": 20,
                         "dropped": [{"tid": 9, "events": 3, "commits": 2, "aborts": 1}]}});
        let t = read(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(t.program, "p.lang");
        assert_eq!(t.rows.len(), 2);
        assert_eq!((t.rows[0].tid, t.rows[0].name.as_str()), (9, "thread 9"));
        assert_eq!(t.rows[1].name, "main");
        assert_eq!(t.rows[1].txs[0].inevitable_from, Some(3.0));
        assert!(t.rows[0].txs[0].aborted);
        assert_eq!(t.rows[0].dropped, (2, 1));
        assert_eq!((t.cap, t.cap_in_all), (10, 20));
        assert_eq!((t.rows[0].commits(), t.rows[0].aborts()), (0, 1));
        assert_eq!(t.rows[0].spans.len(), 1);
        assert_eq!(
            t.conflicts,
            vec![Conflict {
                from_row: 1,
                from_t: 4.4,
                to_row: 0,
                to_t: 4.5
            }]
        );
        assert_eq!(t.time_range(), Some((1.0, 5.0)));
    }

    #[test]
    fn refuses_what_is_not_a_trace() {
        assert!(read(br#"{"a": 1}"#).unwrap_err().contains("traceEvents"));
        assert!(read(b"{").unwrap_err().starts_with("not JSON"));
        assert_eq!(read(br#"{"traceEvents": []}"#).unwrap().time_range(), None);
        // Escaped strings (not borrowable) read too.
        let t = read(
            br#"{"traceEvents": [{"ph": "M", "name": "thread_name", "tid": 1,
                                  "args": {"name": "a\"b"}}]}"#,
        )
        .unwrap();
        assert_eq!(t.rows[0].name, "a\"b");
    }
}
