//! Path operations on JSON values: the data an Apply write carries to the store.
//!
//! An [`Op`] is a [`Path`] (a list of object keys — never a dotted string, since keys may
//! contain dots) and an [`OpKind`]. A list of ops is applied to a slot's value all-or-nothing:
//! [`apply_ops`] works on a copy and returns either the new value or a typed error.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::error::Error;
use crate::scope::Slot;

/// A path into a slot's JSON value: object keys from the root. The root path is empty.
///
/// ```
/// use state_core::Path;
/// let p = Path::root().child("profile").child("a.b");
/// assert_eq!(p.segments(), ["profile", "a.b"]);
/// assert_eq!(p.to_string(), r#"profile["a.b"]"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Path(Vec<String>);

impl Path {
    /// The root: the slot's whole value.
    pub const fn root() -> Self {
        Path(Vec::new())
    }

    /// A path from its segments.
    pub fn new<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Path(segments.into_iter().map(Into::into).collect())
    }

    /// This path extended by one segment.
    #[must_use]
    pub fn child(mut self, segment: impl Into<String>) -> Self {
        self.0.push(segment.into());
        self
    }

    /// This path followed by `rest`.
    #[must_use]
    pub fn join(&self, rest: &Path) -> Path {
        Path(self.0.iter().chain(&rest.0).cloned().collect())
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the root");
        }
        for (i, seg) in self.0.iter().enumerate() {
            let plain = !seg.is_empty()
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !seg.starts_with(|c: char| c.is_ascii_digit());
            match (plain, i) {
                (true, 0) => f.write_str(seg)?,
                (true, _) => write!(f, ".{seg}")?,
                (false, _) => write!(f, "[{seg:?}]")?,
            }
        }
        Ok(())
    }
}

/// The number type of a field, carried by numeric ops so overflow is checked at its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum NumKind {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl NumKind {
    /// The Rust name of the type (`"u32"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            NumKind::U8 => "u8",
            NumKind::U16 => "u16",
            NumKind::U32 => "u32",
            NumKind::U64 => "u64",
            NumKind::I8 => "i8",
            NumKind::I16 => "i16",
            NumKind::I32 => "i32",
            NumKind::I64 => "i64",
            NumKind::F32 => "f32",
            NumKind::F64 => "f64",
        }
    }

    /// The inclusive range of an integer kind; `None` for floats.
    const fn int_range(self) -> Option<(i128, i128)> {
        Some(match self {
            NumKind::U8 => (0, u8::MAX as i128),
            NumKind::U16 => (0, u16::MAX as i128),
            NumKind::U32 => (0, u32::MAX as i128),
            NumKind::U64 => (0, u64::MAX as i128),
            NumKind::I8 => (i8::MIN as i128, i8::MAX as i128),
            NumKind::I16 => (i16::MIN as i128, i16::MAX as i128),
            NumKind::I32 => (i32::MIN as i128, i32::MAX as i128),
            NumKind::I64 => (i64::MIN as i128, i64::MAX as i128),
            NumKind::F32 | NumKind::F64 => return None,
        })
    }
}

impl fmt::Display for NumKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for NumKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use NumKind::*;
        [U8, U16, U32, U64, I8, I16, I32, I64, F32, F64]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown number kind {s:?} (u8…u64, i8…i64, f32, f64)"))
    }
}

/// What an op does at its path.
///
/// Where an op needs a value and finds none (the root of a slot never written and without an
/// initial value, a tombstone, an expired slot, a missing or `null` leaf), it starts from its
/// neutral value: `0`, `[]` or `{}`. A missing *parent* of the path is an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpKind {
    /// Replace the value. Output: none.
    Set {
        /// The new value (JSON null is refused at the root: absence is a tombstone).
        value: Value,
    },
    /// Remove the value (a tombstone at the root, the key elsewhere). Output: the previous value.
    Delete,
    /// Add to a number of the given kind. Output: the new number.
    Increment {
        /// The amount (must fit `kind`).
        by: Number,
        /// The field's number type.
        kind: NumKind,
    },
    /// Subtract from a number of the given kind. Output: the new number.
    Decrement {
        /// The amount (must fit `kind`).
        by: Number,
        /// The field's number type.
        kind: NumKind,
    },
    /// Push onto the end of an array. Output: none.
    Append {
        /// The item.
        item: Value,
    },
    /// Remove an array's first item. Output: the item, if the array was not empty.
    RemoveFirst,
    /// Remove an array's last item. Output: the item, if the array was not empty.
    RemoveLast,
    /// Insert every entry into an object (shallow). Output: none.
    Merge {
        /// The entries.
        entries: Map<String, Value>,
    },
}

impl OpKind {
    /// The op's name as users write it (`"increment"`, …).
    pub const fn name(&self) -> &'static str {
        match self {
            OpKind::Set { .. } => "set",
            OpKind::Delete => "delete",
            OpKind::Increment { .. } => "increment",
            OpKind::Decrement { .. } => "decrement",
            OpKind::Append { .. } => "append",
            OpKind::RemoveFirst => "remove_first",
            OpKind::RemoveLast => "remove_last",
            OpKind::Merge { .. } => "merge",
        }
    }
}

/// One path operation.
///
/// ```
/// use state_core::{NumKind, Op, Path};
/// let op = Op::increment(Path::root(), 1u32.into(), NumKind::U32);
/// let json = serde_json::to_string(&op).unwrap();
/// assert_eq!(json, r#"{"path":[],"op":"increment","by":1,"kind":"u32"}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Op {
    /// Where it applies.
    pub path: Path,
    /// What it does.
    #[serde(flatten)]
    pub kind: OpKind,
}

impl Op {
    /// `set` at `path`.
    pub fn set(path: Path, value: Value) -> Self {
        Op {
            path,
            kind: OpKind::Set { value },
        }
    }
    /// `delete` at `path`.
    pub fn delete(path: Path) -> Self {
        Op {
            path,
            kind: OpKind::Delete,
        }
    }
    /// `increment` at `path` by `by`, checked as `kind`.
    pub fn increment(path: Path, by: Number, kind: NumKind) -> Self {
        Op {
            path,
            kind: OpKind::Increment { by, kind },
        }
    }
    /// `decrement` at `path` by `by`, checked as `kind`.
    pub fn decrement(path: Path, by: Number, kind: NumKind) -> Self {
        Op {
            path,
            kind: OpKind::Decrement { by, kind },
        }
    }
    /// `append` of `item` at `path`.
    pub fn append(path: Path, item: Value) -> Self {
        Op {
            path,
            kind: OpKind::Append { item },
        }
    }
    /// `remove_first` at `path`.
    pub fn remove_first(path: Path) -> Self {
        Op {
            path,
            kind: OpKind::RemoveFirst,
        }
    }
    /// `remove_last` at `path`.
    pub fn remove_last(path: Path) -> Self {
        Op {
            path,
            kind: OpKind::RemoveLast,
        }
    }
    /// `merge` of `entries` at `path`.
    pub fn merge(path: Path, entries: Map<String, Value>) -> Self {
        Op {
            path,
            kind: OpKind::Merge { entries },
        }
    }
}

/// Applies `ops` in order to `start` (the slot's current value, or its initial value at
/// version 0; `None` if absent) and returns the new value (`None`: a tombstone) and one output
/// per op. On error the value is dropped: pass a copy of anything that must survive (stores
/// pass the value they read inside the commit, so a failed op list writes nothing).
pub fn apply_ops(
    slot: &Slot,
    start: Option<Value>,
    ops: &[Op],
) -> Result<(Option<Value>, Vec<Option<Value>>), Error> {
    let mut doc = start;
    let mut outputs = Vec::with_capacity(ops.len());
    for op in ops {
        outputs.push(apply_one(slot, &mut doc, op)?);
    }
    Ok((doc, outputs))
}

fn apply_one(slot: &Slot, doc: &mut Option<Value>, op: &Op) -> Result<Option<Value>, Error> {
    let segs = op.path.segments();
    let Some((leaf, parents)) = segs.split_last() else {
        if let OpKind::Set { value: Value::Null } = op.kind {
            return Err(Error::InvalidOp {
                slot: slot.clone(),
                path: op.path.clone(),
                op: "set",
                reason: "JSON null is not stored at the root: absence is a delete".into(),
            });
        }
        return apply_leaf(slot, &op.path, doc, &op.kind);
    };
    let mut cur = match doc.as_mut() {
        Some(v) => v,
        None => {
            return Err(Error::InvalidPath {
                slot: slot.clone(),
                path: op.path.clone(),
                reason: "the slot holds no value to descend into".into(),
            });
        }
    };
    for (depth, seg) in parents.iter().enumerate() {
        let obj = as_object(slot, &op.path, &op.kind, cur, depth)?;
        cur = match obj.get_mut(seg) {
            Some(v) if !v.is_null() => v,
            _ => {
                return Err(Error::InvalidPath {
                    slot: slot.clone(),
                    path: op.path.clone(),
                    reason: format!("{} is absent", Path::new(&segs[..=depth])),
                });
            }
        };
    }
    let obj = as_object(slot, &op.path, &op.kind, cur, parents.len())?;
    let mut entry = obj.remove(leaf).filter(|v| !v.is_null());
    let out = apply_leaf(slot, &op.path, &mut entry, &op.kind);
    // Put the (possibly unchanged) value back: on error the whole doc is discarded anyway.
    if let Some(v) = entry {
        obj.insert(leaf.clone(), v);
    }
    out
}

fn as_object<'v>(
    slot: &Slot,
    path: &Path,
    kind: &OpKind,
    v: &'v mut Value,
    depth: usize,
) -> Result<&'v mut Map<String, Value>, Error> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(Error::TypeMismatch {
            slot: slot.clone(),
            path: path.clone(),
            op: kind.name(),
            expected: format!("an object at {}", Path::new(&path.segments()[..depth])),
            found: json_type(other).into(),
        }),
    }
}

/// Applies one op to the value at its path (`None`: absent or null).
fn apply_leaf(
    slot: &Slot,
    path: &Path,
    cur: &mut Option<Value>,
    kind: &OpKind,
) -> Result<Option<Value>, Error> {
    let mismatch = |expected: &str, found: &Value| Error::TypeMismatch {
        slot: slot.clone(),
        path: path.clone(),
        op: kind.name(),
        expected: expected.into(),
        found: json_type(found).into(),
    };
    match kind {
        OpKind::Set { value } => {
            *cur = Some(value.clone());
            Ok(None)
        }
        OpKind::Delete => Ok(cur.take()),
        OpKind::Increment { by, kind: nk } | OpKind::Decrement { by, kind: nk } => {
            let negate = matches!(kind, OpKind::Decrement { .. });
            let current = match cur {
                None => None,
                Some(Value::Number(n)) => Some(n.clone()),
                Some(other) => return Err(mismatch(&format!("a number ({nk})"), other)),
            };
            let next = arith(slot, path, kind.name(), *nk, current.as_ref(), by, negate)?;
            *cur = Some(Value::Number(next.clone()));
            Ok(Some(Value::Number(next)))
        }
        OpKind::Append { item } => {
            match cur.get_or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(a) => a.push(item.clone()),
                other => return Err(mismatch("an array", other)),
            }
            Ok(None)
        }
        OpKind::RemoveFirst | OpKind::RemoveLast => {
            match cur.get_or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(a) if a.is_empty() => Ok(None),
                Value::Array(a) if matches!(kind, OpKind::RemoveFirst) => Ok(Some(a.remove(0))),
                Value::Array(a) => Ok(a.pop()),
                other => Err(mismatch("an array", other)),
            }
        }
        OpKind::Merge { entries } => {
            match cur.get_or_insert_with(|| Value::Object(Map::new())) {
                Value::Object(m) => m.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone()))),
                other => return Err(mismatch("an object", other)),
            }
            Ok(None)
        }
    }
}

/// `current ± by` at the width of `kind` (`current` absent: 0).
fn arith(
    slot: &Slot,
    path: &Path,
    op: &'static str,
    kind: NumKind,
    current: Option<&Number>,
    by: &Number,
    negate: bool,
) -> Result<Number, Error> {
    let invalid = |reason: String| Error::InvalidOp {
        slot: slot.clone(),
        path: path.clone(),
        op,
        reason,
    };
    let mismatch = |n: &Number| Error::TypeMismatch {
        slot: slot.clone(),
        path: path.clone(),
        op,
        expected: format!("a `{kind}`"),
        found: format!("the number {n}"),
    };
    match kind.int_range() {
        Some((min, max)) => {
            let fits = |n: &Number| int_of(n).filter(|v| (min..=max).contains(v));
            let by = fits(by).ok_or_else(|| invalid(format!("amount {by} is not a `{kind}`")))?;
            let cur = match current {
                None => 0,
                Some(n) => fits(n).ok_or_else(|| mismatch(n))?,
            };
            let next = if negate { cur - by } else { cur + by };
            let overflow = || Error::Overflow {
                slot: slot.clone(),
                path: path.clone(),
                op,
                kind,
            };
            if !(min..=max).contains(&next) {
                return Err(overflow());
            }
            // Every integer kind's range fits u64 (non-negative) or i64 (negative).
            match (u64::try_from(next), i64::try_from(next)) {
                (Ok(u), _) => Ok(Number::from(u)),
                (_, Ok(i)) => Ok(Number::from(i)),
                _ => Err(overflow()),
            }
        }
        None => {
            let not_finite = || Error::NotFinite {
                slot: slot.clone(),
                path: path.clone(),
                op,
                kind,
            };
            let by_f = by.as_f64().ok_or_else(not_finite)?;
            if !exact_in(by, by_f, kind) {
                return Err(invalid(format!("amount {by} is not exactly a `{kind}`")));
            }
            let cur = current
                .map_or(Some(0.0), Number::as_f64)
                .ok_or_else(not_finite)?;
            // A number the kind does not hold exactly would change under any increment, even
            // by 0: refused, as an integer kind refuses one out of its range.
            if let Some(n) = current.filter(|n| !exact_in(n, cur, kind)) {
                return Err(mismatch(n));
            }
            let by = by_f;
            let next = if kind == NumKind::F32 {
                #[allow(clippy::cast_possible_truncation)]
                let (c, b) = (cur as f32, by as f32);
                // Stored as the f32 prints (`0.1`, not `0.10000000149011612`), as a typed
                // `f32` field writes it.
                let sum = if negate { c - b } else { c + b };
                sum.to_string().parse::<f64>().unwrap_or(f64::from(sum))
            } else if negate {
                cur - by
            } else {
                cur + by
            };
            Number::from_f64(next).ok_or_else(not_finite)
        }
    }
}

/// Whether `n` (read as `f`) is exactly a number of the float `kind`: an integer is, only
/// if the kind holds it (2^53 + 1 is no f64, 2^24 + 1 no f32); a fraction always reads as
/// the nearest one, as a typed field reads it.
fn exact_in(n: &Number, f: f64, kind: NumKind) -> bool {
    #[allow(clippy::cast_possible_truncation)]
    let back = if kind == NumKind::F32 {
        f64::from(f as f32)
    } else {
        f
    };
    #[allow(clippy::cast_possible_truncation)]
    int_of(n).is_none_or(|i| back.is_finite() && back as i128 == i)
}

fn int_of(n: &Number) -> Option<i128> {
    n.as_u64()
        .map(i128::from)
        .or_else(|| n.as_i64().map(i128::from))
}

/// The JSON type of a value, for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
