//! A dataset's stored bytes, checked against the file size, decoded as numbers of its HDF5 type.

use hdf5_pure::{Dataset, Datatype, DatatypeByteOrder};

use super::{MAX_INFLATE_RATIO, Reader, h5};
use crate::mat::error::{MatError, Result};
use crate::mat::value::NumData;

impl Reader {
    /// A dataset's raw element bytes, refused before reading when its declared size cannot come
    /// from a file this size.
    pub(super) fn read_raw(&mut self, ds: &Dataset, path: &str) -> Result<Vec<u8>> {
        let shape = ds.shape().map_err(h5(path))?;
        let elem = ds.element_size().map_err(h5(path))?;
        let n = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(elem))
            .ok_or_else(|| MatError::TooLarge {
                what: format!("dataset of shape {shape:?}"),
                requested: u64::MAX,
                limit: self.file_len,
                context: path.into(),
            })?;
        let limit = if ds.filters().is_empty() {
            self.file_len
        } else {
            self.file_len.saturating_mul(MAX_INFLATE_RATIO)
        };
        if n > limit {
            return Err(MatError::TooLarge {
                what: format!("dataset of shape {shape:?} ({elem}-byte elements)"),
                requested: n,
                limit,
                context: path.into(),
            });
        }
        self.charge(n, path)?;
        let raw = ds.read_raw().map_err(h5(path))?;
        if raw.len() as u64 != n {
            return Err(MatError::Hdf5(format!(
                "{path}: read {} bytes, expected {n}",
                raw.len()
            )));
        }
        Ok(raw)
    }

    /// A dataset's elements in their stored type (real and, for a compound, imaginary part).
    pub(super) fn stored(
        &mut self,
        ds: &Dataset,
        path: &str,
    ) -> Result<(NumData, Option<NumData>)> {
        let dt = ds.datatype().map_err(h5(path))?;
        let raw = self.read_raw(ds, path)?;
        let fail = |m: String| MatError::Hdf5(format!("{path}: {m}"));
        let stride = dt.type_size() as usize;
        if stride == 0 || raw.len() % stride != 0 {
            return Err(fail(format!(
                "{} bytes do not hold whole {stride}-byte elements",
                raw.len()
            )));
        }
        let n = raw.len() / stride;
        match &dt {
            Datatype::Compound { members, .. } => {
                let part = |want: &str, idx: usize| {
                    members
                        .iter()
                        .find(|m| m.name.eq_ignore_ascii_case(want))
                        .or_else(|| members.get(idx))
                };
                let (Some(re), Some(im), 2) = (part("real", 0), part("imag", 1), members.len())
                else {
                    return Err(fail(format!(
                        "compound type {} is not a complex number",
                        type_name(&dt)
                    )));
                };
                let re_off = usize::try_from(re.byte_offset)
                    .map_err(|_| fail("field offset too large".into()))?;
                let im_off = usize::try_from(im.byte_offset)
                    .map_err(|_| fail("field offset too large".into()))?;
                let real = elements(&raw, n, stride, re_off, &re.datatype).map_err(fail)?;
                let imag = elements(&raw, n, stride, im_off, &im.datatype).map_err(fail)?;
                Ok((real, Some(imag)))
            }
            _ => Ok((elements(&raw, n, stride, 0, &dt).map_err(fail)?, None)),
        }
    }
}

/// A short name for a datatype, for messages.
pub(super) fn type_name(dt: &Datatype) -> String {
    match dt {
        Datatype::FixedPoint { size, layout, .. } => {
            format!(
                "{}{}",
                if layout.signed { "int" } else { "uint" },
                u64::from(*size) * 8
            )
        }
        Datatype::FloatingPoint { size, .. } => format!("float{}", u64::from(*size) * 8),
        Datatype::String { .. } => "fixed-length strings".into(),
        Datatype::Compound { members, .. } => {
            format!(
                "compound {{{}}}",
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Datatype::Reference { .. } => "references".into(),
        Datatype::VariableLength { .. } => "variable-length data".into(),
        Datatype::Enumeration { .. } => "enumeration".into(),
        Datatype::Array { .. } => "array type".into(),
        _ => "an unsupported HDF5 type".into(),
    }
}

/// Decodes `n` numbers of type `dt` found at `offset` within each `stride`-byte record.
fn elements(
    raw: &[u8],
    n: usize,
    stride: usize,
    offset: usize,
    dt: &Datatype,
) -> std::result::Result<NumData, String> {
    #[derive(Clone, Copy)]
    enum Kind {
        Int,
        UInt,
        Float,
    }
    let (kind, size, order) = match dt {
        Datatype::FixedPoint {
            size,
            byte_order,
            layout,
        } => (
            if layout.signed { Kind::Int } else { Kind::UInt },
            *size as usize,
            byte_order,
        ),
        Datatype::FloatingPoint {
            size, byte_order, ..
        } => (Kind::Float, *size as usize, byte_order),
        Datatype::Enumeration { base_type, .. } => {
            return elements(raw, n, stride, offset, base_type);
        }
        other => {
            return Err(format!(
                "data of {} where numbers were expected",
                type_name(other)
            ));
        }
    };
    let big = match order {
        DatatypeByteOrder::LittleEndian => false,
        DatatypeByteOrder::BigEndian => true,
        DatatypeByteOrder::Vax => return Err("VAX byte order is not supported".into()),
    };
    let end = offset.checked_add(size).filter(|&e| e <= stride);
    let total = n.checked_mul(stride).filter(|&t| t <= raw.len());
    if end.is_none() || total.is_none() {
        return Err(format!(
            "{n} elements of {size} bytes at offset {offset} do not fit {} bytes",
            raw.len()
        ));
    }
    macro_rules! read {
        ($t:ty, $w:literal) => {{
            let mut v: Vec<$t> = Vec::with_capacity(n);
            for rec in raw.chunks_exact(stride).take(n) {
                let b: [u8; $w] = rec
                    .get(offset..offset + $w)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| "element out of bounds".to_string())?;
                v.push(if big {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                });
            }
            v
        }};
    }
    Ok(match (kind, size) {
        (Kind::Int, 1) => NumData::I8(read!(i8, 1)),
        (Kind::UInt, 1) => NumData::U8(read!(u8, 1)),
        (Kind::Int, 2) => NumData::I16(read!(i16, 2)),
        (Kind::UInt, 2) => NumData::U16(read!(u16, 2)),
        (Kind::Int, 4) => NumData::I32(read!(i32, 4)),
        (Kind::UInt, 4) => NumData::U32(read!(u32, 4)),
        (Kind::Int, 8) => NumData::I64(read!(i64, 8)),
        (Kind::UInt, 8) => NumData::U64(read!(u64, 8)),
        (Kind::Float, 4) => NumData::F32(read!(f32, 4)),
        (Kind::Float, 8) => NumData::F64(read!(f64, 8)),
        _ => return Err(format!("{} of {size} bytes", type_name(dt))),
    })
}
