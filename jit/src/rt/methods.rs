//! Which builtin methods heap objects have. The list, dict and str methods themselves run on
//! interpreter values through [`stmjit_lang::builtins_core::call_method`] (the reference
//! interpreter's implementation); Thread and TransactionQueue methods are handled natively in
//! `calls.rs`.

use super::Runtime;
use stmjit_lang::builtins_core::{DICT_METHODS, LIST_METHODS, STR_METHODS};
use stmjit_runtime::value::Word;

/// True when `v`'s type has a builtin method `name` (for `v.name` without a call).
pub fn has_method(rt: &Runtime, v: Word, name: &str) -> bool {
    let t = rt.types;
    match rt.type_of(v) {
        Some(x) if x == t.list.0 => LIST_METHODS.contains(&name),
        Some(x) if x == t.dict.0 => DICT_METHODS.contains(&name),
        Some(x) if x == t.str.0 => STR_METHODS.contains(&name),
        Some(x) if x == t.opaque.0 => match rt.type_name(v).as_str() {
            "Thread" => name == "join",
            "TransactionQueue" => name == "add" || name == "run",
            _ => false,
        },
        _ => false,
    }
}
