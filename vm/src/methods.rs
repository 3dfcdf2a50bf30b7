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
            ("extend", &[src]) => return self.list_extend_from(l, src).map(|r| r.map(|_| NONE)),
            ("remove", &[v]) => {
                // An `__eq__` may move the list: rooted across the search.
                let (found, l) = self.keeping(l, |rt| rt.list_find(l, v));
                match found {
                    Ok(Some(i)) => self.list_pop(l, i as i64).map(|_| NONE),
                    // The ValueError as the reference implementation words it.
                    Ok(None) => return None,
                    Err(e) => Err(e),
                }
            }
            ("clear", &[]) => self.list_replace(l, &[]).map(|_| NONE),
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
                let (r, default) = self.keeping(default, |rt| rt.dict_lookup(d, k));
                r.map(|v| v.unwrap_or(default))
            }
            ("keys", &[]) => self.dict_keys_list(d),
            ("values", &[]) => {
                let values: Vec<Word> = self.dict_items(d).into_iter().map(|(_, v)| v).collect();
                self.new_list(&values)
            }
            ("items", &[]) => self.dict_items_list(d),
            ("pop", &[k]) => {
                let (r, k) = self.keeping(k, |rt| rt.dict_del(d, k));
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
            ("setdefault", &[k, ..]) if args.len() <= 2 && !self.needs_prepare(k) => {
                let default = args.get(1).copied().unwrap_or(NONE);
                match self.dict_get(d, k) {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => {
                        // Inserting may grow the table: a new default (`[]`) may move.
                        let m = self.mark();
                        let rv = self.root(default);
                        let r = self.dict_set(d, k, default).map(|()| self.get(rv));
                        self.release(m);
                        r
                    }
                    Err(e) => Err(e),
                }
            }
            ("update", &[src]) => return self.dict_update_from(d, src).map(|r| r.map(|_| NONE)),
            ("clear", &[]) => {
                let keys: Vec<Word> = self.dict_items(d).into_iter().map(|(k, _)| k).collect();
                if keys.iter().any(|&k| self.needs_prepare(k)) {
                    // Instance keys: deleting one may run its `__eq__`.
                    return None;
                }
                keys.into_iter()
                    .try_for_each(|k| self.dict_del(d, k).map(drop))
                    .map(|()| NONE)
            }
            _ => return None,
        })
    }

    /// `l.extend(src)` (and `l += src`) in place for a list or tuple `src`: O(len(src)),
    /// where the generic path converts and rewrites the whole receiver. None for other
    /// iterables (the generic path).
    pub(crate) fn list_extend_from(&mut self, l: Word, src: Word) -> Option<R<()>> {
        let items = if self.is(src, self.types.list) {
            self.list_items(src)
        } else if self.is(src, self.types.tuple) {
            self.tuple_items(src)
        } else {
            return None;
        };
        Some(self.list_extend(l, &items))
    }

    /// `d.update(src)` (and `d |= src`) in place, for a dict `src` or a list or tuple of
    /// `(key, value)` lists and tuples: O(len(src)), where the generic path converts and
    /// rewrites the whole receiver. None for other arguments, and for pairs that are not
    /// all of length 2 (the generic path raises the reference implementation's error).
    pub(crate) fn dict_update_from(&mut self, d: Word, src: Word) -> Option<R<()>> {
        let t = self.types;
        let (flat, stored) = if self.is(src, t.dict) {
            let items = self.dict_items(src);
            (items.into_iter().flat_map(|(k, v)| [k, v]).collect(), true)
        } else if self.is(src, t.list) || self.is(src, t.tuple) {
            let pairs = if self.is(src, t.list) {
                self.list_items(src)
            } else {
                self.tuple_items(src)
            };
            let mut flat: Vec<Word> = Vec::with_capacity(2 * pairs.len());
            for p in pairs {
                let kv = if self.is(p, t.tuple) {
                    self.tuple_items(p)
                } else if self.is(p, t.list) {
                    self.list_items(p)
                } else {
                    return None;
                };
                if kv.len() != 2 {
                    return None;
                }
                flat.extend(kv);
            }
            (flat, false)
        } else {
            return None;
        };
        let m = self.mark();
        let rd = self.root(d);
        let r = self.hold_all(&flat).and_then(|held| {
            for kv in held.chunks(2) {
                let (k, v) = (self.held(kv[0]), self.held(kv[1]));
                let d = self.get(rd);
                if stored {
                    self.dict_set_stored(d, k, v)?;
                } else {
                    self.dict_set(d, k, v)?;
                }
            }
            Ok(())
        });
        self.release(m);
        Some(r)
    }
}
