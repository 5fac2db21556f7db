//! Object references: the values cells, struct arrays and the MCOS subsystem point at.

use hdf5_pure::{Dataset, Datatype, Group, Object as H5Object};

use super::storage::type_name;
use super::{Node, Reader, h5};
use crate::mat::error::{MatError, Result};
use crate::mat::value::{NumData, NumericArray, Value};

impl Reader {
    /// The subsystem cells: the FileWrapper blob, then every other value `MCOS` references.
    pub(super) fn subsystem(&mut self, g: &Group) -> Result<Option<Vec<Value>>> {
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
    pub(super) fn reference(
        &mut self,
        addr: u64,
        obj: &H5Object,
        path: &str,
        depth: usize,
    ) -> Result<Value> {
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
    pub(super) fn references(&mut self, ds: &Dataset, path: &str) -> Result<Vec<(u64, H5Object)>> {
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
}
