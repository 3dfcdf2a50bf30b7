//! Object layouts of the language (issue 5): the `#[repr(C)]` structs that JIT code and the
//! JIT's runtime helpers address inside a segment, and their registration as runtime types.
//!
//! Every field that can hold a language value holds a tagged [`stmjit_runtime::value::Word`]; trace
//! hooks report only the words that are references (`stmjit_runtime::value::is_ref`), so ints and
//! immediates stored in the same slots are never taken for pointers.
//!
//! Layout choices (why):
//! - `str` and `float` are immutable: JIT code reads them without read barriers.
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
//!   new keys into a committed dict only at commit (`jit/src/rt/dict_overlay.rs`), so
//!   transactions inserting different keys do not conflict either.
//! - An instance is `class` + a slots array; the attribute → slot index map (the *shape*) is
//!   per class and shared by its instances (kept by the JIT, which caches it per access site),
//!   so attribute access is an index, not a hash lookup per access.

use std::mem::{offset_of, size_of};
use stmjit_runtime::object::{ObjectHeader, TypeId, TypeInfo};
use stmjit_runtime::value::{is_ref, Word};
use stmjit_runtime::Stm;

/// An immutable string: UTF-8 bytes follow the struct.
#[repr(C)]
pub struct StrObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Length in bytes.
    pub len: u64,
    /// Length in characters (equal to `len` for ASCII text: O(1) indexing).
    pub nchars: u64,
}

/// A boxed float (immutable).
#[repr(C)]
pub struct FloatObj {
    /// Object header.
    pub header: ObjectHeader,
    /// The value.
    pub value: f64,
}

/// A list: length plus a reference to its card-marked items array.
#[repr(C)]
pub struct ListObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Number of items.
    pub len: u64,
    /// The [`ArrayObj`] holding the items (capacity >= len).
    pub items: Word,
}

/// A fixed-capacity array of words (list items, dict entries and index, instance slots,
/// globals). The words follow the struct, at [`ARRAY_DATA`].
#[repr(C)]
pub struct ArrayObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Number of words.
    pub cap: u64,
}

/// Offset of the first word of an [`ArrayObj`] (16: every even word starts a card).
pub const ARRAY_DATA: u64 = size_of::<ArrayObj>() as u64;

/// A dict: see the module docs.
#[repr(C)]
pub struct DictObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Card-marked [`ArrayObj`] of `2 + 2 * capacity` words: the counts card ([`DICT_LEN`],
    /// [`DICT_USED`]), then key, value, key, value...
    pub entries: Word,
    /// Card-marked [`ArrayObj`] of index slots (a power of two): 0 = empty, else the tagged
    /// int `entry + 1`.
    pub index: Word,
}

/// Word index, in a dict's entries array, of its number of live entries (a tagged int).
pub const DICT_LEN: u64 = 0;
/// Word index, in a dict's entries array, of the number of entries used (live and deleted:
/// the next insertion position), a tagged int. Shares a card with [`DICT_LEN`].
pub const DICT_USED: u64 = 1;
/// Word index, in a dict's entries array, of the first entry's key.
pub const DICT_FIRST_ENTRY: u64 = 2;

/// An instance of a class.
#[repr(C)]
pub struct InstanceObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Its class ([`ClassObj`]).
    pub class: Word,
    /// The slots [`ArrayObj`] (non-carded), indexed by the class's shape.
    pub slots: Word,
}

/// A class.
#[repr(C)]
pub struct ClassObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Index of the class in the JIT's class table (name, shape, base).
    pub class_id: u64,
    /// Base class or None.
    pub base: Word,
    /// Class attributes and methods: a [`DictObj`] keyed by name strs.
    pub attrs: Word,
}

/// A function of the program (immutable).
#[repr(C)]
pub struct FunctionObj {
    /// Object header.
    pub header: ObjectHeader,
    /// The function's index in the program.
    pub func_id: u64,
}

/// `instance.method` not yet called.
#[repr(C)]
pub struct BoundMethodObj {
    /// Object header.
    pub header: ObjectHeader,
    /// The function's index in the program.
    pub func_id: u64,
    /// The receiver.
    pub receiver: Word,
}

/// A builtin function (`receiver` = None) or a builtin method of `receiver`, not yet called.
#[repr(C)]
pub struct BuiltinObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Builtin function number, or method-name id for methods.
    pub which: u64,
    /// The receiver of a builtin method; None for builtin functions.
    pub receiver: Word,
    /// 1 for a builtin method, 0 for a builtin function.
    pub is_method: u64,
}

/// `range(start, stop, step)` as a value (a `for` over `range(...)` written in place needs
/// none: it is a counted loop).
#[repr(C)]
pub struct RangeObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Start.
    pub start: i64,
    /// Stop.
    pub stop: i64,
    /// Step (never 0).
    pub step: i64,
}

/// Placeholder of `Thread`, `Lock` and `TransactionQueue` objects (issue 6 gives them their
/// real behaviour): a kind word and two value words.
#[repr(C)]
pub struct OpaqueObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Which kind of object ([`OPAQUE_THREAD`], ...).
    pub kind: u64,
    /// First value (thread: result; queue: list of calls).
    pub a: Word,
    /// Second value (lock: hold count).
    pub b: Word,
}

/// [`OpaqueObj::kind`] of a Thread.
pub const OPAQUE_THREAD: u64 = 1;
/// [`OpaqueObj::kind`] of a Lock.
pub const OPAQUE_LOCK: u64 = 2;
/// [`OpaqueObj::kind`] of a TransactionQueue.
pub const OPAQUE_QUEUE: u64 = 3;

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
    /// The card-marked array of a program's global variables (a conflict report says
    /// "globals").
    pub globals_array: TypeId,
    /// Non-carded [`ArrayObj`] (instance slots).
    pub array: TypeId,
    /// [`DictObj`].
    pub dict: TypeId,
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
    /// [`OpaqueObj`].
    pub opaque: TypeId,
}

fn size_str(obj: *const u8) -> usize {
    // SAFETY: the registry calls size hooks on initialised objects of this type.
    let s = unsafe { &*(obj as *const StrObj) };
    size_of::<StrObj>() + s.len as usize
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

fn trace_array(obj: *mut u8, visit: &mut dyn FnMut(*mut u64)) {
    // SAFETY: the GC calls trace hooks on initialised objects of this type.
    let cap = unsafe { &*(obj as *const ArrayObj) }.cap as usize;
    visit_words(obj, ARRAY_DATA as usize, cap, visit);
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
        }),
        dict_array: stm.register_type(TypeInfo {
            name: "dict entries",
            size: size_array,
            trace: trace_array,
            carded: true,
        }),
        globals_array: stm.register_type(TypeInfo {
            name: "globals",
            size: size_array,
            trace: trace_array,
            carded: true,
        }),
        array: stm.register_type(TypeInfo {
            name: "array",
            size: size_array,
            trace: trace_array,
            carded: false,
        }),
        dict: stm.register_type(fixed::<DictObj>(
            "dict",
            trace_range::<{ offset_of!(DictObj, entries) }, { size_of::<DictObj>() }>,
        )),
        instance: stm.register_type(fixed::<InstanceObj>(
            "instance",
            trace_range::<{ offset_of!(InstanceObj, class) }, { size_of::<InstanceObj>() }>,
        )),
        class: stm.register_type(fixed::<ClassObj>(
            "class",
            trace_range::<{ offset_of!(ClassObj, base) }, { size_of::<ClassObj>() }>,
        )),
        function: stm.register_type(fixed::<FunctionObj>("function", trace_none)),
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
        opaque: stm.register_type(fixed::<OpaqueObj>(
            "opaque",
            trace_range::<{ offset_of!(OpaqueObj, a) }, { size_of::<OpaqueObj>() }>,
        )),
    }
}

/// Size in bytes of a str object holding `len` bytes.
pub fn str_size(len: u64) -> u64 {
    size_of::<StrObj>() as u64 + len
}

/// Size in bytes of an array object of `cap` words.
pub fn array_size(cap: u64) -> u64 {
    ARRAY_DATA + 8 * cap
}

/// A reference's type id field offset, for JIT type tests.
pub const TYPE_ID_OFFSET: u64 = stmjit_runtime::object::TYPE_ID_OFFSET;
