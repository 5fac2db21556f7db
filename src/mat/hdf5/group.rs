//! Groups as MATLAB values: scalar structs and struct arrays, old-style objects, MCOS objects
//! stored as structs, and sparse matrices.

use std::sync::Arc;

use hdf5_pure::{Datatype, Group};

use super::class::{attr_int, attr_string, attr_strings};
use super::{Attrs, Node, Reader, h5, matlab_dims, numel};
use crate::mat::error::{MatError, Result};
use crate::mat::value::{NumData, Object, ObjectArray, Opaque, SparseArray, StructArray, Value};

impl Reader {
    pub(super) fn group(&mut self, g: &Group, path: &str, depth: usize) -> Result<Value> {
        let attrs = Attrs(g.attrs().map_err(h5(path))?);
        let class = attr_string(&attrs, "MATLAB_class");
        if attrs.0.contains_key("MATLAB_sparse") {
            return self.sparse(g, &attrs, class.as_deref(), path);
        }
        let hint = attr_int(&attrs, "MATLAB_object_decode").unwrap_or(0);
        let s = self.structure(g, &attrs, path, depth)?;
        match class.as_deref() {
            None | Some("struct") => Ok(Value::Struct(s)),
            Some("function_handle") => Ok(Value::FunctionHandle(Box::new(Value::Struct(s)))),
            Some(c) if hint == 2 => {
                // Old-style (pre-classdef) object: a struct with a class name.
                let elements = s
                    .elements
                    .into_iter()
                    .map(|vals| {
                        Arc::new(Object {
                            class: c.into(),
                            id: 0,
                            props: s.fields.iter().cloned().zip(vals).collect(),
                        })
                    })
                    .collect();
                Ok(Value::Object(ObjectArray {
                    class: c.into(),
                    dims: s.dims,
                    elements,
                }))
            }
            Some(c) if hint == 3 => Ok(Value::Opaque(Opaque {
                type_system: "MCOS".into(),
                class: c.into(),
                data: Box::new(Value::Struct(s)),
            })),
            Some(c) => Err(MatError::Hdf5(format!(
                "{path}: unsupported MATLAB_class '{c}' on a group"
            ))),
        }
    }

    /// A struct group: scalar (members are the field values) or array (members are reference
    /// datasets, one reference per element).
    fn structure(
        &mut self,
        g: &Group,
        attrs: &Attrs,
        path: &str,
        depth: usize,
    ) -> Result<StructArray> {
        let mut members = self.members(g, path)?;
        let fields = match attr_strings(attrs, "MATLAB_fields") {
            Some(f) => f,
            None => members
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| n != "#refs#")
                .collect(),
        };
        let mut nodes = Vec::with_capacity(fields.len());
        for f in &fields {
            let i = members.iter().position(|(n, _)| n == f).ok_or_else(|| {
                MatError::Hdf5(format!("{path}: struct field '{f}' has no member"))
            })?;
            nodes.push(members.swap_remove(i).1);
        }
        let is_array = match nodes.first() {
            Some(Node::Dataset(d)) => {
                matches!(d.datatype().map_err(h5(path))?, Datatype::Reference { .. })
                    && !d.attrs().map_err(h5(path))?.contains_key("MATLAB_class")
            }
            _ => false,
        };
        if !is_array {
            let mut vals = Vec::with_capacity(nodes.len());
            for (f, node) in fields.iter().zip(&nodes) {
                vals.push(self.node(node, &format!("{path}.{f}"), depth + 1)?);
            }
            return Ok(StructArray {
                dims: vec![1, 1],
                fields,
                elements: vec![vals],
            });
        }
        let mut dims = None;
        let mut elements: Vec<Vec<Value>> = Vec::new();
        for (f, node) in fields.iter().zip(&nodes) {
            let fpath = format!("{path}.{f}");
            let Node::Dataset(d) = node else {
                return Err(MatError::Hdf5(format!(
                    "{fpath}: a struct array field must be a reference dataset"
                )));
            };
            let refs = self.references(d, &fpath)?;
            let d_dims = matlab_dims(&d.shape().map_err(h5(&fpath))?, &fpath)?;
            match &dims {
                None => {
                    if numel(&d_dims) != Some(refs.len()) {
                        return Err(MatError::Hdf5(format!(
                            "{fpath}: {} references for dims {d_dims:?}",
                            refs.len()
                        )));
                    }
                    elements = (0..refs.len())
                        .map(|_| Vec::with_capacity(fields.len()))
                        .collect();
                    dims = Some(d_dims);
                }
                Some(dd) if *dd != d_dims => {
                    return Err(MatError::Hdf5(format!(
                        "{fpath}: field has dims {d_dims:?}, the struct array {dd:?}"
                    )));
                }
                Some(_) => {}
            }
            for (i, ((addr, obj), el)) in refs.into_iter().zip(elements.iter_mut()).enumerate() {
                el.push(self.reference(
                    addr,
                    &obj,
                    &format!("{path}({}).{f}", i + 1),
                    depth + 1,
                )?);
            }
        }
        Ok(StructArray {
            dims: dims.unwrap_or_else(|| vec![1, 1]),
            fields,
            elements,
        })
    }

    /// A sparse matrix: group with `MATLAB_sparse` = rows and datasets `jc`, `ir`, `data`.
    fn sparse(
        &mut self,
        g: &Group,
        attrs: &Attrs,
        class: Option<&str>,
        path: &str,
    ) -> Result<Value> {
        let fail = |m: String| MatError::Hdf5(format!("{path}: {m}"));
        let nrows = attr_int(attrs, "MATLAB_sparse")
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| fail("MATLAB_sparse is not a row count".into()))?;
        let mut members = self.members(g, path)?;
        let mut take = |name: &str| match members.iter().position(|(n, _)| n == name) {
            Some(i) => match members.swap_remove(i).1 {
                Node::Dataset(d) => Ok(Some(d)),
                Node::Group(_) => Err(fail(format!("sparse member '{name}' is a group"))),
            },
            None => Ok(None),
        };
        let (jc, ir, data) = (take("jc")?, take("ir")?, take("data")?);
        let jc = jc.ok_or_else(|| fail("sparse matrix without 'jc'".into()))?;
        let index = |v: NumData| -> Result<Vec<usize>> {
            v.to_f64_vec()
                .into_iter()
                .map(|x| {
                    if x >= 0.0 && x.fract() == 0.0 && x <= usize::MAX as f64 {
                        Ok(x as usize)
                    } else {
                        Err(fail(format!("sparse index {x}")))
                    }
                })
                .collect()
        };
        let jc = index(self.stored(&jc, &format!("{path}.jc"))?.0)?;
        let ncols = jc
            .len()
            .checked_sub(1)
            .ok_or_else(|| fail("empty column index 'jc'".into()))?;
        let nnz = jc.last().copied().unwrap_or(0);
        if jc.first() != Some(&0) || jc.windows(2).any(|w| w[0] > w[1]) {
            return Err(fail("column starts 'jc' do not rise from 0".into()));
        }
        let mut ir = match ir {
            Some(d) => index(self.stored(&d, &format!("{path}.ir"))?.0)?,
            None => Vec::new(),
        };
        let (mut real, mut imag) = match data {
            Some(d) => {
                let (re, im) = self.stored(&d, &format!("{path}.data"))?;
                (re.to_f64_vec(), im.map(|i| i.to_f64_vec()))
            }
            None => (Vec::new(), None),
        };
        if ir.len() < nnz || real.len() < nnz || imag.as_ref().is_some_and(|i| i.len() < nnz) {
            return Err(fail(format!(
                "{nnz} stored values, but {} row indices and {} values",
                ir.len(),
                real.len()
            )));
        }
        if ir.iter().take(nnz).any(|&r| r >= nrows) {
            return Err(fail(format!("row index beyond the {nrows} rows")));
        }
        ir.truncate(nnz);
        real.truncate(nnz);
        if let Some(i) = imag.as_mut() {
            i.truncate(nnz);
        }
        let logical = class == Some("logical");
        Ok(Value::Sparse(SparseArray {
            dims: vec![nrows, ncols],
            logical,
            ir,
            jc,
            real,
            imag,
        }))
    }
}
