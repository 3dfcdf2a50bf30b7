//! Object header and the type registry.
//!
//! Every object starts with an 8-byte [`ObjectHeader`]. The JIT tests the write-barrier flag
//! with `test byte gs:[ref + FLAGS_OFFSET], WRITE_BARRIER_FLAG` and looks the type up by
//! `type_id`. The registry gives each type its size and a trace hook enumerating its
//! value words, which the GC uses.

use crate::append::AppendVec;

/// Header of every object (old or new), at the object's reference offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ObjectHeader {
    /// Flag bits: [`WRITE_BARRIER_FLAG`], bits 8..32 for the GC. Young objects: 0.
    pub flags: u32,
    /// Index in the type registry ([`TypeId`]).
    pub type_id: u32,
}

/// Offset of the flags byte that holds [`WRITE_BARRIER_FLAG`] (little-endian: low byte).
pub const FLAGS_OFFSET: u64 = core::mem::offset_of!(ObjectHeader, flags) as u64;
/// Offset of the type id.
pub const TYPE_ID_OFFSET: u64 = core::mem::offset_of!(ObjectHeader, type_id) as u64;
/// Set on every committed (old) object in every segment; cleared in one segment by the write
/// barrier slow path once that segment owns the object's write lock. Card-marked objects
/// keep it set (their cards are tracked by card markers instead).
pub const WRITE_BARRIER_FLAG: u8 = 1 << 0;
/// First flag bit owned by the GC (`nursery::NEW_FLAG`, `nursery::FORWARDED_FLAG`).
pub const FIRST_GC_FLAG: u32 = 1 << 8;
/// Size of the header.
pub const HEADER_SIZE: u64 = core::mem::size_of::<ObjectHeader>() as u64;

/// A reference: an offset inside a segment, the same number in every segment.
pub type Ref = u64;

/// Index of a registered type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeId(pub u32);

/// Computes the size in bytes of an object from a pointer to its first byte.
pub type SizeFn = fn(obj: *const u8) -> usize;
/// Calls `visit` with the address of every *value word* of the object at `obj`: a tagged
/// [`crate::value::Word`] (int, immediate such as `NONE == 0`, or reference). The GC reads
/// each word and follows (and, for the moving minor collection, rewrites in place) only those
/// with `value::is_ref(w)`; raw data (lengths, string bytes, floats) must not be visited.
/// The hook may read the object's own fields (e.g. a length) and must not allocate.
pub type TraceFn = fn(obj: *mut u8, visit: &mut dyn FnMut(*mut u64));
/// Calls `visit` with the address of every value word (as [`TraceFn`]) of the 16-byte card
/// at byte offset `card` of the carded object at `obj` (a multiple of 16; the card may reach
/// past the object's end, whose words are not visited).
pub type CardTraceFn = fn(obj: *mut u8, card: u64, visit: &mut dyn FnMut(*mut u64));

/// What the runtime (and the GC) must know about a type.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    /// Name, for diagnostics.
    pub name: &'static str,
    /// Size of an object of this type, header included.
    pub size: SizeFn,
    /// Enumerates the value words (see [`TraceFn`]).
    pub trace: TraceFn,
    /// Whether writes use card marking (big arrays): then locks, modified records and
    /// conflicts are per 16-byte card of the written address, and reads mark the element's
    /// own granule (`gs:[(ref+off) >> 4]`), not the header's.
    pub carded: bool,
    /// For a carded type: its value words card by card, so that a minor collection traces
    /// only the cards the transaction wrote, not the whole object (tracing a dict table of
    /// 1 000 000 entries at each commit that wrote a few of them took up to 73 ms). `None`:
    /// the whole object is traced once per minor collection that finds a written card.
    pub trace_card: Option<CardTraceFn>,
}

/// Trace hook of types without reference fields.
pub fn trace_none(_obj: *mut u8, _visit: &mut dyn FnMut(*mut u64)) {}

/// The registry of types of one runtime instance.
///
/// Lookups take no lock ([`AppendVec`]): every write barrier's slow path and every minor
/// collection looks a type up, and a read-write lock's reader count was a cache line all
/// running segments wrote at each transaction.
#[derive(Default)]
pub struct TypeRegistry {
    types: AppendVec<TypeInfo>,
}

impl TypeRegistry {
    /// Registers a type and returns its id.
    pub fn register(&self, info: TypeInfo) -> TypeId {
        let id = self.types.push(info);
        assert!(id <= u32::MAX as usize, "stmjit: too many types");
        TypeId(id as u32)
    }

    /// The type of id `id`, if registered.
    #[inline]
    pub fn try_get(&self, id: u32) -> Option<TypeInfo> {
        self.types.get(id as usize).copied()
    }

    /// Every registered type, in id order (a copy, for a whole major collection).
    pub(crate) fn snapshot(&self) -> Vec<TypeInfo> {
        self.types.iter().copied().collect()
    }

    /// Looks a type up; panics with a clear message on an unknown id.
    pub fn get(&self, id: u32) -> TypeInfo {
        match self.try_get(id) {
            Some(i) => i,
            None => panic!("stmjit: unknown type id {id} (corrupt header or dangling reference?)"),
        }
    }

    /// Size of the object at `obj` according to its header.
    ///
    /// # Safety
    /// `obj` must point at a readable, initialised object.
    pub unsafe fn size_of(&self, obj: *const u8) -> usize {
        // SAFETY: the caller's contract: `obj` is a readable, initialised object.
        let h = unsafe { &*(obj as *const ObjectHeader) };
        (self.get(h.type_id).size)(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_16(_: *const u8) -> usize {
        16
    }

    /// Ids are dense and each names its own type across chunk boundaries (64, 192, 448),
    /// also while other threads look types up during registrations.
    #[test]
    fn registered_types_are_found_by_id_across_chunks() {
        let names: Vec<&'static str> = (0..500)
            .map(|i| &*Box::leak(format!("t{i}").into_boxed_str()))
            .collect();
        let reg = TypeRegistry::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                for (i, &name) in names.iter().enumerate() {
                    let id = reg.register(TypeInfo {
                        name,
                        size: size_16,
                        trace: trace_none,
                        carded: i % 2 == 0,
                        trace_card: None,
                    });
                    assert_eq!(id, TypeId(i as u32));
                }
            });
            s.spawn(|| {
                for _ in 0..2000 {
                    for id in 0..500u32 {
                        if let Some(t) = reg.try_get(id) {
                            assert_eq!(t.name, names[id as usize]);
                        }
                    }
                }
            });
        });
        for (i, &name) in names.iter().enumerate() {
            assert_eq!(reg.get(i as u32).name, name);
            assert_eq!(reg.get(i as u32).carded, i % 2 == 0);
        }
        assert!(reg.try_get(500).is_none());
        assert!(reg.try_get(u32::MAX).is_none());
        let all = reg.snapshot();
        assert_eq!(all.len(), 500);
        assert_eq!(all[499].name, "t499");
    }
}
