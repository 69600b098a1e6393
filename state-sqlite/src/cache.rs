//! What the committer knows each slot held after its last transaction touching it: the
//! assumptions its one-call commit is guarded by (see `sql::Guarded`).

use std::collections::HashMap;

use state_core::Slot;

use state_sql::Known;

use crate::sql;

/// What the committer remembers of one slot.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Entry {
    /// Its record, and whether it has a row.
    Known(Known),
    /// Its value serializes to more than the one-call commit compares in the database
    /// ([`sql::GUARDED_VALUE_MAX`]): a group touching it takes the read path. Its value is not
    /// kept.
    Large,
}

/// A bounded map of what slots hold: the slots remembered most recently, in two generations
/// of at most [`CACHE_MAX`] each. When the young one is full it becomes the old one (the old
/// one is forgotten), so a working set of up to [`CACHE_MAX`] slots written over and over is
/// never forgotten, and a stream of fresh slots (which the cache cannot help) costs no
/// growing table. A value over [`sql::GUARDED_VALUE_MAX`] serialized bytes is not kept (in
/// memory a JSON value can take several times its text: a 4 KiB array of small numbers
/// takes ~64 KiB). A stale or forgotten entry costs a retry or a read, never a lost update:
/// every write made from it is guarded by it.
#[derive(Default)]
pub(crate) struct KnownCache {
    young: HashMap<Slot, Entry>,
    old: HashMap<Slot, Entry>,
}

/// The most slots in each generation. Small enough that a workload writing fresh slots only
/// does not keep growing and rehashing a large table (BENCHMARKS.md, session 9).
pub(crate) const CACHE_MAX: usize = 8_192;

impl KnownCache {
    /// What `slot` is known to hold; `None` if it is not remembered.
    pub(crate) fn get(&self, slot: &Slot) -> Option<&Entry> {
        self.young.get(slot).or_else(|| self.old.get(slot))
    }

    /// Remembers what `slot` holds now.
    pub(crate) fn insert(&mut self, slot: Slot, known: Known) {
        if self.young.len() >= CACHE_MAX && !self.young.contains_key(&slot) {
            // The young generation becomes the old one; the old one's table is reused.
            std::mem::swap(&mut self.young, &mut self.old);
            self.young.clear();
        }
        let large = known.0.value.as_ref().is_some_and(|v| {
            state_core::backend::check_value(&slot, v, sql::GUARDED_VALUE_MAX).is_err()
        });
        let entry = if large {
            Entry::Large
        } else {
            Entry::Known(known)
        };
        // An older entry in the old generation is shadowed, then forgotten with it.
        self.young.insert(slot, entry);
    }

    /// Forgets `slot`.
    pub(crate) fn remove(&mut self, slot: &Slot) {
        self.young.remove(slot);
        self.old.remove(slot);
    }

    /// Forgets every slot.
    pub(crate) fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    /// How many entries are held (a slot shadowed in the old generation counts twice).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use state_core::{Record, Scope};

    use super::*;

    fn slot(key: usize) -> Slot {
        Slot::new(Scope::app("a").unwrap(), "ns", format!("k{key}")).unwrap()
    }

    fn known(value: serde_json::Value) -> Known {
        let mut record = Record::absent(3);
        record.value = Some(value);
        (record, true)
    }

    #[test]
    fn it_forgets_the_least_recently_written_slots_beyond_two_generations() {
        let mut cache = KnownCache::default();
        for i in 0..CACHE_MAX {
            cache.insert(slot(i), known(json!(i)));
        }
        assert_eq!(cache.len(), CACHE_MAX);
        // Rewriting a remembered slot keeps the others where they are.
        cache.insert(slot(0), known(json!("again")));
        assert_eq!(cache.len(), CACHE_MAX);
        assert_eq!(
            cache.get(&slot(0)),
            Some(&Entry::Known(known(json!("again"))))
        );
        // A new slot past the bound starts a new generation: the others are still known.
        cache.insert(slot(CACHE_MAX), known(json!(0)));
        assert_eq!(cache.len(), CACHE_MAX + 1);
        assert_eq!(cache.get(&slot(1)), Some(&Entry::Known(known(json!(1)))));
        // A slot written again meanwhile moves to the new generation and survives the next
        // turn; the rest of the old one is forgotten.
        cache.insert(slot(1), known(json!("kept")));
        for i in CACHE_MAX + 1..2 * CACHE_MAX + 1 {
            cache.insert(slot(i), known(json!(i)));
        }
        assert_eq!(
            cache.get(&slot(1)),
            Some(&Entry::Known(known(json!("kept"))))
        );
        assert_eq!(cache.get(&slot(2)), None);
        assert_eq!(cache.get(&slot(0)), None);
        assert!(cache.len() <= 2 * CACHE_MAX, "{}", cache.len());
        // Forgetting a slot forgets it in both generations.
        cache.remove(&slot(1));
        assert_eq!(cache.get(&slot(1)), None);
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_value_the_guard_cannot_compare_is_not_kept() {
        let mut cache = KnownCache::default();
        // Serialized with its quotes: exactly the limit is kept, one byte more is not.
        let fits = "x".repeat(sql::GUARDED_VALUE_MAX - 2);
        let over = "x".repeat(sql::GUARDED_VALUE_MAX - 1);
        cache.insert(slot(1), known(json!(fits)));
        cache.insert(slot(2), known(json!(over)));
        assert_eq!(cache.get(&slot(1)), Some(&Entry::Known(known(json!(fits)))));
        assert_eq!(cache.get(&slot(2)), Some(&Entry::Large));
        // A tombstone written over it is small again.
        let tombstone = (Record::absent(4), true);
        cache.insert(slot(2), tombstone.clone());
        assert_eq!(cache.get(&slot(2)), Some(&Entry::Known(tombstone)));
    }
}
