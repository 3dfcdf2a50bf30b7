//! Object header and the type registry.
//!
//! Every object starts with an 8-byte [`ObjectHeader`]. The JIT tests the write-barrier flag
//! with `test byte gs:[ref + FLAGS_OFFSET], WRITE_BARRIER_FLAG` and looks the type up by
//! `type_id`. The registry gives each type its size and a trace hook enumerating its
//! value words, which the GC uses.

use std::sync::RwLock;

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
}

/// Trace hook of types without reference fields.
pub fn trace_none(_obj: *mut u8, _visit: &mut dyn FnMut(*mut u64)) {}

/// The registry of types of one runtime instance.
#[derive(Default)]
pub struct TypeRegistry {
    types: RwLock<Vec<TypeInfo>>,
}

impl TypeRegistry {
    /// Registers a type and returns its id.
    pub fn register(&self, info: TypeInfo) -> TypeId {
        let mut t = self.types.write().unwrap();
        t.push(info);
        TypeId((t.len() - 1) as u32)
    }

    /// A read guard on all types (one lock for a whole collection).
    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<TypeInfo>> {
        self.types.read().unwrap()
    }

    /// Looks a type up; panics with a clear message on an unknown id.
    pub fn get(&self, id: u32) -> TypeInfo {
        let t = self.types.read().unwrap();
        match t.get(id as usize) {
            Some(i) => *i,
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
