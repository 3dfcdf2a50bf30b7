//! `--dump-asm`: the final bytes of a function, disassembled with iced-x86,
//! with the barrier, allocation and poll sequences marked by comments.
//!
//! # Where the annotations come from
//! Cranelift keeps no general map from IR to code offsets, so two sources are
//! combined:
//! 1. **The rewrite pass itself** ([`barrier_annotations`]): it knows exactly
//!    which instructions access the segment. The compiler's convention makes
//!    them classifiable: the only *byte-wide* segment accesses it emits are the
//!    read marker (a byte store: `mov byte gs:[ref>>4], v`) and the
//!    write-barrier flag (a byte load or test of `gs:[ref+flags]`, followed by
//!    the test and the conditional branch to the slow path). This needs nothing
//!    from the compiler and works in both `gs` and `r15` modes.
//! 2. **Source locations** ([`srcloc_annotations`]): the compiler gives the IR
//!    of a sequence (an allocation fast path, a safe-point poll) a `SourceLoc`
//!    of its choosing with `FunctionBuilder::set_srcloc`, and Cranelift
//!    reports the code ranges of every `SourceLoc` (kept in
//!    [`crate::CompiledFunction::srclocs`]). The compiler then maps its own
//!    locations to labels. Side-effecting instructions (loads, stores, calls,
//!    branches) keep their location through optimization, which is what these
//!    sequences are made of.

use crate::gs_rewrite::{intel, AccessKind, SegmentAccess};
use crate::module::{CompiledFunction, Jit};
use cranelift_codegen::ir::SourceLoc;
use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Formatter, GasFormatter, Instruction, IntelFormatter,
    Mnemonic,
};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::ops::Range;

/// Assembly syntax of the listing (`--asm-syntax intel|att`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Syntax {
    /// `mov byte ptr gs:[r10],1`
    #[default]
    Intel,
    /// `movb $1,%gs:(%r10)`
    Att,
}

impl std::str::FromStr for Syntax {
    type Err = String;
    /// `intel` or `att`, as in `--asm-syntax intel|att`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "intel" => Ok(Syntax::Intel),
            "att" => Ok(Syntax::Att),
            _ => Err(format!(
                "unknown assembly syntax `{s}` (expected intel or att)"
            )),
        }
    }
}

/// A comment attached to a range of code offsets (relative to the function).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// Offsets covered; the comment is printed on the first instruction and a
    /// continuation mark on the others.
    pub range: Range<u32>,
    /// The comment text.
    pub label: String,
}

/// Label of the read-barrier marker store.
pub const READ_BARRIER: &str = "read barrier: read-marker store";
/// Label of the load of the segment's read version (the byte the read barrier stores).
pub const READ_VERSION: &str = "read version";
/// Label of the write-barrier flag test (load/test + branch to slow path).
pub const WRITE_BARRIER: &str = "write barrier: flag test";

/// The instruction at offset `off`, if valid.
fn decode_at(code: &[u8], off: u32) -> Option<Instruction> {
    let mut d = Decoder::with_ip(
        64,
        code.get(off as usize..)?,
        off as u64,
        DecoderOptions::NONE,
    );
    let i = d.decode();
    (!i.is_invalid()).then_some(i)
}

/// Annotations derived from the segment accesses the rewrite found (see the
/// module documentation for the convention). `code` is the function's code
/// with offsets from 0 (rewritten or not; only lengths and mnemonics matter).
pub fn barrier_annotations(accesses: &[SegmentAccess], code: &[u8]) -> Vec<Annotation> {
    let mut out = Vec::new();
    for a in accesses {
        let form = if a.left.is_none() { "gs" } else { "r15" };
        let start = a.offset;
        let mut end = a.offset + a.len;
        let rv_off = stmjit_runtime::INFO_OFFSET
            + core::mem::offset_of!(stmjit_runtime::SegmentInfo, read_version) as u64;
        let is_rv_load = a.kind == AccessKind::Load
            && a.width == 1
            && decode_at(code, a.offset).is_some_and(|i| {
                i.memory_displacement64() == rv_off && i.memory_index() == iced_x86::Register::None
            });
        let label = match (a.kind, a.width) {
            _ if is_rv_load => format!("{READ_VERSION} ({form})"),
            (AccessKind::Store, 1) => format!("{READ_BARRIER} ({form})"),
            (AccessKind::Load | AccessKind::Compare, 1) => {
                // Extend over the test of the loaded byte and the branch.
                let mut off = end;
                for _ in 0..3 {
                    let Some(i) = decode_at(code, off) else { break };
                    off = i.next_ip() as u32;
                    if i.mnemonic() == Mnemonic::Nop {
                        end = off;
                        continue;
                    }
                    let is_test = matches!(
                        i.mnemonic(),
                        Mnemonic::Test | Mnemonic::And | Mnemonic::Bt | Mnemonic::Cmp
                    );
                    let is_branch = i.flow_control() == FlowControl::ConditionalBranch;
                    if is_test && a.kind == AccessKind::Load || is_branch {
                        end = off;
                    }
                    if is_branch || !is_test {
                        break;
                    }
                }
                format!("{WRITE_BARRIER} ({form})")
            }
            (kind, w) => format!("segment {kind:?} of {w} bytes ({form})").to_lowercase(),
        };
        out.push(Annotation {
            range: start..end,
            label,
        });
    }
    out
}

/// Annotations from the source locations of a function: `label` maps the
/// compiler's own `SourceLoc`s to a comment (e.g. "allocation fast path",
/// "safe-point poll"), or `None` for ordinary code.
pub fn srcloc_annotations(
    srclocs: &[(Range<u32>, SourceLoc)],
    label: impl Fn(SourceLoc) -> Option<String>,
) -> Vec<Annotation> {
    let mut out: Vec<Annotation> = Vec::new();
    for (range, loc) in srclocs {
        let Some(text) = label(*loc) else { continue };
        // Merge adjacent ranges of the same label into one sequence.
        if let Some(last) = out.last_mut() {
            if last.label == text && last.range.end == range.start {
                last.range.end = range.end;
                continue;
            }
        }
        out.push(Annotation {
            range: range.clone(),
            label: text,
        });
    }
    out
}

/// Disassemble `code` (its first byte at address `ip`): the instructions
/// starting at `starts` (offsets; NOP padding between them is decoded too),
/// up to `code_end`; bytes that are not instructions (inline jump tables,
/// trap stubs and constants after `code_end`) are summarized.
pub fn listing(
    code: &[u8],
    ip: u64,
    starts: &[u32],
    code_end: u32,
    syntax: Syntax,
    annotations: &[Annotation],
) -> String {
    let mut intel_f = IntelFormatter::new();
    let mut gas_f = GasFormatter::new();
    let mut out = String::new();
    let starts: BTreeSet<u32> = starts.iter().copied().collect();
    let mut off: u32 = 0;
    let end = (code_end as usize).min(code.len()) as u32;
    while off < end {
        if !starts.contains(&off) {
            // Data between instructions (an inline jump table).
            let next = starts.range(off..).next().copied().unwrap_or(end).min(end);
            let _ = writeln!(
                out,
                "  {:016x}: ; {} bytes of data",
                ip + off as u64,
                next - off
            );
            off = next;
            continue;
        }
        let next_start = starts
            .range(off + 1..)
            .next()
            .copied()
            .unwrap_or(end)
            .min(end);
        // The instruction, then only NOP padding up to the next instruction;
        // anything else before it is data (e.g. a jump table after `jmp reg`).
        let mut d = Decoder::with_ip(
            64,
            &code[off as usize..next_start as usize],
            ip + off as u64,
            DecoderOptions::NONE,
        );
        let mut first = true;
        let mut at = off;
        while d.can_decode() {
            let i = d.decode();
            if !first && (i.is_invalid() || i.mnemonic() != Mnemonic::Nop) {
                break;
            }
            first = false;
            let o = (i.ip() - ip) as u32;
            at = o + i.len() as u32;
            let mut text = String::new();
            match syntax {
                Syntax::Intel => intel_f.format(&i, &mut text),
                Syntax::Att => gas_f.format(&i, &mut text),
            }
            let hex: String = code[o as usize..o as usize + i.len()]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let mut line = format!("  {:016x}: {hex:<24} {text}", i.ip());
            for a in annotations.iter().filter(|a| a.range.contains(&o)) {
                let mark = if a.range.start == o {
                    a.label.as_str()
                } else {
                    "|"
                };
                let pad = if line.len() < 72 {
                    " ".repeat(72 - line.len())
                } else {
                    " ".into()
                };
                let _ = write!(line, "{pad}; {mark}");
            }
            out.push_str(&line);
            out.push('\n');
        }
        if at < next_start {
            let _ = writeln!(
                out,
                "  {:016x}: ; {} bytes of data",
                ip + at as u64,
                next_start - at
            );
        }
        off = next_start;
    }
    if (end as usize) < code.len() {
        let _ = writeln!(
            out,
            "  ; {} bytes of trap stubs and constants",
            code.len() - end as usize
        );
    }
    out
}

/// The `--dump-asm` text of one compiled function: a header with the rewrite
/// statistics, then the listing of `code` (the final bytes, normally
/// [`crate::Jit::final_code`]) at address `ip`, with the barrier annotations
/// and the `extra` ones (from [`srcloc_annotations`]).
pub fn dump_function(
    f: &CompiledFunction,
    code: &[u8],
    ip: u64,
    syntax: Syntax,
    extra: &[Annotation],
) -> String {
    let mut ann = barrier_annotations(&f.rewrite.accesses, code);
    ann.extend_from_slice(extra);
    let mut out = format!(
        "; function {}{}: {} bytes; {}\n",
        f.name,
        if f.is_trampoline {
            " (entry trampoline)"
        } else {
            ""
        },
        code.len(),
        f.rewrite.stats
    );
    out.push_str(&listing(
        code,
        ip,
        &f.rewrite.instruction_starts,
        f.rewrite.code_end,
        syntax,
        &ann,
    ));
    out
}

/// The `--dump-asm` text of every finalized function of `jit`, in declaration order: final
/// relocated bytes at their real addresses, barrier annotations, plus those `extra` returns
/// for each function (e.g. [`srcloc_annotations`] for allocation and poll sequences).
pub fn dump_asm(
    jit: &Jit,
    syntax: Syntax,
    extra: impl Fn(&CompiledFunction) -> Vec<Annotation>,
) -> String {
    let mut functions: Vec<&CompiledFunction> = jit.functions().collect();
    functions.sort_by_key(|f| f.id.as_u32());
    let mut out = String::new();
    for f in functions {
        let Some(code) = jit.final_code(f.id) else {
            continue;
        };
        let ip = jit.code_ptr(f.id) as u64;
        out.push_str(&dump_function(f, code, ip, syntax, &extra(f)));
        out.push('\n');
    }
    out
}

/// One instruction in Intel syntax (for messages and tests).
pub fn intel_text(i: &Instruction) -> String {
    intel(i)
}
