//! Path-checked batch cursors: each path segment is a method, each op is checked against the
//! type at its path. `#[derive(StatePath)]` generates a cursor type per struct; every other
//! value type gets the generic [`Cursor`].
//!
//! The crate root re-exports what batches name ([`Cursor`], [`PathTarget`], [`At`] and the
//! markers); the rest of this module is what generated code asks of a field whose value has
//! no paths of its own (flattened or in a custom serde format), so that such a path is a
//! compile error that says why.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batch::BatchSink;
use crate::handle::{Numeric, Sequence, SlotHandle, StringMap, encode_entries, map_remove_ops};
use crate::op::{Op, Path};
pub use crate::target::WriteTarget;

/// Marker of a path whose value may be deleted: a top-level slot, an `Option` field, a map
/// entry.
#[derive(Debug, Clone, Copy)]
pub struct Deletable;

/// Marker of a path that is a required field of its struct: it has no `delete`.
#[derive(Debug, Clone, Copy)]
pub struct Required;

/// Paths whose value may be deleted.
#[diagnostic::on_unimplemented(
    message = "this value is a required field of its struct, so it has no `delete`",
    label = "a required field",
    note = "deleting it would leave a value that no longer deserializes; make the field an `Option<_>` to allow `delete`, or `set` a new value"
)]
pub trait CanDelete {}
impl CanDelete for Deletable {}

/// A position in a batch: the batch being built, the slot, and the path inside its value.
/// Generated cursor types wrap one.
#[derive(Debug)]
pub struct At<B> {
    /// The batch, returned by value when an op ends the chain.
    pub batch: B,
    /// The slot written.
    pub target: WriteTarget,
    /// The path inside the slot's value.
    pub path: Path,
}

impl<B: BatchSink> At<B> {
    /// The position one field further down.
    pub fn child(self, segment: &str) -> At<B> {
        At {
            batch: self.batch,
            target: self.target,
            path: self.path.child(segment),
        }
    }

    /// Ends the chain with one op (or the error making it) and returns the batch.
    pub fn push(self, op: crate::Result<Op>) -> B {
        self.batch.push(&self.target, op)
    }

    /// Ends the chain by replacing the value at this path with `value`.
    pub fn set<T: Serialize>(self, value: &T) -> B {
        let op = self
            .target
            .encode_at("set", &self.path, value)
            .map(|v| Op::set(self.path.clone(), v));
        self.push(op)
    }

    /// Ends the chain by deleting the value at this path.
    pub fn delete(self) -> B {
        let op = Op::delete(self.path.clone());
        self.push(Ok(op))
    }
}

/// Types that can be navigated in a batch: each names the cursor type of a path holding it.
///
/// Implemented for numbers (`usize`, `u128`, … too), `bool`, `char`, `String`, sequences, sets,
/// arrays, tuples of up to four, `Duration`, string-keyed maps, `Option<T>` (whose cursor is
/// `T`'s, with `delete`), `Box<T>` (`T`'s), `serde_json::Value`, and every
/// `#[derive(StatePath)]` type. Anything else (a foreign type): `#[state(leaf)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no typed state paths",
    label = "no `StatePath` for this type",
    note = "derive `StatePath` for it to update its fields one by one, or mark the field `#[state(leaf)]` to update it only as a whole"
)]
pub trait PathTarget<B>: Sized {
    /// The cursor of a path holding `Self`; `D` says whether it may be deleted.
    type Cursor<D>;
    /// Makes that cursor at `at`.
    fn cursor<D>(at: At<B>) -> Self::Cursor<D>;
}

/// The cursor of a path holding a `T` that is not a `StatePath` struct: its ops are the
/// convenience ops `T` supports, each ending the chain.
#[must_use = "a cursor does nothing until an op ends the chain"]
pub struct Cursor<T, B, D = Required> {
    at: At<B>,
    _marker: PhantomData<fn() -> (T, D)>,
}

impl<T, B, D> Cursor<T, B, D> {
    /// A cursor at `at`.
    pub fn new(at: At<B>) -> Self {
        Cursor {
            at,
            _marker: PhantomData,
        }
    }
}

impl<T, B, D> Cursor<T, B, D>
where
    T: Serialize + DeserializeOwned,
    B: BatchSink,
{
    /// Replaces the value at this path.
    pub fn set(self, value: T) -> B {
        let op = self
            .at
            .target
            .encode_at("set", &self.at.path, &value)
            .map(|v| Op::set(self.at.path.clone(), v));
        self.at.push(op)
    }

    /// Removes the value at this path (a tombstone for a whole slot).
    pub fn delete(self) -> B
    where
        D: CanDelete,
    {
        self.at.delete()
    }

    /// Adds `by`, checked at `T`'s width.
    pub fn increment(self, by: T) -> B
    where
        T: Numeric,
    {
        let op = SlotHandle::<T>::numeric_op(&self.at.target, self.at.path.clone(), by, false);
        self.at.push(op)
    }

    /// Subtracts `by`, checked at `T`'s width.
    pub fn decrement(self, by: T) -> B
    where
        T: Numeric,
    {
        let op = SlotHandle::<T>::numeric_op(&self.at.target, self.at.path.clone(), by, true);
        self.at.push(op)
    }

    /// Appends `item`.
    pub fn append(self, item: T::Item) -> B
    where
        T: Sequence,
    {
        let op = self
            .at
            .target
            .encode_at("append", &self.at.path, &item)
            .map(|v| Op::append(self.at.path.clone(), v));
        self.at.push(op)
    }

    /// Removes the first item.
    pub fn remove_first(self) -> B
    where
        T: Sequence,
    {
        let op = Op::remove_first(self.at.path.clone());
        self.at.push(Ok(op))
    }

    /// Removes the last item.
    pub fn remove_last(self) -> B
    where
        T: Sequence,
    {
        let op = Op::remove_last(self.at.path.clone());
        self.at.push(Ok(op))
    }

    /// Inserts every entry (shallow merge).
    pub fn merge<K, I>(self, entries: I) -> B
    where
        T: StringMap,
        K: Into<String>,
        I: IntoIterator<Item = (K, T::Value)>,
    {
        let op = encode_entries(&self.at.target, &self.at.path, entries)
            .map(|m| Op::merge(self.at.path.clone(), m));
        self.at.push(op)
    }

    /// Inserts one entry.
    pub fn insert(self, key: impl Into<String>, value: T::Value) -> B
    where
        T: StringMap,
    {
        self.merge([(key.into(), value)])
    }

    /// Removes one entry.
    pub fn remove(self, key: impl Into<String>) -> B
    where
        T: StringMap,
    {
        let mut at = self.at;
        let ops = map_remove_ops(at.path.clone(), key.into());
        for op in ops {
            at.batch = at.batch.push(&at.target, Ok(op));
        }
        at.batch
    }

    /// The cursor of one entry. An absent map starts as `{}` (as with `insert`), so entry
    /// ops work on a map never written.
    pub fn entry(self, key: impl Into<String>) -> <T::Value as PathTarget<B>>::Cursor<Deletable>
    where
        T: StringMap,
        T::Value: PathTarget<B>,
    {
        let key = key.into();
        let mut at = self.at;
        let ensure = Op::merge(at.path.clone(), serde_json::Map::new());
        at.batch = at.batch.push(&at.target, Ok(ensure));
        <T::Value as PathTarget<B>>::cursor(at.child(&key))
    }
}

macro_rules! leaf {
    ($($t:ty),* $(,)?) => {$(
        impl<B> PathTarget<B> for $t {
            type Cursor<D> = Cursor<$t, B, D>;
            fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
                Cursor::new(at)
            }
        }
    )*};
}

leaf!(
    u8,
    u16,
    u32,
    u64,
    i8,
    i16,
    i32,
    i64,
    f32,
    f64,
    bool,
    char,
    String,
    serde_json::Value,
    usize,
    isize,
    u128,
    i128,
    std::time::Duration,
);

/// Whole values (`set`): sets, arrays and tuples.
macro_rules! generic_leaf {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<B, $($g)*> PathTarget<B> for $t {
            type Cursor<D> = Cursor<$t, B, D>;
            fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
                Cursor::new(at)
            }
        }
    )*};
}

generic_leaf!(
    [T, S] HashSet<T, S>,
    [T] BTreeSet<T>,
    [T, const N: usize] [T; N],
    [A] (A,),
    [A, C] (A, C),
    [A, C, E] (A, C, E),
    [A, C, E, F] (A, C, E, F),
);

/// A `Box<T>` path is `T`'s path (serde stores the box as its content).
impl<B, T: PathTarget<B>> PathTarget<B> for Box<T> {
    type Cursor<D> = T::Cursor<D>;
    fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
        T::cursor::<D>(at)
    }
}

impl<B, T> PathTarget<B> for Vec<T> {
    type Cursor<D> = Cursor<Vec<T>, B, D>;
    fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
        Cursor::new(at)
    }
}

impl<B, T> PathTarget<B> for VecDeque<T> {
    type Cursor<D> = Cursor<VecDeque<T>, B, D>;
    fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
        Cursor::new(at)
    }
}

impl<B, V, S> PathTarget<B> for HashMap<String, V, S> {
    type Cursor<D> = Cursor<HashMap<String, V, S>, B, D>;
    fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
        Cursor::new(at)
    }
}

impl<B, V> PathTarget<B> for BTreeMap<String, V> {
    type Cursor<D> = Cursor<BTreeMap<String, V>, B, D>;
    fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
        Cursor::new(at)
    }
}

/// An `Option<T>` path is `T`'s path, and it may be deleted.
impl<B, T: PathTarget<B>> PathTarget<B> for Option<T> {
    type Cursor<D> = T::Cursor<Deletable>;
    fn cursor<D>(at: At<B>) -> Self::Cursor<D> {
        T::cursor::<Deletable>(at)
    }
}

/// Never implemented: asked of a `#[serde(flatten)]` field's path method, so calling it is a
/// compile error that says why.
#[diagnostic::on_unimplemented(
    message = "a `#[serde(flatten)]` field has no path of its own, so it has no typed path ops",
    label = "this field is flattened into its parent",
    note = "its fields are stored in the parent object; `set` the whole parent value instead"
)]
pub trait FlattenedPath {}

/// Never implemented: asked of a `#[serde(with = …)]` field's path method.
#[diagnostic::on_unimplemented(
    message = "a `#[serde(with = …)]` field is stored in a custom format, so it has no typed path ops",
    label = "this field uses a custom serde format",
    note = "`set` the whole parent value instead"
)]
pub trait CustomFormatPath {}

/// The type those bounds are asked of: generic over the batch, so the bound is checked where
/// the method is called, not where it is defined.
pub struct Flattened<B>(PhantomData<B>);

/// See [`Flattened`].
pub struct CustomFormat<B>(PhantomData<B>);

/// Support for `#[derive(StateScope)]` (not public API). A probe of a field type's batch
/// paths: by autoref
/// specialization on a concrete type, a type with paths passes, a serializable type without
/// them is reported through [`FieldPaths`], and any other type is left to serde's derives.
#[doc(hidden)]
pub struct FieldProbe<T, B>(pub PhantomData<fn() -> (T, B)>);

/// The probe's pass: the type has paths.
#[doc(hidden)]
pub trait FieldWithPaths {
    /// Nothing to report.
    fn check_field_paths(&self) {}
}

impl<T: PathTarget<B>, B> FieldWithPaths for &&FieldProbe<T, B> {}

/// The probe of a serializable type: it must have paths.
#[doc(hidden)]
pub trait SerializableField<T, B> {
    /// Reports a missing `StatePath`.
    fn check_field_paths(&self)
    where
        T: FieldPaths<B>,
    {
    }
}

impl<T: Serialize + DeserializeOwned, B> SerializableField<T, B> for &FieldProbe<T, B> {}

/// The probe of anything else: serde's derives report it.
#[doc(hidden)]
pub trait AnyField {
    /// Nothing to report here.
    fn check_field_paths(&self) {}
}

impl<T, B> AnyField for FieldProbe<T, B> {}

/// A field type a batch can follow into: implemented for every type with typed paths
/// ([`PathTarget`]); what a state struct's non-leaf fields need.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no typed state paths",
    label = "no `StatePath` for this type",
    note = "derive `StatePath` for it to update its fields one by one, or mark the field `#[state(leaf)]` to update it only as a whole"
)]
pub trait FieldPaths<B> {}

#[diagnostic::do_not_recommend]
impl<T: PathTarget<B>, B> FieldPaths<B> for T {}
