//! Finds what a value's JSON could not hold before it is encoded: a NaN or infinite float
//! (serde_json writes them as JSON `null`, so `{ score: f64::NAN }` would be stored as
//! `{"score": null}`: a silent null where the value had a number, which a required `f64` then
//! cannot read back), an `i128`/`u128` outside `i64`/`u64`, and nesting deeper than
//! [`MAX_DEPTH`](crate::MAX_DEPTH) (where it stops: a value thousands of levels deep is never
//! walked further, nor encoded). This walks the value's `Serialize` output (no allocation but
//! the path of what it finds) and reports the first finding with where it sits.

use std::fmt;

use serde::Serialize;
use serde::ser;

use crate::op::{NumKind, Path};

/// What was found in a value, and where it sits (inside the value).
#[derive(Debug)]
pub(crate) struct Finding {
    pub(crate) path: Path,
    pub(crate) found: Found,
}

/// What a value's JSON could not hold.
#[derive(Debug)]
pub(crate) enum Found {
    /// A NaN or infinite float of this width.
    NonFinite(NumKind),
    /// An integer outside `i64`/`u64`, as written.
    OutOfRange(String),
    /// An array or object nested deeper than the limit opens here.
    TooDeep,
}

/// The first finding in `value`, if any. A value whose `Serialize` fails for another reason
/// is not judged here (encoding reports that).
pub(crate) fn find<T: Serialize + ?Sized>(value: &T) -> Option<Finding> {
    let mut walker = Walker {
        path: Vec::new(),
        counters: Vec::new(),
        key: None,
    };
    match value.serialize(&mut walker) {
        Err(Stop::Found(found)) => Some(Finding {
            path: Path::new(walker.path),
            found,
        }),
        Ok(()) | Err(Stop::Other) => None,
    }
}

struct Walker {
    /// The segments down to the value being walked.
    path: Vec<String>,
    /// The next element index of each sequence being walked.
    counters: Vec<usize>,
    /// A map key serialized, waiting for its value.
    key: Option<String>,
}

#[derive(Debug)]
enum Stop {
    /// A finding, at `Walker::path`.
    Found(Found),
    /// The value's own `Serialize` failed.
    Other,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value JSON cannot hold")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Stop::Other
    }
}

impl Walker {
    fn float(&mut self, finite: bool, kind: NumKind) -> Result<(), Stop> {
        if finite {
            Ok(())
        } else {
            Err(Stop::Found(Found::NonFinite(kind)))
        }
    }

    fn integer(&mut self, fits: bool, literal: impl fmt::Display) -> Result<(), Stop> {
        if fits {
            Ok(())
        } else {
            Err(Stop::Found(Found::OutOfRange(literal.to_string())))
        }
    }

    /// Opens an array or object: each one enclosing it left a segment on the path.
    fn open(&mut self) -> Result<&mut Self, Stop> {
        if self.path.len() >= crate::MAX_DEPTH {
            Err(Stop::Found(Found::TooDeep))
        } else {
            Ok(self)
        }
    }

    /// Walks `value` one segment down; the segment is left in place when a float is found.
    fn at<T: Serialize + ?Sized>(&mut self, segment: String, value: &T) -> Result<(), Stop> {
        self.path.push(segment);
        value.serialize(&mut *self)?;
        self.path.pop();
        Ok(())
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let index = self.counters.last_mut().map_or(0, |c| {
            *c += 1;
            *c - 1
        });
        self.at(index.to_string(), value)
    }

    fn start_seq(&mut self) -> Result<&mut Self, Stop> {
        self.open()?;
        self.counters.push(0);
        Ok(self)
    }

    fn end_seq(&mut self) -> Result<(), Stop> {
        self.counters.pop();
        Ok(())
    }

    /// Enters an enum variant (serde_json writes `{"Variant": …}`).
    fn variant(&mut self, variant: &str) -> Result<&mut Self, Stop> {
        self.open()?;
        self.path.push(variant.to_owned());
        Ok(self)
    }
}

macro_rules! ignore {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), Stop> { Ok(()) })*
    };
}

impl ser::Serializer for &mut Walker {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_i128(self, v: i128) -> Result<(), Stop> {
        self.integer(i64::try_from(v).is_ok() || u64::try_from(v).is_ok(), v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Stop> {
        self.integer(u64::try_from(v).is_ok(), v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), Stop> {
        self.float(v.is_finite(), NumKind::F32)
    }

    fn serialize_f64(self, v: f64) -> Result<(), Stop> {
        self.float(v.is_finite(), NumKind::F64)
    }

    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.open()?.at(variant.to_owned(), value)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Stop> {
        self.start_seq()
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Stop> {
        self.start_seq()
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        self.start_seq()
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        self.variant(variant)?.start_seq()
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Stop> {
        self.open()
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        self.open()
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        self.variant(variant)?.open()
    }
}

/// The compound kinds whose parts are positions (`0`, `1`, …); a variant's leaves its name on
/// the path until its end.
macro_rules! positional {
    ($($kind:ident::$method:ident, $variant:literal;)*) => {$(
        impl ser::$kind for &mut Walker {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
                self.element(value)
            }
            fn end(self) -> Result<(), Stop> {
                if $variant {
                    self.path.pop();
                }
                self.end_seq()
            }
        }
    )*};
}

positional! {
    SerializeSeq::serialize_element, false;
    SerializeTuple::serialize_element, false;
    SerializeTupleStruct::serialize_field, false;
    SerializeTupleVariant::serialize_field, true;
}

impl ser::SerializeMap for &mut Walker {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        // Keys are names, not numbers; serde_json refuses the keys it cannot write as
        // strings, so a key that does not print as one is named by its JSON text.
        self.key = Some(match serde_json::to_value(key) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => return Err(Stop::Other),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let key = self.key.take().unwrap_or_default();
        self.at(key, value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

/// The compound kinds whose parts are named fields.
macro_rules! named {
    ($($kind:ident, $variant:literal;)*) => {$(
        impl ser::$kind for &mut Walker {
            type Ok = ();
            type Error = Stop;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Stop> {
                self.at(key.to_owned(), value)
            }
            fn end(self) -> Result<(), Stop> {
                if $variant {
                    self.path.pop();
                }
                Ok(())
            }
        }
    )*};
}

named! {
    SerializeStruct, false;
    SerializeStructVariant, true;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::{Found, find};
    use crate::op::NumKind;

    #[derive(Serialize)]
    struct Profile {
        name: String,
        scores: Vec<f64>,
        by_day: BTreeMap<String, f32>,
        last: Option<Kind>,
    }

    #[derive(Serialize)]
    enum Kind {
        Rated { value: f64 },
        Pair(f64, f64),
    }

    fn profile() -> Profile {
        Profile {
            name: "Ada".into(),
            scores: vec![1.0, 2.5],
            by_day: BTreeMap::from([("mon".to_string(), 1.0)]),
            last: Some(Kind::Pair(1.0, 2.0)),
        }
    }

    fn at(p: &Profile) -> Option<(String, NumKind)> {
        find(p).map(|f| match f.found {
            Found::NonFinite(kind) => (f.path.to_string(), kind),
            other => panic!("not a non-finite float: {other:?}"),
        })
    }

    #[test]
    fn finite_values_pass_and_each_non_finite_float_is_found_where_it_sits() {
        assert!(find(&profile()).is_none());
        assert!(find(&1.5f64).is_none());
        assert!(find(&f64::NAN).is_some_and(|f| f.path.is_root()));

        let mut p = profile();
        p.scores[1] = f64::INFINITY;
        let want = crate::op::Path::new(["scores", "1"]).to_string();
        assert_eq!(at(&p), Some((want, NumKind::F64)));

        let mut p = profile();
        p.by_day.insert("tue".into(), f32::NEG_INFINITY);
        let want = crate::op::Path::new(["by_day", "tue"]).to_string();
        assert_eq!(at(&p), Some((want, NumKind::F32)));

        let mut p = profile();
        p.last = Some(Kind::Rated { value: f64::NAN });
        let want = crate::op::Path::new(["last", "Rated", "value"]).to_string();
        assert_eq!(at(&p), Some((want, NumKind::F64)));

        let mut p = profile();
        p.last = Some(Kind::Pair(0.0, f64::NAN));
        let want = crate::op::Path::new(["last", "Pair", "1"]).to_string();
        assert_eq!(at(&p), Some((want, NumKind::F64)));
    }

    /// A linked list as deep as the caller likes: the walk stops at the limit.
    #[derive(Serialize)]
    struct Node(Option<Box<Node>>, u8);

    #[test]
    fn nesting_past_the_limit_and_wide_integers_are_found_where_they_sit() {
        let mut list = Node(None, 0);
        for _ in 0..100_000 {
            list = Node(Some(Box::new(list)), 0);
        }
        let f = find(&list).unwrap();
        assert!(matches!(f.found, Found::TooDeep), "{f:?}");
        assert_eq!(f.path.segments().len(), crate::MAX_DEPTH);
        // Dropped without recursion: the list's own drop would recurse 100 000 times.
        let mut next = list.0.take();
        while let Some(mut n) = next {
            next = n.0.take();
        }

        let wide = BTreeMap::from([("n".to_string(), vec![1u128, u128::from(u64::MAX) + 1])]);
        let f = find(&wide).unwrap();
        assert_eq!(
            f.path.to_string(),
            crate::op::Path::new(["n", "1"]).to_string()
        );
        assert!(matches!(f.found, Found::OutOfRange(ref s) if s == "18446744073709551616"));
        assert!(find(&i128::from(i64::MIN)).is_none());
        assert!(find(&(i128::from(i64::MIN) - 1)).is_some());
    }
}
