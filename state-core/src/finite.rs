//! Finds a NaN or infinite float in a value before it is encoded. serde_json writes them as
//! JSON `null`, so `{ score: f64::NAN }` would be stored as `{"score": null}`: a silent null
//! where the value had a number, which a required `f64` then cannot read back. This walks the
//! value's `Serialize` output (no allocation but the path of what it finds) and reports the
//! first non-finite float with where it sits.

use std::fmt;

use serde::Serialize;
use serde::ser;

use crate::op::{NumKind, Path};

/// A non-finite float found in a value: where it sits (inside the value) and its width.
#[derive(Debug)]
pub(crate) struct NonFinite {
    pub(crate) path: Path,
    pub(crate) kind: NumKind,
}

/// The first non-finite float in `value`, if any. A value whose `Serialize` fails for another
/// reason is not judged here (encoding reports that).
pub(crate) fn find<T: Serialize + ?Sized>(value: &T) -> Option<NonFinite> {
    let mut walker = Walker {
        path: Vec::new(),
        counters: Vec::new(),
        key: None,
    };
    match value.serialize(&mut walker) {
        Err(Stop::Found(kind)) => Some(NonFinite {
            path: Path::new(walker.path),
            kind,
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
    /// A non-finite float, at `Walker::path`.
    Found(NumKind),
    /// The value's own `Serialize` failed.
    Other,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-finite float")
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
            Err(Stop::Found(kind))
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
        self.counters.push(0);
        Ok(self)
    }

    fn end_seq(&mut self) -> Result<(), Stop> {
        self.counters.pop();
        Ok(())
    }

    /// Enters an enum variant (serde_json writes `{"Variant": …}`).
    fn variant(&mut self, variant: &str) -> &mut Self {
        self.path.push(variant.to_owned());
        self
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
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

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
        self.at(variant.to_owned(), value)
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
        self.variant(variant).start_seq()
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Stop> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        Ok(self.variant(variant))
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

    use super::find;
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
        find(p).map(|f| (f.path.to_string(), f.kind))
    }

    #[test]
    fn finite_values_pass_and_each_non_finite_float_is_found_where_it_sits() {
        assert!(find(&profile()).is_none());
        assert!(find(&1.5f64).is_none());
        assert_eq!(find(&f64::NAN).map(|f| f.path.segments().len()), Some(0));

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
}
