//! v7.3 MAT files: an HDF5 container behind MATLAB's 512-byte userblock (MAT-FORMAT.md §5).
//!
//! The HDF5 layer (superblock, object headers, B-trees, heaps, chunked and deflated storage,
//! object references) is the pure-Rust `hdf5-pure` crate, reading from memory. This module maps
//! MATLAB's conventions onto the value tree:
//!
//! * every variable is a dataset or group under `/` carrying `MATLAB_class`; `#refs#` holds the
//!   values that cells and struct arrays point at, `#subsystem#/MCOS` the MATLAB-object data;
//! * HDF5 shapes are MATLAB dims reversed (the bytes are already column-major);
//! * `MATLAB_empty=1` datasets hold the dims of an empty array as their data;
//! * a scalar struct is a group with one member per field; a struct array is a group whose
//!   fields are reference datasets (no `MATLAB_class`), one reference per element;
//! * MCOS objects are `uint32` datasets with `MATLAB_object_decode=3`, kept as
//!   [`Value::Opaque`] for the MCOS decoder.
//!
//! Every read is checked against the file size before anything is allocated, reference chains
//! are limited to [`MAX_DEPTH`] levels and checked for cycles, and the total decoded size is
//! bounded, so a hostile file gives an error rather than an allocation failure or a panic.
//! Errors name the MATLAB path of the value being read (`net.layers{3}.weights{1}`).

use std::sync::Arc;

use hdf5_pure::{AttrValue, Dataset, Datatype, DatatypeByteOrder, File, Group, Object as H5Object};

use super::error::{MatError, Result};
use super::value::{
    CellArray, CharArray, NumData, NumericArray, Object, ObjectArray, Opaque, SparseArray,
    StructArray, Value, Variable,
};

/// Deepest nesting of values (cells, structs, references) followed.
pub const MAX_DEPTH: usize = 64;
/// deflate cannot shrink data by more than about 1032:1, so a deflated dataset never legitimately
/// holds more than this many times the file's size.
const MAX_INFLATE_RATIO: u64 = 1032;
/// What one decoded node costs from the output budget, besides its data.
const NODE_COST: u64 = 64;

/// Reads a v7.3 file's bytes (including the 512-byte userblock). Returns the top-level variables
/// (excluding `#refs#` and `#subsystem#`) in file order (name order: MATLAB writes symbol-table
/// groups, whose B-tree keeps names sorted), and, when the file has
/// `/#subsystem#/MCOS`, the subsystem cells: element 0 = the FileWrapper metadata blob as
/// Value::Numeric(uint8 array), followed by every other referenced value of that reference
/// dataset in order, each decoded as a Value.
pub fn read_v73(bytes: &[u8]) -> Result<(Vec<Variable>, Option<Vec<Value>>)> {
    // The HDF5 parser is third-party code reading hostile input: a panic in it must not take the
    // caller down.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_inner(bytes))) {
        Ok(r) => r,
        Err(_) => Err(MatError::Hdf5(
            "the HDF5 parser failed on malformed data".into(),
        )),
    }
}

fn read_inner(bytes: &[u8]) -> Result<(Vec<Variable>, Option<Vec<Value>>)> {
    if bytes.len() < 520 {
        return Err(MatError::Hdf5(format!(
            "file of {} bytes is too short for the 512-byte userblock and an HDF5 superblock",
            bytes.len()
        )));
    }
    let file = File::from_bytes(bytes.to_vec()).map_err(h5("file"))?;
    let mut r = Reader::new(bytes.len() as u64);
    let mut variables = Vec::new();
    let mut subsystem = None;
    for (name, node) in r.members(&file.root(), "/")? {
        match name.as_str() {
            "#refs#" => continue,
            "#subsystem#" => {
                subsystem = Some(node);
                continue;
            }
            _ => {}
        }
        let global = attr_int(&node.attrs(&name)?, "MATLAB_global").unwrap_or(0) != 0;
        let value = r.node(&node, &name, 0)?;
        variables.push(Variable {
            name,
            global,
            value,
        });
    }
    let cells = match subsystem {
        Some(Node::Group(g)) => r.subsystem(&g)?,
        _ => None,
    };
    Ok((variables, cells))
}

/// A dataset or a group.
enum Node {
    Dataset(Dataset),
    Group(Group),
}

impl Node {
    fn attrs(&self, path: &str) -> Result<Attrs> {
        match self {
            Node::Dataset(d) => d.attrs(),
            Node::Group(g) => g.attrs(),
        }
        .map(Attrs)
        .map_err(h5(path))
    }
}

struct Attrs(std::collections::HashMap<String, AttrValue>);

struct Reader {
    file_len: u64,
    /// Bytes of output (data plus [`NODE_COST`] per node) still allowed.
    budget: u64,
    /// Object-header addresses of the references being decoded, outermost first.
    active: Vec<u64>,
}

impl Reader {
    fn new(file_len: u64) -> Self {
        Reader {
            file_len,
            budget: file_len.saturating_mul(MAX_INFLATE_RATIO).max(1 << 20),
            active: Vec::new(),
        }
    }

    fn charge(&mut self, n: u64, path: &str) -> Result<()> {
        match self.budget.checked_sub(n) {
            Some(b) => {
                self.budget = b;
                Ok(())
            }
            None => Err(MatError::TooLarge {
                what: "the decoded values in total".into(),
                requested: n,
                limit: self.budget,
                context: path.into(),
            }),
        }
    }

    /// A group's members, sorted by name (the order of MATLAB's symbol-table groups).
    fn members(&mut self, g: &Group, path: &str) -> Result<Vec<(String, Node)>> {
        let mut v: Vec<(String, Node)> = Vec::new();
        for (name, d) in g.iter_datasets().map_err(h5(path))? {
            v.push((name, Node::Dataset(d)));
        }
        for (name, sub) in g.iter_groups().map_err(h5(path))? {
            v.push((name, Node::Group(sub)));
        }
        self.charge((v.len() as u64).saturating_mul(NODE_COST), path)?;
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    fn node(&mut self, node: &Node, path: &str, depth: usize) -> Result<Value> {
        if depth >= MAX_DEPTH {
            return Err(MatError::TooDeep {
                offset: 0,
                limit: MAX_DEPTH,
                context: path.into(),
            });
        }
        self.charge(NODE_COST, path)?;
        match node {
            Node::Dataset(d) => self.dataset(d, path, depth),
            Node::Group(g) => self.group(g, path, depth),
        }
    }

    /// The subsystem cells: the FileWrapper blob, then every other value `MCOS` references.
    fn subsystem(&mut self, g: &Group) -> Result<Option<Vec<Value>>> {
        let path = "#subsystem#/MCOS";
        let Some((_, Node::Dataset(mcos))) = self
            .members(g, "#subsystem#")?
            .into_iter()
            .find(|(n, _)| n == "MCOS")
        else {
            return Ok(None);
        };
        let refs = self.references(&mcos, path)?;
        let mut cells = Vec::with_capacity(refs.len());
        for (i, (addr, obj)) in refs.into_iter().enumerate() {
            let p = format!("{path}{{{}}}", i + 1);
            let v = self.reference(addr, &obj, &p, 1)?;
            if i == 0
                && !matches!(
                    &v,
                    Value::Numeric(NumericArray {
                        real: NumData::U8(_),
                        imag: None,
                        ..
                    })
                )
            {
                return Err(MatError::Hdf5(format!(
                    "{p}: the FileWrapper metadata is a {} value, expected a uint8 array",
                    v.class_name()
                )));
            }
            cells.push(v);
        }
        if cells.is_empty() {
            return Err(MatError::Hdf5(format!(
                "{path}: no FileWrapper metadata (the reference list is empty)"
            )));
        }
        Ok(Some(cells))
    }

    /// Follows one object reference, guarding depth and cycles.
    fn reference(&mut self, addr: u64, obj: &H5Object, path: &str, depth: usize) -> Result<Value> {
        if self.active.contains(&addr) {
            return Err(MatError::Hdf5(format!(
                "{path}: reference cycle (object at address {addr} refers back to itself)"
            )));
        }
        let node = match obj {
            H5Object::Dataset(d) => Node::Dataset((**d).clone()),
            H5Object::Group(g) => Node::Group(g.clone()),
            _ => {
                return Err(MatError::Hdf5(format!(
                    "{path}: reference to an object that is neither dataset nor group"
                )));
            }
        };
        self.active.push(addr);
        let v = self.node(&node, path, depth);
        self.active.pop();
        v
    }

    /// The object references a dataset holds (address and target), in storage order.
    fn references(&mut self, ds: &Dataset, path: &str) -> Result<Vec<(u64, H5Object)>> {
        let dt = ds.datatype().map_err(h5(path))?;
        let size = match dt {
            Datatype::Reference {
                size,
                ref_type: hdf5_pure::ReferenceType::Object,
            } => size as usize,
            _ => {
                return Err(MatError::Hdf5(format!(
                    "{path}: expected object references, found {}",
                    type_name(&dt)
                )));
            }
        };
        if size < 8 {
            return Err(MatError::Hdf5(format!(
                "{path}: object references of {size} bytes"
            )));
        }
        let raw = self.read_raw(ds, path)?;
        let addrs: Vec<u64> = raw
            .chunks_exact(size)
            .map(|c| {
                c.first_chunk::<8>()
                    .map(|a| u64::from_le_bytes(*a))
                    .unwrap_or(0)
            })
            .collect();
        let objs = ds.dereference().map_err(h5(path))?;
        if objs.len() != addrs.len() {
            return Err(MatError::Hdf5(format!(
                "{path}: {} references resolved to {} objects",
                addrs.len(),
                objs.len()
            )));
        }
        Ok(addrs.into_iter().zip(objs).collect())
    }

    /// A dataset's raw element bytes, refused before reading when its declared size cannot come
    /// from a file this size.
    fn read_raw(&mut self, ds: &Dataset, path: &str) -> Result<Vec<u8>> {
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
    fn stored(&mut self, ds: &Dataset, path: &str) -> Result<(NumData, Option<NumData>)> {
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

    fn dataset(&mut self, ds: &Dataset, path: &str, depth: usize) -> Result<Value> {
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

    fn group(&mut self, g: &Group, path: &str, depth: usize) -> Result<Value> {
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

fn h5(path: &str) -> impl Fn(hdf5_pure::Error) -> MatError + '_ {
    move |e| MatError::Hdf5(format!("{path}: {e}"))
}

/// MATLAB dims from an HDF5 shape: reversed, at least two.
fn matlab_dims(shape: &[u64], path: &str) -> Result<Vec<usize>> {
    let mut dims = shape
        .iter()
        .rev()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| MatError::Hdf5(format!("{path}: dimension {d} too large")))
        })
        .collect::<Result<Vec<usize>>>()?;
    match dims.len() {
        0 => dims = vec![1, 1],
        1 => dims.push(1),
        _ => {}
    }
    Ok(dims)
}

fn numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn is_numeric_class(c: &str) -> bool {
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

/// A short name for a datatype, for messages.
fn type_name(dt: &Datatype) -> String {
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

/// Converts stored numbers to the MATLAB class `class` (a numeric class name).
fn convert(d: NumData, class: &str) -> NumData {
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

fn attr_string(a: &Attrs, name: &str) -> Option<String> {
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

fn attr_strings(a: &Attrs, name: &str) -> Option<Vec<String>> {
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

fn attr_int(a: &Attrs, name: &str) -> Option<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Vec<u8> {
        let p = format!("{}/../shared/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn read(rel: &str) -> (Vec<Variable>, Option<Vec<Value>>) {
        read_inner(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn var<'a>(vars: &'a [Variable], name: &str) -> &'a Value {
        &vars
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
            .value
    }

    fn cell(v: &Value) -> &CellArray {
        v.as_cell().unwrap_or_else(|| panic!("not a cell: {v:?}"))
    }

    fn dims(v: &Value) -> Vec<usize> {
        v.dims()
    }

    #[test]
    fn simplenn_sigma25() {
        let (vars, cells) = read("dncnn-matconvnet/sigma=25.mat");
        assert!(cells.is_none());
        assert_eq!(
            vars.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["net"]
        );
        let net = var(&vars, "net").as_struct().unwrap();
        assert_eq!(net.fields, ["layers"]);
        let layers = cell(net.field("layers").unwrap());
        assert_eq!(layers.dims, [1, 33]);

        let l1 = layers.data[0].as_struct().unwrap();
        assert_eq!(
            l1.fields,
            [
                "type",
                "weights",
                "stride",
                "pad",
                "learningRate",
                "weightDecay",
                "opts",
                "name",
                "precious"
            ]
        );
        assert_eq!(l1.field("type").unwrap().as_string().unwrap(), "conv");
        assert_eq!(l1.field("name").unwrap().as_string().unwrap(), "layer1");
        assert_eq!(
            l1.field("precious").unwrap(),
            &Value::Logical {
                dims: vec![1, 1],
                data: vec![false]
            }
        );
        assert_eq!(
            l1.field("learningRate").unwrap().to_f64_vec().unwrap(),
            [1.0, 1.0]
        );
        assert_eq!(dims(l1.field("learningRate").unwrap()), [1, 2]);
        let opts = cell(l1.field("opts").unwrap());
        assert_eq!(opts.dims, [0, 0]);
        let w = cell(l1.field("weights").unwrap());
        assert_eq!(w.dims, [1, 2]);
        let f = w.data[0].as_numeric().unwrap();
        assert_eq!(f.dims, [3, 3, 1, 64]);
        assert!(matches!(f.real, NumData::F32(ref v) if v.len() == 576));
        assert_eq!(dims(&w.data[1]), [64, 1]);

        let l2 = layers.data[1].as_struct().unwrap();
        assert_eq!(l2.field("type").unwrap().as_string().unwrap(), "relu");
        assert_eq!(l2.field("leak").unwrap().as_f64(), Some(0.0));

        let last = layers.data[32].as_struct().unwrap();
        assert_eq!(last.field("name").unwrap().as_string().unwrap(), "layer48");
        assert_eq!(last.field("precious").unwrap().as_f64(), Some(1.0));
        let w = cell(last.field("weights").unwrap());
        assert_eq!(dims(&w.data[0]), [3, 3, 64]);
        let b = w.data[1].as_numeric().unwrap();
        assert_eq!(b.dims, [1, 1]);
        assert!((b.scalar().unwrap() - 9.400101407663897e-05).abs() < 1e-12);
    }

    #[test]
    fn dagnn_epoch50() {
        let (vars, cells) = read("dncnn-matconvnet/DnCNN-epoch-50.mat");
        assert!(cells.is_none());
        let net = var(&vars, "net").as_struct().unwrap();
        assert_eq!(net.fields, ["vars", "params", "layers", "meta"]);

        let params = net.field("params").unwrap().as_struct().unwrap();
        assert_eq!(params.dims, [1, 79]);
        assert_eq!(
            params.fields,
            ["name", "value", "learningRate", "weightDecay"]
        );
        assert_eq!(
            params.get(0, "name").unwrap().as_string().unwrap(),
            "conv1_f"
        );
        assert_eq!(dims(params.get(0, "value").unwrap()), [3, 3, 1, 64]);
        assert_eq!(
            params
                .get(0, "value")
                .unwrap()
                .as_numeric()
                .unwrap()
                .class_name(),
            "single"
        );
        assert_eq!(
            params.get(1, "name").unwrap().as_string().unwrap(),
            "conv1_b"
        );
        assert_eq!(dims(params.get(1, "value").unwrap()), [64, 1]);
        assert_eq!(
            params.get(2, "name").unwrap().as_string().unwrap(),
            "conv3_f"
        );
        assert_eq!(dims(params.get(2, "value").unwrap()), [3, 3, 64, 64]);
        assert_eq!(params.get(3, "learningRate").unwrap().as_f64(), Some(0.0));
        assert_eq!(
            params.get(39, "name").unwrap().as_string().unwrap(),
            "bnorm25_g"
        );

        let vars_ = net.field("vars").unwrap().as_struct().unwrap();
        assert_eq!(vars_.dims, [1, 52]);
        assert_eq!(vars_.get(0, "name").unwrap().as_string().unwrap(), "input");
        assert_eq!(vars_.get(0, "precious").unwrap().as_f64(), Some(0.0));

        let layers = net.field("layers").unwrap().as_struct().unwrap();
        assert_eq!(layers.dims, [1, 50]);
        assert_eq!(
            layers.get(0, "type").unwrap().as_string().unwrap(),
            "dagnn.Conv"
        );
        assert_eq!(
            layers.get(0, "params").unwrap().as_string_list().unwrap(),
            ["conv1_f", "conv1_b"]
        );
        assert_eq!(cell(layers.get(1, "params").unwrap()).dims, [0, 0]);
        let block = layers.get(0, "block").unwrap().as_struct().unwrap();
        assert_eq!(
            block.fields,
            ["size", "hasBias", "opts", "pad", "stride", "dilate"]
        );
        assert_eq!(
            block.field("size").unwrap().to_f64_vec().unwrap(),
            [3.0, 3.0, 1.0, 64.0]
        );
        assert_eq!(block.field("hasBias").unwrap().as_f64(), Some(1.0));
        let opts = cell(
            layers
                .get(38, "block")
                .unwrap()
                .as_struct()
                .unwrap()
                .field("opts")
                .unwrap(),
        );
        assert_eq!(opts.data[0].as_string().unwrap(), "CudnnWorkspaceLimit");
        assert_eq!(opts.data[1].as_f64(), Some(2147483648.0));
        assert_eq!(
            layers.get(39, "type").unwrap().as_string().unwrap(),
            "dagnn.BatchNorm"
        );
        // dagnn.Sum has a field-less 1x1 struct block, which MATLAB stores as an empty marker.
        assert_eq!(
            layers.get(48, "type").unwrap().as_string().unwrap(),
            "dagnn.Sum"
        );
        assert_eq!(
            layers.get(48, "block").unwrap(),
            &Value::Struct(StructArray {
                dims: vec![1, 1],
                fields: vec![],
                elements: vec![vec![]]
            })
        );
        let loss = layers.get(49, "block").unwrap().as_struct().unwrap();
        assert_eq!(loss.fields, ["loss", "ignoreAverage", "opts"]);
        assert_eq!(loss.field("loss").unwrap().as_string().unwrap(), "L2");

        let meta = net.field("meta").unwrap().as_numeric().unwrap();
        assert_eq!(
            (meta.dims.as_slice(), meta.class_name(), meta.numel()),
            (&[0, 0][..], "double", 0)
        );
    }

    #[test]
    fn mcos_user_defined_objects_and_subsystem() {
        let (vars, cells) = read("matio-v73-mcos/test_user_defined_v73.mat");
        let expect = [
            ("obj_array", "TestClasses.BasicClass"),
            ("obj_handle_1", "TestClasses.HandleClass"),
            ("obj_handle_2", "TestClasses.HandleClass"),
            ("obj_no_vals", "TestClasses.BasicClass"),
            ("obj_with_default_val", "TestClasses.DefaultClass"),
            ("obj_with_nested_props", "TestClasses.BasicClass"),
            ("obj_with_vals", "TestClasses.BasicClass"),
        ];
        assert_eq!(vars.len(), expect.len());
        for (v, (name, class)) in vars.iter().zip(expect) {
            assert_eq!(v.name, name);
            let Value::Opaque(o) = &v.value else {
                panic!("{name}: {:?}", v.value)
            };
            assert_eq!((o.type_system.as_str(), o.class.as_str()), ("MCOS", class));
            let Value::Numeric(NumericArray {
                dims,
                real: NumData::U32(col),
                ..
            }) = o.data.as_ref()
            else {
                panic!("{name}: {:?}", o.data)
            };
            assert_eq!(col[0], 0xDD00_0000, "{name}");
            assert_eq!(dims[1], 1, "{name}: a column");
            if name == "obj_array" {
                // [magic, ndims=2, 2, 2, four object ids, class id]
                assert_eq!(dims, &[9, 1]);
                assert_eq!(&col[1..4], &[2, 2, 2]);
            } else {
                assert_eq!(dims, &[6, 1]);
            }
        }
        let cells = cells.expect("subsystem cells");
        assert_eq!(cells.len(), 37);
        let Value::Numeric(NumericArray {
            real: NumData::U8(blob),
            ..
        }) = &cells[0]
        else {
            panic!("{:?}", cells[0])
        };
        assert_eq!(blob.len(), 1104);
        let version = u32::from_le_bytes(blob[..4].try_into().unwrap());
        assert!((2..=4).contains(&version), "FileWrapper version {version}");
        // cell 2 is MATLAB's canonical empty; the rest are property cells and values.
        assert_eq!(
            cells[1],
            Value::Numeric(NumericArray::new(vec![0, 0], NumData::F64(vec![])))
        );
        assert!(cells.iter().skip(2).any(|c| matches!(c, Value::Cell(_))));
    }

    #[test]
    fn mcos_strings_and_maps() {
        let (vars, cells) = read("matio-v73-mcos/test_string_v73.mat");
        assert_eq!(vars.len(), 3);
        for v in &vars {
            assert!(
                matches!(&v.value, Value::Opaque(o) if o.class == "string"),
                "{}",
                v.name
            );
        }
        assert!(cells.is_some_and(|c| c.len() == 8));

        let (vars, cells) = read("matio-v73-mcos/test_maps_v73.mat");
        let classes: Vec<String> = vars.iter().map(|v| v.value.class_name()).collect();
        assert_eq!(classes.iter().filter(|c| *c == "dictionary").count(), 6);
        assert_eq!(classes.iter().filter(|c| *c == "containers.Map").count(), 4);
        assert!(cells.is_some());
    }

    /// Truncated and corrupted files give errors, never panics (read_inner has no panic guard).
    #[test]
    fn hostile_input_errors_without_panicking() {
        for rel in [
            "matio-v73-mcos/test_user_defined_v73.mat",
            "dncnn-matconvnet/sigma=25.mat",
        ] {
            let bytes = fixture(rel);
            let n = bytes.len();
            for cut in [0, 100, 511, 512, 600, 1000, 2048, n / 3, n / 2, n - 4096] {
                assert!(read_inner(&bytes[..cut]).is_err(), "{rel} cut at {cut}");
            }
        }
        // Flip bytes all over the small file (its metadata is most of it).
        let bytes = fixture("matio-v73-mcos/test_user_defined_v73.mat");
        let mut errors = 0;
        for pos in (0..bytes.len()).step_by(7) {
            for x in [0xFF, 0x10] {
                let mut b = bytes.clone();
                b[pos] ^= x;
                errors += read_inner(&b).is_err() as usize;
            }
        }
        assert!(errors > 100, "only {errors} corruptions were noticed");
        // A v0 superblock whose base, free-space, end-of-file and driver addresses are all undefined.
        let mut b = bytes[..4096].to_vec();
        b[512 + 24..512 + 56].fill(0xFF);
        assert!(read_v73(&b).is_err());
    }

    fn class(name: &str) -> AttrValue {
        AttrValue::AsciiString(name.into())
    }

    /// Kinds the fixtures lack, written with hdf5-pure's own writer in MATLAB's layout.
    #[test]
    fn synthetic_complex_sparse_ints_cells_and_cycles() {
        let mut f = hdf5_pure::FileBuilder::new();
        f.with_userblock(512);
        // z = [1+2i, 3-4i] (HDF5 shape [2,1] -> MATLAB [1,2])
        f.create_dataset("z")
            .with_complex64_data(&[(1.0, 2.0), (3.0, -4.0)])
            .with_shape(&[2, 1])
            .set_attr("MATLAB_class", class("double"));
        // int32 stored as double; int16 [3x2] matrix, deflated in chunks
        f.create_dataset("w")
            .with_f64_data(&[7.0, -8.0])
            .with_shape(&[1, 2])
            .set_attr("MATLAB_class", class("int32"));
        f.create_dataset("m")
            .with_i16_data(&[1, 2, 3, 4, 5, 6])
            .with_shape(&[2, 3])
            .with_chunks(&[1, 3])
            .with_deflate(6)
            .set_attr("MATLAB_class", class("int16"));
        // sparse 3x3: (3,1)=5, (1,3)=6
        let mut sp = f.create_group("s");
        sp.set_attr("MATLAB_class", class("double"));
        sp.set_attr("MATLAB_sparse", AttrValue::U64(3));
        sp.create_dataset("jc")
            .with_u64_data(&[0, 1, 1, 2])
            .with_shape(&[4]);
        sp.create_dataset("ir")
            .with_u64_data(&[2, 0])
            .with_shape(&[2]);
        sp.create_dataset("data")
            .with_f64_data(&[5.0, 6.0])
            .with_shape(&[2]);
        f.add_group(sp.finish());
        // c = {'hi', true}
        let mut refs = f.create_group("#refs#");
        refs.create_dataset("a")
            .with_u16_data(&[104, 105])
            .with_shape(&[2, 1])
            .set_attr("MATLAB_class", class("char"))
            .set_attr("MATLAB_int_decode", AttrValue::I32(2));
        refs.create_dataset("b")
            .with_u8_data(&[1])
            .with_shape(&[1, 1])
            .set_attr("MATLAB_class", class("logical"));
        f.add_group(refs.finish());
        f.create_dataset("c")
            .with_path_references(&["/#refs#/a", "/#refs#/b"])
            .with_shape(&[2, 1])
            .set_attr("MATLAB_class", class("cell"));
        let bytes = f.finish().unwrap();

        let (vars, cells) = read_inner(&bytes).unwrap();
        assert!(cells.is_none());
        assert_eq!(
            vars.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["c", "m", "s", "w", "z"]
        );
        let z = var(&vars, "z").as_numeric().unwrap();
        assert_eq!(
            (z.dims.as_slice(), &z.real, z.imag.as_ref()),
            (
                &[1, 2][..],
                &NumData::F64(vec![1.0, 3.0]),
                Some(&NumData::F64(vec![2.0, -4.0]))
            )
        );
        assert_eq!(
            var(&vars, "w").as_numeric().unwrap().real,
            NumData::I32(vec![7, -8])
        );
        let m = var(&vars, "m").as_numeric().unwrap();
        assert_eq!(
            (m.dims.as_slice(), &m.real),
            (&[3, 2][..], &NumData::I16(vec![1, 2, 3, 4, 5, 6]))
        );
        let Value::Sparse(sp) = var(&vars, "s") else {
            panic!()
        };
        assert_eq!(
            (
                sp.dims.as_slice(),
                sp.ir.as_slice(),
                sp.jc.as_slice(),
                sp.real.as_slice()
            ),
            (&[3, 3][..], &[2, 0][..], &[0, 1, 1, 2][..], &[5.0, 6.0][..])
        );
        let c = cell(var(&vars, "c"));
        assert_eq!(c.dims, [1, 2]);
        assert_eq!(c.data[0].as_string().unwrap(), "hi");
        assert_eq!(
            c.data[1],
            Value::Logical {
                dims: vec![1, 1],
                data: vec![true]
            }
        );

        // A cell that contains itself is refused, not followed forever.
        let mut f = hdf5_pure::FileBuilder::new();
        f.with_userblock(512);
        f.create_dataset("loop")
            .with_path_references(&["/loop"])
            .with_shape(&[1, 1])
            .set_attr("MATLAB_class", class("cell"));
        let err = read_inner(&f.finish().unwrap()).unwrap_err().to_string();
        assert!(err.contains("loop{1}") && err.contains("cycle"), "{err}");
    }

    #[test]
    fn guards_and_conversions() {
        assert_eq!(matlab_dims(&[64, 1, 3, 3], "x").unwrap(), [3, 3, 1, 64]);
        assert_eq!(matlab_dims(&[], "x").unwrap(), [1, 1]);
        assert_eq!(matlab_dims(&[5], "x").unwrap(), [5, 1]);
        assert_eq!(
            convert(NumData::U8(vec![1, 255]), "double"),
            NumData::F64(vec![1.0, 255.0])
        );
        assert_eq!(
            convert(NumData::F64(vec![3.0]), "int16"),
            NumData::I16(vec![3])
        );
        let mut r = Reader::new(10);
        assert!(r.charge(u64::MAX, "x").is_err());
        assert!(read_v73(&[0u8; 100]).is_err());
        assert!(read_v73(&[0u8; 4096]).is_err());
    }
}
