//! The event trace (`StmConfig::trace`): every transaction recorded once with its outcome,
//! the winner of a conflict named so that a trace can link it to the aborted one, and what
//! a commit wrote; nothing recorded when the trace is off.

mod common;
use common::*;
use stmjit_runtime::trace::{Event, Outcome, TxRecord};
use stmjit_runtime::*;

fn transactions(stm: &Stm) -> Vec<TxRecord> {
    let d = stm.tracer().expect("tracing on").take();
    d.threads
        .into_iter()
        .flat_map(|l| l.events)
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn an_aborted_transaction_names_the_commit_that_aborted_it() {
    let mut cfg = config(2, WaitPolicy::AbortSelf);
    cfg.trace = true;
    let stm = Stm::new(cfg).unwrap();
    let t = types(&stm);
    let c = make_cells(&stm, &t, &[1])[0];
    let before = transactions(&stm).len();
    assert!(before > 0, "the setup's transactions are recorded");
    let mut reader = stm.thread();
    let mut writer = stm.thread();
    reader.begin();
    writer.begin();
    reader.read_u64(c, 8).unwrap();
    writer.write_u64(c, 8, 2).unwrap();
    let (wseg, wseq) = (writer.segment() as u32, writer.transaction_seq());
    writer.commit().unwrap();
    reader.poll().unwrap_err();
    let txs = transactions(&stm);
    assert_eq!(txs.len(), 2);
    let w = txs
        .iter()
        .find(|t| t.outcome == Outcome::Committed)
        .unwrap();
    assert_eq!((w.segment, w.seq), (wseg, wseq));
    assert!(w.bytes_written >= 8, "{w:?}");
    assert!(w.start_ns <= w.end_ns);
    let r = txs
        .iter()
        .find(|t| t.outcome != Outcome::Committed)
        .unwrap();
    assert_eq!(r.outcome, Outcome::Aborted(AbortCause::WriteRead));
    let k = r.conflict.as_deref().expect("conflict info");
    assert_eq!((k.winner_segment, k.winner_seq), (wseg, wseq));
    assert_ne!(r.segment, w.segment);
}

#[test]
fn no_trace_unless_asked() {
    let stm = Stm::new(config(2, WaitPolicy::Wait)).unwrap();
    assert!(stm.tracer().is_none());
}
