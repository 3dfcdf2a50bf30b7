//! Attributes: `o.name` and `o.name = v` of instances (slots by the class's shape) and
//! classes (their attribute dicts and bases, with the class table's method caches), and
//! the builtin methods of other objects; the fill of attribute-site caches.

use crate::objects::*;
use crate::site_cache::SiteCache;
use crate::{exc, Runtime, R, UNBOUND};
use std::mem::offset_of;
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::value::{self, Word, NONE};

impl Runtime {
    /// What this thread's copy of the class table knows of attribute `name` of class `id`,
    /// in one look: its slot in the instances' shape, and the cached class lookup (`None`:
    /// not cached, or this transaction bypasses the caches; `Some(UNBOUND)`: not found).
    pub fn class_view(&self, id: usize, name: u32) -> (Option<usize>, Option<Word>) {
        // A transaction that assigned a class attribute: the caches may predate it.
        let bypass = self.tx.class_changed;
        self.class_copy.with(&self.info.classes, |c| {
            let class = &c[id];
            let slot = class.shape.iter().position(|&n| n == name);
            let cached = class
                .methods
                .iter()
                .find(|(n, _)| *n == name && !bypass)
                .map(|&(_, w)| w);
            (slot, cached)
        })
    }
    /// The value of a name looked up in a class and its bases (the attrs dicts).
    pub fn class_lookup(&mut self, cls: Word, name: u32) -> R<Option<Word>> {
        self.rb(cls);
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        let (_, cached) = self.class_view(id, name);
        self.class_lookup_from(cls, id, name, cached)
    }
    /// [`Runtime::class_lookup`] of class `cls` (id `id`) once its cache entry was read
    /// ([`Runtime::class_view`]).
    pub(crate) fn class_lookup_from(
        &mut self,
        cls: Word,
        id: usize,
        name: u32,
        cached: Option<Word>,
    ) -> R<Option<Word>> {
        if let Some(w) = cached {
            return Ok((w != UNBOUND).then_some(w));
        }
        if self.tx.class_changed {
            // Nothing it finds is cached: it may be this transaction's own assignment.
            return self.class_lookup_uncached(cls, name);
        }
        let epoch = self.info.classes.epoch();
        self.refresh()?;
        let found = self.class_lookup_uncached(cls, name)?;
        // The function objects of `def`s without defaults are old constants (they never
        // move), and ints, None and bools are no references: safe to cache (other objects
        // may move, or be dropped with an aborted transaction).
        let entry = match found {
            Some(f) if self.is_const_function(f) || !value::is_ref(f) => Some(f),
            None => Some(UNBOUND),
            _ => None,
        };
        if let Some(w) = entry {
            self.info.classes.cache_method(id, name, w, epoch);
        }
        Ok(found)
    }
    fn class_lookup_uncached(&self, mut cls: Word, name: u32) -> R<Option<Word>> {
        let key = self.info.names.str_obj(name);
        if key == UNBOUND {
            // A name first seen at run time (`getattr(o, computed)`): no class holds it.
            return Ok(None);
        }
        loop {
            self.rb(cls);
            let attrs = self.ld(cls, offset_of!(ClassObj, attrs) as u64);
            if let Some(v) = self.dict_get(attrs, key)? {
                return Ok(Some(v));
            }
            cls = self.ld(cls, offset_of!(ClassObj, base) as u64);
            if cls == NONE {
                return Ok(None);
            }
        }
    }
    /// `o.name`.
    pub fn getattr(&mut self, o: Word, name: u32) -> R<Word> {
        let t = self.types;
        if self.is(o, t.instance) {
            return self.getattr_instance(o, name).map(|(v, _)| v);
        }
        if self.is(o, t.class) {
            let found = self.class_lookup(o, name)?;
            if found.is_none() && name == crate::exceptions::NAME_NAME {
                let n = self.class_name(o);
                return self.new_str(&n);
            }
            return found.ok_or_else(|| {
                exc(
                    ErrorKind::AttributeError,
                    format!(
                        "type object '{}' has no attribute '{}'",
                        self.class_name(o),
                        self.info.names.text(name)
                    ),
                )
            });
        }
        if name == crate::exceptions::NAME_NAME
            && self.is(o, t.builtin)
            && self.ld(o, offset_of!(BuiltinObj, is_method) as u64) == 0
        {
            let which = self.ld(o, offset_of!(BuiltinObj, which) as u64) as usize;
            return self.new_str(stmjit_lang::ast::Builtin::ALL[which].name());
        }
        if self.is(o, t.slice) {
            if let Some(v) = self.slice_attr(o, self.info.names.text(name)) {
                return Ok(v);
            }
        }
        if super::methods::has_method(self, o, self.info.names.text(name)) {
            return self.new_builtin(name as u64, o, true);
        }
        Err(exc(
            ErrorKind::AttributeError,
            format!(
                "'{}' object has no attribute '{}'",
                self.type_name(o),
                self.info.names.text(name)
            ),
        ))
    }
    /// `o.name` for an instance `o`, and where its class's shape has `name`: `(class id,
    /// slot)` (for the cache of an attribute site).
    pub(crate) fn getattr_instance(
        &mut self,
        o: Word,
        name: u32,
    ) -> R<(Word, Option<(u64, usize)>)> {
        self.rb(o);
        let cls = self.ld(o, offset_of!(InstanceObj, class) as u64);
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        let (slot, cached) = self.class_view(id, name);
        let at = slot.map(|s| (id as u64, s));
        if let Some(s) = slot {
            // (Unbound: nothing allocated, `o` did not move.)
            let v = self.inst_slot(o, s)?;
            if v != UNBOUND {
                return Ok((v, at));
            }
        }
        self.rb(cls);
        let v = match self.class_lookup_from(cls, id, name, cached)? {
            Some(f) if self.is(f, self.types.function) => self.new_bound_method(f, o)?,
            Some(v) => v,
            None => {
                return Err(exc(
                    ErrorKind::AttributeError,
                    format!(
                        "'{}' object has no attribute '{}'",
                        self.info.classes.read()[id].name,
                        self.info.names.text(name)
                    ),
                ))
            }
        };
        Ok((v, at))
    }
    /// Whether instance or class `o` has attribute `name` (what `o.name` would find,
    /// without making the bound method).
    pub fn has_attr(&mut self, o: Word, name: u32) -> R<bool> {
        if !self.is(o, self.types.instance) {
            return Ok(self.class_lookup(o, name)?.is_some());
        }
        self.rb(o);
        let cls = self.ld(o, offset_of!(InstanceObj, class) as u64);
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        if self
            .shape_slot(id, name)
            .is_some_and(|s| self.inst_slot_bound(o, s))
        {
            return Ok(true);
        }
        Ok(self.class_lookup(cls, name)?.is_some())
    }
    /// `o.name = v`.
    pub fn setattr(&mut self, o: Word, name: u32, v: Word) -> R<()> {
        let t = self.types;
        if self.is(o, t.instance) {
            self.rb(o);
            let cls = self.ld(o, offset_of!(InstanceObj, class) as u64);
            let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
            let slot = match self.shape_slot(id, name) {
                Some(s) => s,
                None => {
                    // Another thread may have added it meanwhile: look again under the lock.
                    let mut classes = self.info.classes.write();
                    let shape = &mut classes[id].shape;
                    match shape.iter().position(|&n| n == name) {
                        Some(s) => s,
                        None => {
                            shape.push(name);
                            let s = shape.len() - 1;
                            drop(classes);
                            self.info.classes.shape_grew();
                            s
                        }
                    }
                }
            };
            return self.set_inst_slot(o, slot, v);
        }
        if self.is(o, t.class) {
            // Method caches are rebuilt from the classes' dicts (read with barriers); forgotten
            // again when this transaction commits (`Runtime::commit`).
            if std::mem::replace(&mut self.tx.class_changed, true) {
                self.info.classes.forget_methods();
            } else {
                self.info.classes.begin_change();
            }
            self.rb(o);
            let attrs = self.ld(o, offset_of!(ClassObj, attrs) as u64);
            let key = self.info.names.str_obj(name);
            if key == UNBOUND {
                return Err(exc(
                    ErrorKind::AttributeError,
                    format!(
                        "cannot set class attribute '{}': the name appears nowhere in the program",
                        self.info.names.text(name)
                    ),
                ));
            }
            return self.dict_set(attrs, key, v);
        }
        Err(exc(
            ErrorKind::AttributeError,
            format!(
                "'{}' object has no attribute '{}'",
                self.type_name(o),
                self.info.names.text(name)
            ),
        ))
    }
}

/// Fills an attribute-site cache when `o` is an instance whose class shape has `name`.
pub(crate) fn fill_cache(rt: &mut Runtime, o: Word, name: u32, cache: *const SiteCache) {
    if rt.is(o, rt.types.instance) {
        rt.rb(o);
        let cls = rt.ld(o, offset_of!(InstanceObj, class) as u64);
        let id = rt.ld(cls, offset_of!(ClassObj, class_id) as u64);
        if let Some(slot) = rt.shape_slot(id as usize, name) {
            // SAFETY: JIT code passes the address of its site's live cache (never freed).
            unsafe { (*cache).insert(id, slot as u64) };
        }
    }
}
