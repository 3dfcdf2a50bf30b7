//! Node type shared by the GC tests.
use stmjit_runtime::value;
use stmjit_runtime::*;

/// A `node`: header, slot count (tagged int) at 8, then `count` value words: word 0 = id
/// (int), word 1 = id ^ MAGIC (int), words 2.. = user fields.
pub const MAGIC: i64 = 0x5a5a_1234;

pub fn node_size(obj: *const u8) -> usize {
    // SAFETY: called by the runtime on a mapped object whose count word is initialised.
    let w = unsafe { *(obj.add(8) as *const u64) };
    16 + 8
        * (if value::is_int(w) {
            value::to_int(w) as usize
        } else {
            0
        })
}

pub fn node_trace(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    let n = (node_size(obj) - 16) / 8;
    for i in 0..n {
        // SAFETY: the words lie inside the object.
        visit(unsafe { obj.add(16 + 8 * i) } as *mut u64);
    }
}

pub fn node_type(stm: &Stm) -> TypeId {
    stm.register_type(TypeInfo {
        name: "node",
        size: node_size,
        trace: node_trace,
        carded: false,
        trace_card: None,
    })
}

pub fn int(n: i64) -> u64 {
    value::from_int(n).unwrap()
}

pub fn field(f: usize) -> u64 {
    32 + 8 * f as u64
}

/// Allocates a node with `k` user fields and the given id (fields NONE).
pub fn new_node(tx: &mut StmThread, ty: TypeId, id: i64, k: usize) -> Result<Ref, Abort> {
    let r = tx.alloc(ty, 16 + 8 * (2 + k as u64))?;
    tx.write_u64(r, 8, int(2 + k as i64))?;
    tx.write_u64(r, 16, int(id))?;
    tx.write_u64(r, 24, int(id ^ MAGIC))?;
    Ok(r)
}

pub fn cfg(n: usize) -> StmConfig {
    StmConfig {
        num_segments: n,
        segment_size: 64 << 20,
        nursery_size: 4096,
        wait_policy: WaitPolicy::Wait,
        budget: 1000,
        move_threads: false,
        trace: false,
        record_read_sites: false,
        commit_log: StmConfig::default().commit_log,
        time_slice: DEFAULT_TIME_SLICE,
        idle_collect: None,
    }
}

/// [`cfg`] with the commit log on or off (tests run in both modes).
pub fn cfg_mode(log: bool, n: usize) -> StmConfig {
    StmConfig {
        commit_log: log,
        ..cfg(n)
    }
}

/// Reads node `r`: (id, user fields), checking its integrity.
pub fn read_node(tx: &mut StmThread, r: Ref) -> Result<(i64, Vec<u64>), Abort> {
    let cnt = tx.read_u64(r, 8)?;
    assert!(value::is_int(cnt), "node {r:#x}: bad count word {cnt:#x}");
    let cnt = value::to_int(cnt);
    assert!((2..1000).contains(&cnt), "node {r:#x}: bad count {cnt}");
    let id = value::to_int(tx.read_u64(r, 16)?);
    let chk = value::to_int(tx.read_u64(r, 24)?);
    assert_eq!(
        chk,
        id ^ MAGIC,
        "node {r:#x}: corrupt (dangling reference?)"
    );
    let mut f = Vec::new();
    for i in 0..(cnt - 2) as usize {
        f.push(tx.read_u64(r, field(i))?);
    }
    Ok((id, f))
}
