//! `--dump-asm` for a whole program: the backend's listing ([`stmjit_backend::disasm`]) with
//! what only the compiler knows: the source line each region of code comes from, the names
//! of the sequences it emits (polls, allocation, fast paths), and which functions to show.

use crate::compile::{
    loc_kind, loc_line, LOC_ALLOC, LOC_ATTR_FAST, LOC_CARD_WB, LOC_FLOAT_BITS, LOC_LIST_FAST,
    LOC_POLL, LOC_REGION_REPAIR, LOC_RV_RELOAD,
};
use cranelift_codegen::ir::SourceLoc;
use std::io::Write;
use stmjit_backend::disasm::{dump_asm, srcloc_annotations, Notes, Syntax};
use stmjit_backend::{CompiledFunction, Jit};

/// What `--dump-asm` prints and where.
#[derive(Clone, Debug, Default)]
pub struct ListingOptions {
    /// `None`: no listing; `Some(None)`: stderr; `Some(Some(path))`: that file.
    pub target: Option<Option<std::path::PathBuf>>,
    /// Assembly syntax.
    pub syntax: Syntax,
    /// `--dump-asm-fn NAME`: only the functions this names (see [`function_matches`]).
    pub only: Option<String>,
}

/// Whether `--dump-asm-fn pattern` selects `f`: its full name (`f0_fill`, `a2` and `t2`,
/// the entry of functions of 2 words called from Rust and its trampoline,
/// `wb_slow (preserve_all stub)`), or the program's name of a compiled function
/// (`fill`, `Account.deposit`: the name after the `fN_` prefix). `<module>` also selects
/// the parts of a huge module body (`<module>#1`, `<module>#2`...: see
/// `compile::parts`), and a function's name those of its huge body and displays
/// (`f0_fill#1`, `f0_fill#items3`...).
pub fn function_matches(f: &CompiledFunction, pattern: &str) -> bool {
    if f.name == pattern {
        return true;
    }
    // A part `NAME#k` is selected with its function.
    let name = match f.name.rsplit_once('#') {
        Some((whole, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric()) => whole,
        _ => &f.name[..],
    };
    if name == pattern {
        return true;
    }
    let Some(rest) = name.strip_prefix('f') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].strip_prefix('_') == Some(pattern)
}

/// The `--dump-asm` label of the sequences the compiler marks with a source location.
fn sequence_label(loc: SourceLoc) -> Option<String> {
    Some(
        match loc_kind(loc) {
            LOC_POLL => "safe-point poll",
            LOC_CARD_WB => "card write barrier (flag test, card marker, slow path)",
            LOC_LIST_FAST => "list index fast path (type and bounds checks; len, append, pop)",
            LOC_ALLOC => "nursery allocation (bump pointer, limit check)",
            LOC_REGION_REPAIR => "barrier region repair (slow path re-marks, re-tests)",
            LOC_ATTR_FAST => "attribute fast path (instance type, cached shape slot)",
            LOC_FLOAT_BITS => "float bits of an instance slot (raw float test or update)",
            LOC_RV_RELOAD => "version reload after a call (for the next read markers)",
            _ => return None,
        }
        .into(),
    )
}

/// The heading of code that belongs to no source line.
const NO_LINE: &str = "(frame setup, entry poll, return, restart dispatch)";

/// A heading before each region of `f`'s code whose source line differs from the previous
/// region's: `LINE: text` (code is laid out by Cranelift, not in source order, so a line may
/// head several regions).
fn source_headings(f: &CompiledFunction, source: Option<&str>) -> Vec<(u32, String)> {
    let lines: Vec<&str> = source.map(|s| s.lines().collect()).unwrap_or_default();
    let mut out = Vec::new();
    let mut previous = None;
    for (range, loc) in &f.srclocs {
        let line = loc_line(*loc);
        if previous == Some(line) {
            continue;
        }
        previous = Some(line);
        out.push((
            range.start,
            match line {
                Some(line) => {
                    let text = lines.get(line as usize - 1).map_or("", |l| l.trim_end());
                    format!("{line}: {text}")
                }
                None => NO_LINE.to_string(),
            },
        ));
    }
    // The frame setup Cranelift emits before the first located instruction.
    match out.first_mut() {
        Some((at, text)) if text == NO_LINE => *at = 0,
        Some((at, _)) if *at > 0 => out.insert(0, (0, NO_LINE.to_string())),
        _ => {}
    }
    out
}

/// Writes the listing `opts` asks for, of the program whose source is `source` (`None` if
/// it cannot be read: no source text then, line numbers only). `Err` is the exit status:
/// the file cannot be written, or `--dump-asm-fn` names no function.
pub fn write_listing(jit: &Jit, opts: &ListingOptions, source: Option<&str>) -> Result<(), i32> {
    let Some(target) = &opts.target else {
        return Ok(());
    };
    let wanted = |f: &CompiledFunction| {
        opts.only
            .as_deref()
            .is_none_or(|pattern| function_matches(f, pattern))
    };
    let notes = |f: &CompiledFunction| Notes {
        annotations: srcloc_annotations(&f.srclocs, sequence_label),
        headings: source_headings(f, source),
    };
    let Some(text) = dump_asm(jit, opts.syntax, wanted, notes) else {
        let mut names: Vec<&str> = jit
            .functions()
            .filter(|f| !f.is_trampoline)
            .map(|f| f.name.as_str())
            .collect();
        names.sort_unstable();
        eprintln!(
            "error: --dump-asm-fn {}: no such function (compiled: {})",
            opts.only.as_deref().unwrap_or(""),
            names.join(", ")
        );
        return Err(stmjit_lang::EXIT_SYNTAX_ERROR);
    };
    match target {
        None => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Err(stmjit_lang::EXIT_SYNTAX_ERROR);
            }
            if let Some(name) = function_named_like(jit, opts, path) {
                eprintln!(
                    "note: --dump-asm={name} wrote the listing of every function to the file \
                     `{name}`; to list only function {name}, use --dump-asm-fn {name}"
                );
            }
        }
    }
    Ok(())
}

/// The name of a compiled function that `--dump-asm=FILE` looks like it meant to select
/// (`FILE` is a bare name, no directory or extension, and a function has it): the listing
/// went to a file of that name, which a user who typed `--dump-asm=fib` easily misses.
fn function_named_like<'a>(
    jit: &Jit,
    opts: &ListingOptions,
    path: &'a std::path::Path,
) -> Option<&'a str> {
    if opts.only.is_some() || path.extension().is_some() || path.components().count() != 1 {
        return None;
    }
    let name = path.to_str()?;
    jit.functions()
        .any(|f| !f.is_trampoline && function_matches(f, name))
        .then_some(name)
}
