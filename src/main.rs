//! `stmjit`: the command line.
//!
//! `stmjit run [--threads N] [--gil] [--stats] [--stats-json FILE] [--trace FILE] [--timeline FILE]
//! [--dump-asm[=FILE]] [--dump-asm-at start|exit] [--perf-map] [--asm-syntax intel|att] [--segment-base gs|r15] [--interp] prog.lang [ARGS...]`
//! runs a program: compiled by Cranelift (`stmjit-jit`) onto the STM runtime, its threads in
//! parallel transactions, or on the reference interpreter of `stmjit-lang` with `--interp`.
//!
//! `stmjit timeline TRACE.json [-o FILE.svg]` draws a saved `--trace` file as the SVG
//! timeline that `--timeline` draws (`stmjit-timeline`).
//!
//! Environment switches for testing: `STMJIT_ABORT_PROBABILITY=P` makes each commit of a
//! transaction that can abort abort instead with probability P (it then restarts);
//! `STMJIT_BUDGET=N` sets the transaction length (loop back-edges and calls of functions that
//! loop or call); `STMJIT_NURSERY=BYTES` the nursery size.

use clap::{Parser, Subcommand};

/// An allocation failure while compiling ends the run as a `MemoryError` (exit status 1),
/// not an abort (see `stmjit_jit::oom`).
#[global_allocator]
static ALLOC: stmjit_jit::oom::ExitWhileCompiling = stmjit_jit::oom::ExitWhileCompiling;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status for usage errors, shared with syntax errors (LANGUAGE.md, "Errors").
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "stmjit",
    version,
    about = "Run stmjit programs in parallel on software transactional memory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a program.
    #[command(after_help = stmjit_jit::switches::HELP)]
    Run {
        /// Run on the reference interpreter (the test oracle) instead of the JIT.
        #[arg(long)]
        interp: bool,
        /// Number of segments: transactions that run in parallel (default: the CPUs present).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=254))]
        threads: Option<u16>,
        /// One global lock instead of parallel transactions, and no read barriers: the
        /// baseline STM is measured against.
        #[arg(long)]
        gil: bool,
        /// Print commits, aborts by cause, time lost, sync pauses, GC figures and the top
        /// conflict sites (both sides) to stderr at exit.
        #[arg(long)]
        stats: bool,
        /// Write the figures of `--stats` (with every conflict site) as JSON to FILE at
        /// exit, for scripts; works with or without `--stats`.
        #[arg(long, value_name = "FILE")]
        stats_json: Option<PathBuf>,
        /// Record every transaction (outcome, abort cause, conflict sites), wait and
        /// collection per thread, and write them at exit as Chrome trace-event JSON to FILE
        /// (open it in Perfetto or chrome://tracing).
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Record the same events as `--trace` and draw them at exit as an SVG timeline to
        /// FILE: one row per thread, transactions as blocks coloured by outcome, waits and
        /// collections shaded, conflicts as arrows.
        #[arg(long, value_name = "FILE")]
        timeline: Option<PathBuf>,
        /// Print the machine code of every function (barriers, polls marked) to stderr, or
        /// to FILE; the program still runs.
        #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true)]
        dump_asm: Option<Option<PathBuf>>,
        /// With `--dump-asm`: list only this function (its name in the program, e.g. `fill`
        /// or `Account.deposit`, or its full listing name, e.g. `f0_fill`).
        #[arg(long, value_name = "NAME")]
        dump_asm_fn: Option<String>,
        /// When `--dump-asm` compiles and lists: `start` compiles every function before the
        /// program runs and lists them all; `exit` compiles each function at its first call,
        /// as a run without a listing does (so with what the run knows by then, e.g. guessed
        /// attribute slots), and lists the functions compiled when the program ends.
        #[arg(long, value_enum, value_name = "WHEN", default_value_t = DumpAsmAt::Start)]
        dump_asm_at: DumpAsmAt,
        /// Write `/tmp/perf-PID.map`, which `perf report` reads to name JIT code: a line per
        /// compiled function (address, size, name), written as each is compiled.
        #[arg(long)]
        perf_map: bool,
        /// Syntax of `--dump-asm`.
        #[arg(long, value_enum, default_value_t = AsmSyntax::Intel)]
        asm_syntax: AsmSyntax,
        /// How JIT code reaches its segment: `gs:` prefixes, or the pinned r15 register.
        #[arg(long, value_enum, default_value_t = SegBase::Gs)]
        segment_base: SegBase,
        /// The program file.
        program: PathBuf,
        /// Arguments passed to the program, returned by `args()`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Draw a trace written by `run --trace` as an SVG timeline (what `run --timeline`
    /// draws): one row per thread, transactions as blocks coloured by outcome.
    Timeline {
        /// The trace (Chrome trace-event JSON from `stmjit run --trace`).
        trace: PathBuf,
        /// Where to write the SVG (default: the trace's name with `.svg`).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Width of the time axis in pixels.
        #[arg(long, value_name = "PX", default_value_t = 1000,
              value_parser = clap::value_parser!(u32).range(200..=20000))]
        width: u32,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DumpAsmAt {
    Start,
    Exit,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AsmSyntax {
    Intel,
    Att,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SegBase {
    Gs,
    R15,
}

fn main() -> ExitCode {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("error: stmjit runs on Linux x86-64 only");
        return ExitCode::from(EXIT_USAGE);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Run {
            interp,
            threads,
            gil,
            stats,
            stats_json,
            trace,
            timeline,
            dump_asm,
            dump_asm_fn,
            dump_asm_at,
            perf_map,
            asm_syntax,
            segment_base,
            program,
            args,
        } => {
            if let Err(e) = stmjit_jit::switches::Switches::from_env() {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
            let status = if interp {
                stmjit_lang::run_file(&program, args, std::process::exit)
            } else {
                let opts = stmjit_jit::program::Options {
                    segment_base: Some(match segment_base {
                        SegBase::Gs => stmjit_jit::SegmentBase::Gs,
                        SegBase::R15 => stmjit_jit::SegmentBase::R15,
                    }),
                    dump_asm,
                    dump_asm_only: dump_asm_fn,
                    dump_asm_at_exit: matches!(dump_asm_at, DumpAsmAt::Exit),
                    perf_map,
                    syntax: match asm_syntax {
                        AsmSyntax::Intel => stmjit_jit::Syntax::Intel,
                        AsmSyntax::Att => stmjit_jit::Syntax::Att,
                    },
                    nursery: None,
                    threads: threads.map(usize::from),
                    gil,
                    stats,
                    stats_json,
                    trace,
                    timeline,
                    // The one place that ends the process from inside a run: a thread in
                    // which the program failed (see `stmjit_lang::Exit`).
                    exit: std::process::exit,
                };
                stmjit_jit::program::run_file(&program, args, &opts)
            };
            ExitCode::from(u8::try_from(status).unwrap_or(1))
        }
        Command::Timeline {
            trace,
            output,
            width,
        } => draw_timeline(&trace, output, width),
    }
}

/// `stmjit timeline`: reads the trace, writes the SVG. An unreadable or malformed trace,
/// or an unwritable output, is an error (status 1) naming the file.
fn draw_timeline(trace: &std::path::Path, output: Option<PathBuf>, width: u32) -> ExitCode {
    let out = output.unwrap_or_else(|| trace.with_extension("svg"));
    let bytes = match std::fs::read(trace) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: OSError: cannot read {}: {e}", trace.display());
            return ExitCode::from(1);
        }
    };
    let opts = stmjit_timeline::Options { width };
    let svg = match stmjit_timeline::render_json(&bytes, &opts) {
        Ok(svg) => svg,
        Err(e) => {
            eprintln!("error: ValueError: {}: {e}", trace.display());
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::write(&out, svg) {
        eprintln!("error: OSError: cannot write {}: {e}", out.display());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
