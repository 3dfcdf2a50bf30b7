//! `--trace FILE.json` and `--timeline FILE.svg`: the runtime's event trace
//! (`stmjit_runtime::trace`) written at exit, also when a thread ends the program on an
//! error, as Chrome trace-event JSON (Perfetto and `chrome://tracing` open it), and drawn as
//! a timeline (`stmjit-timeline`, from the records: the picture `stmjit timeline` draws of
//! the JSON, without holding the JSON in memory).
//!
//! The file: an object with `traceEvents` and `otherData` (the run's metadata: program,
//! segments, the event caps (per thread and in all), what each thread dropped beyond them,
//! and `arg_defaults`). One track (`tid`) per OS thread, named by `thread_name` metadata
//! events. Each transaction is a complete event (`ph: "X"`, `cat: "transaction"`) from its
//! begin to its commit or abort, named by its outcome (`committed`, `committed
//! (inevitable)`, `aborted (CAUSE)`), with args: its `segment`; `outcome` (`"aborted"`),
//! `inevitable` (`true`), `bytes_written` and `pages_privatized` only when they are not
//! their default (`otherData.arg_defaults`: committed, false, 0, 0; most transactions have
//! all four, and leaving them out made a short-transaction trace a third smaller); an
//! `id` (`"segment.seq"`) on aborted transactions and on the transactions a conflict names
//! as its `winner`; the abort cause and both sides of its conflict (`written_at`, where its
//! writer wrote the object; `read_at`, where its reader read it, when recorded
//! (`stmjit_runtime::readsites`); `noticed_at`, where the aborted transaction learnt of its
//! abort: file:line:col and the source line, as in `--stats`). An inevitable period is a
//! child slice. Collections (`cat: "gc"`) and waits (`cat: "wait"`) are complete events
//! too; a flow arrow (`ph: "s"`/`"f"`, `cat: "conflict"`) goes from the winning transaction
//! to each one its conflict aborted; `print` output is an instant event (`cat: "output"`)
//! at its commit. Times are microseconds with three decimals (exact nanoseconds).

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

/// Two decimal digits of each number below 100, for [`put_digits`].
const DIGITS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// How many decimal digits `n` has (small numbers, the most frequent, by comparisons).
#[inline(always)]
fn digit_count(n: u64) -> usize {
    if n < 10 {
        1
    } else if n < 100 {
        2
    } else if n < 1000 {
        3
    } else {
        n.ilog10() as usize + 1
    }
}

/// Writes the `nd` decimal digits of `n` (`nd` = [`digit_count`]`(n)`) into `d[..nd]`, two at
/// a time from the right.
#[inline(always)]
fn put_digits(d: &mut [u8], nd: usize, mut n: u64) {
    let mut i = nd;
    while i >= 2 {
        i -= 2;
        let k = (n % 100) as usize * 2;
        n /= 100;
        d[i..i + 2].copy_from_slice(&DIGITS[k..k + 2]);
    }
    if i == 1 {
        d[0] = b'0' + n as u8;
    }
}

/// Writes `n` as three digits into `d[..3]` (`n < 1000`).
#[inline(always)]
fn put3(d: &mut [u8], n: usize) {
    d[0] = b'0' + (n / 100) as u8;
    let k = (n % 100) * 2;
    d[1..3].copy_from_slice(&DIGITS[k..k + 2]);
}

/// Bytes gathered before they are handed to the writer.
const CHUNK: usize = 64 * 1024;

/// Room after [`CHUNK`] for the event being written: an event is started only below
/// `CHUNK`, and its fast path (a transaction, a collection, a time stamp) writes at most
/// 400 bytes; longer pieces (names, output, sites) go through [`Out::bytes`], which flushes.
const SLACK: usize = 1024;

/// The file being written: bytes gathered in a fixed array, handed to the writer in chunks
/// (one `write_all` per 64 KiB, not one per field: the writer is a trait object). Numbers
/// are formatted by hand in place, and constant pieces are copied at a fixed size: a trace
/// holds millions of events (building a `serde_json::Value` per event cost 24k
/// instructions per transaction, callgrind, microtq). The array has a constant size, so a
/// write's bounds check is a compare with a constant.
struct Out<'w> {
    buf: Box<[u8; CHUNK + SLACK]>,
    /// Bytes of `buf` in use.
    pos: usize,
    w: &'w mut dyn Write,
    ms: Ms,
}

/// The millisecond of the last time stamp [`Cursor::us`] wrote (`u64::MAX`: none), and its
/// digits (left-aligned) and their count.
struct Ms {
    ms: u64,
    digits: [u8; 16],
    len: usize,
}

/// Writes pieces of an event into [`Out`]'s buffer from position `p`, kept in a register
/// (in `Out` it went to memory and back at every piece). The buffer has room for
/// [`SLACK`] bytes after [`CHUNK`], and a run of pieces starts below `CHUNK`: the bounds
/// checks never fail.
struct Cursor<'a> {
    b: &'a mut [u8; CHUNK + SLACK],
    p: usize,
    ms: &'a mut Ms,
}

impl<'w> Out<'w> {
    fn new(w: &'w mut dyn Write) -> Out<'w> {
        Out {
            buf: vec![0u8; CHUNK + SLACK]
                .into_boxed_slice()
                .try_into()
                .expect("the size asked"),
            pos: 0,
            w,
            ms: Ms {
                ms: u64::MAX,
                digits: [0; 16],
                len: 0,
            },
        }
    }

    /// Bytes of any length (rare pieces: names, text, metadata).
    fn bytes(&mut self, s: &[u8]) -> std::io::Result<()> {
        if self.pos + s.len() > CHUNK + SLACK / 2 {
            self.flush()?;
            if s.len() > CHUNK {
                return self.w.write_all(s);
            }
        }
        self.buf[self.pos..self.pos + s.len()].copy_from_slice(s);
        self.pos += s.len();
        Ok(())
    }

    /// A string of any length.
    fn s(&mut self, s: &str) -> std::io::Result<()> {
        self.bytes(s.as_bytes())
    }

    /// A cursor at the end of the buffer, for a run of pieces without a flush (at most
    /// [`SLACK`] bytes); [`Out::at`] ends it.
    #[inline(always)]
    fn cursor(&mut self) -> Cursor<'_> {
        Cursor {
            b: &mut self.buf,
            p: self.pos,
            ms: &mut self.ms,
        }
    }

    /// Ends a cursor's run: its end is the buffer's.
    #[inline(always)]
    fn at(&mut self, p: usize) {
        self.pos = p;
    }

    /// A constant piece.
    #[inline(always)]
    fn lit<const N: usize>(&mut self, s: &[u8; N]) {
        let mut c = self.cursor();
        c.lit(s);
        let p = c.p;
        self.at(p);
    }

    /// A decimal integer.
    #[inline(always)]
    fn u64(&mut self, n: u64) {
        let mut c = self.cursor();
        c.u64(n);
        let p = c.p;
        self.at(p);
    }

    /// A time stamp ([`Cursor::us`]).
    fn us(&mut self, ns: u64) {
        let mut c = self.cursor();
        c.us(ns);
        let p = c.p;
        self.at(p);
    }

    /// A JSON string (quoted, escaped).
    fn str(&mut self, s: &str) -> std::io::Result<()> {
        // serde_json escapes exactly as JSON asks; strings are rare (names, output).
        self.bytes(&serde_json::to_vec(s).unwrap_or_default())
    }

    /// Ends an event; hands the buffer over when it is full (so that the next event has
    /// [`SLACK`] bytes of room).
    #[inline(always)]
    fn end_event(&mut self) -> std::io::Result<()> {
        self.lit(b"},\n");
        if self.pos >= CHUNK {
            self.flush_but(2)?;
        }
        Ok(())
    }

    /// Hands the buffer over, but for its last `keep` bytes (an event's separator, which
    /// the last event must not have: JSON allows no trailing comma).
    #[cold]
    fn flush_but(&mut self, keep: usize) -> std::io::Result<()> {
        let cut = self.pos - keep.min(self.pos);
        self.w.write_all(&self.buf[..cut])?;
        self.buf.copy_within(cut..self.pos, 0);
        self.pos -= cut;
        Ok(())
    }

    /// Hands the buffer over.
    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_but(0)
    }

    /// Ends the list of events (dropping the last one's separator) with `tail`, and hands
    /// everything over.
    fn finish(mut self, tail: &[u8]) -> std::io::Result<()> {
        if self.buf[..self.pos].ends_with(b",\n") {
            self.pos -= 2;
        }
        self.bytes(tail)?;
        self.flush()
    }

    /// Starts an event: `{"ph":"PH","cat":"CAT","name":"NAME","pid":1,"tid":TID` (the name
    /// a literal that needs no escaping).
    fn start(&mut self, ph: &str, cat: &str, name: &str, tid: usize) -> std::io::Result<()> {
        self.s("{\"ph\":\"")?;
        self.s(ph)?;
        self.s("\",\"cat\":\"")?;
        self.s(cat)?;
        self.s("\",\"name\":\"")?;
        self.s(name)?;
        self.s("\",\"pid\":1,\"tid\":")?;
        self.u64(tid as u64);
        Ok(())
    }

    /// `,"ts":TS,"dur":DUR` from `start` to `end` ns.
    fn span(&mut self, start: u64, end: u64) {
        let mut c = self.cursor();
        c.lit(b",\"ts\":");
        c.us(start);
        c.lit(b",\"dur\":");
        c.dur(end.saturating_sub(start));
        let p = c.p;
        self.at(p);
    }
}

impl Ms {
    /// Makes `ms` the millisecond whose digits [`Cursor::us`] reuses.
    #[cold]
    fn set(&mut self, ms: u64) {
        let nd = digit_count(ms).min(16);
        put_digits(&mut self.digits, nd, ms);
        (self.ms, self.len) = (ms, nd);
    }
}

impl Cursor<'_> {
    /// `,"id":"SEGMENT.SEQ"`: the name by which a conflict names the transaction that won
    /// it (its `winner`), written on the winners and on the aborted transactions.
    #[cold]
    fn id(&mut self, t: &TxRecord) {
        self.lit(b",\"id\":\"");
        self.u64(u64::from(t.segment));
        self.lit(b".");
        self.u64(t.seq);
        self.lit(b"\"");
    }

    /// `bytes_written` and `pages_privatized` when not 0 (their default).
    #[inline(always)]
    fn sizes(&mut self, t: &TxRecord) {
        if t.bytes_written != 0 {
            self.lit(b",\"bytes_written\":");
            self.u64(t.bytes_written);
        }
        if t.pages_privatized != 0 {
            self.lit(b",\"pages_privatized\":");
            self.u64(u64::from(t.pages_privatized));
        }
    }

    /// The first `len` bytes of `src`, by a copy of all `N` (a fixed size is a few moves; a
    /// variable one is a `memcpy` call). `N` is small: the bytes after `len` are
    /// overwritten by the next piece.
    #[inline(always)]
    fn put<const N: usize>(&mut self, src: &[u8; N], len: usize) {
        let p = self.p;
        self.b[p..p + N].copy_from_slice(src);
        self.p = p + len.min(N);
    }

    /// A constant piece.
    #[inline(always)]
    fn lit<const N: usize>(&mut self, s: &[u8; N]) {
        self.put(s, N);
    }

    /// A decimal integer.
    #[inline(always)]
    fn u64(&mut self, n: u64) {
        let (p, nd) = (self.p, digit_count(n));
        put_digits(&mut self.b[p..p + 20], nd, n);
        self.p = p + nd;
    }

    /// Nanoseconds as microseconds (the format's unit), exactly: `12.345`.
    #[inline(always)]
    fn dur(&mut self, ns: u64) {
        let (us, f) = (ns / 1000, (ns % 1000) as usize);
        let (p, nd) = (self.p, digit_count(us));
        let d = &mut self.b[p..p + 24];
        put_digits(d, nd, us);
        d[nd] = b'.';
        put3(&mut d[nd + 1..], f);
        self.p = p + nd + 4;
    }

    /// A time stamp: as [`Cursor::dur`], but the digits above the millisecond are those of
    /// the previous time stamp most of the time (a trace is written in time order per
    /// thread): kept, and only the six below are made, `uuu.fff` written as one word.
    #[inline(always)]
    fn us(&mut self, ns: u64) {
        let (ms, below) = (ns / 1_000_000, ns % 1_000_000);
        if ms == 0 {
            return self.dur(ns);
        }
        if ms != self.ms.ms {
            self.ms.set(ms);
        }
        let (us, f) = (below / 1000, below % 1000);
        let two = |n: u64| {
            u64::from(u16::from_le_bytes([
                DIGITS[n as usize * 2],
                DIGITS[n as usize * 2 + 1],
            ]))
        };
        let word = (b'0' as u64 + us / 100)
            | two(us % 100) << 8
            | (b'.' as u64) << 24
            | (b'0' as u64 + f / 100) << 32
            | two(f % 100) << 40;
        // The millisecond's digits (at most 14: `u64::MAX` ns), then the word (its last
        // byte is overwritten by the next piece).
        let (p, at) = (self.p, self.ms.len.min(16));
        let d = &mut self.b[p..p + 24];
        d[..16].copy_from_slice(&self.ms.digits);
        d[at..at + 8].copy_from_slice(&word.to_le_bytes());
        self.p = p + at + 7;
    }
}

/// The start of a track's events of one kind, made once per track:
/// `{"ph":"X","cat":...,"name":...,"pid":1,"tid":N,"ts":`, copied at a fixed size.
struct Head {
    text: [u8; 80],
    len: usize,
}

impl Head {
    fn new(cat: &str, name: &str, tid: usize) -> Head {
        let s = format!(
            "{{\"ph\":\"X\",\"cat\":\"{cat}\",\"name\":\"{name}\",\"pid\":1,\"tid\":{tid},\"ts\":"
        );
        let mut text = [0; 80];
        let len = s.len();
        assert!(len <= 80, "a track's head is short: {s}");
        text[..len].copy_from_slice(s.as_bytes());
        Head { text, len }
    }
}

/// The args of a transaction left out of its event when they have their default value
/// (most transactions: committed, not inevitable, nothing written); stated in the file's
/// `otherData.arg_defaults`.
const ARG_DEFAULTS: &str =
    r#"{"outcome":"committed","inevitable":false,"bytes_written":0,"pages_privatized":0}"#;

/// A plain committed transaction's complete event (the most frequent event by far):
/// `head` is the start of such events on this track. At most 80 + 24 + 7 + 24 + 14 + 20 +
/// 18 + 20 + 21 + 20 + 1 + 3 bytes (< [`SLACK`]).
#[inline(always)]
fn committed_event(o: &mut Out, head: &Head, t: &TxRecord, named: bool) {
    let mut c = o.cursor();
    c.put(&head.text, head.len);
    c.us(t.start_ns);
    c.lit(b",\"dur\":");
    c.dur(t.end_ns.saturating_sub(t.start_ns));
    c.lit(b",\"args\":{\"segment\":");
    c.u64(u64::from(t.segment));
    if named {
        c.id(t);
    }
    c.sizes(t);
    c.lit(b"}");
    let p = c.p;
    o.at(p);
}

/// Any other transaction's complete event: aborted or inevitable, with the args that are
/// not their default.
fn tx_event(
    o: &mut Out,
    tid: usize,
    t: &TxRecord,
    sites: &mut Sites,
    named: bool,
) -> std::io::Result<()> {
    o.start("X", "transaction", tx_name(t), tid)?;
    o.span(t.start_ns, t.end_ns);
    o.lit(b",\"args\":{\"segment\":");
    o.u64(u64::from(t.segment));
    let mut c = o.cursor();
    if named || t.outcome != Outcome::Committed {
        c.id(t);
    }
    if matches!(t.outcome, Outcome::Aborted(_)) {
        c.lit(b",\"outcome\":\"aborted\"");
    }
    if t.inevitable_ns.is_some() {
        c.lit(b",\"inevitable\":true");
    }
    c.sizes(t);
    let p = c.p;
    o.at(p);
    if let Some(c) = cause(t) {
        o.s(",\"abort_cause\":\"")?;
        o.s(c)?;
        o.s("\"")?;
    }
    if let Some(k) = &t.conflict {
        o.s(",\"conflict\":{\"kind\":\"")?;
        o.s(match k.kind {
            ConflictKind::WriteRead => "write/read",
            ConflictKind::WriteWrite => "write/write",
        })?;
        o.s("\",\"object\":")?;
        o.str(&sites.rt.type_name_of_id(k.type_id))?;
        o.s(",\"written_at\":")?;
        let w = sites.place(site_of(k, Access::Wrote)).to_string();
        o.s(&w)?;
        o.s(",\"read_at\":")?;
        let r = sites.place(site_of(k, Access::Read)).to_string();
        o.s(&r)?;
        o.s(",\"noticed_at\":")?;
        let n = sites.place(t.noticed_site).to_string();
        o.s(&n)?;
        o.s(",\"winner\":\"")?;
        o.u64(u64::from(k.winner_segment));
        o.lit(b".");
        o.u64(k.winner_seq);
        o.s("\"}")?;
    }
    o.s("}")
}

/// The transactions that won a conflict, by id (segment, seq): their track, start and end
/// (for the conflict arrows), those found among the events kept. Each scan stops once it has
/// what it looks for (a log's `conflicts` aborted transactions; every winner, each named by
/// one transaction: a segment numbers its transactions as they begin): conflicts cluster
/// where threads start, and reading the 400 000 events of microtq 500000 twice to the end
/// was 0.5% of a traced run's CPU time.
fn winners(data: &TraceData) -> HashMap<(u32, u64), (usize, u64, u64), AddrHash> {
    let mut by_id: HashMap<(u32, u64), (usize, u64, u64), AddrHash> = HashMap::default();
    for l in &data.threads {
        let mut left = l.conflicts;
        for e in &l.events {
            if left == 0 {
                break;
            }
            if let Event::Transaction(TxRecord {
                conflict: Some(k), ..
            }) = e
            {
                by_id.insert((k.winner_segment, k.winner_seq), (0, 0, 0));
                left -= 1;
            }
        }
    }
    let mut left = by_id.len();
    'threads: for (i, l) in data.threads.iter().enumerate() {
        for e in &l.events {
            if left == 0 {
                break 'threads;
            }
            if let Event::Transaction(t) = e {
                if let Some(v) = by_id.get_mut(&(t.segment, t.seq)) {
                    *v = (i + 1, t.start_ns, t.end_ns);
                    left -= 1;
                }
            }
        }
    }
    by_id.retain(|_, v| v.0 != 0);
    by_id
}

/// Writes every event of `data` as one JSON object (see the module docs).
pub fn write_chrome_json(rt: &Runtime, data: &TraceData, w: &mut dyn Write) -> std::io::Result<()> {
    let mut sites = Sites {
        rt,
        source: stmjit_lang::diag::cached_source(&rt.info.file),
        done: HashMap::new(),
    };
    let by_id = winners(data);
    let mut o = Out::new(w);
    o.s("{\"traceEvents\":[\n")?;
    o.s("{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"args\":{\"name\":")?;
    o.str(&format!("stmjit {}", rt.info.file))?;
    o.s("}")?;
    o.end_event()?;
    let mut flow = 0u64;
    for (i, l) in data.threads.iter().enumerate() {
        let tid = i + 1;
        o.s("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":")?;
        o.u64(tid as u64);
        o.s(",\"args\":{\"name\":")?;
        o.str(&l.name)?;
        o.s("}")?;
        o.end_event()?;
        o.s("{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":")?;
        o.u64(tid as u64);
        o.s(",\"args\":{\"sort_index\":")?;
        o.u64(tid as u64);
        o.s("}")?;
        o.end_event()?;
        // The starts of the two most frequent events (a short transaction commits, then
        // collects its nursery), made once.
        let committed = Head::new("transaction", "committed", tid);
        let minor = Head::new("gc", SpanKind::MinorCollection.name(), tid);
        for e in &l.events {
            match e {
                Event::Transaction(t) => {
                    // A winner of a conflict is named by its id.
                    let named = !by_id.is_empty() && by_id.contains_key(&(t.segment, t.seq));
                    if t.outcome == Outcome::Committed && t.inevitable_ns.is_none() {
                        committed_event(&mut o, &committed, t, named);
                    } else {
                        tx_event(&mut o, tid, t, &mut sites, named)?;
                    }
                    o.end_event()?;
                    if let Some(from) = t.inevitable_ns {
                        o.start("X", "inevitable", "inevitable", tid)?;
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
                        o.start("s", "conflict", "conflict", wtid)?;
                        o.s(",\"id\":")?;
                        o.u64(flow);
                        o.s(",\"ts\":")?;
                        o.us(at);
                        o.end_event()?;
                        o.start("f", "conflict", "conflict", tid)?;
                        o.s(",\"bp\":\"e\",\"id\":")?;
                        o.u64(flow);
                        o.s(",\"ts\":")?;
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
                        let mut c = o.cursor();
                        c.put(&minor.text, minor.len);
                        c.us(*start_ns);
                        c.lit(b",\"dur\":");
                        c.dur(end_ns.saturating_sub(*start_ns));
                        let p = c.p;
                        o.at(p);
                    } else {
                        let cat = if kind.is_collection() { "gc" } else { "wait" };
                        o.start("X", cat, kind.name(), tid)?;
                        o.span(*start_ns, *end_ns);
                    }
                    o.end_event()?;
                }
                Event::Output { at_ns, text } => {
                    o.start("i", "output", "print", tid)?;
                    o.s(",\"s\":\"t\",\"ts\":")?;
                    o.us(*at_ns);
                    o.s(",\"args\":{\"text\":")?;
                    o.str(text)?;
                    o.s("}")?;
                    o.end_event()?;
                }
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
        "events_cap": data.events_in_all,
        "cap_note": "the run keeps its first events: at most events_per_thread_cap a thread \
                     and events_cap in all (each thread takes room 4096 events at a time); \
                     later ones are only counted in `dropped`",
        "dropped": dropped,
        "arg_defaults": serde_json::from_str::<Value>(ARG_DEFAULTS).expect("valid JSON"),
        "arg_defaults_note": "a transaction's args leave out outcome, inevitable, \
                              bytes_written and pages_privatized when they have these \
                              values; its id (segment.seq, the name a conflict's winner \
                              has) is written on aborted transactions and on the winners",
    });
    let mut tail = b"\n],\"displayTimeUnit\":\"ms\",\"otherData\":".to_vec();
    serde_json::to_writer(&mut tail, &other)?;
    tail.extend_from_slice(b"}\n");
    o.finish(&tail)
}

/// Writes `path` by `write`, over what a file there held rather than truncating it first
/// (and then cutting it to the new length): rewriting a trace of the same size reuses its
/// pages in the page cache (and on disk), where a truncated file frees them, takes new ones
/// and, on ext4, is flushed to disk at its close (its "replace by truncate" rule): `dd` of
/// 52 MB over the last run's file, 30 ms CPU truncating, 15 ms not.
#[cold]
fn rewrite(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    // A device or pipe (`/dev/stdout`) has no length to cut.
    let regular = f.metadata()?.is_file();
    write(&mut f)?;
    if regular {
        use std::io::Seek;
        let end = f.stream_position()?;
        f.set_len(end)?;
    }
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
    if let Some(path) = json_path {
        // Straight to the file.
        let r = rewrite(path, |w| write_chrome_json(rt, &data, w));
        if let Err(e) = r {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
    if let Some(svg_path) = svg_path {
        // Drawn from the records, not from the JSON (which a run of 400 000 transactions
        // held in memory whole, 346 MB at its peak, for the model that borrowed from it).
        let opts = stmjit_timeline::Options::default();
        let svg = stmjit_timeline::render(&timeline_of(rt, &data), &opts);
        if let Err(e) = std::fs::write(svg_path, svg) {
            eprintln!("error: cannot write {}: {e}", svg_path.display());
        }
    }
    // Freed (about 12 instructions an event, against hundreds to write it): forgotten, its
    // 12.8 MB buffer per thread was what valgrind's leak check reported lost at exit.
    drop(data);
}

/// Microseconds (the trace's unit), as the JSON's `12.345` reads back: both are the
/// correctly rounded value of `ns / 1000`, so a timeline drawn from the records is the one
/// drawn from the file.
fn us_f64(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The timeline of `data`, as `stmjit_timeline::model::read` reads it from the JSON that
/// [`write_chrome_json`] writes of it (the same rows, blocks, spans and conflict arrows, to
/// the bit), built from the records.
pub fn timeline_of(rt: &Runtime, data: &TraceData) -> stmjit_timeline::Trace {
    use std::borrow::Cow;
    use stmjit_timeline::model::{Conflict, Row, Span, Tx};
    let by_id = winners(data);
    let mut conflicts = Vec::new();
    let rows = data
        .threads
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut row = Row {
                tid: i as u64 + 1,
                name: l.name.clone(),
                dropped: (l.dropped.commits, l.dropped.aborts),
                ..Row::default()
            };
            for e in &l.events {
                match e {
                    Event::Transaction(t) => {
                        let start = us_f64(t.start_ns);
                        let end = start + us_f64(t.end_ns.saturating_sub(t.start_ns));
                        let from = t.inevitable_ns.map(|f| us_f64(f.get()));
                        row.txs.push(Tx {
                            start,
                            end,
                            aborted: t.outcome != Outcome::Committed,
                            inevitable_from: from.filter(|&f| f >= start && f <= end),
                            name: Cow::Borrowed(tx_name(t)),
                        });
                        let winner = t
                            .conflict
                            .as_ref()
                            .and_then(|k| by_id.get(&(k.winner_segment, k.winner_seq)));
                        if let Some(&(wtid, ws, we)) = winner {
                            let at = t.end_ns.clamp(ws, we.saturating_sub(1).max(ws));
                            conflicts.push(Conflict {
                                from_row: wtid - 1,
                                from_t: us_f64(at),
                                to_row: i,
                                to_t: us_f64(t.end_ns.saturating_sub(1).max(t.start_ns)),
                            });
                        }
                    }
                    Event::Span {
                        kind,
                        start_ns,
                        end_ns,
                    } => {
                        let start = us_f64(*start_ns);
                        row.spans.push(Span {
                            start,
                            end: start + us_f64(end_ns.saturating_sub(*start_ns)),
                            gc: kind.is_collection(),
                            name: Cow::Borrowed(kind.name()),
                        });
                    }
                    Event::Output { .. } => {}
                }
            }
            row
        })
        .collect();
    conflicts.sort_by(Conflict::order);
    stmjit_timeline::Trace {
        program: rt.info.file.to_string(),
        segments: rt.stm.num_segments() as u64,
        rows,
        conflicts,
        cap: data.events_per_thread as u64,
        cap_in_all: data.events_in_all as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(f: impl FnOnce(&mut Out)) -> String {
        let mut sink = Vec::new();
        let mut o = Out::new(&mut sink);
        f(&mut o);
        String::from_utf8(o.buf[..o.pos].to_vec()).unwrap()
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
        assert_eq!(out(|o| o.str("a\"b\n").unwrap()), r#""a\"b\n""#);
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
                o.lit(b" ");
            }
        });
        let want: String = ns
            .iter()
            .map(|n| format!("{}.{:03} ", n / 1000, n % 1000))
            .collect();
        assert_eq!(text, want);
    }

    /// A trace written over a longer file (the last run's) ends where it ends: the file is
    /// cut to its length, not left with the old tail; a device is written without cutting.
    #[test]
    fn rewriting_cuts_the_old_tail() {
        let path = std::env::temp_dir().join(format!("stmjit-rewrite-{}.json", std::process::id()));
        std::fs::write(&path, vec![b'x'; 3 * CHUNK + 5]).unwrap();
        let text = b"{\"traceEvents\":[]}\n";
        rewrite(&path, |w| {
            w.write_all(&text[..4])?;
            w.write_all(&text[4..])
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), text);
        std::fs::remove_file(&path).unwrap();
        rewrite(std::path::Path::new("/dev/null"), |w| w.write_all(text)).unwrap();
    }

    /// The last event's separator is dropped also when that event filled a chunk (it was
    /// handed over with the chunk, and the file ended `},\n\n]`: not JSON).
    #[test]
    fn a_full_chunk_at_the_last_event_still_ends_well() {
        for extra in 0..8 {
            let mut sink = Vec::new();
            let mut o = Out::new(&mut sink);
            // Events of 12 bytes (`{"a":1234` and `},\n`): one of them ends the chunk.
            let n = CHUNK / 12 + extra;
            for i in 0..n {
                o.lit(b"{\"a\":");
                o.u64(1000 + (i % 9000) as u64);
                o.end_event().unwrap();
            }
            o.finish(b"]").unwrap();
            let mut text = b"[".to_vec();
            text.extend_from_slice(&sink);
            let v: Value =
                serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{extra}: not JSON ({e})"));
            assert_eq!(v.as_array().map(Vec::len), Some(n));
        }
    }
}
