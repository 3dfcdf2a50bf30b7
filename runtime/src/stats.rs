//! Counters and the conflict log.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Why a transaction aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AbortCause {
    /// Lost a write-write conflict (its write lock was taken over, or it yielded).
    WriteWrite = 1,
    /// Read an object that another transaction then committed.
    WriteRead = 2,
    /// The caller asked for it (`StmThread::abort`).
    Explicit = 3,
}

impl AbortCause {
    pub(crate) fn from_u8(v: u8) -> AbortCause {
        match v {
            1 => AbortCause::WriteWrite,
            2 => AbortCause::WriteRead,
            _ => AbortCause::Explicit,
        }
    }
}

/// Kind of a logged conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// Two transactions wanted the same write lock.
    WriteWrite,
    /// A commit modified what a running transaction had read.
    WriteRead,
}

/// One conflict, for `--stats`: the two segments, the object (or card address), and the
/// caller-provided site id of the barrier involved (`SegmentInfo::site`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Kind.
    pub kind: ConflictKind,
    /// Segment of the transaction that won (kept running / committed).
    pub winner_segment: u32,
    /// Segment of the transaction that was aborted or yielded.
    pub loser_segment: u32,
    /// The object reference (for cards: the granule address).
    pub object: u64,
    /// Site id that the winner's barrier had set (write barrier slow path).
    pub site: u32,
    /// Type id from the object's header at conflict time (for cards: of the carded object),
    /// so that `--stats` can name what was contended without parsing the heap afterwards.
    pub type_id: u32,
}

/// A site id that names nothing: the side of a conflict is unknown.
pub const NO_SITE: u32 = u32::MAX;

/// What the site of one side of a conflict names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Where that transaction wrote the object (its write barrier's site).
    Wrote,
    /// Where that transaction read the object (the read-site table, `readsites.rs`).
    Read,
    /// Only where that transaction was when the conflict was found (its latest site), or
    /// nothing ([`NO_SITE`]): the aborted side then names where it learnt of its abort.
    WasAt,
}

/// One side of a conflict: a caller-provided site id (`SegmentInfo::site`, or a read-site
/// table entry) and what it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Side {
    /// The site id, [`NO_SITE`] when unknown.
    pub site: u32,
    /// What the site names.
    pub access: Access,
}

impl Side {
    /// Where the transaction wrote the object.
    pub fn wrote(site: u32) -> Side {
        Side {
            site,
            access: Access::Wrote,
        }
    }

    /// Where the transaction read the object ([`Side::was_at`] an unknown site when `site`
    /// is [`NO_SITE`]: not recording read sites).
    pub fn read(site: u32) -> Side {
        if site == NO_SITE {
            return Side::was_at(NO_SITE);
        }
        Side {
            site,
            access: Access::Read,
        }
    }

    /// Only where the transaction was (its latest site; [`NO_SITE`]: unknown).
    pub fn was_at(site: u32) -> Side {
        Side {
            site,
            access: Access::WasAt,
        }
    }
}

/// What a conflict-caused abort knows about the conflict, so that `--stats` and `--trace`
/// (in the aborted thread) can name both sides: carried by [`crate::Abort::conflict`].
///
/// The sides, by case:
/// - write/read, a commit over our reads: the winner *wrote* (its write barrier's site,
///   `ModRec.site`), we *read* (our read-site table at `addr`, when recorded);
/// - write/read, an inevitable reader of what we were committing: the winner *read* (its
///   table, or else where it was), we *wrote*;
/// - write/write, we are doomed by an older writer: it *wrote* (the site of its barrier
///   now), we *wrote* (our own write's site, from our private records when we abort);
/// - write/write, we yield to the holder: we *wrote* (our barrier's site), the holder was
///   wherever it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConflictInfo {
    /// Write-write (lock) or write-read (commit over our reads).
    pub kind: ConflictKind,
    /// The object (for cards: the carded object, not the granule).
    pub object: u64,
    /// The address the conflict was found at: the object, or for cards the 16-byte granule
    /// (so a report can name the element: a list index, a dict entry).
    pub addr: u64,
    /// Type id from the object's header at conflict time.
    pub type_id: u32,
    /// The winning transaction's side.
    pub winner: Side,
    /// The aborted transaction's side.
    pub loser: Side,
    /// Segment of the winning transaction.
    pub winner_segment: u32,
    /// The winning transaction's number in its segment
    /// ([`crate::StmThread::transaction_seq`]): with `winner_segment`, it names the winner,
    /// so that a trace can draw an arrow from it to the aborted transaction.
    pub winner_seq: u64,
}

/// Most conflicts kept in the log; later ones are counted but not stored.
pub const CONFLICT_LOG_CAP: usize = 100_000;

/// The counters bumped at every transaction (or at every validation, every minor
/// collection), kept per segment (`SegShared::counters`) so that no transaction writes a
/// cache line shared with the other segments; [`crate::Stm::stats`] sums them. Aligned so
/// that two segments' counters never share a line.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct SegCounters {
    pub commits: AtomicU64,
    pub minor_collections: AtomicU64,
    pub bytes_promoted: AtomicU64,
    pub minor_ns: AtomicU64,
    pub minor_max_ns: AtomicU64,
    pub shadow_max_slots: AtomicU64,
    pub validations: AtomicU64,
    /// Time spent validating, in time-stamp-counter ticks (`ticks.rs`).
    pub validate_ticks: AtomicU64,
    pub imported_entries: AtomicU64,
    pub imported_bytes: AtomicU64,
}

impl SegCounters {
    /// Adds `v` to one of the counters of the caller's segment. Only the thread holding the
    /// segment writes its counters (a hand-off orders it after the previous holder), so a
    /// plain load and store suffice: no locked instruction. Atomics only so that a snapshot
    /// may read them at any time.
    #[inline]
    pub(crate) fn bump(c: &AtomicU64, v: u64) {
        c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
    }

    /// Adds these counters into `s`.
    pub(crate) fn add_to(&self, s: &mut StatsSnapshot) {
        s.commits += self.commits.load(Relaxed);
        s.minor_collections += self.minor_collections.load(Relaxed);
        s.bytes_promoted += self.bytes_promoted.load(Relaxed);
        s.minor_ns += self.minor_ns.load(Relaxed);
        s.minor_max_ns = s.minor_max_ns.max(self.minor_max_ns.load(Relaxed));
        s.shadow_max_slots = s.shadow_max_slots.max(self.shadow_max_slots.load(Relaxed));
        s.validations += self.validations.load(Relaxed);
        s.imported_entries += self.imported_entries.load(Relaxed);
        s.imported_bytes += self.imported_bytes.load(Relaxed);
    }
}

/// The phases of a major collection, as timed in [`StatsSnapshot::major_phase_ns`]: so
/// that `--stats` says what part of the stopped time to shrink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MajorPhase {
    /// Waiting for the running segments to reach a safe point (also in `sync_wait_ns`, and
    /// not in `major_ns`).
    Stop,
    /// World stopped: bringing idle segments up to date and applying the commit log to
    /// segment 0.
    Log,
    /// World stopped: marking from the roots, and listing the pages to sweep.
    Mark,
    /// World stopped: mapping private pages back to the shared memfd.
    Reshare,
    /// World running again: freeing unmarked objects and clearing their read markers.
    Sweep,
    /// World running: punching the free page runs out of the memfd, and the rest.
    Release,
}

impl MajorPhase {
    /// Number of phases.
    pub const COUNT: usize = 6;
    /// Every phase, in the order they run.
    pub const ALL: [MajorPhase; MajorPhase::COUNT] = [
        MajorPhase::Stop,
        MajorPhase::Log,
        MajorPhase::Mark,
        MajorPhase::Reshare,
        MajorPhase::Sweep,
        MajorPhase::Release,
    ];

    /// Whether the phase runs after the world resumed. The others after `Stop` make
    /// `major_ns`, what the other threads wait for.
    pub fn world_running(self) -> bool {
        matches!(self, MajorPhase::Sweep | MajorPhase::Release)
    }

    /// Its name in `--stats` and `--stats-json`.
    pub fn name(self) -> &'static str {
        match self {
            MajorPhase::Stop => "stop",
            MajorPhase::Log => "log",
            MajorPhase::Mark => "mark",
            MajorPhase::Reshare => "reshare",
            MajorPhase::Sweep => "sweep",
            MajorPhase::Release => "release",
        }
    }
}

/// Runtime counters shared by all threads (those bumped at every transaction are per
/// segment: [`SegCounters`]).
#[derive(Default)]
pub struct Stats {
    pub(crate) aborts_ww: AtomicU64,
    pub(crate) aborts_wr: AtomicU64,
    pub(crate) aborts_explicit: AtomicU64,
    pub(crate) pages_privatized: AtomicU64,
    pub(crate) sync_wait_ns: AtomicU64,
    pub(crate) paused_ns: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) ww_waits: AtomicU64,
    pub(crate) marker_resets: AtomicU64,
    pub(crate) conflicts: Mutex<Vec<Conflict>>,
    pub(crate) conflicts_total: AtomicU64,
    pub(crate) major_collections: AtomicU64,
    pub(crate) major_ns: AtomicU64,
    pub(crate) major_max_ns: AtomicU64,
    pub(crate) major_freed_bytes: AtomicU64,
    pub(crate) major_idle: AtomicU64,
    pub(crate) major_phase_ns: [AtomicU64; MajorPhase::COUNT],
    pub(crate) live_bytes: AtomicU64,
    pub(crate) pages_reshared: AtomicU64,
    pub(crate) inevitable_waits: AtomicU64,
    pub(crate) log_max_entries: AtomicU64,
    pub(crate) log_max_bytes: AtomicU64,
    pub(crate) segment_wakeups: AtomicU64,
    pub(crate) segment_takeovers: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    /// Committed transactions.
    pub commits: u64,
    /// Aborts caused by write-write conflicts.
    pub aborts_write_write: u64,
    /// Aborts caused by write-read conflicts.
    pub aborts_write_read: u64,
    /// Explicit aborts.
    pub aborts_explicit: u64,
    /// Old-object pages privatized (all segments together).
    pub pages_privatized: u64,
    /// Time committers (and, with the commit log, only major collections) spent waiting for
    /// the other segments to reach a safe point (ns).
    pub sync_wait_ns: u64,
    /// Time threads spent paused at safe points while another segment committed (with the
    /// commit log: while a major collection ran, or waiting for an inevitable transaction to
    /// end before appending) (ns).
    pub paused_ns: u64,
    /// Number of commits (with the commit log: major collections) that had to stop at least
    /// one other running segment.
    pub syncs: u64,
    /// Write-write conflicts resolved by the younger transaction waiting.
    pub ww_waits: u64,
    /// Bulk read-marker resets (read-version wrap-arounds).
    pub marker_resets: u64,
    /// Conflicts detected (logged or not).
    pub conflicts_total: u64,
    /// The conflict log (first [`CONFLICT_LOG_CAP`]).
    pub conflicts: Vec<Conflict>,
    /// Minor collections (nursery full, commit, or explicit).
    pub minor_collections: u64,
    /// Bytes copied out of nurseries (and young large objects kept) by minor collections.
    pub bytes_promoted: u64,
    /// Total time spent in minor collections (ns).
    pub minor_ns: u64,
    /// Longest minor collection (ns).
    pub minor_max_ns: u64,
    /// Deepest shadow stack seen by a minor collection (slots): what JIT frames and helpers
    /// held at once. A figure that grows with a program's running time is a root leak.
    pub shadow_max_slots: u64,
    /// Major collections.
    pub major_collections: u64,
    /// Total time of major collections with the world stopped, after the stop itself (ns).
    pub major_ns: u64,
    /// Longest major collection (ns).
    pub major_max_ns: u64,
    /// Bytes freed by major collections.
    pub major_freed_bytes: u64,
    /// Where the stopped time of major collections went, per phase, indexed by
    /// [`MajorPhase`] (ns, all collections together; those with the world stopped add up to
    /// `major_ns`, and the sweep and release run after the world resumed).
    pub major_phase_ns: [u64; MajorPhase::COUNT],
    /// Major collections run because the program was idle with garbage left
    /// ([`crate::StmConfig::idle_collect`]); counted in `major_collections` too.
    pub major_idle: u64,
    /// Live old-space bytes after the last major collection.
    pub live_bytes: u64,
    /// Private pages mapped back to the shared memfd by major collections.
    pub pages_reshared: u64,
    /// Commit log only: validations that found new entries (each segment validates at its
    /// own safe points: begin, polls after another commit, its commit).
    pub validations: u64,
    /// Commit log only: time spent in those validations, checking read markers against the
    /// new entries and importing them (ns).
    pub validate_ns: u64,
    /// Commit log only: entries imported into a segment (all segments together).
    pub imported_entries: u64,
    /// Commit log only: bytes copied into segments by those imports.
    pub imported_bytes: u64,
    /// Commit log only: writer commits (or inevitability requests) that waited for another
    /// transaction's inevitability to end (the wait counts in `paused_ns`).
    pub inevitable_waits: u64,
    /// Commit log only: entries not yet applied to segment 0 and freed, now.
    pub log_entries: u64,
    /// Commit log only: memory those entries hold, now (bytes).
    pub log_bytes: u64,
    /// Commit log only: the most entries kept at once.
    pub log_max_entries: u64,
    /// Commit log only: the most bytes kept at once.
    pub log_max_bytes: u64,
    /// Threads woken in the queue for a segment: one per hand-off (the head of the queue),
    /// plus one when a thread taking a segment leaves others waiting (the next head, so
    /// that it waits with a time limit). Never the whole queue.
    pub segment_wakeups: u64,
    /// Segments taken over from a thread that kept it between two of its transactions
    /// (by the head of the queue, or to advance the commit log).
    pub segment_takeovers: u64,
}

impl StatsSnapshot {
    /// All aborts.
    pub fn aborts(&self) -> u64 {
        self.aborts_write_write + self.aborts_write_read + self.aborts_explicit
    }
}

impl Stats {
    /// Adds `v` to a shared counter; nothing for 0. The write barrier's slow path added the
    /// pages it privatized, usually none, at every first write of an object: a locked add
    /// on a line every segment writes, so on 2 segments each one moved it between the cores.
    pub(crate) fn add(c: &AtomicU64, v: u64) {
        if v != 0 {
            c.fetch_add(v, Relaxed);
        }
    }

    pub(crate) fn count_abort(&self, cause: AbortCause) {
        match cause {
            AbortCause::WriteWrite => Self::add(&self.aborts_ww, 1),
            AbortCause::WriteRead => Self::add(&self.aborts_wr, 1),
            AbortCause::Explicit => Self::add(&self.aborts_explicit, 1),
        }
    }

    pub(crate) fn log_conflict(&self, c: Conflict) {
        self.conflicts_total.fetch_add(1, Relaxed);
        let mut l = self.conflicts.lock().unwrap();
        if l.len() < CONFLICT_LOG_CAP {
            l.push(c);
        }
    }

    /// The shared counters (the per-segment ones are added by [`crate::Stm::stats`]).
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            commits: 0,
            aborts_write_write: self.aborts_ww.load(Relaxed),
            aborts_write_read: self.aborts_wr.load(Relaxed),
            aborts_explicit: self.aborts_explicit.load(Relaxed),
            pages_privatized: self.pages_privatized.load(Relaxed),
            sync_wait_ns: self.sync_wait_ns.load(Relaxed),
            paused_ns: self.paused_ns.load(Relaxed),
            syncs: self.syncs.load(Relaxed),
            ww_waits: self.ww_waits.load(Relaxed),
            marker_resets: self.marker_resets.load(Relaxed),
            conflicts_total: self.conflicts_total.load(Relaxed),
            conflicts: self.conflicts.lock().unwrap().clone(),
            minor_collections: 0,
            bytes_promoted: 0,
            minor_ns: 0,
            minor_max_ns: 0,
            shadow_max_slots: 0,
            major_collections: self.major_collections.load(Relaxed),
            major_ns: self.major_ns.load(Relaxed),
            major_max_ns: self.major_max_ns.load(Relaxed),
            major_freed_bytes: self.major_freed_bytes.load(Relaxed),
            major_idle: self.major_idle.load(Relaxed),
            major_phase_ns: self.major_phase_ns.each_ref().map(|c| c.load(Relaxed)),
            live_bytes: self.live_bytes.load(Relaxed),
            pages_reshared: self.pages_reshared.load(Relaxed),
            validations: 0,
            validate_ns: 0,
            imported_entries: 0,
            imported_bytes: 0,
            inevitable_waits: self.inevitable_waits.load(Relaxed),
            log_entries: 0,
            log_bytes: 0,
            log_max_entries: self.log_max_entries.load(Relaxed),
            log_max_bytes: self.log_max_bytes.load(Relaxed),
            segment_wakeups: self.segment_wakeups.load(Relaxed),
            segment_takeovers: self.segment_takeovers.load(Relaxed),
        }
    }
}
