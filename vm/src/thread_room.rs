//! Whether the process has room for one more thread: under `vm.max_map_count` (the
//! mappings a thread adds) and under an address-space limit (`ulimit -v`, the address space
//! it takes). A thread that starts without room does not fail cleanly: std maps its signal
//! stack in the new thread and panics there, outside any handler, when the mapping or the
//! guard page's `mprotect` fails, which aborts the process (a spawn tree of 16 K threads
//! did); and where its 1 GiB stack only just fits, the next small allocation of any thread
//! fails (`memory allocation of 41 bytes failed`, glibc's `failed to register TLS
//! destructor`), an abort too. So a thread is refused, with a MemoryError at its `spawn`,
//! before either can happen.

use super::threads::Threads;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;

/// Memory mappings one more thread may add at most: its stack and guard page, the signal
/// stack and guard page std gives every thread, its shadow stack, and one to spare.
const MAPS_PER_THREAD: u64 = 6;
/// Mappings left free for the rest of the process (the runtime's private page runs, malloc,
/// compiled code) when a thread is refused.
const MAPS_RESERVE: u64 = 1024;

/// Mappings of this process and `vm.max_map_count` (65530, the kernel's default, where it
/// cannot be read).
fn map_count() -> (u64, u64) {
    use std::io::Read;
    let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(65530);
    let mut n = 0u64;
    if let Ok(mut f) = std::fs::File::open("/proc/self/maps") {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(k) = f.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    (n, max)
}

/// Address space one more thread may take besides its stack and shadow stack: the malloc
/// arena glibc gives a new thread (64 MiB reserved) and its signal stack, TLS and guard pages.
const THREAD_EXTRA_BYTES: u64 = 65 << 20;
/// Address space left free for the rest of the process (allocations of every thread, the
/// collector's page runs, compiled code) when a thread is refused under a limit.
const ADDRESS_RESERVE: u64 = 256 << 20;

/// The soft address-space limit (`ulimit -v`, `RLIMIT_AS`) in bytes, `None` if there is none
/// (read once from `/proc/self/limits`: a program cannot change it).
pub(crate) fn address_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = text.lines().find(|l| l.starts_with("Max address space"))?;
        // "Max address space   SOFT   HARD   bytes": "unlimited" does not parse.
        line.split_whitespace().nth(3)?.parse().ok()
    })
}

/// The address space of this process now (`VmSize`, bytes).
fn address_space_in_use() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// Whether one more thread (whose shadow stack takes `shadow_bytes`) fits under the
/// address-space limit, counting the threads started whose shadow stack is not mapped
/// yet, with [`ADDRESS_RESERVE`] left over; `Err` names the figures. Free without a limit.
fn address_room(threads: &Threads, shadow_bytes: usize) -> Result<(), String> {
    let Some(limit) = address_limit() else {
        return Ok(());
    };
    let Some(used) = address_space_in_use() else {
        return Ok(());
    };
    let unmapped = shadow_bytes as u64 + THREAD_EXTRA_BYTES;
    let starting = threads.starting.load(Relaxed);
    let need = stmjit_lang::stack::BIG_STACK as u64 + unmapped * (starting + 1) + ADDRESS_RESERVE;
    if used.saturating_add(need) > limit {
        let mib = |b: u64| b >> 20;
        return Err(format!(
            "no address space for its stack ({} MiB in use, {} MiB more needed, limit {} MiB)",
            mib(used),
            mib(need),
            mib(limit)
        ));
    }
    Ok(())
}

/// Whether one more thread fits (its shadow stack taking `shadow_bytes`): under the
/// address-space limit, and under `vm.max_map_count`; `Err` says which and names the
/// counts. The maps are counted (a read of `/proc/self/maps`) only once the threads allowed
/// by the previous count have started, so a program far from the limit reads it rarely.
pub(crate) fn room_for_a_thread(threads: &Threads, shadow_bytes: usize) -> Result<(), String> {
    address_room(threads, shadow_bytes)?;
    if threads.map_budget.fetch_sub(1, Relaxed) > 0 {
        return Ok(());
    }
    let (n, max) = map_count();
    let free = max.saturating_sub(n + MAPS_RESERVE);
    if free < MAPS_PER_THREAD {
        threads.map_budget.store(0, Relaxed);
        return Err(format!(
            "too many memory mappings ({n} in use, vm.max_map_count is {max})"
        ));
    }
    threads
        .map_budget
        .store((free / MAPS_PER_THREAD) as i64 - 1, Relaxed);
    Ok(())
}
