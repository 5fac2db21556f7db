//! Datasets as MATLAB values: numeric, char, logical, cell, function handle, MCOS object and
//! `MATLAB_empty` arrays, chosen by `MATLAB_class`.

use hdf5_pure::{Dataset, Datatype};

use super::class::{attr_int, attr_string, attr_strings, convert, is_numeric_class};
use super::storage::type_name;
use super::{Attrs, NODE_COST, Reader, h5, matlab_dims, numel};
use crate::mat::error::{MatError, Result};
use crate::mat::value::{CellArray, CharArray, NumData, NumericArray, Opaque, StructArray, Value};

impl Reader {
    pub(super) fn dataset(&mut self, ds: &Dataset, path: &str, depth: usize) -> Result<Value> {
        let attrs = Attrs(ds.attrs().map_err(h5(path))?);
        let class = attr_string(&attrs, "MATLAB_class");
        let hint = attr_int(&attrs, "MATLAB_object_decode").unwrap_or(0);
        if attr_int(&attrs, "MATLAB_empty").unwrap_or(0) != 0 {
            return self.empty(ds, &attrs, class.as_deref(), hint, path);
        }
        let dt = ds.datatype().map_err(h5(path))?;
        let is_ref = matches!(dt, Datatype::Reference { .. });
        let shape = ds.shape().map_err(h5(path))?;
        let dims = matlab_dims(&shape, path)?;
        let fail = |m: String| MatError::Hdf5(format!("{path}: {m}"));
        let check_len = |len: usize| {
            if numel(&dims) == Some(len) {
                Ok(())
            } else {
                Err(fail(format!("{len} elements do not fill dims {dims:?}")))
            }
        };
        if hint == 3 && !is_ref {
            // An MCOS object (or string, categorical, table...): the reference column.
            let (real, _) = self.stored(ds, path)?;
            check_len(real.len())?;
            let data = Value::Numeric(NumericArray::new(dims, real));
            return Ok(Value::Opaque(Opaque {
                type_system: "MCOS".into(),
                class: class.unwrap_or_default(),
                data: Box::new(data),
            }));
        }
        match class.as_deref() {
            Some("cell") | None if is_ref => {
                let refs = self.references(ds, path)?;
                check_len(refs.len())?;
                let mut data = Vec::with_capacity(refs.len());
                for (i, (addr, obj)) in refs.into_iter().enumerate() {
                    data.push(self.reference(
                        addr,
                        &obj,
                        &format!("{path}{{{}}}", i + 1),
                        depth + 1,
                    )?);
                }
                Ok(Value::Cell(CellArray { dims, data }))
            }
            Some("char") => {
                let (real, _) = self.stored(ds, path)?;
                check_len(real.len())?;
                let data = match real {
                    NumData::U16(v) => v,
                    NumData::U8(v) => v.into_iter().map(u16::from).collect(),
                    other => {
                        let v = other.to_f64_vec();
                        if v.iter()
                            .any(|x| !(0.0..=65535.0).contains(x) || x.fract() != 0.0)
                        {
                            return Err(fail(format!(
                                "char data stored as {} holds values beyond uint16",
                                other.class_name()
                            )));
                        }
                        v.into_iter().map(|x| x as u16).collect()
                    }
                };
                Ok(Value::Char(CharArray { dims, data }))
            }
            Some("logical") => {
                let (real, _) = self.stored(ds, path)?;
                check_len(real.len())?;
                let data = real.to_f64_vec().into_iter().map(|x| x != 0.0).collect();
                Ok(Value::Logical { dims, data })
            }
            Some("function_handle") => {
                let (real, imag) = self.stored(ds, path)?;
                check_len(real.len())?;
                Ok(Value::FunctionHandle(Box::new(Value::Numeric(
                    NumericArray { dims, real, imag },
                ))))
            }
            Some(c) if is_numeric_class(c) => {
                let (real, imag) = self.stored(ds, path)?;
                check_len(real.len())?;
                let real = convert(real, c);
                let imag = imag.map(|i| convert(i, c));
                Ok(Value::Numeric(NumericArray { dims, real, imag }))
            }
            None => {
                // No MATLAB_class: not written by MATLAB; keep the stored type.
                let (real, imag) = self.stored(ds, path)?;
                check_len(real.len())?;
                Ok(Value::Numeric(NumericArray { dims, real, imag }))
            }
            Some(c) => Err(fail(format!(
                "unsupported MATLAB_class '{c}' on a dataset of {}",
                type_name(&dt)
            ))),
        }
    }

    /// A `MATLAB_empty` dataset: its data are the dims of an empty array of its class.
    fn empty(
        &mut self,
        ds: &Dataset,
        attrs: &Attrs,
        class: Option<&str>,
        hint: i64,
        path: &str,
    ) -> Result<Value> {
        let fail = |m: String| MatError::Hdf5(format!("{path}: {m}"));
        let (real, _) = self.stored(ds, path)?;
        let mut dims = Vec::with_capacity(real.len().max(2));
        for x in real.to_f64_vec() {
            if !(0.0..=(u32::MAX as f64)).contains(&x) || x.fract() != 0.0 {
                return Err(fail(format!("empty array has a dimension of {x}")));
            }
            dims.push(x as usize);
        }
        while dims.len() < 2 {
            dims.push(0);
        }
        let n = numel(&dims).ok_or_else(|| fail(format!("empty array has dims {dims:?}")))?;
        if class == Some("struct") {
            // A struct with no fields (`struct()` is 1x1) is stored as an empty marker too.
            self.charge((n as u64).saturating_mul(NODE_COST), path)?;
            let fields = attr_strings(attrs, "MATLAB_fields").unwrap_or_default();
            if n > 0 && !fields.is_empty() {
                return Err(fail(format!(
                    "struct marked empty has dims {dims:?} and fields {fields:?}"
                )));
            }
            return Ok(Value::Struct(StructArray {
                dims,
                fields,
                elements: vec![Vec::new(); n],
            }));
        }
        if n != 0 {
            return Err(fail(format!("array marked empty has dims {dims:?}")));
        }
        Ok(match class {
            Some("char") => Value::Char(CharArray {
                dims,
                data: Vec::new(),
            }),
            Some("logical") => Value::Logical {
                dims,
                data: Vec::new(),
            },
            Some("cell") => Value::Cell(CellArray {
                dims,
                data: Vec::new(),
            }),
            Some(c) if is_numeric_class(c) => {
                Value::Numeric(NumericArray::new(dims, convert(NumData::F64(vec![]), c)))
            }
            None | Some("canonical empty") => {
                Value::Numeric(NumericArray::new(dims, NumData::F64(Vec::new())))
            }
            Some(c) if hint == 3 => Value::Opaque(Opaque {
                type_system: "MCOS".into(),
                class: c.into(),
                data: Box::new(Value::Numeric(NumericArray::new(
                    dims,
                    NumData::U32(Vec::new()),
                ))),
            }),
            Some(c) => {
                return Err(fail(format!(
                    "unsupported MATLAB_class '{c}' on an empty array"
                )));
            }
        })
    }
}
