//! Names of the objects that conflicts are on, for `--stats` (and `--trace`): what a user
//! calls them rather than their type.
//!
//! | type | name | from |
//! |---|---|---|
//! | instance (its inline slots), instance slots (its overflow array) | `Account.balance` | the attribute the sides' sites access ([`crate::Site::accesses`]), and the classes whose shape has it |
//! | dict entries | `dict['sum']` | the key in the conflicting 16-byte card (one entry per card) |
//! | set entries | `set member 'x'` | the same: a set is a dict of its members |
//! | list items | `list[4 or 5]` | the card's position (two items per card) |
//! | globals | `global counter` | the card's position (two globals per card), narrowed by the globals the sides' sites access |
//!
//! The heap is read in the committed segment (segment 0) by the aborted thread, after its
//! abort (`Runtime::note_abort`), outside any transaction: a commit may be writing those
//! words meanwhile, so a name can be stale or garbled (a key replaced since), but every
//! address is checked to lie in the old space first, where memory is always mapped. Where no
//! name can be made (the card of a dict's counts, a list's length, a key that is neither an
//! int, a bool, None nor a str), there is none and the report names the type.
//!
//! Where the containers were created is not recorded (no allocation sites), so a dict or a
//! list is not told apart from another one of the same program: the sides' lines do that.

use crate::objects::{ArrayObj, StrObj, ARRAY_DATA, DICT_FIRST_ENTRY};
use crate::{Accessed, Runtime};
use std::mem::{offset_of, size_of};
use stmjit_runtime::object::TYPE_ID_OFFSET;
use stmjit_runtime::value::{self, Word, FALSE, NONE, TRUE};
use stmjit_runtime::ConflictInfo;

/// Longest key text quoted (in characters), then `...`.
const KEY_CHARS: usize = 24;

impl Runtime {
    /// The name of the object of conflict `c` (see the module docs), None when the report
    /// should name its type only.
    pub fn conflict_object_name(&self, c: &ConflictInfo) -> Option<String> {
        let t = self.types;
        let id = c.type_id;
        if id == t.instance.0 || id == t.array.0 {
            self.attribute_name(c)
        } else if id == t.dict_array.0 {
            self.dict_entry_name(c).map(|k| format!("dict[{k}]"))
        } else if id == t.set_array.0 {
            self.dict_entry_name(c).map(|k| format!("set member {k}"))
        } else if id == t.carded_array.0 {
            let w = self.card_word(c)?;
            Some(format!("list[{} or {}]", w, w + 1))
        } else if id == t.globals_array.0 {
            self.global_name(c)
        } else {
            None
        }
    }

    /// What the sites of `c`'s two sides access (winner's first).
    fn accessed(&self, c: &ConflictInfo) -> Vec<Accessed> {
        let sites = &self.info.code.sites;
        let mut v: Vec<Accessed> = [c.winner.site, c.loser.site]
            .iter()
            .filter_map(|&s| sites.get(s as usize)?.accesses)
            .collect();
        v.dedup();
        v
    }

    /// `global x` for a conflict on the card of the globals array holding globals `w` and
    /// `w + 1`: the ones the sides access, or both (`global x or y`) when they do not say.
    fn global_name(&self, c: &ConflictInfo) -> Option<String> {
        let w = self.card_word(c)? as u32;
        let g = &self.info.program.globals;
        let mut card: Vec<u32> = [w, w + 1]
            .into_iter()
            .filter(|&i| (i as usize) < g.len())
            .collect();
        let named: Vec<u32> = card
            .iter()
            .copied()
            .filter(|&i| self.accessed(c).contains(&Accessed::Global(i)))
            .collect();
        if !named.is_empty() {
            card = named;
        }
        let names: Vec<&str> = card.iter().map(|&i| g[i as usize].as_str()).collect();
        (!names.is_empty()).then(|| format!("global {}", names.join(" or ")))
    }

    /// `Class.attr` for a conflict on an instance (or its overflow slots array): the
    /// attributes the two sides' sites access (both, when they differ: one instance holds
    /// every attribute of it), each prefixed by the classes whose shape has it (`A/B.x` when
    /// several do).
    fn attribute_name(&self, c: &ConflictInfo) -> Option<String> {
        let attrs: Vec<u32> = self
            .accessed(c)
            .into_iter()
            .filter_map(|a| match a {
                Accessed::Attr(n) => Some(n),
                Accessed::Global(_) => None,
            })
            .collect();
        if attrs.is_empty() {
            return None;
        }
        let classes = self.info.classes.read();
        let names: Vec<String> = attrs
            .iter()
            .map(|&a| {
                // (A class statement run again after an abort makes another class of the
                // same name: one name each.)
                let mut owners: Vec<&str> = classes
                    .iter()
                    .filter(|k| k.shape.contains(&a))
                    .map(|k| k.name.as_str())
                    .collect();
                owners.sort_unstable();
                owners.dedup();
                let attr = self.info.names.text(a);
                if owners.is_empty() {
                    attr.to_string()
                } else {
                    format!("{}.{attr}", owners.join("/"))
                }
            })
            .collect();
        Some(names.join(", "))
    }

    /// The key (as `repr` writes it) of the entry of a conflict on an entry's card of a
    /// dict's (or set's) entries array; None for its counts card and for its index array (whose capacity is a power of two, while an
    /// entries array has `2 + 2 * capacity` words, capacity a power of two of at least 4).
    fn dict_entry_name(&self, c: &ConflictInfo) -> Option<String> {
        let cap = self.committed_word(c.object + offset_of!(ArrayObj, cap) as u64)?;
        if cap.is_power_of_two() {
            return None;
        }
        let w = self.card_word(c)?;
        if w < DICT_FIRST_ENTRY {
            return None;
        }
        // Entry e's key is word 2 + 2e: the first word of its card.
        let key = self.committed_word(c.addr)?;
        self.key_text(key)
    }

    /// Index of the first array word in the conflicting card of a card-marked array (the
    /// card holds it and the next); None for the header card.
    fn card_word(&self, c: &ConflictInfo) -> Option<u64> {
        let data = c.object + ARRAY_DATA;
        (c.addr >= data).then(|| (c.addr - data) / 8)
    }

    /// A key as Python's `repr` writes it: ints, bools, None and strs; None otherwise.
    fn key_text(&self, k: Word) -> Option<String> {
        if value::is_int(k) {
            return Some(value::to_int(k).to_string());
        }
        match k {
            NONE => return Some("None".into()),
            TRUE => return Some("True".into()),
            FALSE => return Some("False".into()),
            _ => {}
        }
        if !value::is_ref(k) {
            return None;
        }
        let type_id = self.committed_word(k + (TYPE_ID_OFFSET & !7))? >> ((TYPE_ID_OFFSET & 7) * 8);
        if type_id as u32 != self.types.str.0 {
            return None;
        }
        let len = self.committed_word(k + offset_of!(StrObj, len) as u64)?;
        let start = k + size_of::<StrObj>() as u64;
        let bytes: Vec<u8> = (0..len.min(4 * KEY_CHARS as u64))
            .map(|i| self.committed_byte(start + i))
            .collect::<Option<_>>()?;
        let text = String::from_utf8_lossy(&bytes);
        let mut out = String::from("'");
        for (i, ch) in text.chars().enumerate() {
            if i == KEY_CHARS {
                out.push_str("...");
                break;
            }
            match ch {
                '\'' | '\\' => {
                    out.push('\\');
                    out.push(ch);
                }
                c if c.is_control() => out.push_str(&c.escape_default().to_string()),
                c => out.push(c),
            }
        }
        out.push('\'');
        Some(out)
    }

    /// The committed word at old-space offset `a` (8-aligned), None outside the old space.
    fn committed_word(&self, a: u64) -> Option<u64> {
        let l = self.stm.layout();
        if !a.is_multiple_of(8) || a < l.old_start || a + 8 > l.old_end {
            return None;
        }
        // SAFETY: the old space of segment 0 is mapped for the runtime's lifetime; the read
        // may race with a commit publishing into it (see the module docs): a volatile
        // aligned word read, whose value is only displayed.
        Some(unsafe { std::ptr::read_volatile((self.stm.segment_base(0) + a) as *const u64) })
    }

    /// The committed byte at old-space offset `a`, None outside the old space.
    fn committed_byte(&self, a: u64) -> Option<u8> {
        let l = self.stm.layout();
        if a < l.old_start || a >= l.old_end {
            return None;
        }
        // SAFETY: as `committed_word`.
        Some(unsafe { std::ptr::read_volatile((self.stm.segment_base(0) + a) as *const u8) })
    }
}
