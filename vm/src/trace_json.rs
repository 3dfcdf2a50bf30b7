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
use stmjit_runtime::trace::{Event, Outcome, SpanKind, TraceData, TxRecord};
use stmjit_runtime::{AbortCause, Access, ConflictInfo, ConflictKind};

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

/// Resolves site ids to `file:line:col` and the source line, as `--stats` quotes them:
/// each site's JSON is made once (a contended run names the same few sites thousands of
/// times).
struct Sites<'a> {
    rt: &'a Runtime,
    source: Option<std::sync::Arc<str>>,
    done: HashMap<u32, String>,
}

impl Sites<'_> {
    /// The JSON of site `id`: `{"at": ..., "text": ...}`, or `null`.
    fn place(&mut self, id: u32) -> &str {
        let (rt, source) = (self.rt, &self.source);
        self.done.entry(id).or_insert_with(|| {
            let Some(site) = rt.info.code.sites.get(id as usize) else {
                return "null".to_string();
            };
            let (line, col) = (site.span.line, site.span.col);
            let text = source
                .as_deref()
                .and_then(|s| stmjit_lang::diag::source_line(s, line))
                .map(|t| t.trim().to_string());
            json!({
                "at": format!("{}:{line}:{col}", rt.info.file),
                "text": text,
            })
            .to_string()
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

/// Two decimal digits of each number below 100, for [`Out::u64`].
const DIGITS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The file being written: bytes gathered in a buffer, handed to the writer in chunks (one
/// `write_all` per 64 KiB, not one per field: the writer is a trait object). Numbers are
/// formatted by hand: a trace holds millions of them, and building a `serde_json::Value`
/// per event cost 24k instructions per transaction (callgrind, microtq).
struct Out<'w> {
    buf: Vec<u8>,
    w: &'w mut dyn Write,
}

impl Out<'_> {
    const CHUNK: usize = 64 * 1024;

    fn s(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// A decimal integer.
    fn u64(&mut self, mut n: u64) {
        if n < 10 {
            self.buf.push(b'0' + n as u8);
            return;
        }
        let mut d = [0u8; 20];
        let mut i = d.len();
        while n >= 100 {
            let k = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            d[i..i + 2].copy_from_slice(&DIGITS[k..k + 2]);
        }
        if n >= 10 {
            let k = n as usize * 2;
            i -= 2;
            d[i..i + 2].copy_from_slice(&DIGITS[k..k + 2]);
        } else {
            i -= 1;
            d[i] = b'0' + n as u8;
        }
        self.buf.extend_from_slice(&d[i..]);
    }

    /// Nanoseconds as microseconds (the format's unit), exactly: `12.345`, written in one
    /// piece.
    fn us(&mut self, ns: u64) {
        let (mut n, f) = (ns / 1000, (ns % 1000) as usize);
        let mut d = [0u8; 24];
        d[21] = b'0' + (f / 100) as u8;
        d[22..24].copy_from_slice(&DIGITS[(f % 100) * 2..(f % 100) * 2 + 2]);
        d[20] = b'.';
        let mut i = 20;
        while n >= 100 {
            let k = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            d[i..i + 2].copy_from_slice(&DIGITS[k..k + 2]);
        }
        if n >= 10 {
            let k = n as usize * 2;
            i -= 2;
            d[i..i + 2].copy_from_slice(&DIGITS[k..k + 2]);
        } else {
            i -= 1;
            d[i] = b'0' + n as u8;
        }
        self.buf.extend_from_slice(&d[i..]);
    }

    /// A JSON string (quoted, escaped).
    fn str(&mut self, s: &str) {
        // serde_json escapes exactly as JSON asks; strings are rare (names, output).
        let _ = serde_json::to_writer(&mut self.buf, s);
    }

    /// A JSON value.
    fn value(&mut self, v: &Value) {
        let _ = serde_json::to_writer(&mut self.buf, v);
    }

    /// Ends an event; hands the buffer over when it is full.
    fn end_event(&mut self) -> std::io::Result<()> {
        self.buf.extend_from_slice(b"},\n");
        if self.buf.len() >= Self::CHUNK {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Starts an event: `{"ph":"PH","cat":"CAT","name":"NAME","pid":1,"tid":TID` (the name
    /// a literal that needs no escaping).
    fn start(&mut self, ph: &str, cat: &str, name: &str, tid: usize) {
        self.s("{\"ph\":\"");
        self.s(ph);
        self.s("\",\"cat\":\"");
        self.s(cat);
        self.s("\",\"name\":\"");
        self.s(name);
        self.s("\",\"pid\":1,\"tid\":");
        self.u64(tid as u64);
    }

    /// `,"ts":TS,"dur":DUR` from `start` to `end` ns.
    fn span(&mut self, start: u64, end: u64) {
        self.s(",\"ts\":");
        self.us(start);
        self.s(",\"dur\":");
        self.us(end.saturating_sub(start));
    }
}

/// A transaction's complete event (`committed`: the start of a plain committed one's on
/// this track, made once per track).
fn tx_event(o: &mut Out, tid: usize, t: &TxRecord, sites: &mut Sites, committed: &str) {
    if t.outcome == Outcome::Committed && t.inevitable_ns.is_none() {
        o.s(committed);
    } else {
        o.start("X", "transaction", tx_name(t), tid);
    }
    o.span(t.start_ns, t.end_ns);
    o.s(",\"args\":{\"id\":\"");
    o.u64(u64::from(t.segment));
    o.s(".");
    o.u64(t.seq);
    o.s("\",\"segment\":");
    o.u64(u64::from(t.segment));
    o.s(if t.outcome == Outcome::Committed {
        ",\"outcome\":\"committed\""
    } else {
        ",\"outcome\":\"aborted\""
    });
    o.s(",\"bytes_written\":");
    o.u64(t.bytes_written);
    o.s(",\"pages_privatized\":");
    o.u64(t.pages_privatized);
    o.s(if t.inevitable_ns.is_some() {
        ",\"inevitable\":true"
    } else {
        ",\"inevitable\":false"
    });
    if let Some(c) = cause(t) {
        o.s(",\"abort_cause\":\"");
        o.s(c);
        o.s("\"");
    }
    if let Some(k) = &t.conflict {
        o.s(",\"conflict\":{\"kind\":\"");
        o.s(match k.kind {
            ConflictKind::WriteRead => "write/read",
            ConflictKind::WriteWrite => "write/write",
        });
        o.s("\",\"object\":");
        o.str(&sites.rt.type_name_of_id(k.type_id));
        o.s(",\"written_at\":");
        o.s(sites.place(site_of(k, Access::Wrote)));
        o.s(",\"read_at\":");
        o.s(sites.place(site_of(k, Access::Read)));
        o.s(",\"noticed_at\":");
        o.s(sites.place(t.noticed_site));
        o.s(",\"winner\":\"");
        o.u64(u64::from(k.winner_segment));
        o.s(".");
        o.u64(k.winner_seq);
        o.s("\"}");
    }
    o.s("}");
}

/// Writes every event of `data` as one JSON object (see the module docs).
pub fn write_chrome_json(rt: &Runtime, data: &TraceData, w: &mut dyn Write) -> std::io::Result<()> {
    let mut sites = Sites {
        rt,
        source: stmjit_lang::diag::cached_source(&rt.info.file),
        done: HashMap::new(),
    };
    // Winners by id, for the conflict arrows (track, start, end): only those that aborted
    // someone.
    let mut by_id: HashMap<(u32, u64), (usize, u64, u64)> = HashMap::new();
    for l in &data.threads {
        for e in &l.events {
            if let Event::Transaction(TxRecord {
                conflict: Some(k), ..
            }) = e
            {
                by_id.insert((k.winner_segment, k.winner_seq), (0, 0, 0));
            }
        }
    }
    if !by_id.is_empty() {
        for (i, l) in data.threads.iter().enumerate() {
            for e in &l.events {
                if let Event::Transaction(t) = e {
                    if let Some(v) = by_id.get_mut(&(t.segment, t.seq)) {
                        *v = (i + 1, t.start_ns, t.end_ns);
                    }
                }
            }
        }
        by_id.retain(|_, v| v.0 != 0);
    }
    let mut o = Out {
        buf: Vec::with_capacity(Out::CHUNK + 4096),
        w,
    };
    o.s("{\"traceEvents\":[\n");
    o.s("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"args\":{\"name\":");
    o.str(&format!("stmjit {}", rt.info.file));
    o.s("}");
    o.end_event()?;
    let mut flow = 0u64;
    for (i, l) in data.threads.iter().enumerate() {
        let tid = i + 1;
        o.s("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":");
        o.u64(tid as u64);
        o.s(",\"args\":{\"name\":");
        o.str(&l.name);
        o.s("}");
        o.end_event()?;
        o.s("{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":");
        o.u64(tid as u64);
        o.s(",\"args\":{\"sort_index\":");
        o.u64(tid as u64);
        o.s("}");
        o.end_event()?;
        // The starts of the two most frequent events (a short transaction commits, then
        // collects its nursery), made once.
        let committed = format!(
            "{{\"ph\":\"X\",\"cat\":\"transaction\",\"name\":\"committed\",\"pid\":1,\"tid\":{tid}"
        );
        let minor = format!(
            "{{\"ph\":\"X\",\"cat\":\"gc\",\"name\":\"{}\",\"pid\":1,\"tid\":{tid}",
            SpanKind::MinorCollection.name()
        );
        for e in &l.events {
            match e {
                Event::Transaction(t) => {
                    tx_event(&mut o, tid, t, &mut sites, &committed);
                    o.end_event()?;
                    if let Some(from) = t.inevitable_ns {
                        o.start("X", "inevitable", "inevitable", tid);
                        o.span(from, t.end_ns);
                        o.end_event()?;
                    }
                    let winner = t
                        .conflict
                        .as_ref()
                        .and_then(|k| by_id.get(&(k.winner_segment, k.winner_seq)));
                    if let Some(&(wtid, ws, we)) = winner {
                        // The arrow leaves the winner where it was when the loser aborted
                        // (or at its end) and enters the aborted slice at its end.
                        flow += 1;
                        let at = t.end_ns.clamp(ws, we.saturating_sub(1).max(ws));
                        o.start("s", "conflict", "conflict", wtid);
                        o.s(",\"id\":");
                        o.u64(flow);
                        o.s(",\"ts\":");
                        o.us(at);
                        o.end_event()?;
                        o.start("f", "conflict", "conflict", tid);
                        o.s(",\"bp\":\"e\",\"id\":");
                        o.u64(flow);
                        o.s(",\"ts\":");
                        o.us(t.end_ns.saturating_sub(1).max(t.start_ns));
                        o.end_event()?;
                    }
                }
                Event::Span {
                    kind,
                    start_ns,
                    end_ns,
                } => {
                    if *kind == SpanKind::MinorCollection {
                        o.s(&minor);
                    } else {
                        let cat = if kind.is_collection() { "gc" } else { "wait" };
                        o.start("X", cat, kind.name(), tid);
                    }
                    o.span(*start_ns, *end_ns);
                    o.end_event()?;
                }
                Event::Output { at_ns, text } => {
                    o.start("i", "output", "print", tid);
                    o.s(",\"s\":\"t\",\"ts\":");
                    o.us(*at_ns);
                    o.s(",\"args\":{\"text\":");
                    o.str(text);
                    o.s("}");
                    o.end_event()?;
                }
            }
        }
    }
    // The last event's separator: JSON allows no trailing comma.
    if o.buf.ends_with(b",\n") {
        o.buf.truncate(o.buf.len() - 2);
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
    o.s("\n],\"displayTimeUnit\":\"ms\",\"otherData\":");
    o.value(&other);
    o.s("}\n");
    o.w.write_all(&o.buf)
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
    let Some(svg_path) = svg_path else {
        // Only the JSON: straight to the file.
        let path = json_path.as_ref().expect("one of the two is asked");
        let r = std::fs::File::create(path).and_then(|f| {
            let mut f = std::io::BufWriter::new(f);
            write_chrome_json(rt, &data, &mut f)?;
            f.flush()
        });
        if let Err(e) = r {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
        return;
    };
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
    let opts = stmjit_timeline::Options::default();
    let r = stmjit_timeline::render_json(&buf, &opts)
        .and_then(|svg| std::fs::write(svg_path, svg).map_err(|e| e.to_string()));
    if let Err(e) = r {
        eprintln!("error: cannot write {}: {e}", svg_path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(f: impl FnOnce(&mut Out)) -> String {
        let mut sink = Vec::new();
        let mut o = Out {
            buf: Vec::new(),
            w: &mut sink,
        };
        f(&mut o);
        String::from_utf8(o.buf).unwrap()
    }

    /// Integers and microseconds are written as JSON numbers that read back exactly.
    #[test]
    fn numbers_are_exact() {
        for n in [0u64, 7, 10, 99, 100, 12_345, 1_000_000_007, u64::MAX] {
            assert_eq!(out(|o| o.u64(n)), n.to_string());
        }
        for ns in [0u64, 5, 1_000, 1_234, 12_345_678_901, u64::MAX] {
            let text = out(|o| o.us(ns));
            assert_eq!(text, format!("{}.{:03}", ns / 1000, ns % 1000));
            let v: f64 = text.parse().unwrap();
            assert!((v - ns as f64 / 1000.0).abs() <= v * 1e-15 + 1e-9, "{text}");
        }
        assert_eq!(out(|o| o.str("a\"b\n")), r#""a\"b\n""#);
    }
}
