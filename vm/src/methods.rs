//! Which builtin methods heap objects have, and the list and dict methods run natively on
//! the heap objects. The others (str methods, `sort`) run on interpreter values through
//! [`stmjit_lang::builtins_core::call_method`] (the reference interpreter's implementation);
//! Thread and TransactionQueue methods are handled natively in `calls.rs`.

use super::{exc, Runtime, R};
use stmjit_lang::builtins_core::{DICT_METHODS, LIST_METHODS, STR_METHODS};
use stmjit_lang::builtins_seq::TUPLE_METHODS;
use stmjit_lang::diag::ErrorKind;
use stmjit_lang::sets::{FROZENSET_METHODS, SET_METHODS};
use stmjit_lang::slices::SLICE_METHODS;
use stmjit_runtime::value::{self, is_int, Word, NONE};

/// The methods of Thread and TransactionQueue objects.
const THREAD_METHODS: &[&str] = &["join"];
const QUEUE_METHODS: &[&str] = &["add", "run"];

/// The name of every builtin method of every type (interned before the program runs, as a
/// builtin method object names its method by id).
pub fn builtin_method_names() -> impl Iterator<Item = &'static str> {
    [
        LIST_METHODS,
        DICT_METHODS,
        STR_METHODS,
        TUPLE_METHODS,
        SET_METHODS,
        FROZENSET_METHODS,
        SLICE_METHODS,
        THREAD_METHODS,
        QUEUE_METHODS,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// True when `v`'s type has a builtin method `name` (for `v.name` without a call).
pub fn has_method(rt: &Runtime, v: Word, name: &str) -> bool {
    let t = rt.types;
    match rt.type_of(v) {
        Some(x) if x == t.list.0 => LIST_METHODS.contains(&name),
        Some(x) if x == t.dict.0 => DICT_METHODS.contains(&name),
        Some(x) if x == t.set.0 => SET_METHODS.contains(&name),
        Some(x) if x == t.frozenset.0 => FROZENSET_METHODS.contains(&name),
        Some(x) if x == t.str.0 => STR_METHODS.contains(&name),
        Some(x) if x == t.tuple.0 => TUPLE_METHODS.contains(&name),
        Some(x) if x == t.slice.0 => SLICE_METHODS.contains(&name),
        Some(x) if x == t.opaque.0 => match rt.opaque_type_name(v) {
            "Thread" => THREAD_METHODS.contains(&name),
            "TransactionQueue" => QUEUE_METHODS.contains(&name),
            _ => false,
        },
        _ => false,
    }
}

impl Runtime {
    /// A list method run on the heap object itself, or `None` to take the generic path
    /// (through interpreter values): `sort`, wrong arities or argument types, and errors
    /// whose message the reference implementation builds. The generic path converts the
    /// whole list and, for a list receiver, writes every item back: O(n) work and a write to
    /// every card of a shared list (a conflict with any other reader), even for `index`.
    pub(crate) fn list_method(&mut self, l: Word, name: &str, args: &[Word]) -> Option<R<Word>> {
        Some(match (name, args) {
            ("append", &[v]) => self.list_push(l, v).map(|_| NONE),
            ("pop", &[]) => self.list_pop(l, -1),
            ("pop", &[i]) if is_int(i) => self.list_pop(l, value::to_int(i)),
            ("insert", &[i, v]) if is_int(i) => self.list_insert(l, value::to_int(i), v),
            ("index", &[v]) => match self.list_find(l, v) {
                Ok(Some(i)) => Ok(value::from_int(i as i64).expect("a list index fits")),
                // The ValueError names the value as the reference implementation prints it.
                Ok(None) => return None,
                Err(e) => Err(e),
            },
            ("reverse", &[]) => self.list_reverse(l).map(|_| NONE),
            ("copy", &[]) => {
                let n = self.list_len(l);
                self.list_concat(&[(l, 0, n)], 1)
            }
            _ => return None,
        })
    }

    /// A dict method run on the heap object itself (see [`Runtime::list_method`]); the
    /// generic path would also delete and re-insert every key of the dict.
    pub(crate) fn dict_method(&mut self, d: Word, name: &str, args: &[Word]) -> Option<R<Word>> {
        Some(match (name, args) {
            ("get", &[k]) => self.dict_lookup(d, k).map(|v| v.unwrap_or(NONE)),
            ("pop", &[k, default]) if !self.needs_prepare(k) => {
                self.dict_del(d, k).map(|v| v.unwrap_or(default))
            }
            ("get", &[k, default]) if !self.needs_prepare(k) => {
                self.dict_get(d, k).map(|v| v.unwrap_or(default))
            }
            ("get", &[k, default]) => {
                let m = self.mark();
                let rd = self.root(default);
                let r = self.dict_lookup(d, k);
                let default = self.get(rd);
                self.release(m);
                r.map(|v| v.unwrap_or(default))
            }
            ("keys", &[]) => self.dict_keys_list(d),
            ("values", &[]) => {
                let values: Vec<Word> = self.dict_items(d).into_iter().map(|(_, v)| v).collect();
                self.new_list(&values)
            }
            ("items", &[]) => self.dict_items_list(d),
            ("pop", &[k]) => {
                let m = self.mark();
                let rk = self.root(k);
                let r = self.dict_del(d, k);
                let k = self.get(rk);
                self.release(m);
                match r {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => self.repr(k).and_then(|r| Err(exc(ErrorKind::KeyError, r))),
                    Err(e) => Err(e),
                }
            }
            ("pop", &[k, default]) => {
                let m = self.mark();
                let rd = self.root(default);
                let r = self.dict_del(d, k);
                let default = self.get(rd);
                self.release(m);
                r.map(|v| v.unwrap_or(default))
            }
            ("copy", &[]) => self.dict_copy(d),
            _ => return None,
        })
    }
}
