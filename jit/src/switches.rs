//! The `STMJIT_*` environment switches (for tests, benchmarks and debugging), read and
//! checked in one place: a value out of range is a usage error naming the switch and what it
//! accepts, never a panic and never silently ignored. [`HELP`] lists them for `--help`.

/// The switches of the environment, read once per run.
#[derive(Clone, Debug, Default)]
pub struct Switches {
    /// `STMJIT_NURSERY=BYTES`: the nursery size (the tests use 4096 to force a minor
    /// collection every few allocations).
    pub nursery: Option<u64>,
    /// `STMJIT_MOVE_THREADS=1`: each transaction begins in another free segment than the
    /// thread's previous one.
    pub move_threads: bool,
    /// `STMJIT_BUDGET=N`: transaction length in polls: loop back-edges and calls of functions
    /// that loop or call (the others have no entry poll).
    pub budget: Option<i64>,
    /// `STMJIT_ABORT_PROBABILITY=P`: each commit of a transaction that can abort, and each
    /// validation a helper makes in the middle of its work (a method lookup's), aborts
    /// instead with probability P.
    pub abort_probability: Option<f64>,
    /// `STMJIT_VERIFY=1`: Cranelift's verifier on every function, its errors printed.
    pub verify: bool,
    /// `STMJIT_EAGER=1`: every function is compiled before the program runs (as with
    /// `--dump-asm`), not at its first call.
    pub eager: bool,
    /// `STMJIT_QUICK=1`: every function is compiled as huge ones are (locals in frame
    /// slots, the quick code-generation tier), for tests of that path.
    pub quick: bool,
    /// `STMJIT_BENCH_OMIT=write-barrier,poll` (for `benches/barriers.rs` only): compile
    /// without the instance write-barrier test and/or the safe-point polls.
    pub omit: Vec<String>,
    /// `STMJIT_COMMIT_LOG=0`: every writer commit stops the other segments (c7's model)
    /// instead of appending to the runtime's commit log, the default (read by
    /// `StmConfig::default`, checked here).
    pub commit_log: bool,
    /// `STMJIT_HEAP=BYTES`: the heap limit (old space in use plus one nursery's worth of
    /// room) when below the default (3/4 of the old space, which follows the machine's
    /// memory), so that tests reach a full heap, and its major collection, at CI size.
    pub heap: Option<u64>,
    /// `STMJIT_FAIL_PRIVATIZE=N` (tests only): the page privatization after the first N fails
    /// as if `mmap` had, which ends the run as a `MemoryError`.
    pub fail_privatize: Option<u64>,
}

/// The smallest and largest `STMJIT_NURSERY` (the largest fits the default 4 GiB segment,
/// whose nursery may take up to 5/8 of it, with room to spare).
const NURSERY_RANGE: (u64, u64) = (4096, 1 << 30);
/// The smallest and largest `STMJIT_HEAP` (a limit above the default is the default).
const HEAP_RANGE: (u64, u64) = (1 << 20, 1 << 40);
/// The largest `STMJIT_BUDGET`.
const BUDGET_MAX: i64 = 1 << 40;
/// The largest `STMJIT_ABORT_PROBABILITY`: beyond it a long transaction would almost never
/// commit.
const ABORT_PROBABILITY_MAX: f64 = 0.95;
/// What `STMJIT_BENCH_OMIT` may name.
const OMITTABLE: [&str; 2] = ["write-barrier", "poll"];

/// The switches and what they accept, for `stmjit run --help`.
pub const HELP: &str = "\
Environment switches (for tests, benchmarks and debugging; a bad value is a usage error):
  STMJIT_NURSERY=BYTES           nursery size per segment, 4096 to 1073741824 (tests use 4096)
  STMJIT_HEAP=BYTES              heap limit (old space in use plus one nursery), 1048576 to
                                 2^40; at most 3/4 of the old space (the default)
  STMJIT_BUDGET=N                transaction length in loop back-edges and calls (of
                                 functions that loop or call), 1 to 2^40
  STMJIT_ABORT_PROBABILITY=P     each commit of a transaction that can abort (and each
                                 validation inside a method lookup) aborts instead with
                                 probability P (0 to 0.95), then restarts
  STMJIT_MOVE_THREADS=0|1        1: each transaction begins in another free segment than the
                                 thread's previous one
  STMJIT_VERIFY=0|1              1: run Cranelift's verifier on every function
  STMJIT_EAGER=0|1               1: compile every function before the program runs, not at
                                 its first call (as --dump-asm does)
  STMJIT_QUICK=0|1               1: compile every function as huge ones are (locals in frame
                                 slots, no optimization, single-pass register allocation)
  STMJIT_GS_ARCH_PRCTL=0|1       1: switch %gs with the arch_prctl syscall even where
                                 wrgsbase is available
  STMJIT_COMMIT_LOG=0|1          0: every writer commit stops the other transactions;
                                 1 (the default): commits append to a commit log that the
                                 others import at their own safe points
  STMJIT_DEBUG_REWRITE=0|1       1: print the IR of a function whose %gs rewrite fails
  STMJIT_BENCH_OMIT=LIST         comma-separated: write-barrier, poll (benchmarks only: unsafe)
  STMJIT_FAIL_PRIVATIZE=N        tests only: the page privatization after the first N fails as
                                 if mmap had (a MemoryError ends the run), 0 to 2^40";

impl Switches {
    /// Reads and checks every switch; `Err` names the first bad one and what it accepts.
    pub fn from_env() -> Result<Switches, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Switches::from_env`] over any source of values (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Switches, String> {
        let (lo, hi) = NURSERY_RANGE;
        let flag = |name: &str| -> Result<bool, String> {
            match get(name).as_deref().map(str::trim) {
                None | Some("0") => Ok(false),
                Some("1") => Ok(true),
                Some(v) => Err(format!("{name}={v}: expected 0 or 1")),
            }
        };
        let omit = match get("STMJIT_BENCH_OMIT") {
            None => Vec::new(),
            Some(list) => {
                let items: Vec<String> = list
                    .split(',')
                    .map(|w| w.trim().to_string())
                    .filter(|w| !w.is_empty())
                    .collect();
                if let Some(bad) = items.iter().find(|w| !OMITTABLE.contains(&w.as_str())) {
                    return Err(format!(
                        "STMJIT_BENCH_OMIT={list}: expected a comma-separated list of {} (not `{bad}`)",
                        OMITTABLE.join(", ")
                    ));
                }
                items
            }
        };
        flag("STMJIT_GS_ARCH_PRCTL")?;
        flag("STMJIT_DEBUG_REWRITE")?;
        Ok(Switches {
            nursery: number(&get, "STMJIT_NURSERY", lo, hi, "a size in bytes")?,
            move_threads: flag("STMJIT_MOVE_THREADS")?,
            budget: number(&get, "STMJIT_BUDGET", 1, BUDGET_MAX, "a count")?,
            abort_probability: number(
                &get,
                "STMJIT_ABORT_PROBABILITY",
                0.0,
                ABORT_PROBABILITY_MAX,
                "a probability",
            )?,
            verify: flag("STMJIT_VERIFY")?,
            eager: flag("STMJIT_EAGER")?,
            quick: flag("STMJIT_QUICK")?,
            omit,
            commit_log: get("STMJIT_COMMIT_LOG").is_none() || flag("STMJIT_COMMIT_LOG")?,
            heap: number(
                &get,
                "STMJIT_HEAP",
                HEAP_RANGE.0,
                HEAP_RANGE.1,
                "a size in bytes",
            )?,
            fail_privatize: number(
                &get,
                "STMJIT_FAIL_PRIVATIZE",
                0,
                BUDGET_MAX as u64,
                "a count",
            )?,
        })
    }

    /// Whether `STMJIT_BENCH_OMIT` names `what`.
    pub fn omits(&self, what: &str) -> bool {
        self.omit.iter().any(|w| w == what)
    }
}

/// The number switch `name`, if set: `what` from `lo` to `hi`, inclusive.
fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    lo: T,
    hi: T,
    what: &str,
) -> Result<Option<T>, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = get(name) else {
        return Ok(None);
    };
    match text.trim().parse::<T>() {
        Ok(v) if lo <= v && v <= hi => Ok(Some(v)),
        _ => Err(format!("{name}={text}: expected {what} from {lo} to {hi}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Switches, String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Switches::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn good_values_are_read() {
        let s = with(&[
            ("STMJIT_NURSERY", "4096"),
            ("STMJIT_BUDGET", " 50 "),
            ("STMJIT_ABORT_PROBABILITY", "0.3"),
            ("STMJIT_MOVE_THREADS", "1"),
            ("STMJIT_VERIFY", "0"),
            ("STMJIT_EAGER", "1"),
            ("STMJIT_BENCH_OMIT", "poll, write-barrier"),
            ("STMJIT_COMMIT_LOG", "1"),
            ("STMJIT_HEAP", "33554432"),
        ])
        .unwrap();
        assert_eq!(s.heap, Some(32 << 20));
        assert!(s.eager && !s.quick && s.commit_log);
        assert_eq!(s.nursery, Some(4096));
        assert_eq!(s.budget, Some(50));
        assert_eq!(s.abort_probability, Some(0.3));
        assert!(s.move_threads && !s.verify);
        assert!(s.omits("poll") && s.omits("write-barrier"));
        let none = with(&[]).unwrap();
        assert!(none.nursery.is_none() && !none.move_threads && none.omit.is_empty());
        assert!(none.commit_log, "the commit log is the default");
        assert!(!with(&[("STMJIT_COMMIT_LOG", "0")]).unwrap().commit_log);
    }

    #[test]
    fn bad_values_name_the_switch_and_its_range() {
        for (name, value, expected) in [
            ("STMJIT_NURSERY", "1099511627776", "from 4096 to 1073741824"),
            ("STMJIT_NURSERY", "lots", "a size in bytes"),
            ("STMJIT_NURSERY", "100", "from 4096"),
            (
                "STMJIT_HEAP",
                "1000",
                "a size in bytes from 1048576 to 1099511627776",
            ),
            ("STMJIT_HEAP", "32M", "a size in bytes"),
            ("STMJIT_BUDGET", "0", "a count from 1"),
            ("STMJIT_BUDGET", "-5", "a count from 1"),
            (
                "STMJIT_ABORT_PROBABILITY",
                "1.5",
                "a probability from 0 to 0.95",
            ),
            ("STMJIT_ABORT_PROBABILITY", "NaN", "a probability"),
            ("STMJIT_MOVE_THREADS", "yes", "expected 0 or 1"),
            ("STMJIT_VERIFY", "2", "expected 0 or 1"),
            ("STMJIT_EAGER", "yes", "expected 0 or 1"),
            ("STMJIT_QUICK", "2", "expected 0 or 1"),
            ("STMJIT_GS_ARCH_PRCTL", "true", "expected 0 or 1"),
            ("STMJIT_COMMIT_LOG", "on", "expected 0 or 1"),
            ("STMJIT_DEBUG_REWRITE", "yes", "expected 0 or 1"),
            ("STMJIT_BENCH_OMIT", "poll,reads", "(not `reads`)"),
        ] {
            let e = with(&[(name, value)]).unwrap_err();
            assert!(e.starts_with(&format!("{name}={value}: ")), "{e}");
            assert!(e.contains(expected), "{e}");
        }
    }
}
