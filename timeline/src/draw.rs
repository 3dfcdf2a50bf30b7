//! The SVG: header (program, totals), legend, one row per thread (name on the left, its
//! counts on the right), a time axis under the rows, conflict arrows on top.

use crate::model::{Row, Trace};
use std::fmt::Write;

/// How the picture is laid out.
#[derive(Clone, Debug)]
pub struct Options {
    /// Width of the plot area in pixels (one bucket of aggregated time per pixel column).
    pub width: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options { width: 1000 }
    }
}

/// Most conflict arrows drawn: beyond, an even sample (the picture says how many); every
/// conflict still gets its mark on the aborted transaction's row.
const MAX_ARROWS: usize = 60;
/// Left column: thread names.
const LABEL_W: f64 = 110.0;
/// Right column: each thread's counts.
const COUNTS_W: f64 = 170.0;
/// Header and legend above the rows.
const TOP: f64 = 96.0;
/// Margin around everything.
const PAD: f64 = 10.0;

/// The kinds of time, their colours (Okabe-Ito based, apart for colour-blind readers) and
/// names in the legend.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Committed,
    Inevitable,
    Aborted,
    Collection,
    Wait,
}

impl Kind {
    fn colour(self) -> &'static str {
        match self {
            Kind::Committed => "#2e9e5b",
            Kind::Inevitable => "#0072b2",
            Kind::Aborted => "#d62728",
            Kind::Collection => "#8e6bbf",
            Kind::Wait => "#e69f00",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Kind::Committed => "committed",
            Kind::Inevitable => "inevitable",
            Kind::Aborted => "aborted",
            Kind::Collection => "collection",
            Kind::Wait => "wait",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Kind::Committed => "committed",
            Kind::Inevitable => "inevitable (from when it became so)",
            Kind::Aborted => "aborted, then run again",
            Kind::Collection => "garbage collection",
            Kind::Wait => "waiting (pause, lock, segment, join)",
        }
    }
}

/// Text escaped for XML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c if (c as u32) < 0x20 && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// A coordinate with at most two decimals (keeps the file small).
fn px(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// A duration in µs, in the unit that suits it.
fn dur(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// A count, short: exact below 100 000, else in thousands or millions.
fn count(n: u64) -> String {
    if n < 100_000 {
        n.to_string()
    } else if n < 10_000_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        format!("{:.2}M", n as f64 / 1e6)
    }
}

/// Maps times (µs) to x coordinates.
struct Scale {
    t0: f64,
    /// Pixels per µs.
    k: f64,
    x0: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        self.x0 + (t - self.t0) * self.k
    }
}

/// Per-column time of each kind in one lane, for blocks too narrow to draw alone.
struct Buckets {
    cols: Vec<[f64; 3]>,
}

impl Buckets {
    fn new(n: usize) -> Buckets {
        Buckets {
            cols: vec![[0.0; 3]; n],
        }
    }

    /// Adds `[a, b)` (in column units) to kind slot `k`.
    fn add(&mut self, a: f64, b: f64, k: usize) {
        let n = self.cols.len();
        if n == 0 || b <= a {
            return;
        }
        let mut c = (a.floor().max(0.0) as usize).min(n - 1);
        loop {
            let (lo, hi) = (c as f64, c as f64 + 1.0);
            let part = b.min(hi) - a.max(lo);
            if part > 0.0 {
                self.cols[c][k] += part;
            }
            if b <= hi || c + 1 >= n {
                break;
            }
            c += 1;
        }
    }
}

/// One row's geometry.
struct Lanes {
    y: f64,
    h: f64,
    /// Transaction lane: top and height.
    tx: (f64, f64),
    /// Wait and collection band: top and height.
    band: (f64, f64),
}

fn lanes(i: usize, row_h: f64) -> Lanes {
    let y = TOP + i as f64 * row_h;
    let tx_h = (row_h * 0.62).round().max(5.0);
    let band_h = (row_h * 0.26).round().max(2.0);
    Lanes {
        y,
        h: row_h,
        tx: (y + 1.0, tx_h),
        band: (y + 1.0 + tx_h + 0.5, band_h),
    }
}

/// Draws stacked bars for aggregated columns: each run of equal columns is one rect per kind.
fn draw_buckets(
    o: &mut String,
    b: &Buckets,
    kinds: &[Kind],
    lane: (f64, f64),
    x0: f64,
    col_px: f64,
) {
    // Heights in half pixels, bottom-up in `kinds` order.
    let q = |c: &[f64; 3]| -> [u32; 3] {
        let mut h = [0u32; 3];
        for k in 0..kinds.len() {
            h[k] = (c[k].min(1.0) * lane.1 * 2.0).round() as u32;
        }
        h
    };
    let mut c = 0;
    while c < b.cols.len() {
        let h = q(&b.cols[c]);
        let mut e = c + 1;
        while e < b.cols.len() && q(&b.cols[e]) == h {
            e += 1;
        }
        if h.iter().any(|&v| v > 0) {
            let (x, w) = (x0 + c as f64 * col_px, (e - c) as f64 * col_px);
            let mut bottom = lane.0 + lane.1;
            for (k, kind) in kinds.iter().enumerate() {
                if h[k] == 0 {
                    continue;
                }
                let hh = (h[k] as f64 / 2.0).min(bottom - lane.0);
                bottom -= hh;
                let _ = writeln!(
                    o,
                    r#"<rect class="agg {}" x="{}" y="{}" width="{}" height="{}" fill="{}"/>"#,
                    kind.class(),
                    px(x),
                    px(bottom),
                    px(w),
                    px(hh),
                    kind.colour()
                );
            }
        }
        c = e;
    }
}

/// Picks ticks for `[t0, t1]` µs: (first, step, unit divisor, unit name, decimals).
fn ticks(t0: f64, t1: f64) -> (f64, f64, f64, &'static str, usize) {
    let range = (t1 - t0).max(1e-3);
    let raw = range / 8.0;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p);
    let (div, unit) = if range >= 2e6 {
        (1e6, "s")
    } else if range >= 2e3 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    };
    let decimals = (-(step / div).log10().floor()).max(0.0) as usize;
    ((t0 / step).ceil() * step, step, div, unit, decimals)
}

/// Time totals of a row: (in transactions, in aborted ones, collecting, waiting).
fn totals(r: &Row) -> (f64, f64, f64, f64) {
    let mut t = (0.0, 0.0, 0.0, 0.0);
    for x in &r.txs {
        t.0 += x.end - x.start;
        if x.aborted {
            t.1 += x.end - x.start;
        }
    }
    for s in &r.spans {
        if s.gc {
            t.2 += s.end - s.start;
        } else {
            t.3 += s.end - s.start;
        }
    }
    t
}

/// Draws `trace` (see the crate's docs).
pub fn render(trace: &Trace, opts: &Options) -> String {
    let n = trace.rows.len().max(1);
    let row_h = (560.0 / n as f64).floor().clamp(10.0, 40.0);
    let plot_w = f64::from(opts.width.max(100));
    let rows_h = row_h * trace.rows.len() as f64;
    let axis_y = TOP + rows_h + 4.0;
    let width = PAD + LABEL_W + plot_w + COUNTS_W + PAD;
    let height = axis_y + 42.0;
    let (t0, t1) = trace.time_range().unwrap_or((0.0, 1.0));
    let t1 = if t1 > t0 { t1 } else { t0 + 1.0 };
    let sc = Scale {
        t0,
        k: plot_w / (t1 - t0),
        x0: PAD + LABEL_W,
    };
    // Buckets of one pixel (two with many rows: halves the file, still fine-grained).
    let col_px = if trace.rows.len() > 16 { 2.0 } else { 1.0 };
    let ncols = (plot_w / col_px).ceil() as usize;
    let col_us = (t1 - t0) / ncols as f64;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">"#,
        px(width),
        px(height),
        px(width),
        px(height)
    );
    o.push_str(concat!(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" "#,
        r##"markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#222"/>"##,
        "</marker></defs>\n"
    ));
    let _ = writeln!(
        o,
        r#"<rect width="{}" height="{}" fill="white"/>"#,
        px(width),
        px(height)
    );

    // Header: what ran, and the totals.
    let (mut commits, mut aborts, mut dropped) = (0usize, 0usize, (0u64, 0u64));
    let (mut in_tx, mut lost, mut gc, mut wait) = (0.0, 0.0, 0.0, 0.0);
    for r in &trace.rows {
        commits += r.commits();
        aborts += r.aborts();
        dropped.0 += r.dropped.0;
        dropped.1 += r.dropped.1;
        let t = totals(r);
        in_tx += t.0;
        lost += t.1;
        gc += t.2;
        wait += t.3;
    }
    let program = if trace.program.is_empty() {
        "stmjit trace".to_string()
    } else {
        format!("stmjit {}", trace.program)
    };
    let segs = if trace.segments > 0 {
        format!(", {} segments", trace.segments)
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        r#"<text class="title" x="{PAD}" y="20" font-size="15" font-weight="bold">{} — {} threads{segs}, {}</text>"#,
        esc(&program),
        trace.rows.len(),
        dur(t1 - t0)
    );
    let share = if in_tx > 0.0 {
        100.0 * lost / in_tx
    } else {
        0.0
    };
    let _ = writeln!(
        o,
        r#"<text class="summary" x="{PAD}" y="38">{commits} commits, {aborts} aborts ({share:.1}% of the time in transactions was lost to aborts), {} conflicts; {} collecting, {} waiting (all threads)</text>"#,
        trace.conflicts.len(),
        dur(gc),
        dur(wait)
    );
    let mut notes = Vec::new();
    if dropped.0 + dropped.1 > 0 {
        notes.push(format!(
            "the trace kept the run's first events (at most {} a thread, {} in all): {} later commits and {} aborts are counted, not drawn (right column, \"+\")",
            trace.cap, trace.cap_in_all, dropped.0, dropped.1
        ));
    }
    notes.push(format!(
        "a transaction narrower than {} px is not drawn alone: bar heights show each kind's share of that column",
        col_px
    ));
    let _ = writeln!(
        o,
        r##"<text class="note" x="{PAD}" y="54" fill="#555" font-size="11">{}</text>"##,
        esc(&notes.join("; "))
    );

    // Legend.
    let mut lx = PAD;
    let ly = 66.0;
    for k in [
        Kind::Committed,
        Kind::Inevitable,
        Kind::Aborted,
        Kind::Collection,
        Kind::Wait,
    ] {
        let band = matches!(k, Kind::Collection | Kind::Wait);
        let (sy, sh) = if band { (ly + 8.0, 5.0) } else { (ly, 13.0) };
        let _ = writeln!(
            o,
            r#"<rect class="legend {}" x="{}" y="{}" width="16" height="{}" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            k.class(),
            px(lx),
            px(sy),
            px(sh),
            k.colour(),
            px(lx + 20.0),
            px(ly + 11.0),
            esc(k.legend())
        );
        lx += 30.0 + 6.2 * k.legend().chars().count() as f64;
    }
    let _ = writeln!(
        o,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#222" stroke-width="1.2" marker-end="url(#arrow)"/><text x="{}" y="{}" font-size="11">conflict: winner → the transaction it aborted (▾ marks each)</text>"##,
        px(lx),
        px(ly + 10.0),
        px(lx + 22.0),
        px(ly + 3.0),
        px(lx + 28.0),
        px(ly + 11.0)
    );

    // Grid and axis (behind the rows' blocks, over their stripes).
    let (first, step, div, unit, decimals) = ticks(t0, t1);
    let mut grid = String::new();
    let mut t = first;
    while t <= t1 + step * 1e-9 {
        let x = sc.x(t);
        let _ = writeln!(
            grid,
            r##"<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd" stroke-width="0.6"/><text x="{}" y="{}" text-anchor="middle" font-size="11">{:.*}</text>"##,
            px(x),
            px(TOP),
            px(x),
            px(axis_y + 4.0),
            px(x),
            px(axis_y + 16.0),
            decimals,
            t / div
        );
        t += step;
    }

    // Rows: stripes and names first (a name several threads share gets the track's id).
    let mut seen = std::collections::HashMap::new();
    for r in &trace.rows {
        *seen.entry(r.name.as_str()).or_insert(0) += 1;
    }
    o.push_str("<g class=\"stripes\">\n");
    for (i, r) in trace.rows.iter().enumerate() {
        let label = if seen[r.name.as_str()] > 1 {
            format!("{} ({})", r.name, r.tid)
        } else {
            r.name.clone()
        };
        let l = lanes(i, row_h);
        if i % 2 == 1 {
            let _ = writeln!(
                o,
                r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#f3f3f3"/>"##,
                px(PAD),
                px(l.y),
                px(width - 2.0 * PAD),
                px(l.h)
            );
        }
        let fs = (row_h - 1.0).min(12.0);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" font-size="{}">{}</text>"#,
            px(PAD + 2.0),
            px(l.tx.0 + l.tx.1 * 0.5 + fs * 0.35),
            px(fs),
            esc(&label)
        );
    }
    o.push_str("</g>\n");
    o.push_str(&grid);
    let _ = writeln!(
        o,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#444"/><text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#444">time ({unit} since the trace started)</text>"##,
        px(sc.x0),
        px(axis_y + 4.0),
        px(sc.x0 + plot_w),
        px(axis_y + 4.0),
        px(sc.x0 + plot_w / 2.0),
        px(axis_y + 32.0)
    );

    for (i, r) in trace.rows.iter().enumerate() {
        draw_row(
            &mut o,
            r,
            &lanes(i, row_h),
            &sc,
            ncols,
            col_us,
            col_px,
            row_h,
        );
    }

    // Conflict arrows: one per (rows, pixel columns), at most MAX_ARROWS, evenly sampled.
    let mut arrows: Vec<(usize, i64, usize, i64)> = trace
        .conflicts
        .iter()
        .map(|c| {
            (
                c.from_row,
                sc.x(c.from_t).round() as i64,
                c.to_row,
                sc.x(c.to_t).round() as i64,
            )
        })
        .collect();
    arrows.sort_unstable();
    arrows.dedup();
    let shown = arrows.len().min(MAX_ARROWS);
    let _ = writeln!(
        o,
        r#"<g class="conflicts" data-conflicts="{}" data-arrows="{}">"#,
        trace.conflicts.len(),
        shown
    );
    // Marks: a small triangle over the aborted row where each conflict aborted it.
    let mut marks: Vec<(usize, i64)> = arrows.iter().map(|a| (a.2, a.3)).collect();
    marks.sort_unstable();
    marks.dedup();
    for (row, x) in marks {
        let top = lanes(row, row_h).tx.0;
        let _ = writeln!(
            o,
            r##"<path class="mark" d="M{},{} l-2.5,-3.5 h5 z" fill="#111"/>"##,
            x,
            px(top + 0.5)
        );
    }
    for j in 0..shown {
        let (fr, fx, tr, tx) = arrows[j * arrows.len() / shown.max(1)];
        let (lf, lt) = (lanes(fr, row_h), lanes(tr, row_h));
        let y1 = lf.tx.0 + lf.tx.1 * 0.5;
        let y2 = if tr > fr { lt.tx.0 } else { lt.tx.0 + lt.tx.1 };
        let _ = writeln!(
            o,
            r##"<line x1="{fx}" y1="{}" x2="{tx}" y2="{}" stroke="#222" stroke-opacity="0.75" stroke-width="1" marker-end="url(#arrow)"/>"##,
            px(y1),
            px(y2)
        );
    }
    o.push_str("</g>\n");
    if shown < arrows.len() {
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#555">{} of {} conflict arrows drawn</text>"##,
            px(width - PAD),
            px(axis_y + 32.0),
            shown,
            arrows.len()
        );
    }
    o.push_str("</svg>\n");
    o
}

/// One row: its transactions (alone when at least a pixel wide, else in buckets), its
/// waits and collections in the band under them, its counts on the right.
#[allow(clippy::too_many_arguments)]
fn draw_row(
    o: &mut String,
    r: &Row,
    l: &Lanes,
    sc: &Scale,
    ncols: usize,
    col_us: f64,
    col_px: f64,
    row_h: f64,
) {
    let mut alone = String::new();
    let mut tx_b = Buckets::new(ncols);
    let mut band_b = Buckets::new(ncols);
    let col = |t: f64| (t - sc.t0) / col_us;
    let (mut blocks, mut aggregated) = (0usize, 0usize);
    for t in &r.txs {
        let (x1, x2) = (sc.x(t.start), sc.x(t.end));
        let kind = if t.aborted {
            Kind::Aborted
        } else {
            Kind::Committed
        };
        if x2 - x1 >= col_px {
            blocks += 1;
            let gap = if x2 - x1 >= 4.0 { 0.5 } else { 0.0 };
            let _ = write!(
                alone,
                r#"<rect class="tx {}" x="{}" y="{}" width="{}" height="{}" fill="{}">"#,
                kind.class(),
                px(x1),
                px(l.tx.0),
                px(x2 - x1 - gap),
                px(l.tx.1),
                kind.colour()
            );
            let _ = writeln!(
                alone,
                "<title>{}, {} at {}</title></rect>",
                esc(&t.name),
                dur(t.end - t.start),
                dur(t.start)
            );
            if let Some(f) = t.inevitable_from {
                let xi = sc.x(f);
                let _ = writeln!(
                    alone,
                    r#"<rect class="part inevitable" x="{}" y="{}" width="{}" height="{}" fill="{}"/>"#,
                    px(xi),
                    px(l.tx.0),
                    px((x2 - xi - gap).max(0.0)),
                    px(l.tx.1),
                    Kind::Inevitable.colour()
                );
            }
        } else {
            aggregated += 1;
            let split = t.inevitable_from.unwrap_or(t.end).clamp(t.start, t.end);
            let slot = if t.aborted { 2 } else { 0 };
            tx_b.add(col(t.start), col(split), slot);
            tx_b.add(col(split), col(t.end), 1);
        }
    }
    for s in &r.spans {
        let (x1, x2) = (sc.x(s.start), sc.x(s.end));
        let kind = if s.gc { Kind::Collection } else { Kind::Wait };
        if x2 - x1 >= col_px {
            let _ = writeln!(
                alone,
                r#"<rect class="span {}" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}, {}</title></rect>"#,
                kind.class(),
                px(x1),
                px(l.band.0),
                px(x2 - x1),
                px(l.band.1),
                kind.colour(),
                esc(&s.name),
                dur(s.end - s.start)
            );
        } else {
            band_b.add(col(s.start), col(s.end), if s.gc { 0 } else { 1 });
        }
    }
    let _ = writeln!(
        o,
        r#"<g class="row" data-tid="{}" data-name="{}" data-commits="{}" data-aborts="{}" data-blocks="{blocks}" data-aggregated="{aggregated}">"#,
        r.tid,
        esc(&r.name),
        r.commits(),
        r.aborts()
    );
    draw_buckets(
        o,
        &tx_b,
        &[Kind::Committed, Kind::Inevitable, Kind::Aborted],
        l.tx,
        sc.x0,
        col_px,
    );
    draw_buckets(
        o,
        &band_b,
        &[Kind::Collection, Kind::Wait],
        l.band,
        sc.x0,
        col_px,
    );
    o.push_str(&alone);
    // Counts: commits, aborts (and what the cap dropped).
    let fs = (row_h - 1.0).min(11.0);
    let y = l.tx.0 + l.tx.1 * 0.5 + fs * 0.35;
    let x = sc.x0 + (ncols as f64 * col_px) + 8.0;
    let more = if r.dropped.0 + r.dropped.1 > 0 {
        format!(" +{}", count(r.dropped.0 + r.dropped.1))
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" font-size="{}"><tspan fill="{}">{} ok</tspan> <tspan fill="{}">{} aborted</tspan>{}</text>"#,
        px(x),
        px(y),
        px(fs),
        Kind::Committed.colour(),
        count(r.commits() as u64),
        Kind::Aborted.colour(),
        count(r.aborts() as u64),
        esc(&more)
    );
    o.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conflict, Span, Tx};

    fn tx(start: f64, end: f64, aborted: bool) -> Tx {
        Tx {
            start,
            end,
            aborted,
            inevitable_from: None,
            name: if aborted { "aborted" } else { "committed" }.into(),
        }
    }

    fn count(s: &str, pat: &str) -> usize {
        s.matches(pat).count()
    }

    #[test]
    fn counts_are_short() {
        assert_eq!(super::count(99_999), "99999");
        assert_eq!(super::count(191_473), "191.5k");
        assert_eq!(super::count(12_345_678), "12.35M");
    }

    /// Wide transactions are blocks of their own; a thousand narrow ones become columns
    /// whose bars are their share; every row says its counts; conflicts become arrows.
    #[test]
    fn wide_blocks_alone_narrow_ones_aggregated() {
        let mut a = Row {
            tid: 1,
            name: "main <1>".into(),
            ..Row::default()
        };
        a.txs.push(tx(0.0, 400.0, false));
        a.txs.push(tx(400.0, 700.0, true));
        let mut inev = tx(700.0, 1000.0, false);
        inev.inevitable_from = Some(800.0);
        a.txs.push(inev);
        let mut b = Row {
            tid: 2,
            name: "thread 1".into(),
            ..Row::default()
        };
        for i in 0..1000 {
            b.txs
                .push(tx(i as f64 * 0.5, i as f64 * 0.5 + 0.25, i % 2 == 0));
        }
        b.spans.push(Span {
            start: 600.0,
            end: 900.0,
            gc: true,
            name: "minor collection".into(),
        });
        let t = Trace {
            program: "x.lang".into(),
            segments: 2,
            rows: vec![a, b],
            conflicts: vec![Conflict {
                from_row: 0,
                from_t: 100.0,
                to_row: 1,
                to_t: 120.0,
            }],
            cap: 0,
            cap_in_all: 0,
        };
        let svg = render(&t, &Options::default());
        assert_eq!(count(&svg, r#"<g class="row""#), 2);
        assert!(svg.contains(r#"data-name="main &lt;1&gt;" data-commits="2" data-aborts="1" data-blocks="3" data-aggregated="0""#), "{svg}");
        assert!(
            svg.contains(
                r#"data-commits="500" data-aborts="500" data-blocks="0" data-aggregated="1000""#
            ),
            "{svg}"
        );
        assert_eq!(count(&svg, r#"<rect class="tx "#), 3);
        assert_eq!(count(&svg, r#"class="part inevitable""#), 1);
        assert_eq!(count(&svg, r#"class="span collection""#), 1);
        // 1000 transactions in 500 µs: half the plot's columns, each half busy (a quarter
        // committed, a quarter aborted), merged into one run: a bar of each kind.
        assert_eq!(count(&svg, r#"class="agg "#), 2, "{svg}");
        assert!(
            svg.contains(r#"class="agg committed" x="120" y="155.5" width="500" height="6.5""#),
            "{svg}"
        );
        assert!(svg.contains(r#"data-arrows="1""#));
        assert_eq!(count(&svg, r#"<path class="mark""#), 1);
        assert!(svg.ends_with("</svg>\n"));
    }

    /// Many conflicts: arrows are capped, and the picture says so.
    #[test]
    fn arrows_are_capped() {
        let mut rows = vec![];
        for tid in 0..64 {
            let mut r = Row {
                tid,
                name: format!("thread {tid}"),
                ..Row::default()
            };
            r.txs.push(tx(0.0, 10.0, false));
            rows.push(r);
        }
        let conflicts = (0..5000)
            .map(|i| Conflict {
                from_row: i % 64,
                from_t: (i % 1000) as f64 / 100.0,
                to_row: (i + 1) % 64,
                to_t: (i % 1000) as f64 / 100.0,
            })
            .collect();
        let t = Trace {
            rows,
            conflicts,
            ..Trace::default()
        };
        let svg = render(&t, &Options::default());
        assert_eq!(count(&svg, r#"<g class="row""#), 64);
        assert!(svg.contains(&format!(r#"data-arrows="{MAX_ARROWS}""#)));
        assert!(svg.contains("conflict arrows drawn"));
    }

    #[test]
    fn ticks_are_round() {
        let (first, step, div, unit, dec) = ticks(3.0, 1003.0);
        assert_eq!((first, step, div, unit, dec), (200.0, 200.0, 1.0, "µs", 0));
        let (_, step, _, unit, dec) = ticks(0.0, 4.5e6);
        assert_eq!((step, unit, dec), (1e6, "s", 0));
        let (_, step, _, unit, dec) = ticks(0.0, 3000.0);
        assert_eq!((step, unit, dec), (500.0, "ms", 1));
    }
}
