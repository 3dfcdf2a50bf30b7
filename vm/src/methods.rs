//! Which builtin methods heap objects have, and the list and dict methods run natively on
//! the heap objects. The others (str methods, `sort`) run on interpreter values through
//! [`stmjit_lang::builtins_core::call_method`] (the reference interpreter's implementation);
//! Thread and TransactionQueue methods are handled natively in `calls.rs`.

use super::{exc, Runtime, R};
use stmjit_lang::builtins_core::{DICT_METHODS, LIST_METHODS, STR_METHODS};
use stmjit_lang::diag::ErrorKind;
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
        Some(x) if x == t.str.0 => STR_METHODS.contains(&name),
        Some(x) if x == t.opaque.0 => match rt.type_name(v).as_str() {
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
            ("get", &[k]) => self.dict_get(d, k).map(|v| v.unwrap_or(NONE)),
            ("get", &[k, default]) => self.dict_get(d, k).map(|v| v.unwrap_or(default)),
            ("keys", &[]) => self.dict_keys_list(d),
            ("values", &[]) => {
                let values: Vec<Word> = self.dict_items(d).into_iter().map(|(_, v)| v).collect();
                self.new_list(&values)
            }
            ("items", &[]) => self.dict_items_list(d),
            ("pop", &[k]) => match self.dict_del(d, k) {
                Ok(Some(v)) => Ok(v),
                Ok(None) => self.repr(k).and_then(|r| Err(exc(ErrorKind::KeyError, r))),
                Err(e) => Err(e),
            },
            ("pop", &[k, default]) => self.dict_del(d, k).map(|v| v.unwrap_or(default)),
            ("copy", &[]) => self.dict_copy(d),
            _ => return None,
        })
    }

    /// Inserts `v` before item `i` (clamped to the list, negative from the end).
    fn list_insert(&mut self, l: Word, i: i64, v: Word) -> R<Word> {
        let n = self.list_len(l);
        let i = if i < 0 {
            (i + n as i64).max(0) as u64
        } else {
            (i as u64).min(n)
        };
        if i == n {
            return self.list_push(l, v).map(|_| NONE);
        }
        // Growing may move the list and `v` (both rooted): the last item is pushed again,
        // then the items from `i` shift up by one and `v` takes place `i`.
        let m = self.mark();
        let (rl, rv) = (self.root(l), self.root(v));
        let last = self.list_get(l, n - 1);
        self.list_push(l, last)?;
        let (l, v) = (self.get(rl), self.get(rv));
        self.release(m);
        for j in (i + 1..n).rev() {
            let prev = self.list_get(l, j - 1);
            self.list_set(l, j, prev)?;
        }
        self.list_set(l, i, v)?;
        Ok(NONE)
    }

    /// The index of the first item equal to `v`.
    fn list_find(&self, l: Word, v: Word) -> R<Option<u64>> {
        for i in 0..self.list_len(l) {
            if self.eq(self.list_get(l, i), v)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Reverses a list in place.
    fn list_reverse(&mut self, l: Word) -> R<()> {
        let n = self.list_len(l);
        for i in 0..n / 2 {
            let (a, b) = (self.list_get(l, i), self.list_get(l, n - 1 - i));
            self.list_set(l, i, b)?;
            self.list_set(l, n - 1 - i, a)?;
        }
        Ok(())
    }

    /// `d.items()`: a new list of `[key, value]` lists.
    fn dict_items_list(&mut self, d: Word) -> R<Word> {
        let m = self.mark();
        let held = self.hold_pairs(&self.dict_items(d))?;
        let out = self.new_list(&[])?;
        let ro = self.root(out);
        for &(k, v) in &held {
            let pair = self.new_list(&[self.held(k), self.held(v)])?;
            self.list_push(self.get(ro), pair)?;
        }
        let out = self.get(ro);
        self.release(m);
        Ok(out)
    }

    /// `d.copy()`: a new dict with the same items, in the same order.
    fn dict_copy(&mut self, d: Word) -> R<Word> {
        let m = self.mark();
        let held = self.hold_pairs(&self.dict_items(d))?;
        let copy = self.new_dict()?;
        let rc = self.root(copy);
        for &(k, v) in &held {
            self.dict_set(self.get(rc), self.held(k), self.held(v))?;
        }
        let copy = self.get(rc);
        self.release(m);
        Ok(copy)
    }
}
