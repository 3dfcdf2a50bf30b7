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
    Mnemonic, SymbolResolver, SymbolResult,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::ops::Range;
use std::sync::Arc;

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

/// Names for the addresses a listing mentions: the imported runtime helpers and every
/// function of the code space. Jump targets inside the listed function become labels.
/// Because no absolute address is printed except once per function header, the listings of
/// two runs of the same program diff cleanly.
#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    /// Imported symbols, by exact address (helpers JIT code calls by absolute address).
    imports: BTreeMap<u64, String>,
    /// Functions by start address: (end, name).
    functions: BTreeMap<u64, (u64, String)>,
}

impl SymbolTable {
    /// An imported symbol (a helper JIT code may call through `mov reg, imm64; call reg`).
    pub fn add_import(&mut self, address: u64, name: &str) {
        self.imports.insert(address, name.to_string());
    }

    /// A function occupying `len` bytes from `address`.
    pub fn add_function(&mut self, address: u64, len: u64, name: &str) {
        self.functions
            .insert(address, (address + len, name.to_string()));
    }

    /// The name of `address`: an import, a function, or `function+0xOFF` inside one.
    fn name_of(&self, address: u64) -> Option<(u64, &str)> {
        if let Some(n) = self.imports.get(&address) {
            return Some((address, n));
        }
        let (&start, (end, name)) = self.functions.range(..=address).next_back()?;
        (address < *end).then_some((start, name.as_str()))
    }
}

/// The iced-x86 resolver of one function's listing: branch targets inside it are its labels,
/// other addresses come from the [`SymbolTable`].
struct Resolver {
    table: Option<Arc<SymbolTable>>,
    /// Labels of the listed function, by absolute address.
    labels: Arc<BTreeMap<u64, String>>,
}

impl SymbolResolver for Resolver {
    fn symbol(
        &mut self,
        _instruction: &Instruction,
        _operand: u32,
        _instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        if let Some(label) = self.labels.get(&address) {
            return Some(SymbolResult::with_str(address, label));
        }
        let (start, name) = self.table.as_deref()?.name_of(address)?;
        // iced-x86 prints `name+0xOFF` when the symbol starts before the address.
        Some(SymbolResult::with_str(start, name))
    }
}

/// The label of the `n`th branch target of a function (in address order).
fn label_name(n: usize) -> String {
    format!(".L{n}")
}

/// Branch targets inside `[ip, ip + code_end)`, decoded from `starts`, as labels.
fn branch_labels(
    code: &[u8],
    ip: u64,
    starts: &BTreeSet<u32>,
    code_end: u32,
) -> BTreeMap<u64, String> {
    let mut targets = BTreeSet::new();
    for &off in starts.range(..code_end) {
        let Some(i) = decode_at(code, off) else {
            continue;
        };
        let is_near_branch = matches!(
            i.flow_control(),
            FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
        ) && i.op0_kind() == iced_x86::OpKind::NearBranch64;
        let target = i.near_branch_target();
        if is_near_branch && target < code_end as u64 {
            targets.insert(ip + target);
        }
    }
    targets
        .into_iter()
        .enumerate()
        .map(|(n, a)| (a, label_name(n + 1)))
        .collect()
}

/// For an indirect `call reg` whose register was loaded with a named address earlier in the
/// same block, the comment naming the callee; tracks such loads in `named` (a register's entry
/// is dropped when another instruction writes it, and all at calls).
fn indirect_call_name(
    i: &Instruction,
    table: &SymbolTable,
    named: &mut HashMap<iced_x86::Register, String>,
) -> Option<String> {
    use iced_x86::OpKind;
    if i.flow_control() == FlowControl::IndirectCall && i.op0_kind() == OpKind::Register {
        let name = named.remove(&i.op0_register().full_register());
        named.clear();
        return name.map(|n| format!("calls {n}"));
    }
    if i.op_count() == 0 || i.op0_kind() != OpKind::Register {
        return None;
    }
    let reg = i.op0_register().full_register();
    named.remove(&reg);
    if i.mnemonic() == Mnemonic::Mov && i.op1_kind() == OpKind::Immediate64 {
        if let Some((start, name)) = table.name_of(i.immediate64()) {
            if start == i.immediate64() {
                named.insert(reg, name.to_string());
            }
        }
    }
    None
}

/// Whether `i` is `mov reg, imm64` of an address the table names (its last 8 bytes).
fn named_address(i: &Instruction, table: &SymbolTable) -> bool {
    i.op_count() == 2
        && i.op1_kind() == iced_x86::OpKind::Immediate64
        && table.name_of(i.immediate64()).is_some()
}

/// How a listing is printed.
#[derive(Clone, Debug, Default)]
pub struct Style {
    /// Intel or AT&T.
    pub syntax: Syntax,
    /// Names for addresses; `None` prints raw addresses (jumps inside the function still go
    /// to labels).
    pub symbols: Option<Arc<SymbolTable>>,
}

/// Disassemble `code` (its first byte at address `ip`): the instructions
/// starting at `starts` (offsets; NOP padding between them is decoded too),
/// up to `code_end`; bytes that are not instructions (inline jump tables,
/// trap stubs and constants after `code_end`) are summarized. Each line starts
/// with the instruction's offset in the function.
pub fn listing(
    code: &[u8],
    ip: u64,
    starts: &[u32],
    code_end: u32,
    syntax: Syntax,
    annotations: &[Annotation],
) -> String {
    let style = Style {
        syntax,
        symbols: None,
    };
    listing_with(code, ip, starts, code_end, &style, annotations, &[])
}

/// [`listing`] with symbols and labels (see [`Style`]), and `headings`: lines printed
/// before the instruction at an offset (the source line a region of code comes from).
pub fn listing_with(
    code: &[u8],
    ip: u64,
    starts: &[u32],
    code_end: u32,
    style: &Style,
    annotations: &[Annotation],
    headings: &[(u32, String)],
) -> String {
    let starts: BTreeSet<u32> = starts.iter().copied().collect();
    let end = (code_end as usize).min(code.len()) as u32;
    let labels = Arc::new(branch_labels(code, ip, &starts, end));
    let resolver = || -> Option<Box<dyn SymbolResolver>> {
        Some(Box::new(Resolver {
            table: style.symbols.clone(),
            labels: labels.clone(),
        }))
    };
    let mut formatter: Box<dyn Formatter> = match style.syntax {
        Syntax::Intel => Box::new(IntelFormatter::with_options(resolver(), None)),
        Syntax::Att => Box::new(GasFormatter::with_options(resolver(), None)),
    };
    let mut headings = headings.iter().peekable();
    // Registers loaded with a named address (`mov rax, stmjit_binop`), so that the indirect
    // call through them is annotated with the name too.
    let mut named: HashMap<iced_x86::Register, String> = HashMap::new();
    let mut out = String::new();
    let mut off: u32 = 0;
    while off < end {
        if !starts.contains(&off) {
            // Data between instructions (an inline jump table).
            let next = starts.range(off..).next().copied().unwrap_or(end).min(end);
            let _ = writeln!(out, "  {off:04x}: ; {} bytes of data", next - off);
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
            while let Some((_, text)) = headings.next_if(|(h, _)| *h <= o) {
                let _ = writeln!(out, "; {text}");
            }
            if let Some(label) = labels.get(&i.ip()) {
                let _ = writeln!(out, "{label}:");
                named.clear();
            }
            let call_note = style
                .symbols
                .as_deref()
                .and_then(|table| indirect_call_name(&i, table, &mut named));
            let mut text = String::new();
            formatter.format(&i, &mut text);
            let bytes = &code[o as usize..o as usize + i.len()];
            let named_imm = style
                .symbols
                .as_deref()
                .is_some_and(|t| named_address(&i, t));
            // A named address differs between runs: its bytes are shown as `xx`.
            let hex: String = bytes
                .iter()
                .enumerate()
                .map(|(k, b)| {
                    if named_imm && k + 8 >= bytes.len() {
                        "xx".to_string()
                    } else {
                        format!("{b:02x}")
                    }
                })
                .collect();
            let mut line = format!("  {o:04x}: {hex:<24} {text}");
            let marks = annotations
                .iter()
                .filter(|a| a.range.contains(&o))
                .map(|a| {
                    if a.range.start == o {
                        a.label.as_str()
                    } else {
                        "|"
                    }
                });
            for mark in call_note.as_deref().into_iter().chain(marks) {
                let pad = if line.len() < 64 {
                    " ".repeat(64 - line.len())
                } else {
                    " ".into()
                };
                let _ = write!(line, "{pad}; {mark}");
            }
            out.push_str(&line);
            out.push('\n');
        }
        if at < next_start {
            let _ = writeln!(out, "  {at:04x}: ; {} bytes of data", next_start - at);
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

/// What the code generator adds to one function's listing.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    /// Comments on code ranges (e.g. [`srcloc_annotations`] for allocation and poll
    /// sequences).
    pub annotations: Vec<Annotation>,
    /// Lines printed before the instruction at an offset: the source line its code comes
    /// from.
    pub headings: Vec<(u32, String)>,
}

/// The header line of a function's listing: its name, size and rewrite figures (no address,
/// so that listings of two runs diff cleanly).
fn header(f: &CompiledFunction, code: &[u8]) -> String {
    format!(
        "; function {}{}: {} bytes; {}\n",
        f.name,
        if f.is_trampoline {
            " (entry trampoline)"
        } else {
            ""
        },
        code.len(),
        f.rewrite.stats
    )
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
    let notes = Notes {
        annotations: extra.to_vec(),
        headings: Vec::new(),
    };
    let style = Style {
        syntax,
        symbols: None,
    };
    dump_function_with(f, code, ip, &style, &notes)
}

/// [`dump_function`] with a [`Style`] and the code generator's [`Notes`].
pub fn dump_function_with(
    f: &CompiledFunction,
    code: &[u8],
    ip: u64,
    style: &Style,
    notes: &Notes,
) -> String {
    let mut ann = barrier_annotations(&f.rewrite.accesses, code);
    ann.extend_from_slice(&notes.annotations);
    let mut out = header(f, code);
    out.push_str(&listing_with(
        code,
        ip,
        &f.rewrite.instruction_starts,
        f.rewrite.code_end,
        style,
        &ann,
        &notes.headings,
    ));
    out
}

/// The names of every function of `jit` and of the imports it was created with: what makes
/// a listing's calls and jumps readable (see [`SymbolTable`]).
pub fn symbol_table(jit: &Jit) -> SymbolTable {
    let mut table = SymbolTable::default();
    for (name, address) in jit.imports() {
        table.add_import(*address, name);
    }
    for f in jit.functions() {
        if let Some(code) = jit.final_code(f.id) {
            table.add_function(jit.code_ptr(f.id) as u64, code.len() as u64, &f.name);
        }
    }
    table
}

/// What the header terms of a listing mean (printed once at the top of `--dump-asm`).
pub const LEGEND: &str = "\
; How to read this listing
;   Each function starts with `; function NAME: SIZE bytes; FIGURES`. Lines give the
;   offset in the function, the bytes, the instruction and what the code generator made it for.
;   Jumps go to labels (.L1, ...); calls and helper addresses are shown by name (the bytes
;   of such an address show as xx), so the listings of two runs diff cleanly.
;   gs accesses {Kind: n}: memory accesses through the segment base put in `gs:` form by the
;     rewrite pass (Load, Store, Compare = test/cmp, ReadModifyWrite).
;   left in r15 form {Reason: n}: accesses left as `[copy-of-r15 + ...]` (same memory, one
;     instruction longer to reach): WouldGrow = the gs encoding would not fit in place;
;     NotProvable = the register holds a copy of r15 on some paths only; R15Mode =
;     `--segment-base r15`.
;   copies: `mov reg, r15` copies of the segment base (one per use Cranelift emits). After the
;     rewrite most are dead (their accesses now use gs:).
;   dead copies removed: copies whose register no path reads before writing it, dropped; the
;     code after one moves back up to an instruction written three bytes longer (a 4-byte
;     displacement or immediate instead of 1), so nothing else moves.
;   loads fused: a byte load that would grow in gs form (`[copy + disp32]`), right after its copy
;     and into the copy's register, written as one gs load over both (the read version's
;     `movzx reg, byte gs:[1000h]`, with a 32-bit address: prefix 0x67).
;   copy moves: register moves of such a copy that the pass followed.
;   nop bytes: padding after rewritten instructions, so that they keep their offsets.
;   copy value reads: instructions reading a register that may hold a copy as a plain value
;     (register-allocator artifacts, accepted and counted).
;   reloads: `mov r15, [ctx+seg_base]` after a runtime call that may move the thread to
;     another segment.
;   read barrier: the one-byte read-marker store `mov byte gs:[ref >> 4], version`.
;   write barrier: the flag test `test byte gs:[ref + flags], bit; jnz slow path`.
;   safe-point poll (a compiler's, e.g. stmjit's): `add qword [copy-of-r15 + budget], -1`,
;     the word read again, `jl slow path`: one word is both the transaction budget and the
;     request flag (a request makes it very negative). At loop back-edges and at the entry of
;     functions that have a loop or a call.
";

/// The `--dump-asm` text of the finalized functions of `jit` that `wanted` accepts, in
/// declaration order: the [`LEGEND`], then each function with its header, barrier
/// annotations and the code generator's [`Notes`]; jumps as labels, calls and helpers by
/// name. `None` if `wanted` accepted no function.
pub fn dump_asm(
    jit: &Jit,
    syntax: Syntax,
    wanted: impl Fn(&CompiledFunction) -> bool,
    notes: impl Fn(&CompiledFunction) -> Notes,
) -> Option<String> {
    let mut functions: Vec<&CompiledFunction> = jit.functions().filter(|f| wanted(f)).collect();
    if functions.is_empty() {
        return None;
    }
    functions.sort_by_key(|f| f.id.as_u32());
    let style = Style {
        syntax,
        symbols: Some(Arc::new(symbol_table(jit))),
    };
    let mut out = String::from(LEGEND);
    out.push('\n');
    for f in functions {
        let Some(code) = jit.final_code(f.id) else {
            continue;
        };
        let ip = jit.code_ptr(f.id) as u64;
        out.push_str(&dump_function_with(f, code, ip, &style, &notes(f)));
        out.push('\n');
    }
    Some(out)
}

/// One instruction in Intel syntax (for messages and tests).
pub fn intel_text(i: &Instruction) -> String {
    intel(i)
}
