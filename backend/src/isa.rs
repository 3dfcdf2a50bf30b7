//! The Cranelift target the JIT compiles for.
//!
//! One place decides the code-generation settings, because the `%gs` rewrite
//! depends on them: the pinned register (r15 = segment base) must be reserved,
//! and `machine_code_cfg_info` must be on so that the rewrite knows the exact
//! block starts of the final code.

use cranelift_codegen::isa::{OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};

/// Why the ISA could not be built (unsupported host, bad setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsaError(pub String);

impl std::fmt::Display for IsaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot build the Cranelift ISA: {}", self.0)
    }
}

impl std::error::Error for IsaError {}

/// Build the host ISA with the settings the JIT needs:
/// * `opt_level=speed`: the language is compiled for speed;
/// * `enable_pinned_reg=true`: r15 is reserved and holds the segment base
///   (`get_pinned_reg` in the IR);
/// * `is_pic=false`: cranelift-jit places code at known addresses;
/// * `machine_code_cfg_info=true`: `bb_starts` for the rewrite pass;
/// * `enable_verifier` only in debug builds: Cranelift's IR verifier ran after every
///   optimization pass of every function, a third of a release build's compile time
///   (richards.lang). `STMJIT_VERIFY=1` runs it once per function in any build; the escape
///   checks of the `%gs` rewrite always run;
/// * the native CPU features (detected by `cranelift-native`).
pub fn host_isa() -> Result<OwnedTargetIsa, IsaError> {
    host_isa_tier(Tier::Optimized)
}

/// How much work code generation does for a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// `opt_level=speed` and the backtracking register allocator: the best code.
    Optimized,
    /// `opt_level=none` and the single-pass register allocator: code generation several
    /// times cheaper in time and memory, in time and memory linear in the function's size,
    /// for slower code. For huge functions (see `Jit::quick_tier_above`), where the other
    /// tier's cost grows faster than the function.
    Quick,
    /// `opt_level=none` and the backtracking register allocator: about as quick to make as
    /// [`Tier::Quick`] (10 to 20% more), and code less than half its size, which keeps
    /// values in registers instead of a stack slot each. For code that stays for the run
    /// though it runs rarely (the parts of a huge function), where its size, not its speed,
    /// is what counts.
    Compact,
}

/// [`host_isa`] for the tier `tier`.
pub fn host_isa_tier(tier: Tier) -> Result<OwnedTargetIsa, IsaError> {
    let (opt_level, regalloc) = match tier {
        Tier::Optimized => ("speed", "backtracking"),
        Tier::Quick => ("none", "single_pass"),
        Tier::Compact => ("none", "backtracking"),
    };
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return Err(IsaError("stmjit runs on Linux x86-64 only".into()));
    }
    let mut flags = settings::builder();
    for (name, value) in [
        ("opt_level", opt_level),
        ("regalloc_algorithm", regalloc),
        ("enable_pinned_reg", "true"),
        ("is_pic", "false"),
        ("machine_code_cfg_info", "true"),
        (
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        ),
    ] {
        flags
            .set(name, value)
            .map_err(|e| IsaError(format!("{name}={value}: {e}")))?;
    }
    let builder = cranelift_native::builder().map_err(|e| IsaError(e.to_string()))?;
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| IsaError(e.to_string()))
}

/// The front-end configuration of the host ISA (pointer type, call
/// convention), needed by `FunctionBuilder::finalize`.
pub fn frontend_config() -> Result<TargetFrontendConfig, IsaError> {
    Ok(host_isa()?.frontend_config())
}
