//! `stmjit-timeline`: draws a run's trace as the picture of the PyPy-STM talk: one row per
//! thread, each transaction a block coloured by how it ended (committed, aborted and run
//! again, inevitable), waits and collections shaded in a band under the blocks, conflicts as
//! arrows from the winning transaction to the one it aborted, a time axis and a legend.
//!
//! It reads the Chrome trace-event JSON that `stmjit run --trace` writes (so
//! `stmjit timeline FILE.json` draws a saved trace), or takes a [`Trace`] built from a run's
//! records (`stmjit run --timeline`, the same picture without the JSON in memory); no other
//! stmjit crate is needed, nothing here knows about segments or JIT code.
//!
//! Readable from 2 to 64 threads (row height shrinks with the count) and for long runs: a
//! block narrower than a pixel is not drawn alone; its time goes to its pixel column's
//! bucket, and each column is drawn as stacked bars whose heights are the share of that
//! column's time spent in each kind (a fully busy column is full height). The SVG's
//! structure is part of the contract (tests count it): each row is a
//! `<g class="row" data-tid data-commits data-aborts data-blocks data-aggregated>`, each
//! transaction drawn alone a `<rect class="tx committed|aborted">`.

mod draw;
pub mod model;

pub use draw::Options;
pub use model::Trace;

/// Draws the trace in `json` (the bytes of a `--trace` file) as an SVG document.
pub fn render_json(json: &[u8], opts: &Options) -> Result<String, String> {
    Ok(draw::render(&model::read(json)?, opts))
}

/// Draws a trace already read ([`model::read`]) as an SVG document.
pub fn render(trace: &Trace, opts: &Options) -> String {
    draw::render(trace, opts)
}
