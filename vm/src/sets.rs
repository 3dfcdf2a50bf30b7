//! Sets on the heap: a set is a dict object of its own type whose keys are its members
//! (values None), so every dict operation applies, and so does what makes dicts scale:
//! adding different members to a shared set writes different entry cards, and once the set
//! has had a conflict its new members wait in the transaction's overlay until commit
//! (`dict_overlay.rs`), so threads adding different members stop aborting each other.
//!
//! What changes a set runs here, natively, touching only the members it adds or removes
//! (`add` of a member already there only reads). What only reads a set and builds a new one
//! (`|`, `union`, comparisons, `str`...) runs on converted values, with the reference
//! implementation's semantics (`stmjit_lang::sets`); no set ever needs writing back whole.
//! A frozenset is the same object with a type of its own, never written after it is made:
//! only the reading operations apply (its key for hashing is its sorted members' keys).

use crate::{exc, Held, Runtime, R};
use stmjit_lang::ast::BinOp;
use stmjit_lang::builtins_core;
use stmjit_lang::diag::ErrorKind;
use stmjit_lang::value::{ListObj, Value};
use stmjit_runtime::value::{Word, NONE};

impl Runtime {
    /// Whether `w` is a set or a frozenset.
    pub fn is_set(&self, w: Word) -> bool {
        self.is(w, self.types.set) || self.is(w, self.types.frozenset)
    }

    /// A new empty set.
    pub fn new_set(&mut self) -> R<Word> {
        self.new_dict_of(self.types.set)
    }

    /// `s.add(x)`: a member already there is only read (no write, so no conflict with
    /// other readers).
    pub fn set_add(&mut self, s: Word, x: Word) -> R<()> {
        self.set_add_as(s, x, false)
    }

    /// [`Runtime::set_add`]; `stored`: `x` comes from a table (see [`Runtime::key_for`]).
    fn set_add_as(&mut self, s: Word, x: Word, stored: bool) -> R<()> {
        if !self.needs_prepare(x) {
            if self.dict_get(s, x)?.is_some() {
                return Ok(());
            }
            return self.dict_set_prepared(s, x, x, NONE);
        }
        // The key is prepared once (an instance's `__hash__` runs once, as in CPython).
        let m = self.mark();
        let rx = self.root(x);
        let r = self.key_for(s, x, stored);
        let x = self.get(rx);
        self.release(m);
        let (s, canon) = r?;
        if self.dict_get(s, canon)?.is_some() {
            return Ok(());
        }
        self.dict_set_prepared(s, canon, x, NONE)
    }

    /// The items of any iterable, held across allocations: sets, dicts, lists and tuples
    /// natively, others through the interpreter's values.
    fn held_items(&mut self, v: Word) -> R<Vec<Held>> {
        let t = self.types;
        let items = if self.is_set(v) || self.is(v, t.dict) {
            self.dict_items(v).into_iter().map(|(k, _)| k).collect()
        } else if self.is(v, t.list) {
            self.list_items(v)
        } else if self.is(v, t.tuple) {
            self.tuple_items(v)
        } else {
            let l = self.via_values(&[v], false, false, |a| {
                stmjit_lang::ops::iterate(&a[0]).map(ListObj::new_value)
            })?;
            self.list_items(l)
        };
        self.hold_all(&items)
    }

    /// Makes the members of set `s` those of set `new`: members not in `new` are removed,
    /// then `new`'s others are added in its order (`stmjit_lang::sets::assign`, natively:
    /// only the members that change are written).
    fn set_assign(&mut self, s: Word, new: Word) -> R<()> {
        let m = self.mark();
        let (rs, rn) = (self.root(s), self.root(new));
        let old = self.held_items(s)?;
        for h in old {
            let x = self.held(h);
            let (n, canon) = self.key_for(self.get(rn), x, true)?;
            if self.dict_get(n, canon)?.is_none() {
                self.dict_del_stored(self.get(rs), self.held(h))?;
            }
        }
        for h in self.held_items(self.get(rn))? {
            self.set_add_as(self.get(rs), self.held(h), true)?;
        }
        self.release(m);
        Ok(())
    }

    /// `s OP= rhs` for a set `s` and a set operator, in place; `None` otherwise.
    pub(crate) fn set_inplace(&mut self, op: BinOp, s: Word, rhs: Word) -> Option<R<Word>> {
        if !self.is(s, self.types.set)
            || !matches!(
                op,
                BinOp::BitOr | BinOp::BitAnd | BinOp::Sub | BinOp::BitXor
            )
        {
            return None;
        }
        if !self.is_set(rhs) {
            // The reference's TypeError.
            return Some(self.via_values(&[s, rhs], false, false, |v| {
                stmjit_lang::sets::inplace(op, &v[0], &v[1]).expect("a set operator on a set")
            }));
        }
        let m = self.mark();
        let rs = self.root(s);
        let r = if op == BinOp::BitOr {
            // `|=` only adds: member by member, no new set.
            self.held_items(rhs).and_then(|items| {
                items
                    .into_iter()
                    .try_for_each(|h| self.set_add(self.get(rs), self.held(h)))
            })
        } else {
            // The result, computed on values, then assigned.
            self.via_values(&[s, rhs], false, false, |v| {
                stmjit_lang::sets::binary(op, &v[0], &v[1]).expect("two sets")
            })
            .and_then(|new| self.set_assign(self.get(rs), new))
        };
        let s = self.get(rs);
        self.release(m);
        Some(r.map(|_| s))
    }

    /// A set method run on the heap set itself when it changes the set (see the module
    /// docs), or `None` for the generic path (the methods that only read it).
    pub(crate) fn set_method(&mut self, s: Word, name: &str, args: &[Word]) -> Option<R<Word>> {
        Some(match (name, args) {
            ("add", &[x]) => self.set_add(s, x).map(|_| NONE),
            ("discard", &[x]) => self.dict_del(s, x).map(|_| NONE),
            ("remove", &[x]) => {
                let m = self.mark();
                let rx = self.root(x);
                let r = self.dict_del(s, x);
                let x = self.get(rx);
                self.release(m);
                match r {
                    Ok(Some(_)) => Ok(NONE),
                    Ok(None) => self.repr(x).and_then(|r| Err(exc(ErrorKind::KeyError, r))),
                    Err(e) => Err(e),
                }
            }
            ("pop", &[]) => match self.dict_items(s).first() {
                // A stored key: nothing runs, nothing moves.
                Some(&(x, _)) => self.dict_del_stored(s, x).map(|_| x),
                None => Err(exc(ErrorKind::KeyError, "'pop from an empty set'")),
            },
            ("clear", &[]) => {
                let mut r = Ok(NONE);
                for (x, _) in self.dict_items(s) {
                    // Deleting allocates nothing: the words stay valid.
                    if let Err(e) = self.dict_del_stored(s, x) {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
            ("copy", &[]) => self.set_copy(s),
            ("update", _) => {
                let m = self.mark();
                let rs = self.root(s);
                let held = match self.hold_all(args) {
                    Ok(h) => h,
                    Err(e) => return Some(Err(e)),
                };
                let mut r = Ok(NONE);
                for a in held {
                    let items = self.held(a);
                    let added = self.held_items(items).and_then(|xs| {
                        xs.into_iter()
                            .try_for_each(|h| self.set_add(self.get(rs), self.held(h)))
                    });
                    if let Err(e) = added {
                        r = Err(e);
                        break;
                    }
                }
                self.release(m);
                r
            }
            ("intersection_update" | "difference_update" | "symmetric_difference_update", _) => {
                // The new members, computed by the method without `_update` on values.
                let m = self.mark();
                let rs = self.root(s);
                let mut all = vec![s];
                all.extend_from_slice(args);
                let program = self.info.program.clone();
                let name = name.to_string();
                // The method runs on the converted set; a copy of its new members comes back.
                let r = self
                    .via_values(&all, false, false, |v| {
                        let names = |id: usize| program.functions[id].qualname.clone();
                        let (recv, rest) = (v[0].clone(), v[1..].to_vec());
                        builtins_core::call_method(&recv, &name, rest, &names)?;
                        let Value::Set(d) = &recv else {
                            unreachable!("the receiver is a set")
                        };
                        let members = d.map.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        Ok(stmjit_lang::sets::set_value(members))
                    })
                    .and_then(|new| self.set_assign(self.get(rs), new))
                    .map(|_| NONE);
                self.release(m);
                r
            }
            _ => return None,
        })
    }

    /// `s.copy()`: a new set of the same members, in the same order.
    pub(crate) fn set_copy(&mut self, s: Word) -> R<Word> {
        let m = self.mark();
        let held = self.held_items(s)?;
        let copy = self.new_set()?;
        let rc = self.root(copy);
        for h in held {
            self.dict_set_stored(self.get(rc), self.held(h), NONE)?;
        }
        let copy = self.get(rc);
        self.release(m);
        Ok(copy)
    }

    /// A new set of `items` (a set display), in order; a TypeError for an unhashable one.
    pub fn set_of(&mut self, items: &[Held]) -> R<Word> {
        let m = self.mark();
        let s = self.new_set()?;
        let rs = self.root(s);
        for &h in items {
            self.set_add(self.get(rs), self.held(h))?;
        }
        let s = self.get(rs);
        self.release(m);
        Ok(s)
    }
}
