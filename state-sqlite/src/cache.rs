//! What the committer knows each slot held after its last transaction touching it: the
//! assumptions its one-call commit is guarded by (see `sql::Guarded`).

use std::collections::HashMap;

use state_core::Slot;

use crate::sql::{self, Known};

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

/// A bounded map of what slots hold. Bounded in entries and, since large values are not kept,
/// in bytes (at most [`CACHE_MAX`] values of at most [`sql::GUARDED_VALUE_MAX`] serialized
/// bytes). A stale or dropped entry costs a retry or a read, never a lost update: every write
/// made from it is guarded by it.
#[derive(Default)]
pub(crate) struct KnownCache {
    map: HashMap<Slot, Entry>,
}

/// The most slots the committer remembers; the cache is emptied when full. Small enough that
/// a workload writing fresh slots only (which the cache cannot help) does not keep growing
/// and rehashing a large table: W2 ran ~6 % faster with 8 192 than with 100 000 (median of
/// five alternating runs each).
pub(crate) const CACHE_MAX: usize = 8_192;

impl KnownCache {
    /// What `slot` is known to hold; `None` if it is not remembered.
    pub(crate) fn get(&self, slot: &Slot) -> Option<&Entry> {
        self.map.get(slot)
    }

    /// Remembers what `slot` holds now.
    pub(crate) fn insert(&mut self, slot: Slot, known: Known) {
        if self.map.len() >= CACHE_MAX && !self.map.contains_key(&slot) {
            self.map.clear();
        }
        let large = known
            .0
            .value
            .as_ref()
            .is_some_and(|v| state_core::check_size(&slot, v, sql::GUARDED_VALUE_MAX).is_err());
        let entry = if large {
            Entry::Large
        } else {
            Entry::Known(known)
        };
        self.map.insert(slot, entry);
    }

    /// Forgets `slot`.
    pub(crate) fn remove(&mut self, slot: &Slot) {
        self.map.remove(slot);
    }

    /// Forgets every slot.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    /// How many slots are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
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
    fn it_holds_at_most_cache_max_slots() {
        let mut cache = KnownCache::default();
        for i in 0..CACHE_MAX {
            cache.insert(slot(i), known(json!(i)));
        }
        assert_eq!(cache.len(), CACHE_MAX);
        // Rewriting a remembered slot keeps the others.
        cache.insert(slot(0), known(json!("again")));
        assert_eq!(cache.len(), CACHE_MAX);
        assert_eq!(
            cache.get(&slot(0)),
            Some(&Entry::Known(known(json!("again"))))
        );
        // A new slot past the bound empties it first.
        cache.insert(slot(CACHE_MAX), known(json!(0)));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&slot(1)), None);
        assert_eq!(
            cache.get(&slot(CACHE_MAX)),
            Some(&Entry::Known(known(json!(0))))
        );
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
