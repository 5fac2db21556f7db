//! MATLAB's attributes (`MATLAB_class`, `MATLAB_fields`, ...) and its numeric classes.

use hdf5_pure::AttrValue;

use super::Attrs;
use crate::mat::value::NumData;

pub(super) fn is_numeric_class(c: &str) -> bool {
    matches!(
        c,
        "double"
            | "single"
            | "int8"
            | "uint8"
            | "int16"
            | "uint16"
            | "int32"
            | "uint32"
            | "int64"
            | "uint64"
    )
}

/// Converts stored numbers to the MATLAB class `class` (a numeric class name).
pub(super) fn convert(d: NumData, class: &str) -> NumData {
    if d.class_name() == class {
        return d;
    }
    macro_rules! cast {
        ($t:ty) => {
            match d {
                NumData::F64(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::F32(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::I8(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::U8(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::I16(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::U16(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::I32(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::U32(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::I64(v) => v.into_iter().map(|x| x as $t).collect(),
                NumData::U64(v) => v.into_iter().map(|x| x as $t).collect(),
            }
        };
    }
    match class {
        "single" => NumData::F32(cast!(f32)),
        "int8" => NumData::I8(cast!(i8)),
        "uint8" => NumData::U8(cast!(u8)),
        "int16" => NumData::I16(cast!(i16)),
        "uint16" => NumData::U16(cast!(u16)),
        "int32" => NumData::I32(cast!(i32)),
        "uint32" => NumData::U32(cast!(u32)),
        "int64" => NumData::I64(cast!(i64)),
        "uint64" => NumData::U64(cast!(u64)),
        _ => NumData::F64(cast!(f64)),
    }
}

pub(super) fn attr_string(a: &Attrs, name: &str) -> Option<String> {
    match a.0.get(name)? {
        AttrValue::String(s)
        | AttrValue::AsciiString(s)
        | AttrValue::VarLenString(s)
        | AttrValue::VarLenAsciiString(s)
        | AttrValue::StringSized { value: s, .. }
        | AttrValue::AsciiStringSized { value: s, .. } => Some(s.clone()),
        AttrValue::StringArray(v)
        | AttrValue::AsciiStringArray(v)
        | AttrValue::VarLenStringArray(v)
        | AttrValue::VarLenAsciiStringArray(v)
        | AttrValue::VarLenAsciiCharArray(v)
        | AttrValue::StringArraySized { values: v, .. }
        | AttrValue::AsciiStringArraySized { values: v, .. } => v.first().cloned(),
        _ => None,
    }
}

pub(super) fn attr_strings(a: &Attrs, name: &str) -> Option<Vec<String>> {
    match a.0.get(name)? {
        AttrValue::StringArray(v)
        | AttrValue::AsciiStringArray(v)
        | AttrValue::VarLenStringArray(v)
        | AttrValue::VarLenAsciiStringArray(v)
        | AttrValue::VarLenAsciiCharArray(v)
        | AttrValue::StringArraySized { values: v, .. }
        | AttrValue::AsciiStringArraySized { values: v, .. } => Some(v.clone()),
        _ => attr_string(a, name).map(|s| vec![s]),
    }
}

pub(super) fn attr_int(a: &Attrs, name: &str) -> Option<i64> {
    fn first<T: Copy>(v: &[T]) -> Option<T> {
        v.first().copied()
    }
    Some(match a.0.get(name)? {
        AttrValue::I8(x) => i64::from(*x),
        AttrValue::I16(x) => i64::from(*x),
        AttrValue::I32(x) => i64::from(*x),
        AttrValue::I64(x) => *x,
        AttrValue::U8(x) => i64::from(*x),
        AttrValue::U16(x) => i64::from(*x),
        AttrValue::U32(x) => i64::from(*x),
        AttrValue::U64(x) => i64::try_from(*x).ok()?,
        AttrValue::I8Array(v) => i64::from(first(v)?),
        AttrValue::I16Array(v) => i64::from(first(v)?),
        AttrValue::I32Array(v) => i64::from(first(v)?),
        AttrValue::I64Array(v) => first(v)?,
        AttrValue::U8Array(v) => i64::from(first(v)?),
        AttrValue::U16Array(v) => i64::from(first(v)?),
        AttrValue::U32Array(v) => i64::from(first(v)?),
        AttrValue::U64Array(v) => i64::try_from(first(v)?).ok()?,
        AttrValue::F64(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => *x as i64,
        AttrValue::F32(x) if x.fract() == 0.0 && x.abs() < 1.0e7 => *x as i64,
        _ => return None,
    })
}
