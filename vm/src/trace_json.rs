//! `--trace FILE.json` and `--timeline FILE.svg`: the runtime's event trace
//! (`stmjit_runtime::trace`) written at exit, also when a thread ends the program on an
//! error, as Chrome trace-event JSON (Perfetto and `chrome://tracing` open it), and drawn as
//! a timeline (`stmjit-timeline`, from that same JSON).
//!
//! The file: an object with `traceEvents` and `otherData` (the run's metadata: program,
//! segments, the event caps (per thread and in all) and what each thread dropped beyond them). One track
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
use stmjit_runtime::addr_hash::AddrHash;
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

/// Room for the digits of any `u64` (20) and of [`Out::us`]'s (17 + 4).
const NUM: usize = 24;

/// Writes `n` in decimal into `d`, right-aligned to end before `end`; returns where it
/// starts.
#[inline(always)]
fn digits(d: &mut [u8; 2 * NUM], end: usize, mut n: u64) -> usize {
    let mut i = end;
    while n >= 100 && i >= 2 {
        let k = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        d[i..i + 2].copy_from_slice(&DIGITS[k..k + 2]);
    }
    if n >= 10 && i >= 2 {
        let k = n as usize * 2;
        i -= 2;
        d[i..i + 2].copy_from_slice(&DIGITS[k..k + 2]);
    } else if i >= 1 {
        i -= 1;
        d[i] = b'0' + n as u8;
    }
    i
}

/// The file being written: bytes gathered in a buffer, handed to the writer in chunks (one
/// `write_all` per 64 KiB, not one per field: the writer is a trait object). Numbers are
/// formatted by hand: a trace holds millions of them, and building a `serde_json::Value`
/// per event cost 24k instructions per transaction (callgrind, microtq).
struct Out<'w> {
    buf: Vec<u8>,
    w: &'w mut dyn Write,
    /// The millisecond of the last time stamp [`Out::us`] wrote (0: none), its digits
    /// (left-aligned) and their count.
    ms: u64,
    ms_digits: [u8; 2 * NUM],
    ms_len: usize,
}

impl<'w> Out<'w> {
    const CHUNK: usize = 64 * 1024;

    fn new(w: &'w mut dyn Write) -> Out<'w> {
        Out {
            buf: Vec::with_capacity(Out::CHUNK + 4096),
            w,
            ms: 0,
            ms_digits: [0; 2 * NUM],
            ms_len: 0,
        }
    }

    #[inline(always)]
    fn s(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// A decimal integer (one digit inline: most sizes and segments are).
    #[inline(always)]
    fn u64(&mut self, n: u64) {
        if n < 10 {
            self.buf.push(b'0' + n as u8);
        } else {
            self.u64_long(n);
        }
    }

    /// A decimal integer of two digits or more.
    fn u64_long(&mut self, n: u64) {
        let mut d = [0u8; 2 * NUM];
        let i = digits(&mut d, NUM, n);
        self.put(&d, i);
    }

    /// Nanoseconds as microseconds (the format's unit), exactly: `12.345`. The digits
    /// above the millisecond are those of the previous time stamp most of the time (a trace
    /// is written in time order per thread): kept, and only the six below are made.
    fn us(&mut self, ns: u64) {
        let (ms, below) = (ns / 1_000_000, (ns % 1_000_000) as usize);
        if ms == 0 {
            return self.us_short(ns);
        }
        if ms != self.ms {
            let mut d = [0u8; 2 * NUM];
            let i = digits(&mut d, NUM, ms);
            self.ms = ms;
            self.ms_digits = [0; 2 * NUM];
            self.ms_digits[..NUM].copy_from_slice(&d[i..i + NUM]);
            self.ms_len = NUM - i;
        }
        // `ms_digits`, then `uuu.fff` (the microseconds below the millisecond, and the
        // nanoseconds), in one fixed-size copy.
        let mut d = self.ms_digits;
        let at = self.ms_len;
        let (us, f) = (below / 1000, below % 1000);
        d[at] = b'0' + (us / 100) as u8;
        d[at + 1..at + 3].copy_from_slice(&DIGITS[(us % 100) * 2..(us % 100) * 2 + 2]);
        d[at + 3] = b'.';
        d[at + 4] = b'0' + (f / 100) as u8;
        d[at + 5..at + 7].copy_from_slice(&DIGITS[(f % 100) * 2..(f % 100) * 2 + 2]);
        self.put_first(&d, at + 7);
    }

    /// [`Out::us`] below a millisecond (durations mostly).
    fn us_short(&mut self, ns: u64) {
        let mut d = [0u8; 2 * NUM];
        let f = (ns % 1000) as usize;
        d[NUM - 3] = b'0' + (f / 100) as u8;
        d[NUM - 2..NUM].copy_from_slice(&DIGITS[(f % 100) * 2..(f % 100) * 2 + 2]);
        d[NUM - 4] = b'.';
        let i = digits(&mut d, NUM - 4, ns / 1000);
        self.put(&d, i);
    }

    /// Appends `d[..len]` by a copy of a fixed `NUM` bytes (see [`Out::put`]).
    #[inline(always)]
    fn put_first(&mut self, d: &[u8; 2 * NUM], len: usize) {
        let len = len.min(NUM);
        let end = self.buf.len();
        self.buf.reserve(NUM);
        // SAFETY: `d[..NUM]` lies within `d`; the buffer has room for `NUM` more bytes
        // (reserved above), and `d` is not the buffer; the first `len <= NUM`, all written,
        // become its new end.
        unsafe {
            std::ptr::copy_nonoverlapping(d.as_ptr(), self.buf.as_mut_ptr().add(end), NUM);
            self.buf.set_len(end + len);
        }
    }

    /// Appends `d[i..NUM]` (a number right-aligned in `d`): a copy of a fixed `NUM` bytes
    /// from `d[i]` into the buffer's spare room, of which only `NUM - i` are kept (a fixed
    /// size is a few moves; a variable one was a `memcpy` call per number).
    #[inline(always)]
    fn put(&mut self, d: &[u8; 2 * NUM], i: usize) {
        let i = i.min(NUM);
        let len = self.buf.len();
        self.buf.reserve(NUM);
        // SAFETY: `d[i..i + NUM]` lies within `d` (i <= NUM); the buffer has room for `NUM`
        // more bytes (reserved above), and `d` is not the buffer; `NUM - i` of them, all
        // written, become its new end.
        unsafe {
            std::ptr::copy_nonoverlapping(d.as_ptr().add(i), self.buf.as_mut_ptr().add(len), NUM);
            self.buf.set_len(len + NUM - i);
        }
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
    // Constant pieces merged: one copy each.
    o.s(match (t.outcome, t.inevitable_ns) {
        (Outcome::Committed, None) => {
            ",\"outcome\":\"committed\",\"inevitable\":false,\"bytes_written\":"
        }
        (Outcome::Committed, Some(_)) => {
            ",\"outcome\":\"committed\",\"inevitable\":true,\"bytes_written\":"
        }
        (Outcome::Aborted(_), None) => {
            ",\"outcome\":\"aborted\",\"inevitable\":false,\"bytes_written\":"
        }
        (Outcome::Aborted(_), Some(_)) => {
            ",\"outcome\":\"aborted\",\"inevitable\":true,\"bytes_written\":"
        }
    });
    o.u64(t.bytes_written);
    o.s(",\"pages_privatized\":");
    o.u64(u64::from(t.pages_privatized));
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
    let mut by_id: HashMap<(u32, u64), (usize, u64, u64), AddrHash> = HashMap::default();
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
    let mut o = Out::new(w);
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
                        o.span(from.get(), t.end_ns);
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
        "events_cap": data.events_in_all,
        "cap_note": "the run keeps its first events: at most events_per_thread_cap a thread \
                     and events_cap in all (each thread takes room 4096 events at a time); \
                     later ones are only counted in `dropped`",
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
        let mut o = Out::new(&mut sink);
        f(&mut o);
        String::from_utf8(o.buf).unwrap()
    }

    /// Integers and microseconds are written as JSON numbers that read back exactly.
    #[test]
    fn numbers_are_exact() {
        for n in [0u64, 7, 10, 99, 100, 12_345, 1_000_000_007, u64::MAX] {
            assert_eq!(out(|o| o.u64(n)), n.to_string());
        }
        for ns in [
            0u64,
            5,
            1_000,
            1_234,
            999_999,
            1_000_000,
            1_000_001,
            1_999_999,
            12_345_678_901,
            12_345_000_001,
            12_346_000_000,
            99_000_000,
            u64::MAX,
        ] {
            let text = out(|o| o.us(ns));
            assert_eq!(text, format!("{}.{:03}", ns / 1000, ns % 1000));
            let v: f64 = text.parse().unwrap();
            assert!((v - ns as f64 / 1000.0).abs() <= v * 1e-15 + 1e-9, "{text}");
        }
        assert_eq!(out(|o| o.str("a\"b\n")), r#""a\"b\n""#);
    }

    /// Time stamps written one after another (reusing the digits of the millisecond, or
    /// not) read as each alone: forward, back, across a power of ten, below a millisecond.
    #[test]
    fn time_stamps_in_a_row_are_exact() {
        let mut ns = vec![
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            1_000_999_999,
            5,
            99_999_999,
            100_000_123,
            100_000_999,
            100_001_000,
            7_000_000,
            7_000_000,
        ];
        let mut x = 12_345u64;
        for _ in 0..2000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let last = *ns.last().unwrap();
            ns.push(last + (x >> 40) % 3_000_000);
        }
        let text = out(|o| {
            for &n in &ns {
                o.us(n);
                o.s(" ");
            }
        });
        let want: String = ns
            .iter()
            .map(|n| format!("{}.{:03} ", n / 1000, n % 1000))
            .collect();
        assert_eq!(text, want);
    }
}
