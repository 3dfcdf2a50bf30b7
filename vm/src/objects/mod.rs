//! The language's objects, one file per kind: its `#[repr(C)]` layout (what JIT code and the
//! helpers address inside a segment, with `offset_of!`) and its operations. This file
//! registers them as runtime types.
//!
//! Every field that can hold a language value holds a tagged [`stmjit_runtime::value::Word`]; trace
//! hooks report only the words that are references (`stmjit_runtime::value::is_ref`), so ints and
//! immediates stored in the same slots are never taken for pointers.
//!
//! Layout choices (why):
//! - `str`, `float` and `tuple` are immutable: JIT code reads them without read barriers,
//!   and a tuple, complete when allocated, never takes a write barrier.
//! - A `list` is a small header object (`len`, `items`) plus a separate **card-marked**
//!   [`ArrayObj`] of items: writing one element takes the lock of its 16-byte card only, so
//!   two threads writing different elements do not conflict and do not copy the whole array.
//! - A `dict` keeps its entries in insertion order in a card-marked array of `(key, value)`
//!   pairs, one 16-byte card per entry, and an open-addressing index in a second card-marked
//!   array. Updating the value of an existing key writes only that entry's card: writes to
//!   different existing keys never conflict. The counts (`len`, `used`) live in the first
//!   card of the entries array, not in the dict object, so that a lookup (which reads the
//!   dict object and the cards of its probe) does not conflict with an insertion (which
//!   writes the counts' card, the new entry's card and one index card). The JIT inserts
//!   new keys into a committed dict only at commit (`dict_overlay.rs`), so
//!   transactions inserting different keys do not conflict either.
//! - An instance is `class` + its slots inline (an overflow array for attributes added to
//!   the class after it was made); the attribute → slot index map (the *shape*) is per class
//!   and shared by its instances (kept by the JIT, which caches it per access site), so
//!   attribute access is an index, not a hash lookup per access.
//! - An inline slot may hold the raw bits of a float instead of a word (a bit per slot in
//!   the instance's `floats` word, which the trace hook skips): a float attribute updated
//!   by arithmetic (`o.x += dt * o.v`) then takes no box per store (`instance.rs`).

mod array;
mod bigint;
mod class;
mod dict;
mod float;
mod function;
mod instance;
mod list;
mod opaque;
mod range;
mod slice;
mod str;
mod tuple;

pub use array::{array_size, ArrayObj, ARRAY_DATA};
pub use bigint::{bigint_size, BigIntObj};
pub use class::ClassObj;
pub(crate) use dict::D_ENTRIES;
pub use dict::{DictObj, KeyRef, DICT_FIRST_ENTRY, DICT_LEN, DICT_USED};
pub use float::FloatObj;
pub use function::{BoundMethodObj, BuiltinObj, FunctionObj};
pub use instance::{
    inline_slots, instance_size, InstanceObj, SlotValue, INSTANCE_DATA, MAX_INLINE,
};
pub use list::ListObj;
pub(crate) use opaque::new_opaque;
pub use opaque::{
    OpaqueObj, OPAQUE_BIG_RANGE, OPAQUE_DICT_ITER, OPAQUE_ITEMS_ITER, OPAQUE_LOCK, OPAQUE_QUEUE,
    OPAQUE_THREAD,
};
pub use range::RangeObj;
pub use slice::SliceObj;
pub use str::{str_size, StrObj};
pub use tuple::{tuple_size, TupleObj, TUPLE_DATA};

use std::mem::{offset_of, size_of};
use stmjit_runtime::object::{TypeId, TypeInfo};
use stmjit_runtime::value::is_ref;
use stmjit_runtime::Stm;

/// The registered type ids of all language objects.
#[derive(Clone, Copy, Debug)]
pub struct Types {
    /// [`StrObj`].
    pub str: TypeId,
    /// [`FloatObj`].
    pub float: TypeId,
    /// [`ListObj`].
    pub list: TypeId,
    /// Card-marked [`ArrayObj`].
    pub carded_array: TypeId,
    /// A card-marked array holding a dict's entries or index (a type of its own so that a
    /// conflict report can say "dict").
    pub dict_array: TypeId,
    /// The same for a set (a conflict report says "set").
    pub set_array: TypeId,
    /// The card-marked array of a program's global variables (a conflict report says
    /// "globals").
    pub globals_array: TypeId,
    /// Non-carded [`ArrayObj`] (the overflow slots of instances).
    pub array: TypeId,
    /// [`DictObj`].
    pub dict: TypeId,
    /// A set: a [`DictObj`] whose keys are the members (values None), so that it inherits
    /// the dict's conflict-free updates of different members (`sets.rs`).
    pub set: TypeId,
    /// A frozenset: the same layout, never written after it is made.
    pub frozenset: TypeId,
    /// [`InstanceObj`].
    pub instance: TypeId,
    /// [`ClassObj`].
    pub class: TypeId,
    /// [`FunctionObj`].
    pub function: TypeId,
    /// [`BoundMethodObj`].
    pub bound_method: TypeId,
    /// [`BuiltinObj`].
    pub builtin: TypeId,
    /// [`RangeObj`].
    pub range: TypeId,
    /// [`SliceObj`].
    pub slice: TypeId,
    /// [`OpaqueObj`].
    pub opaque: TypeId,
    /// [`TupleObj`].
    pub tuple: TypeId,
    /// [`BigIntObj`].
    pub bigint: TypeId,
}

fn size_str(obj: *const u8) -> usize {
    // SAFETY: the registry calls size hooks on initialised objects of this type.
    let s = unsafe { &*(obj as *const StrObj) };
    size_of::<StrObj>() + s.len as usize
}

fn size_bigint(obj: *const u8) -> usize {
    // SAFETY: as size_str.
    let b = unsafe { &*(obj as *const BigIntObj) };
    bigint_size(b.len) as usize
}

fn size_array(obj: *const u8) -> usize {
    // SAFETY: as size_str.
    let a = unsafe { &*(obj as *const ArrayObj) };
    ARRAY_DATA as usize + 8 * a.cap as usize
}

/// Visits `fields` words at `obj + off` that hold references.
fn visit_words(obj: *mut u8, off: usize, n: usize, visit: &mut dyn FnMut(*mut u64)) {
    for i in 0..n {
        // SAFETY: the caller passes a range inside the object.
        let p = unsafe { obj.add(off + 8 * i) } as *mut u64;
        // SAFETY: p is an aligned word of the object.
        if is_ref(unsafe { *p }) {
            visit(p);
        }
    }
}

fn size_instance(obj: *const u8) -> usize {
    // SAFETY: as size_str.
    let i = unsafe { &*(obj as *const InstanceObj) };
    instance_size(i.inline) as usize
}

fn trace_instance(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    // SAFETY: the GC calls trace hooks on initialised objects of this type.
    let i = unsafe { &*(obj as *const InstanceObj) };
    let (n, floats) = (i.inline as usize, i.floats);
    // `class` and `slots` (not `hash`, `inline` and `floats`: raw), then the inline slots
    // but those holding raw floats.
    visit_words(obj, offset_of!(InstanceObj, class), 2, visit);
    for s in 0..n {
        if floats >> s & 1 == 0 {
            visit_words(obj, INSTANCE_DATA as usize + 8 * s, 1, visit);
        }
    }
}

fn size_tuple(obj: *const u8) -> usize {
    // SAFETY: as size_str.
    let t = unsafe { &*(obj as *const TupleObj) };
    tuple_size(t.len) as usize
}

fn trace_tuple(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    // SAFETY: the GC calls trace hooks on initialised objects of this type.
    let len = unsafe { &*(obj as *const TupleObj) }.len as usize;
    visit_words(obj, TUPLE_DATA as usize, len, visit);
}

fn trace_array(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    // SAFETY: the GC calls trace hooks on initialised objects of this type.
    let cap = unsafe { &*(obj as *const ArrayObj) }.cap as usize;
    visit_words(obj, ARRAY_DATA as usize, cap, visit);
}

/// The card trace hook of the carded arrays: the data words of the card at `card`
/// (`ARRAY_DATA` is a multiple of 16, so a card holds two words, or one at an odd end).
fn trace_array_card(obj: *mut u8, card: u64, visit: &mut dyn FnMut(*mut u64)) {
    let lo = card.max(ARRAY_DATA) as usize;
    let hi = (card as usize + 16).min(size_array(obj));
    if lo < hi {
        visit_words(obj, lo, (hi - lo) / 8, visit);
    }
}

/// A trace hook that visits the words in `[FROM, TO)` (fixed-size objects).
fn trace_range<const FROM: usize, const TO: usize>(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    visit_words(obj, FROM, (TO - FROM) / 8, visit);
}

fn fixed<T>(name: &'static str, trace: stmjit_runtime::object::TraceFn) -> TypeInfo {
    fn size_of_t<T>(_: *const u8) -> usize {
        size_of::<T>()
    }
    TypeInfo {
        name,
        size: size_of_t::<T>,
        trace,
        carded: false,
        trace_card: None,
    }
}

/// Registers every language object type with `stm` and returns their ids.
pub fn register(stm: &Stm) -> Types {
    use stmjit_runtime::object::trace_none;
    Types {
        str: stm.register_type(TypeInfo {
            name: "str",
            size: size_str,
            trace: trace_none,
            carded: false,
            trace_card: None,
        }),
        float: stm.register_type(fixed::<FloatObj>("float", trace_none)),
        list: stm.register_type(fixed::<ListObj>(
            "list",
            trace_range::<{ offset_of!(ListObj, items) }, { size_of::<ListObj>() }>,
        )),
        carded_array: stm.register_type(TypeInfo {
            name: "carded array",
            size: size_array,
            trace: trace_array,
            carded: true,
            trace_card: Some(trace_array_card),
        }),
        dict_array: stm.register_type(TypeInfo {
            name: "dict entries",
            size: size_array,
            trace: trace_array,
            carded: true,
            trace_card: Some(trace_array_card),
        }),
        set_array: stm.register_type(TypeInfo {
            name: "set entries",
            size: size_array,
            trace: trace_array,
            carded: true,
            trace_card: Some(trace_array_card),
        }),
        globals_array: stm.register_type(TypeInfo {
            name: "globals",
            size: size_array,
            trace: trace_array,
            carded: true,
            trace_card: Some(trace_array_card),
        }),
        array: stm.register_type(TypeInfo {
            name: "array",
            size: size_array,
            trace: trace_array,
            carded: false,
            trace_card: None,
        }),
        dict: stm.register_type(fixed::<DictObj>(
            "dict",
            trace_range::<{ offset_of!(DictObj, entries) }, { size_of::<DictObj>() }>,
        )),
        set: stm.register_type(fixed::<DictObj>(
            "set",
            trace_range::<{ offset_of!(DictObj, entries) }, { size_of::<DictObj>() }>,
        )),
        frozenset: stm.register_type(fixed::<DictObj>(
            "frozenset",
            trace_range::<{ offset_of!(DictObj, entries) }, { size_of::<DictObj>() }>,
        )),
        instance: stm.register_type(TypeInfo {
            name: "instance",
            size: size_instance,
            trace: trace_instance,
            carded: false,
            trace_card: None,
        }),
        class: stm.register_type(fixed::<ClassObj>(
            "class",
            trace_range::<{ offset_of!(ClassObj, base) }, { size_of::<ClassObj>() }>,
        )),
        function: stm.register_type(fixed::<FunctionObj>(
            "function",
            trace_range::<{ offset_of!(FunctionObj, defaults) }, { offset_of!(FunctionObj, hash) }>,
        )),
        bound_method:
            stm.register_type(fixed::<BoundMethodObj>(
                "method",
                trace_range::<
                    { offset_of!(BoundMethodObj, receiver) },
                    { size_of::<BoundMethodObj>() },
                >,
            )),
        builtin: stm.register_type(fixed::<BuiltinObj>(
            "builtin",
            trace_range::<
                { offset_of!(BuiltinObj, receiver) },
                { offset_of!(BuiltinObj, is_method) },
            >,
        )),
        range: stm.register_type(fixed::<RangeObj>("range", trace_none)),
        slice: stm.register_type(fixed::<SliceObj>(
            "slice",
            trace_range::<{ offset_of!(SliceObj, start) }, { size_of::<SliceObj>() }>,
        )),
        opaque: stm.register_type(fixed::<OpaqueObj>(
            "opaque",
            trace_range::<{ offset_of!(OpaqueObj, a) }, { size_of::<OpaqueObj>() }>,
        )),
        tuple: stm.register_type(TypeInfo {
            name: "tuple",
            size: size_tuple,
            trace: trace_tuple,
            carded: false,
            trace_card: None,
        }),
        bigint: stm.register_type(TypeInfo {
            name: "int",
            size: size_bigint,
            trace: trace_none,
            carded: false,
            trace_card: None,
        }),
    }
}

/// A reference's type id field offset, for JIT type tests.
pub const TYPE_ID_OFFSET: u64 = stmjit_runtime::object::TYPE_ID_OFFSET;
