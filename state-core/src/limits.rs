//! The limits every stored value is held to, checked without recursion.
//!
//! serde_json reads, writes, clones, compares and drops a [`Value`] by recursion, and its
//! parser stops at 128 levels. A value nested deeper than a store can read back would be an
//! acknowledged write that no read, history or export can return; a value thousands of levels
//! deep overflows the stack of any recursive walk. So every value a write, an op or a restore
//! carries is held to [`MAX_DEPTH`] (and to the engine's size limit) by walks that keep their
//! own stack, before anything recursive touches it, and a refused value is taken apart
//! without recursion.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::op::{OpKind, Path};
use crate::record::Record;
use crate::scope::Slot;
use crate::store::{Batch, WriteKind};

/// The deepest a stored value may nest: arrays and objects one inside another (`[[1]]` nests
/// 2 levels; a number, 0). Deep enough for any document a person writes; shallow enough that
/// every line of an export, a change-log row or an op list holding such a value stays within
/// what serde_json reads (128 levels).
pub const MAX_DEPTH: usize = 64;

/// What one walk of a value found.
pub(crate) struct Walk {
    /// An upper bound of the value's serialized size (saturating).
    pub(crate) bound: usize,
    /// Where the first array or object past the depth limit opens, if any.
    pub(crate) too_deep: Option<Path>,
}

/// The step a walk took into a container, kept to name a path only when one is needed.
#[derive(Clone, Copy)]
enum Step<'a> {
    Index(usize),
    Key(&'a str),
}

/// A container being walked: its remaining children and the step to the current one.
enum Frame<'a> {
    Items(std::iter::Enumerate<std::slice::Iter<'a, Value>>, Step<'a>),
    Entries(serde_json::map::Iter<'a>, Step<'a>),
}

impl<'a> Frame<'a> {
    fn open(value: &'a Value) -> Option<Self> {
        match value {
            Value::Array(items) => Some(Frame::Items(items.iter().enumerate(), Step::Index(0))),
            Value::Object(map) => Some(Frame::Entries(map.iter(), Step::Index(0))),
            _ => None,
        }
    }

    /// The next child, and the bytes its key adds to the size bound.
    fn next(&mut self) -> Option<(&'a Value, usize)> {
        match self {
            Frame::Items(items, step) => items.next().map(|(i, v)| {
                *step = Step::Index(i);
                (v, 0)
            }),
            Frame::Entries(entries, step) => entries.next().map(|(k, v)| {
                *step = Step::Key(k);
                (v, string_bound(k))
            }),
        }
    }

    fn step(&self) -> Step<'a> {
        match self {
            Frame::Items(_, s) | Frame::Entries(_, s) => *s,
        }
    }
}

/// Each string byte counted as its longest escape (`\u00XX`), plus the quotes.
fn string_bound(s: &str) -> usize {
    s.len().saturating_mul(6).saturating_add(2)
}

/// The most bytes `value` adds by itself (a container: its brackets and separators).
fn own_bound(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        // u64::MAX, i64::MIN and the longest f64 ("-1.7976931348623157e308") fit in 24.
        Value::Number(_) => 24,
        Value::String(s) => string_bound(s),
        Value::Array(items) => 2 + items.len(),
        Value::Object(map) => 2usize.saturating_add(map.len().saturating_mul(2)),
    }
}

/// Walks `value` once, depth first, with its own stack: its size bound, and where it first
/// nests deeper than `max_depth`. Allocates nothing but the stack (and the path it reports).
pub(crate) fn walk(value: &Value, max_depth: usize) -> Walk {
    let mut bound = own_bound(value);
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let mut next = Some(value);
    loop {
        if let Some(frame) = next.take().and_then(Frame::open) {
            if frames.len() >= max_depth {
                let path = Path::new(frames.iter().map(|f| match f.step() {
                    Step::Index(i) => i.to_string(),
                    Step::Key(k) => k.to_owned(),
                }));
                return Walk {
                    bound,
                    too_deep: Some(path),
                };
            }
            frames.push(frame);
        }
        let Some(top) = frames.last_mut() else {
            return Walk {
                bound,
                too_deep: None,
            };
        };
        match top.next() {
            Some((child, key)) => {
                bound = bound.saturating_add(key).saturating_add(own_bound(child));
                next = Some(child);
            }
            None => {
                frames.pop();
            }
        }
    }
}

/// Where `value` first nests deeper than `limit` levels, if it does.
pub(crate) fn depth_past(value: &Value, limit: usize) -> Option<Path> {
    walk(value, limit).too_deep
}

/// Fails with [`Error::TooDeep`] if `value` nests deeper than [`MAX_DEPTH`], and with
/// [`Error::TooLarge`] if it serializes to more than `max_bytes` bytes. Neither check
/// recurses; a value whose size bound is within the limit is not serialized at all.
pub fn check_value(slot: &Slot, value: &Value, max_bytes: usize) -> Result<()> {
    let walked = walk(value, MAX_DEPTH);
    if let Some(path) = walked.too_deep {
        return Err(Error::TooDeep {
            slot: slot.clone(),
            path,
            limit: MAX_DEPTH,
        });
    }
    if walked.bound <= max_bytes {
        return Ok(());
    }
    // Within the depth limit, serde_json's recursion is safe: count exactly.
    let mut counter = Counter {
        n: 0,
        limit: max_bytes,
    };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => Ok(()),
        Err(_) => Err(Error::TooLarge {
            slot: slot.clone(),
            size: counter.n,
            limit: max_bytes,
        }),
    }
}

/// Counts bytes written, failing once past `limit`.
struct Counter {
    n: usize,
    limit: usize,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.n += buf.len();
        if self.n > self.limit {
            Err(std::io::Error::other("over the limit"))
        } else {
            Ok(buf.len())
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Drops `value` without recursion (a deep value's own drop would overflow the stack).
pub fn dispose(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Every value a batch carries: CAS values, op operands and initial values, with the path in
/// the slot's value where each lands.
fn batch_values(batch: Batch) -> impl Iterator<Item = Value> {
    batch.writes.into_iter().flat_map(|w| {
        let values: Vec<Value> = match w.kind {
            WriteKind::Cas { value, .. } => value.into_iter().collect(),
            WriteKind::Apply { ops, initial } => ops
                .into_iter()
                .flat_map(|op| match op.kind {
                    OpKind::Set { value } => vec![value],
                    OpKind::Append { item } => vec![item],
                    OpKind::Merge { entries } => entries.into_iter().map(|(_, v)| v).collect(),
                    _ => Vec::new(),
                })
                .chain(initial)
                .collect(),
        };
        values
    })
}

/// The first value in `batch` that nests deeper than [`MAX_DEPTH`] where it lands (an op's
/// operand counts the levels of its path; an appended item one more).
fn batch_too_deep(batch: &Batch) -> Option<Error> {
    let refuse = |slot: &Slot, at: &Path, inner: Path| Error::TooDeep {
        slot: slot.clone(),
        path: at.join(&inner),
        limit: MAX_DEPTH,
    };
    for w in &batch.writes {
        let root = Path::root();
        let found = match &w.kind {
            WriteKind::Cas { value, .. } => value
                .iter()
                .find_map(|v| depth_past(v, MAX_DEPTH).map(|p| (&root, p))),
            WriteKind::Apply { ops, initial } => initial
                .iter()
                .find_map(|v| depth_past(v, MAX_DEPTH).map(|p| (&root, p)))
                .or_else(|| ops.iter().find_map(op_too_deep)),
        };
        if let Some((at, inner)) = found {
            return Some(refuse(&w.slot, at, inner));
        }
    }
    None
}

/// Where an op's operand first passes [`MAX_DEPTH`], counted from the slot's root: the path
/// the op writes at, and the path inside the operand.
pub(crate) fn op_too_deep(op: &crate::op::Op) -> Option<(&Path, Path)> {
    let levels = op.path.segments().len();
    let room = |extra: usize| MAX_DEPTH.saturating_sub(levels + extra);
    match &op.kind {
        OpKind::Set { value } => depth_past(value, room(0)).map(|p| (&op.path, p)),
        OpKind::Append { item } => depth_past(item, room(1)).map(|p| (&op.path, p)),
        OpKind::Merge { entries } => entries.iter().find_map(|(k, v)| {
            depth_past(v, room(1)).map(|p| (&op.path, Path::new([k.clone()]).join(&p)))
        }),
        _ => None,
    }
}

/// Checks every value `batch` carries against [`MAX_DEPTH`] without recursion; a batch that
/// fails is taken apart without recursion and nothing of it reaches the store. Every
/// [`Store::commit`](crate::Store::commit) calls this first.
pub fn check_batch(batch: Batch) -> Result<Batch> {
    match batch_too_deep(&batch) {
        None => Ok(batch),
        Some(e) => {
            batch_values(batch).for_each(dispose);
            Err(e)
        }
    }
}

/// Checks every record a restore carries as a write's value is checked ([`check_value`]:
/// depth and size); records that fail are taken apart without recursion.
pub fn check_restored(
    records: Vec<(Slot, Record)>,
    max_bytes: usize,
) -> Result<Vec<(Slot, Record)>> {
    let refused = records.iter().find_map(|(slot, r)| {
        r.value
            .as_ref()
            .and_then(|v| check_value(slot, v, max_bytes).err())
    });
    match refused {
        None => Ok(records),
        Some(e) => {
            records
                .into_iter()
                .filter_map(|(_, r)| r.value)
                .for_each(dispose);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{MAX_DEPTH, check_value, dispose, walk};
    use crate::scope::{Scope, Slot};

    fn nested(levels: usize) -> Value {
        let mut v = json!(1);
        for i in 0..levels {
            v = if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                // Not `json!({"k": v})`: it would serialize `v`, recursively.
                Value::Object(serde_json::Map::from_iter([("k".to_string(), v)]))
            };
        }
        v
    }

    fn slot() -> Slot {
        Slot::new(Scope::app("a").unwrap(), "T", "k").unwrap()
    }

    #[test]
    fn the_limit_is_exact_and_names_where_it_is_passed() {
        assert!(walk(&nested(MAX_DEPTH), MAX_DEPTH).too_deep.is_none());
        let path = walk(&nested(MAX_DEPTH + 1), MAX_DEPTH).too_deep.unwrap();
        assert_eq!(path.segments().len(), MAX_DEPTH);
        assert!(check_value(&slot(), &nested(MAX_DEPTH), usize::MAX).is_ok());
        assert!(matches!(
            check_value(&slot(), &nested(MAX_DEPTH + 1), usize::MAX),
            Err(crate::Error::TooDeep {
                limit: MAX_DEPTH,
                ..
            })
        ));
        assert!(walk(&json!(1), 0).too_deep.is_none());
        assert!(walk(&json!([]), 0).too_deep.is_some());
    }

    #[test]
    fn a_million_levels_are_walked_and_dropped_without_recursion() {
        let deep = nested(1_000_000);
        assert!(walk(&deep, MAX_DEPTH).too_deep.is_some());
        dispose(deep);
    }
}

#[cfg(test)]
mod bound_tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::{check_value, walk};
    use crate::{Error, Scope, Slot};

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            // Control characters, quotes and backslashes: the strings with the longest escapes.
            "[\\x00-\\x1f\"\\\\a-z\u{e9}\u{1F600}]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[\\x00-\\x1fa-z\"]{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The bound never under-counts, and `check_value` refuses exactly the values whose
        /// serialization is over the limit, whether or not the bound let it skip serializing.
        #[test]
        fn the_size_bound_never_undercounts(v in json_value(), slack in 0usize..4) {
            let exact = serde_json::to_string(&v).unwrap().len();
            prop_assert!(walk(&v, usize::MAX).bound >= exact);
            let slot = Slot::new(Scope::app("a").unwrap(), "N", "k").unwrap();
            for limit in [exact.saturating_sub(slack + 1), exact + slack, exact * 6 + 64] {
                let r = check_value(&slot, &v, limit);
                if exact <= limit {
                    prop_assert!(r.is_ok(), "{exact} bytes under {limit}: {r:?}");
                } else {
                    let refused = matches!(r, Err(Error::TooLarge { .. }));
                    prop_assert!(refused, "{exact} bytes over {limit}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn extreme_numbers_and_escapes_fit_the_bound() {
        for v in [
            json!(u64::MAX),
            json!(i64::MIN),
            json!(-1.7976931348623157e308),
            json!(f64::MIN_POSITIVE),
            json!(5e-324),
            json!("\u{0}\u{1f}"),
            json!({"\u{0}": ["\u{1}", null, false]}),
        ] {
            let exact = serde_json::to_string(&v).unwrap().len();
            assert!(walk(&v, usize::MAX).bound >= exact, "{v}: {exact}");
        }
    }
}
