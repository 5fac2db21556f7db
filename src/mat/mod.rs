//! MAT files → MATLAB values. Knows nothing of networks.
//!
//! [`MatFile::read`] opens v5/v7 and v7.3 (HDF5) files alike and resolves MATLAB objects
//! (MCOS) into [`Value::Object`] and the plain helper values (`table`, `categorical`, `string`).

pub mod classes;
pub mod error;
pub mod hdf5;
pub mod mcos;
pub mod v5;
pub mod value;

pub use error::{MatError, Result};
pub use value::*;

use std::path::Path;

/// Which container a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatVersion {
    /// Level 5 (v6/v7), zlib-compressed or not.
    V5,
    /// v7.3, an HDF5 file with a MATLAB userblock.
    V73,
}

/// A decoded MAT file.
#[derive(Debug, Clone)]
pub struct MatFile {
    /// The header's descriptive text (platform, creation date), trimmed.
    pub header: String,
    pub version: MatVersion,
    pub big_endian: bool,
    pub variables: Vec<Variable>,
    /// Names of the variables [`read_vars`](Self::read_vars) skipped (for error messages).
    pub skipped: Vec<String>,
}

impl MatFile {
    /// Reads and decodes a whole file. The file is memory-mapped (no copy into a buffer: for a
    /// 550 MB network this saves a quarter of the loading time), falling back to reading it where
    /// mapping is not possible (empty files, some special files).
    pub fn read(path: impl AsRef<Path>) -> Result<MatFile> {
        Self::read_with(path.as_ref(), None)
    }

    fn read_with(path: &Path, only: Option<&[String]>) -> Result<MatFile> {
        let io = |e| MatError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and lives only for this call. If another process shrinks
        // the file while it is being decoded, reading the lost pages faults (SIGBUS); this is the
        // usual caveat of mapped reading, and a .mat is not rewritten in place by MATLAB.
        match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => {
                #[cfg(unix)]
                let _ = map.advise(memmap2::Advice::Sequential);
                Self::from_bytes_with(&map, only, true)
            }
            Err(_) => {
                drop(file);
                let bytes = std::fs::read(path).map_err(io)?;
                Self::from_bytes_with(&bytes, only, false)
            }
        }
    }

    /// Reads only the variables called `names` (and what MATLAB objects in them need) from a
    /// v5/v7 file: the others are skipped after reading their names, without inflating or
    /// decoding their data. v7.3 files are read whole. A missing name is not an error here:
    /// [`get`](Self::get) reports it. A name may be a path into a variable (`model.model`,
    /// `s(2).net`, `c{1}`): the variable before the first `.`, `(` or `{` is read.
    pub fn read_vars(path: impl AsRef<Path>, names: &[&str]) -> Result<MatFile> {
        let names: Vec<String> = names
            .iter()
            .map(|n| {
                let end = n.find(['.', '(', '{']).unwrap_or(n.len());
                n[..end].to_string()
            })
            .collect();
        Self::read_with(path.as_ref(), Some(&names))
    }

    /// Decodes a file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<MatFile> {
        Self::from_bytes_with(bytes, None, false)
    }

    /// `mapped`: `bytes` is a read-only file mapping, whose decoded pages may be released.
    fn from_bytes_with(bytes: &[u8], only: Option<&[String]>, mapped: bool) -> Result<MatFile> {
        if bytes.len() < 128 {
            return Err(MatError::NotMat(format!(
                "{} bytes, shorter than the 128-byte MAT header",
                bytes.len()
            )));
        }
        let header = String::from_utf8_lossy(&bytes[..116])
            .trim_end_matches(['\0', ' '])
            .to_string();
        let big_endian = match &bytes[126..128] {
            b"IM" => false,
            b"MI" => true,
            other => {
                return Err(MatError::NotMat(format!(
                    "no endian marker at bytes 126-127 (found {:02x} {:02x}, expected 'IM' or 'MI')",
                    other[0], other[1]
                )));
            }
        };
        let version = if big_endian {
            u16::from_be_bytes([bytes[124], bytes[125]])
        } else {
            u16::from_le_bytes([bytes[124], bytes[125]])
        };
        match version {
            0x0100 => Self::read_v5(bytes, header, big_endian, only, mapped),
            0x0200 => {
                let (vars, cells) = hdf5::read_v73(bytes)?;
                let variables = resolve_objects(vars, cells)?;
                Ok(MatFile {
                    header,
                    version: MatVersion::V73,
                    big_endian,
                    variables,
                    skipped: vec![],
                })
            }
            v => Err(MatError::UnsupportedVersion(v)),
        }
    }

    fn read_v5(
        bytes: &[u8],
        header: String,
        big_endian: bool,
        only: Option<&[String]>,
        mapped: bool,
    ) -> Result<MatFile> {
        let s = &bytes[116..124];
        let subsys_offset = if s.iter().all(|&b| b == b' ' || b == 0) {
            0
        } else if big_endian {
            u64::from_be_bytes(s.try_into().unwrap_or([0; 8]))
        } else {
            u64::from_le_bytes(s.try_into().unwrap_or([0; 8]))
        };
        let mut budget = (bytes.len() as u64).saturating_mul(v5::MAX_INFLATE_RATIO);
        let mut cur = v5::Cursor::new(&bytes[128..], big_endian, 128, "");
        cur.releasable = mapped;
        let skipped = std::sync::Mutex::new(Vec::new());
        let keep = |name: &str, offset: u64| {
            let k = offset == subsys_offset || only.is_none_or(|o| o.iter().any(|n| n == name));
            if !k && let Ok(mut s) = skipped.lock() {
                s.push((offset, name.to_string()));
            }
            k
        };
        let elements =
            v5::read_elements(&mut cur, &mut budget, only.map(|_| &keep as &v5::KeepFn))?;
        let mut vars = Vec::with_capacity(elements.len());
        let mut cells = None;
        for el in elements {
            if subsys_offset != 0 && el.offset == subsys_offset {
                let blob = match &el.variable.value {
                    Value::Numeric(NumericArray {
                        real: NumData::U8(b),
                        ..
                    }) => b,
                    _ => {
                        return Err(MatError::Mcos(
                            "the subsystem element is not a uint8 array".into(),
                        ));
                    }
                };
                cells = v5::subsystem_cells(blob, &mut budget)?;
            } else {
                vars.push(el.variable);
            }
        }
        let variables = resolve_objects(vars, cells)?;
        let mut skipped = skipped.into_inner().unwrap_or_default();
        skipped.sort();
        Ok(MatFile {
            header,
            version: MatVersion::V5,
            big_endian,
            variables,
            skipped: skipped.into_iter().map(|(_, n)| n).collect(),
        })
    }

    /// The variable called `name`.
    pub fn get(&self, name: &str) -> Result<&Value> {
        self.variables
            .iter()
            .find(|v| v.name == name)
            .map(|v| &v.value)
            .ok_or_else(|| MatError::NoSuchVariable {
                name: name.to_string(),
                available: self
                    .variables
                    .iter()
                    .map(|v| v.name.as_str())
                    .chain(self.skipped.iter().map(|s| s.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Resolves MCOS references in every variable through the subsystem, when there is one.
fn resolve_objects(vars: Vec<Variable>, cells: Option<Vec<Value>>) -> Result<Vec<Variable>> {
    let Some(cells) = cells else { return Ok(vars) };
    let sub = mcos::Subsystem::parse(cells)?;
    let mut r = mcos::Resolver::new(&sub);
    vars.into_iter()
        .map(|v| {
            let name = v.name;
            let value = r.resolve(v.value).map_err(|e| e.in_context(&name))?;
            Ok(Variable {
                name,
                global: v.global,
                value,
            })
        })
        .collect()
}
