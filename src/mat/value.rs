//! The value tree: what a `.mat` file holds, as MATLAB sees it.
//!
//! Arrays keep MATLAB's column-major element order and their full `dims` (at least two, as MATLAB
//! reports `size`). [`NumericArray::to_row_major`] is the one place that reorders elements for
//! tensors.

use rayon::prelude::*;
use std::sync::Arc;

/// A numeric array's element storage, in the array's MATLAB class (data stored on disk in a
/// smaller type is widened on read).
#[derive(Debug, Clone, PartialEq)]
pub enum NumData {
    F64(Vec<f64>),
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
}

macro_rules! numdata_dispatch {
    ($self:expr, $v:ident => $e:expr) => {
        match $self {
            NumData::F64($v) => $e,
            NumData::F32($v) => $e,
            NumData::I8($v) => $e,
            NumData::U8($v) => $e,
            NumData::I16($v) => $e,
            NumData::U16($v) => $e,
            NumData::I32($v) => $e,
            NumData::U32($v) => $e,
            NumData::I64($v) => $e,
            NumData::U64($v) => $e,
        }
    };
}

impl NumData {
    pub fn len(&self) -> usize {
        numdata_dispatch!(self, v => v.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// MATLAB's class name for this storage (`double`, `single`, `uint8`, ...).
    pub fn class_name(&self) -> &'static str {
        match self {
            NumData::F64(_) => "double",
            NumData::F32(_) => "single",
            NumData::I8(_) => "int8",
            NumData::U8(_) => "uint8",
            NumData::I16(_) => "int16",
            NumData::U16(_) => "uint16",
            NumData::I32(_) => "int32",
            NumData::U32(_) => "uint32",
            NumData::I64(_) => "int64",
            NumData::U64(_) => "uint64",
        }
    }
    /// Element `i` as f64 (exact for every class but the 64-bit integers beyond 2^53).
    // (The dispatch casts every class, f64 itself included.)
    #[allow(clippy::unnecessary_cast)]
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        numdata_dispatch!(self, v => v.get(i).map(|x| *x as f64))
    }
    /// All elements as f64.
    #[allow(clippy::unnecessary_cast)]
    pub fn to_f64_vec(&self) -> Vec<f64> {
        numdata_dispatch!(self, v => v.iter().map(|x| *x as f64).collect())
    }
    /// All elements as f32 (MATLAB `single(x)`).
    #[allow(clippy::unnecessary_cast)]
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            NumData::F32(v) => v.clone(),
            other => numdata_dispatch!(other, v => v.iter().map(|x| *x as f32).collect()),
        }
    }
}

/// A real or complex numeric array.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericArray {
    pub dims: Vec<usize>,
    pub real: NumData,
    pub imag: Option<NumData>,
}

impl NumericArray {
    pub fn new(dims: Vec<usize>, real: NumData) -> Self {
        NumericArray {
            dims,
            real,
            imag: None,
        }
    }
    pub fn class_name(&self) -> &'static str {
        self.real.class_name()
    }
    pub fn numel(&self) -> usize {
        self.real.len()
    }
    pub fn is_empty(&self) -> bool {
        self.real.is_empty()
    }
    /// The single element of a 1x1 array.
    pub fn scalar(&self) -> Option<f64> {
        if self.numel() == 1 {
            self.real.get_f64(0)
        } else {
            None
        }
    }
    /// Dims with trailing singleton dimensions beyond the second removed (MATLAB's `size`).
    pub fn size(&self) -> &[usize] {
        &self.dims
    }

    /// The elements as an f32 row-major buffer whose axis `k` is MATLAB dimension `axes[k]`
    /// (0-based). Dimensions of `axes` beyond `dims.len()` count as singleton; dimensions not named
    /// in `axes` must be singleton. Returns the buffer and its shape.
    ///
    /// Example: an image `[H, W, C, N]` with `axes = [3, 2, 0, 1]` gives an `[N, C, H, W]` tensor.
    pub fn to_row_major(&self, axes: &[usize]) -> Result<(Vec<f32>, Vec<usize>), String> {
        permute_col_major(&self.real.to_f32_vec(), &self.dims, axes)
    }
}

/// The shape [`permute_col_major`] gives MATLAB `dims` reordered by `axes`, checking that
/// `axes` names each dimension at most once and every non-singleton one.
pub fn permuted_shape(dims: &[usize], axes: &[usize]) -> Result<Vec<usize>, String> {
    let ndim = dims
        .len()
        .max(axes.iter().map(|a| a + 1).max().unwrap_or(0));
    let dim = |d: usize| dims.get(d).copied().unwrap_or(1);
    let mut seen = vec![false; ndim];
    for &a in axes {
        if seen[a] {
            return Err(format!("axis {a} named twice in {axes:?}"));
        }
        seen[a] = true;
    }
    for (d, s) in seen.iter().enumerate() {
        if !s && dim(d) != 1 {
            return Err(format!(
                "dimension {} of size {} is not named in the axis order {:?} (dims {:?})",
                d + 1,
                dim(d),
                axes,
                dims
            ));
        }
    }
    Ok(axes.iter().map(|&a| dim(a)).collect())
}

/// Reorders a column-major buffer with MATLAB `dims` into a row-major buffer whose axis `k` is
/// MATLAB dimension `axes[k]`. See [`NumericArray::to_row_major`].
pub fn permute_col_major<T: Copy>(
    data: &[T],
    dims: &[usize],
    axes: &[usize],
) -> Result<(Vec<T>, Vec<usize>), String> {
    permuted_shape(dims, axes)?;
    let ndim = dims
        .len()
        .max(axes.iter().map(|a| a + 1).max().unwrap_or(0));
    let dim = |d: usize| dims.get(d).copied().unwrap_or(1);
    let total: usize = (0..ndim).map(dim).product();
    if total != data.len() {
        return Err(format!(
            "{} elements do not fill dims {:?}",
            data.len(),
            dims
        ));
    }
    // Column-major stride of each MATLAB dimension.
    let mut cstride = vec![1usize; ndim];
    for d in 1..ndim {
        cstride[d] = cstride[d - 1] * dim(d - 1);
    }
    let shape: Vec<usize> = axes.iter().map(|&a| dim(a)).collect();
    let strides: Vec<usize> = axes.iter().map(|&a| cstride[a]).collect();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return Ok((out, shape));
    }
    // Drop unit axes (they do not move anything); the identity order is a plain copy.
    let (shape_nz, strides_nz): (Vec<usize>, Vec<usize>) = shape
        .iter()
        .zip(&strides)
        .filter(|(d, _)| **d != 1)
        .map(|(d, s)| (*d, *s))
        .unzip();
    let n = shape_nz.len();
    if n == 0 || strides_nz.windows(2).all(|w| w[0] > w[1]) && strides_nz[n - 1] == 1 {
        // Row-major order with decreasing strides ending in 1 is the storage order itself.
        out.extend_from_slice(data);
        return Ok((out, shape));
    }
    // Odometer over the outer axes, a strided inner loop over the last one.
    let (inner, inner_stride) = (shape_nz[n - 1], strides_nz[n - 1]);
    let outer = &shape_nz[..n - 1];
    let ostrides = &strides_nz[..n - 1];
    let mut idx = vec![0usize; outer.len()];
    let mut offset = 0usize;
    loop {
        if inner_stride == 1 {
            out.extend_from_slice(&data[offset..offset + inner]);
        } else {
            out.extend((0..inner).map(|i| data[offset + i * inner_stride]));
        }
        let mut k = outer.len();
        loop {
            if k == 0 {
                return Ok((out, shape));
            }
            k -= 1;
            idx[k] += 1;
            offset += ostrides[k];
            if idx[k] < outer[k] {
                break;
            }
            offset -= ostrides[k] * outer[k];
            idx[k] = 0;
        }
    }
}

/// A char array (MATLAB chars are UTF-16 code units).
#[derive(Debug, Clone, PartialEq)]
pub struct CharArray {
    pub dims: Vec<usize>,
    pub data: Vec<u16>,
}

impl CharArray {
    /// A 1xN char row holding `s` (0x0 when empty).
    pub fn from_text(s: &str) -> Self {
        let data: Vec<u16> = s.encode_utf16().collect();
        CharArray {
            dims: vec![if data.is_empty() { 0 } else { 1 }, data.len()],
            data,
        }
    }
    /// The rows of a char matrix as strings (a 1xN char gives one string).
    pub fn rows(&self) -> Vec<String> {
        let nrows = self.dims.first().copied().unwrap_or(0);
        // More rows than characters only happens for hostile dims ([2^31-1, 0]): no rows rather
        // than billions of empty strings.
        if nrows == 0 || nrows > self.data.len().max(1) {
            return vec![];
        }
        let ncols = self.data.len() / nrows;
        (0..nrows)
            .map(|r| {
                let units: Vec<u16> = (0..ncols).map(|c| self.data[r + c * nrows]).collect();
                String::from_utf16_lossy(&units)
            })
            .collect()
    }
    /// The whole array as one string (rows joined by newlines).
    pub fn to_string_lossy(&self) -> String {
        self.rows().join("\n")
    }
}

/// A struct array: `elements[i][f]` is field `fields[f]` of element `i` (column-major).
#[derive(Debug, Clone, PartialEq)]
pub struct StructArray {
    pub dims: Vec<usize>,
    pub fields: Vec<String>,
    pub elements: Vec<Vec<Value>>,
}

impl StructArray {
    /// Field `name` of element `i`.
    pub fn get(&self, i: usize, name: &str) -> Option<&Value> {
        let f = self.fields.iter().position(|n| n == name)?;
        self.elements.get(i)?.get(f)
    }
    /// Field `name` of a 1x1 struct.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.get(0, name)
    }
    pub fn len(&self) -> usize {
        self.elements.len()
    }
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

/// A cell array, column-major.
#[derive(Debug, Clone, PartialEq)]
pub struct CellArray {
    pub dims: Vec<usize>,
    pub data: Vec<Value>,
}

/// A sparse matrix in MATLAB's compressed-column form.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseArray {
    pub dims: Vec<usize>,
    pub logical: bool,
    /// Row index of each stored value.
    pub ir: Vec<usize>,
    /// Column starts (`dims[1] + 1` entries).
    pub jc: Vec<usize>,
    pub real: Vec<f64>,
    pub imag: Option<Vec<f64>>,
}

/// One MATLAB object (an element of an object array): its class and properties, class defaults
/// merged under the saved values, in the order MATLAB stored them.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub class: String,
    /// The object id inside the file (1-based), 0 where the container has none.
    pub id: u32,
    pub props: Vec<(String, Value)>,
}

impl Object {
    pub fn prop(&self, name: &str) -> Option<&Value> {
        self.props.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// An array of MATLAB objects. In a heterogeneous array each element has its own class;
/// `class` is the array's class.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectArray {
    pub class: String,
    pub dims: Vec<usize>,
    pub elements: Vec<Arc<Object>>,
}

/// A MATLAB `table`: named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub nrows: usize,
    pub var_names: Vec<String>,
    pub columns: Vec<Value>,
    pub row_names: Vec<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Value> {
        let i = self.var_names.iter().position(|n| n == name)?;
        self.columns.get(i)
    }
}

/// A MATLAB `categorical` array.
#[derive(Debug, Clone, PartialEq)]
pub struct Categorical {
    pub dims: Vec<usize>,
    pub categories: Vec<String>,
    /// 1-based category index per element, 0 for `<undefined>`.
    pub codes: Vec<u32>,
    pub ordinal: bool,
}

/// A MATLAB `string` array; `None` is `<missing>`.
#[derive(Debug, Clone, PartialEq)]
pub struct StringArray {
    pub dims: Vec<usize>,
    pub data: Vec<Option<String>>,
}

/// An opaque value whose contents are not decoded further: a non-MCOS type system (java,
/// handle), or an MCOS reference left unresolved because the file has no subsystem.
#[derive(Debug, Clone, PartialEq)]
pub struct Opaque {
    pub type_system: String,
    pub class: String,
    pub data: Box<Value>,
}

/// A MATLAB value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Numeric(NumericArray),
    Logical {
        dims: Vec<usize>,
        data: Vec<bool>,
    },
    Char(CharArray),
    Struct(StructArray),
    Cell(CellArray),
    Sparse(SparseArray),
    /// A function handle, kept as MATLAB stored it (a struct with the function's text).
    FunctionHandle(Box<Value>),
    Object(ObjectArray),
    /// An object met again while it was being decoded (a reference cycle): its id.
    ObjectCycle(u32),
    Table(Box<Table>),
    Categorical(Categorical),
    String(StringArray),
    Opaque(Opaque),
}

impl Value {
    /// MATLAB's `class()` of the value.
    pub fn class_name(&self) -> String {
        match self {
            Value::Numeric(a) => a.class_name().to_string(),
            Value::Logical { .. } => "logical".into(),
            Value::Char(_) => "char".into(),
            Value::Struct(_) => "struct".into(),
            Value::Cell(_) => "cell".into(),
            Value::Sparse(s) => if s.logical { "logical" } else { "double" }.into(),
            Value::FunctionHandle(_) => "function_handle".into(),
            Value::Object(o) => {
                if o.elements.len() == 1 {
                    o.elements[0].class.clone()
                } else {
                    o.class.clone()
                }
            }
            Value::ObjectCycle(_) => "object".into(),
            Value::Table(_) => "table".into(),
            Value::Categorical(_) => "categorical".into(),
            Value::String(_) => "string".into(),
            Value::Opaque(o) => o.class.clone(),
        }
    }

    /// MATLAB's `size()` of the value.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Value::Numeric(a) => a.dims.clone(),
            Value::Logical { dims, .. } => dims.clone(),
            Value::Char(c) => c.dims.clone(),
            Value::Struct(s) => s.dims.clone(),
            Value::Cell(c) => c.dims.clone(),
            Value::Sparse(s) => s.dims.clone(),
            Value::Object(o) => o.dims.clone(),
            Value::Table(t) => vec![t.nrows, t.var_names.len()],
            Value::Categorical(c) => c.dims.clone(),
            Value::String(s) => s.dims.clone(),
            Value::FunctionHandle(_) | Value::ObjectCycle(_) | Value::Opaque(_) => vec![1, 1],
        }
    }

    pub fn as_numeric(&self) -> Option<&NumericArray> {
        match self {
            Value::Numeric(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_struct(&self) -> Option<&StructArray> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_cell(&self) -> Option<&CellArray> {
        match self {
            Value::Cell(c) => Some(c),
            _ => None,
        }
    }
    /// The single object of a 1x1 object array.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) if o.elements.len() == 1 => Some(&o.elements[0]),
            _ => None,
        }
    }
    pub fn as_object_array(&self) -> Option<&ObjectArray> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }
    /// A scalar number (numeric or logical 1x1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Numeric(a) => a.scalar(),
            Value::Logical { data, .. } if data.len() == 1 => Some(if data[0] { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
    /// All elements of a numeric or logical array as f64.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        match self {
            Value::Numeric(a) => Some(a.real.to_f64_vec()),
            Value::Logical { data, .. } => Some(data.iter().map(|b| *b as u8 as f64).collect()),
            _ => None,
        }
    }
    /// Text of a char row vector or a 1x1 string.
    pub fn as_string(&self) -> Option<String> {
        match self {
            Value::Char(c) => Some(c.to_string_lossy()),
            Value::String(s) if s.data.len() == 1 => s.data[0].clone(),
            _ => None,
        }
    }
    /// A list of strings: a cellstr, a string array, a char matrix (one per row), or a
    /// categorical (its element labels).
    pub fn as_string_list(&self) -> Option<Vec<String>> {
        match self {
            Value::Cell(c) => c.data.iter().map(|v| v.as_string()).collect(),
            Value::String(s) => Some(
                s.data
                    .iter()
                    .map(|x| x.clone().unwrap_or_default())
                    .collect(),
            ),
            Value::Char(c) => Some(c.rows()),
            _ => None,
        }
    }
    /// True for an empty array of any kind.
    pub fn is_empty(&self) -> bool {
        self.dims().contains(&0)
    }
}

/// One top-level variable of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub global: bool,
    pub value: Value,
}

/// A `single` array's values met by [`Value::drain_f32`]: handed over when the value owned them
/// alone, lent when they belong to a MATLAB object referenced from elsewhere too.
pub enum F32Buf<'a> {
    Owned(Vec<f32>),
    Shared(&'a [f32]),
}

impl F32Buf<'_> {
    pub fn as_slice(&self) -> &[f32] {
        match self {
            F32Buf::Owned(v) => v,
            F32Buf::Shared(s) => s,
        }
    }
}

impl Value {
    /// Consumes the value, passing every `single` numeric array in it to `f`, in storage order.
    /// Arrays go out owned (no copy) except inside objects that other references still share.
    pub fn drain_f32(self, f: &mut dyn FnMut(F32Buf)) {
        match self {
            Value::Numeric(NumericArray {
                real: NumData::F32(v),
                ..
            }) => f(F32Buf::Owned(v)),
            Value::Struct(s) => s
                .elements
                .into_iter()
                .flatten()
                .for_each(|v| v.drain_f32(f)),
            Value::Cell(c) => c.data.into_iter().for_each(|v| v.drain_f32(f)),
            Value::FunctionHandle(v) => v.drain_f32(f),
            Value::Object(o) => {
                for obj in o.elements {
                    match Arc::try_unwrap(obj) {
                        Ok(obj) => obj.props.into_iter().for_each(|(_, v)| v.drain_f32(f)),
                        Err(shared) => shared.props.iter().for_each(|(_, v)| v.visit_f32(f)),
                    }
                }
            }
            Value::Table(t) => t.columns.into_iter().for_each(|v| v.drain_f32(f)),
            Value::Opaque(o) => o.data.drain_f32(f),
            _ => {}
        }
    }

    /// As [`drain_f32`](Self::drain_f32), lending every array.
    fn visit_f32(&self, f: &mut dyn FnMut(F32Buf)) {
        match self {
            Value::Numeric(NumericArray {
                real: NumData::F32(v),
                ..
            }) => f(F32Buf::Shared(v)),
            Value::Struct(s) => s.elements.iter().flatten().for_each(|v| v.visit_f32(f)),
            Value::Cell(c) => c.data.iter().for_each(|v| v.visit_f32(f)),
            Value::FunctionHandle(v) => v.visit_f32(f),
            Value::Object(o) => o
                .elements
                .iter()
                .for_each(|obj| obj.props.iter().for_each(|(_, v)| v.visit_f32(f))),
            Value::Table(t) => t.columns.iter().for_each(|v| v.visit_f32(f)),
            Value::Opaque(o) => o.data.visit_f32(f),
            _ => {}
        }
    }
}

/// Reorders a column-major array as [`permute_col_major`] does, reusing its buffer where the
/// order allows it: when the reordering only permutes the leading MATLAB dimensions within each
/// contiguous block (convolution weights `[kh, kw, Cin, Cout]` -> `[Cout, Cin, kh, kw]` transpose
/// each `kh x kw` block; fully connected `[out, in]` -> `[in, out]` is the storage order
/// itself), each block is reordered in place through a block-sized scratch buffer. Other orders
/// fall back to a copy.
pub fn permute_col_major_owned(
    mut data: Vec<f32>,
    dims: &[usize],
    axes: &[usize],
) -> Result<(Vec<f32>, Vec<usize>), String> {
    let ndim = dims
        .len()
        .max(axes.iter().map(|a| a + 1).max().unwrap_or(0));
    let dim = |d: usize| dims.get(d).copied().unwrap_or(1);
    let total: usize = (0..ndim).map(dim).product();
    // The block pattern: axes = [ndim-1, ..., m, (a permutation of 0..m)].
    let block_m = (0..=ndim).find(|&m| {
        axes.len() == ndim
            && axes[..ndim - m]
                .iter()
                .enumerate()
                .all(|(i, &a)| a == ndim - 1 - i)
    });
    let inner_ok = |m: usize| {
        let mut inner = axes[ndim - m..].to_vec();
        inner.sort_unstable();
        inner.iter().enumerate().all(|(i, &a)| a == i)
    };
    let Some(m) = block_m.filter(|&m| total == data.len() && inner_ok(m)) else {
        return permute_col_major(&data, dims, axes);
    };
    let shape: Vec<usize> = axes.iter().map(|&a| dim(a)).collect();
    let inner = &axes[ndim - m..];
    let block: usize = (0..m).map(dim).product();
    if block <= 1 {
        return Ok((data, shape));
    }
    let block_dims: Vec<usize> = (0..m).map(dim).collect();
    // Where each output element of a block comes from: the permutation of the block's indices.
    let idx: Vec<usize> = (0..block).collect();
    let (map, _) = permute_col_major(&idx, &block_dims, inner)?;
    if map.iter().enumerate().all(|(i, &j)| i == j) {
        return Ok((data, shape));
    }
    // Blocks in parallel, in runs of about 1 MiB.
    let run = block * (1usize << 18).div_ceil(block);
    data.par_chunks_mut(run).for_each_init(
        || vec![0f32; block],
        |scratch, r| {
            for b in r.chunks_exact_mut(block) {
                scratch.copy_from_slice(b);
                for (d, &j) in b.iter_mut().zip(&map) {
                    *d = scratch[j];
                }
            }
        },
    );
    Ok((data, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every axis order of several shapes (unit axes included) against the definition.
    #[test]
    fn permute_equals_the_definition() {
        let perms4 = |n: usize| -> Vec<Vec<usize>> {
            let mut out = vec![];
            let mut p: Vec<usize> = (0..n).collect();
            fn rec(k: usize, p: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
                if k == p.len() {
                    out.push(p.clone());
                    return;
                }
                for i in k..p.len() {
                    p.swap(k, i);
                    rec(k + 1, p, out);
                    p.swap(k, i);
                }
            }
            rec(0, &mut p, &mut out);
            out
        };
        for dims in [
            vec![2, 3, 4, 5],
            vec![3, 1, 4, 2],
            vec![1, 1, 6, 1],
            vec![7, 7, 1, 3],
        ] {
            let total: usize = dims.iter().product();
            let data: Vec<u32> = (0..total as u32).collect();
            for axes in perms4(4) {
                let (out, shape) = permute_col_major(&data, &dims, &axes).unwrap();
                assert_eq!(shape, axes.iter().map(|&a| dims[a]).collect::<Vec<_>>());
                // Row-major index over `shape` -> MATLAB subscripts -> column-major offset.
                for (r, v) in out.iter().enumerate() {
                    let mut rem = r;
                    let mut sub = [0usize; 4];
                    for k in (0..4).rev() {
                        sub[axes[k]] = rem % shape[k];
                        rem /= shape[k];
                    }
                    let off = sub[0] + dims[0] * (sub[1] + dims[1] * (sub[2] + dims[2] * sub[3]));
                    assert_eq!(*v as usize, off, "dims {dims:?} axes {axes:?}");
                }
            }
        }
    }

    /// The owned variant gives the copying one's result, in place for block orders and by copy
    /// for the others.
    #[test]
    fn owned_permute_equals_copying_permute() {
        let dims = [3, 2, 4, 5];
        let data: Vec<f32> = (0..120).map(|x| x as f32).collect();
        for axes in [
            &[3, 2, 0, 1][..],
            &[3, 2, 1, 0],
            &[3, 1, 0, 2],
            &[0, 1, 2, 3],
            &[2, 3, 0, 1],
            &[3, 0, 1, 2],
        ] {
            let want = permute_col_major(&data, &dims, axes).unwrap();
            let copy = data.clone();
            let cptr = copy.as_ptr();
            let got = permute_col_major_owned(copy, &dims, axes).unwrap();
            assert_eq!(got, want, "{axes:?}");
            if axes[..2] == [3, 2] {
                assert_eq!(got.0.as_ptr(), cptr, "{axes:?} reuses the buffer");
            }
        }
        // [out, in] -> [in, out] is the storage order.
        let (v, shape) = permute_col_major_owned(data.clone(), &[10, 12], &[1, 0]).unwrap();
        assert_eq!((v, shape), (data.clone(), vec![12, 10]));
    }

    #[test]
    fn row_major_permutes_column_major_image() {
        // MATLAB A = reshape(0:23, [2 3 4]): A(h,w,c) = h + 2w + 6c (0-based).
        let data: Vec<f32> = (0..24).map(|x| x as f32).collect();
        // [C, H, W] order.
        let (out, shape) = permute_col_major(&data, &[2, 3, 4], &[2, 0, 1]).unwrap();
        assert_eq!(shape, vec![4, 2, 3]);
        for c in 0..4 {
            for h in 0..2 {
                for w in 0..3 {
                    assert_eq!(out[c * 6 + h * 3 + w], (h + 2 * w + 6 * c) as f32);
                }
            }
        }
    }

    #[test]
    fn row_major_restores_trailing_singletons_and_rejects_missing_axes() {
        // [3,3,64] stored for a conv with one filter: ask for [Cout=1, Cin, kh, kw].
        let data: Vec<f32> = (0..3 * 3 * 64).map(|x| x as f32).collect();
        let (out, shape) = permute_col_major(&data, &[3, 3, 64], &[3, 2, 0, 1]).unwrap();
        assert_eq!(shape, vec![1, 64, 3, 3]);
        // element (kh=1, kw=2, cin=5) sits at 1 + 3*2 + 9*5 column-major
        assert_eq!(out[5 * 9 + 3 + 2], (1 + 6 + 45) as f32);
        assert!(permute_col_major(&data, &[3, 3, 64], &[0, 1]).is_err());
        assert!(permute_col_major(&data, &[3, 3, 64], &[0, 0, 2]).is_err());
        assert!(permute_col_major(&data[..10], &[3, 3, 64], &[0, 1, 2]).is_err());
    }

    #[test]
    fn char_matrix_rows() {
        // ['ab';'cd'] is stored a c b d
        let c = CharArray {
            dims: vec![2, 2],
            data: "acbd".encode_utf16().collect(),
        };
        assert_eq!(c.rows(), vec!["ab", "cd"]);
    }
}
