//! MATLAB class objects (MCOS): the FileWrapper__ metadata of the subsystem, its class, object
//! and property tables, and the resolution of object references anywhere in the value tree.
//! Shared by both containers: each yields the FileWrapper cells (cell 0 = metadata blob).

use super::classes;
use super::error::{MatError, Result};
use super::value::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Marker that starts every object reference array.
pub const REF_MARKER: u32 = 0xDD00_0000;
/// How deep objects may nest inside objects.
const MAX_OBJECT_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy)]
struct ObjectEntry {
    class_id: u32,
    saveobj_rec: u32,
    normal_rec: u32,
}

/// One property as recorded: (name index, type, value).
#[derive(Debug, Clone, Copy)]
struct PropRecord {
    name: u32,
    kind: u32,
    value: u32,
}

/// The decoded FileWrapper__ metadata and its cells.
#[derive(Debug)]
pub struct Subsystem {
    pub version: u32,
    names: Vec<String>,
    /// Full class names by class id (entry 0 unused).
    classes: Vec<String>,
    objects: Vec<ObjectEntry>,
    saveobj_records: Vec<Vec<PropRecord>>,
    normal_records: Vec<Vec<PropRecord>>,
    cells: Vec<Value>,
    /// Class default property values by class id (struct fields).
    defaults: Vec<Option<StructArray>>,
}

fn mcos(msg: impl Into<String>) -> MatError {
    MatError::Mcos(msg.into())
}

struct Words<'a> {
    b: &'a [u8],
}

impl Words<'_> {
    fn u32(&self, byte: usize) -> Result<u32> {
        self.b
            .get(byte..byte + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| {
                mcos(format!(
                    "metadata blob of {} bytes ends before byte {}",
                    self.b.len(),
                    byte + 4
                ))
            })
    }
}

impl Subsystem {
    /// Decodes the FileWrapper__ cells: cell 0 is the metadata blob (uint8), the last cell holds
    /// the class defaults.
    pub fn parse(cells: Vec<Value>) -> Result<Subsystem> {
        let blob = match cells.first() {
            Some(Value::Numeric(NumericArray {
                real: NumData::U8(b),
                ..
            })) => b.clone(),
            _ => return Err(mcos("FileWrapper__ cell 1 is not the uint8 metadata blob")),
        };
        let w = Words { b: &blob };
        let version = w.u32(0)?;
        if !(2..=4).contains(&version) {
            return Err(mcos(format!(
                "FileWrapper__ metadata version {version} (supported: 2 to 4)"
            )));
        }
        let num_names = w.u32(4)? as usize;
        let mut regions = [0usize; 8];
        for (i, r) in regions.iter_mut().enumerate() {
            *r = w.u32(8 + 4 * i)? as usize;
        }
        for i in 0..8 {
            if regions[i] > blob.len() || (i > 0 && regions[i] < regions[i - 1] && regions[i] != 0)
            {
                return Err(mcos(format!(
                    "region {} offset {} is outside the {}-byte metadata",
                    i + 1,
                    regions[i],
                    blob.len()
                )));
            }
        }
        // Names: NUL-terminated strings from byte 40 up to region 1.
        let names_end = regions[0];
        if names_end < 40 {
            return Err(mcos(format!(
                "class table offset {names_end} overlaps the header"
            )));
        }
        let mut names = Vec::with_capacity(num_names.min(blob.len()));
        let mut p = 40;
        while names.len() < num_names {
            let end = blob[p..names_end]
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| {
                    mcos(format!(
                        "name {} of {} is not terminated before byte {names_end}",
                        names.len() + 1,
                        num_names
                    ))
                })?;
            names.push(String::from_utf8_lossy(&blob[p..p + end]).into_owned());
            p += end + 1;
        }
        let name = |i: u32| -> Result<String> {
            names
                .get((i as usize).wrapping_sub(1))
                .cloned()
                .ok_or_else(|| mcos(format!("name index {i} beyond the {} names", names.len())))
        };
        // Class table.
        let mut classes = Vec::new();
        let mut off = regions[0];
        while off + 16 <= regions[1] {
            let ns = w.u32(off)?;
            let cn = w.u32(off + 4)?;
            if classes.is_empty() {
                classes.push(String::new());
            } else {
                let base = name(cn)?;
                classes.push(if ns == 0 {
                    base
                } else {
                    format!("{}.{}", name(ns)?, base)
                });
            }
            off += 16;
        }
        // Object table.
        let mut objects = Vec::new();
        let mut off = regions[2];
        while off + 24 <= regions[3] {
            objects.push(ObjectEntry {
                class_id: w.u32(off)?,
                saveobj_rec: w.u32(off + 12)?,
                normal_rec: w.u32(off + 16)?,
            });
            off += 24;
        }
        let saveobj_records = records(&w, regions[1], regions[2])?;
        let normal_records = records(&w, regions[3], regions[4])?;

        // Class defaults: the last cell, a cell of structs indexed by class id.
        let mut cells = cells;
        let defaults = match cells.last() {
            Some(Value::Cell(c)) if cells.len() > 2 => c
                .data
                .iter()
                .map(|v| match v {
                    Value::Struct(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if cells.len() > 2 {
            cells.pop();
        }
        Ok(Subsystem {
            version,
            names,
            classes,
            objects,
            saveobj_records,
            normal_records,
            cells,
            defaults,
        })
    }

    pub fn class_name(&self, class_id: u32) -> Result<&str> {
        self.classes
            .get(class_id as usize)
            .filter(|_| class_id != 0)
            .map(|s| s.as_str())
            .ok_or_else(|| {
                mcos(format!(
                    "class id {class_id} beyond the {} classes",
                    self.classes.len().saturating_sub(1)
                ))
            })
    }
}

/// Reads the property records of a region: nprops, then nprops (name, type, value) triples, each
/// record padded to 8 bytes.
fn records(w: &Words, start: usize, end: usize) -> Result<Vec<Vec<PropRecord>>> {
    let mut out = Vec::new();
    let mut off = start;
    while off + 4 <= end {
        let n = w.u32(off)? as usize;
        off += 4;
        if n > (end - off) / 12 {
            return Err(mcos(format!(
                "property record at byte {off} claims {n} properties, more than its region holds"
            )));
        }
        let mut rec = Vec::with_capacity(n);
        for _ in 0..n {
            rec.push(PropRecord {
                name: w.u32(off)?,
                kind: w.u32(off + 4)?,
                value: w.u32(off + 8)?,
            });
            off += 12;
        }
        off += off % 8;
        out.push(rec);
    }
    Ok(out)
}

/// Turns object references into objects, resolving each object once.
pub struct Resolver<'a> {
    sub: &'a Subsystem,
    cache: HashMap<u32, Arc<Object>>,
    in_progress: HashSet<u32>,
    depth: usize,
}

impl<'a> Resolver<'a> {
    pub fn new(sub: &'a Subsystem) -> Self {
        Resolver {
            sub,
            cache: HashMap::new(),
            in_progress: HashSet::new(),
            depth: 0,
        }
    }

    /// Replaces every object reference inside `v` by the decoded objects.
    pub fn resolve(&mut self, v: Value) -> Result<Value> {
        Ok(match v {
            Value::Opaque(o) if o.type_system == "MCOS" && o.class != "FileWrapper__" => {
                match *o.data {
                    Value::Numeric(NumericArray {
                        real: NumData::U32(ref r),
                        ..
                    }) if is_reference(r) => self.reference(r)?,
                    other => Value::Opaque(Opaque {
                        data: Box::new(self.resolve(other)?),
                        ..o
                    }),
                }
            }
            Value::Numeric(NumericArray {
                real: NumData::U32(ref r),
                ref dims,
                ..
            }) if is_reference(r) && dims.len() == 2 && dims[1] == 1 => self.reference(r)?,
            Value::Struct(mut s) => {
                for el in s.elements.iter_mut() {
                    for f in el.iter_mut() {
                        *f = self.resolve(std::mem::replace(f, Value::ObjectCycle(0)))?;
                    }
                }
                Value::Struct(s)
            }
            Value::Cell(mut c) => {
                for f in c.data.iter_mut() {
                    *f = self.resolve(std::mem::replace(f, Value::ObjectCycle(0)))?;
                }
                Value::Cell(c)
            }
            Value::FunctionHandle(f) => Value::FunctionHandle(Box::new(self.resolve(*f)?)),
            other => other,
        })
    }

    /// Decodes a reference array `[0xDD000000, ndims, dims.., ids.., class_id]`.
    fn reference(&mut self, r: &[u32]) -> Result<Value> {
        let ndims = r[1] as usize;
        if !(2..=32).contains(&ndims) || r.len() < 2 + ndims + 1 {
            return Err(mcos(format!(
                "object reference with {ndims} dimensions in a {}-word array",
                r.len()
            )));
        }
        let dims: Vec<usize> = r[2..2 + ndims].iter().map(|&d| d as usize).collect();
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        if n > r.len() || r.len() != 2 + ndims + n + 1 {
            return Err(mcos(format!(
                "object reference of dims {dims:?} has {} words, expected {}",
                r.len(),
                2 + ndims + n.min(r.len()) + 1
            )));
        }
        // Ids are listed in column-major element order (in both containers).
        let ids = &r[2 + ndims..2 + ndims + n];
        let class_id = r[2 + ndims + n];
        let class = self.sub.class_name(class_id)?.to_string();
        let mut elements = Vec::with_capacity(n);
        for &id in ids {
            match self.object(id)? {
                Some(o) => elements.push(o),
                None => return Ok(Value::ObjectCycle(id)),
            }
        }
        let arr = ObjectArray {
            class,
            dims,
            elements,
        };
        Ok(classes::decode_special(arr))
    }

    /// The object with id `id`, or None when it is being decoded already (a cycle).
    fn object(&mut self, id: u32) -> Result<Option<Arc<Object>>> {
        if let Some(o) = self.cache.get(&id) {
            return Ok(Some(o.clone()));
        }
        if id == 0 {
            return Ok(Some(Arc::new(Object {
                class: String::new(),
                id: 0,
                props: vec![],
            })));
        }
        if self.in_progress.contains(&id) {
            return Ok(None);
        }
        if self.depth >= MAX_OBJECT_DEPTH {
            return Err(mcos(format!(
                "objects nest deeper than {MAX_OBJECT_DEPTH} levels at object {id}"
            )));
        }
        let entry = *self.sub.objects.get(id as usize).ok_or_else(|| {
            mcos(format!(
                "object id {id} beyond the {} objects",
                self.sub.objects.len().saturating_sub(1)
            ))
        })?;
        let class = self.sub.class_name(entry.class_id)?.to_string();
        let (recs, rec) = if entry.saveobj_rec != 0 {
            (&self.sub.saveobj_records, entry.saveobj_rec)
        } else {
            (&self.sub.normal_records, entry.normal_rec)
        };
        let record = recs
            .get(rec as usize)
            .ok_or_else(|| {
                mcos(format!(
                    "object {id} ({class}) names property record {rec}, beyond {}",
                    recs.len()
                ))
            })?
            .clone();
        self.in_progress.insert(id);
        self.depth += 1;
        let result = self.properties(&class, entry.class_id, &record);
        self.depth -= 1;
        self.in_progress.remove(&id);
        let props = result.map_err(|e| match e {
            MatError::Mcos(m) => mcos(format!("object {id} ({class}): {m}")),
            other => other,
        })?;
        let obj = Arc::new(Object { class, id, props });
        self.cache.insert(id, obj.clone());
        Ok(Some(obj))
    }

    fn properties(
        &mut self,
        class: &str,
        class_id: u32,
        record: &[PropRecord],
    ) -> Result<Vec<(String, Value)>> {
        let mut props: Vec<(String, Value)> = Vec::new();
        if let Some(Some(d)) = self.sub.defaults.get(class_id as usize) {
            for (f, v) in d
                .fields
                .iter()
                .zip(d.elements.first().into_iter().flatten())
            {
                let v = self.resolve(v.clone())?;
                props.push((f.clone(), v));
            }
        }
        for p in record {
            let name = self
                .sub
                .names
                .get((p.name as usize).wrapping_sub(1))
                .cloned()
                .ok_or_else(|| {
                    mcos(format!(
                        "{class}: property name index {} out of range",
                        p.name
                    ))
                })?;
            let value = match p.kind {
                0 => Value::Char(CharArray::from_text(
                    self.sub
                        .names
                        .get((p.value as usize).wrapping_sub(1))
                        .map(|s| s.as_str())
                        .unwrap_or(""),
                )),
                1 => {
                    let cell = self.sub.cells.get(p.value as usize + 2).ok_or_else(|| {
                        mcos(format!(
                            "{class}.{name}: saved value {} beyond the {} cells",
                            p.value,
                            self.sub.cells.len()
                        ))
                    })?;
                    self.resolve(cell.clone())?
                }
                2 => Value::Numeric(NumericArray::new(
                    vec![1, 1],
                    NumData::F64(vec![p.value as f64]),
                )),
                k => return Err(mcos(format!("{class}.{name}: unknown property type {k}"))),
            };
            match props.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => props.push((name, value)),
            }
        }
        Ok(props)
    }
}

/// True for a uint32 column that starts with the object reference marker.
pub fn is_reference(r: &[u32]) -> bool {
    r.len() >= 3 && r[0] == REF_MARKER
}
