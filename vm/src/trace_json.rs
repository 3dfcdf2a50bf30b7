//! `--trace FILE.json` and `--timeline FILE.svg`: the runtime's event trace
//! (`stmjit_runtime::trace`) written at exit, also when a thread ends the program on an
//! error, as Chrome trace-event JSON (Perfetto and `chrome://tracing` open it), and drawn as
//! a timeline (`stmjit-timeline`, from that same JSON).
//!
//! The file: an object with `traceEvents` and `otherData` (the run's metadata: program,
//! segments, the per-thread event cap and what each thread dropped beyond it). One track
//! (`tid`) per OS thread, named by `thread_name` metadata events. Each transaction is a
//! complete event (`ph: "X"`, `cat: "transaction"`) from its begin to its commit or abort,
//! named by its outcome, with its segment, id (`segment.seq`), abort cause, both sides of
//! its conflict (`written_at`, where its writer wrote the object; `read_at`, where its
//! reader read it, when recorded (`stmjit_runtime::readsites`); `noticed_at`, where the
//! aborted transaction learnt of its abort: file:line:col and the source line, as in
//! `--stats`), bytes written and pages privatized; an inevitable period is a child slice.
//! Collections (`cat: "gc"`) and waits (`cat: "wait"`) are complete events too; a flow arrow
//! (`ph: "s"`/`"f"`, `cat: "conflict"`) goes from the winning transaction to each one its
//! conflict aborted; `print` output is an instant event (`cat: "output"`) at its commit.

use crate::Runtime;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use stmjit_runtime::trace::{Event, Outcome, TraceData, TxRecord};
use stmjit_runtime::{AbortCause, Access, ConflictInfo, ConflictKind};

/// Microseconds (the format's unit) from nanoseconds.
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Name of a transaction's slice: its outcome, and why it aborted.
fn tx_name(t: &TxRecord) -> &'static str {
    match t.outcome {
        Outcome::Committed if t.inevitable_ns.is_some() => "committed (inevitable)",
        Outcome::Committed => "committed",
        Outcome::Aborted(_) if t.injected => "aborted (injected)",
        Outcome::Aborted(AbortCause::WriteRead) => "aborted (write/read conflict)",
        Outcome::Aborted(AbortCause::WriteWrite) => "aborted (write/write conflict)",
        Outcome::Aborted(AbortCause::Explicit) => "aborted (other)",
    }
}

/// Why a transaction aborted, in the words of `--stats`.
fn cause(t: &TxRecord) -> Option<&'static str> {
    match t.outcome {
        Outcome::Committed => None,
        Outcome::Aborted(_) if t.injected => Some("injected (STMJIT_ABORT_PROBABILITY)"),
        Outcome::Aborted(AbortCause::WriteRead) => Some("write/read conflict"),
        Outcome::Aborted(AbortCause::WriteWrite) => Some("write/write conflict"),
        Outcome::Aborted(AbortCause::Explicit) => Some("other (a join that must wait, ...)"),
    }
}

/// Resolves site ids to `file:line:col` and the source line, as `--stats` quotes them.
struct Sites<'a> {
    rt: &'a Runtime,
    source: Option<std::sync::Arc<str>>,
}

impl Sites<'_> {
    fn place(&self, id: u32) -> Value {
        let Some(site) = self.rt.info.code.sites.get(id as usize) else {
            return Value::Null;
        };
        let (line, col) = (site.span.line, site.span.col);
        let text = self
            .source
            .as_deref()
            .and_then(|s| stmjit_lang::diag::source_line(s, line))
            .map(|t| t.trim().to_string());
        json!({
            "at": format!("{}:{line}:{col}", self.rt.info.file),
            "text": text,
        })
    }
}

/// The site of the side of conflict `k` that `access`ed the object (the winner's first;
/// `u32::MAX`, which names no site, when neither side's is known).
fn site_of(k: &ConflictInfo, access: Access) -> u32 {
    [k.winner, k.loser]
        .iter()
        .find(|s| s.access == access)
        .map_or(u32::MAX, |s| s.site)
}

/// A transaction's complete event.
fn tx_event(tid: usize, t: &TxRecord, sites: &Sites) -> Value {
    let mut args = json!({
        "id": format!("{}.{}", t.segment, t.seq),
        "segment": t.segment,
        "outcome": if t.outcome == Outcome::Committed { "committed" } else { "aborted" },
        "bytes_written": t.bytes_written,
        "pages_privatized": t.pages_privatized,
        "inevitable": t.inevitable_ns.is_some(),
    });
    if let Some(c) = cause(t) {
        args["abort_cause"] = c.into();
    }
    if let Some(k) = &t.conflict {
        let kind = match k.kind {
            ConflictKind::WriteRead => "write/read",
            ConflictKind::WriteWrite => "write/write",
        };
        args["conflict"] = json!({
            "kind": kind,
            "object": sites.rt.type_name_of_id(k.type_id),
            "written_at": sites.place(site_of(k, Access::Wrote)),
            "read_at": sites.place(site_of(k, Access::Read)),
            "noticed_at": sites.place(t.noticed_site),
            "winner": format!("{}.{}", k.winner_segment, k.winner_seq),
        });
    }
    json!({
        "ph": "X", "cat": "transaction", "name": tx_name(t), "pid": 1, "tid": tid,
        "ts": us(t.start_ns), "dur": us(t.end_ns.saturating_sub(t.start_ns)), "args": args,
    })
}

/// Writes every event of `data` as one JSON object (see the module docs).
pub fn write_chrome_json(rt: &Runtime, data: &TraceData, w: &mut dyn Write) -> std::io::Result<()> {
    let sites = Sites {
        rt,
        source: stmjit_lang::diag::cached_source(&rt.info.file),
    };
    // Winners by id, for the conflict arrows: (track, start, end).
    let mut by_id: HashMap<(u32, u64), (usize, u64, u64)> = HashMap::new();
    for (i, l) in data.threads.iter().enumerate() {
        for e in &l.events {
            if let Event::Transaction(t) = e {
                by_id.insert((t.segment, t.seq), (i + 1, t.start_ns, t.end_ns));
            }
        }
    }
    w.write_all(b"{\"traceEvents\":[\n")?;
    let mut first = true;
    let mut put = |w: &mut dyn Write, v: Value| -> std::io::Result<()> {
        if !std::mem::take(&mut first) {
            w.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut *w, &v)?;
        Ok(())
    };
    put(
        w,
        json!({"ph": "M", "name": "process_name", "pid": 1,
               "args": {"name": format!("stmjit {}", rt.info.file)}}),
    )?;
    let mut flow = 0u64;
    for (i, l) in data.threads.iter().enumerate() {
        let tid = i + 1;
        put(
            w,
            json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid,
                   "args": {"name": l.name}}),
        )?;
        put(
            w,
            json!({"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": tid,
                   "args": {"sort_index": tid}}),
        )?;
        for e in &l.events {
            match e {
                Event::Transaction(t) => {
                    put(w, tx_event(tid, t, &sites))?;
                    if let Some(from) = t.inevitable_ns {
                        put(
                            w,
                            json!({"ph": "X", "cat": "inevitable", "name": "inevitable",
                                   "pid": 1, "tid": tid, "ts": us(from),
                                   "dur": us(t.end_ns.saturating_sub(from))}),
                        )?;
                    }
                    let winner = t
                        .conflict
                        .and_then(|k| by_id.get(&(k.winner_segment, k.winner_seq)));
                    if let Some(&(wtid, ws, we)) = winner {
                        // The arrow leaves the winner where it was when the loser aborted
                        // (or at its end) and enters the aborted slice at its end.
                        flow += 1;
                        let at = t.end_ns.clamp(ws, we.saturating_sub(1).max(ws));
                        put(
                            w,
                            json!({"ph": "s", "cat": "conflict", "name": "conflict",
                                   "id": flow, "pid": 1, "tid": wtid, "ts": us(at)}),
                        )?;
                        put(
                            w,
                            json!({"ph": "f", "bp": "e", "cat": "conflict", "name": "conflict",
                                   "id": flow, "pid": 1, "tid": tid,
                                   "ts": us(t.end_ns.saturating_sub(1).max(t.start_ns))}),
                        )?;
                    }
                }
                Event::Span {
                    kind,
                    start_ns,
                    end_ns,
                } => put(
                    w,
                    json!({"ph": "X",
                           "cat": if kind.is_collection() { "gc" } else { "wait" },
                           "name": kind.name(), "pid": 1, "tid": tid, "ts": us(*start_ns),
                           "dur": us(end_ns.saturating_sub(*start_ns))}),
                )?,
                Event::Output { at_ns, text } => put(
                    w,
                    json!({"ph": "i", "s": "t", "cat": "output", "name": "print", "pid": 1,
                           "tid": tid, "ts": us(*at_ns), "args": {"text": text}}),
                )?,
            }
        }
    }
    let dropped: Vec<Value> = data
        .threads
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({"tid": i + 1, "events": l.dropped.events, "commits": l.dropped.commits,
                   "aborts": l.dropped.aborts})
        })
        .collect();
    let other = json!({
        "program": rt.info.file,
        "segments": rt.stm.num_segments(),
        "events_per_thread_cap": data.events_per_thread,
        "cap_note": "each thread keeps its first events up to the cap; later ones are only \
                     counted in `dropped`",
        "dropped": dropped,
    });
    w.write_all(b"\n],\"displayTimeUnit\":\"ms\",\"otherData\":")?;
    serde_json::to_writer(&mut *w, &other)?;
    w.write_all(b"}\n")?;
    Ok(())
}

/// At exit (normal or error): writes `--trace FILE` and draws `--timeline FILE` (from the
/// same JSON, by `stmjit-timeline`) if asked; a failure to write either is reported, not
/// fatal. Takes the events recorded so far: threads still running (an error exit) go on
/// recording, unseen.
pub fn write_if_asked(rt: &Runtime) {
    let (json_path, svg_path) = (&rt.info.trace_json, &rt.info.timeline_svg);
    if json_path.is_none() && svg_path.is_none() {
        return;
    }
    let Some(tracer) = rt.stm.tracer() else {
        return;
    };
    let data = tracer.take();
    let mut buf = Vec::new();
    if let Err(e) = write_chrome_json(rt, &data, &mut buf) {
        eprintln!("error: cannot write the trace: {e}");
        return;
    }
    drop(data);
    if let Some(path) = json_path {
        if let Err(e) = std::fs::write(path, &buf) {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
    if let Some(path) = svg_path {
        let opts = stmjit_timeline::Options::default();
        let r = stmjit_timeline::render_json(&buf, &opts)
            .and_then(|svg| std::fs::write(path, svg).map_err(|e| e.to_string()));
        if let Err(e) = r {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
}
