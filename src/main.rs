//! `stmjit`: the command line.
//!
//! `stmjit run prog.lang [ARGS...]` runs a program. Until the JIT lands, programs run on the
//! reference interpreter of `stmjit-lang`, selected with `--interp`.

use clap::{Parser, Subcommand};
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
    Run {
        /// Run on the reference interpreter (the test oracle) instead of the JIT.
        #[arg(long)]
        interp: bool,
        /// The program file.
        program: PathBuf,
        /// Arguments passed to the program, returned by `args()`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
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
            program,
            args,
        } => {
            if !interp {
                eprintln!("error: the JIT is not built yet; run with --interp");
                return ExitCode::from(EXIT_USAGE);
            }
            let status = stmjit_lang::run_file(&program, args);
            ExitCode::from(u8::try_from(status).unwrap_or(1))
        }
    }
}
