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
//!
//! The pieces: this file holds the entry point, the reader's state and the dispatch from an HDF5
//! object to its reader; `storage` reads a dataset's bytes as numbers, `dataset` and `group` map
//! datasets and groups onto MATLAB values by their `MATLAB_class`, `refs` follows object
//! references (cells, struct arrays, the MCOS subsystem), and `class` reads MATLAB's attributes
//! and converts numbers to a MATLAB class.

mod class;
mod dataset;
mod group;
mod refs;
mod storage;
#[cfg(test)]
mod tests;

use hdf5_pure::{AttrValue, Dataset, File, Group};

use super::error::{MatError, Result};
use super::value::{Value, Variable};
use class::attr_int;

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
