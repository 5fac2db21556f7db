//! A hand-written MAT v5 writer for test inputs matcnn's own writer does not make (cells, char
//! rows, doubles): uncompressed miMATRIX elements, as MATLAB's `save -v6` writes them.

use std::path::Path;

/// A MATLAB value.
pub enum M {
    /// dims, column-major values
    Single(Vec<usize>, Vec<f32>),
    /// dims, column-major values
    Double(Vec<usize>, Vec<f64>),
    Char(String),
    Cell(Vec<usize>, Vec<M>),
}

fn pad8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

fn tag(v: &mut Vec<u8>, ty: u32, n: usize) {
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&(n as u32).to_le_bytes());
}

/// One miMATRIX element.
pub fn element(name: &str, m: &M) -> Vec<u8> {
    let (class, dims) = match m {
        M::Single(d, _) => (7u32, d.clone()),
        M::Double(d, _) => (6, d.clone()),
        M::Char(s) => (4, vec![1, s.len()]),
        M::Cell(d, _) => (1, d.clone()),
    };
    let mut b = Vec::new();
    tag(&mut b, 6, 8);
    b.extend_from_slice(&class.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    tag(&mut b, 5, 4 * dims.len());
    for d in &dims {
        b.extend_from_slice(&(*d as i32).to_le_bytes());
    }
    pad8(&mut b);
    tag(&mut b, 1, name.len());
    b.extend_from_slice(name.as_bytes());
    pad8(&mut b);
    match m {
        M::Single(_, v) => {
            tag(&mut b, 7, 4 * v.len());
            for x in v {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        M::Double(_, v) => {
            tag(&mut b, 9, 8 * v.len());
            for x in v {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        M::Char(s) => {
            tag(&mut b, 4, 2 * s.len());
            for ch in s.encode_utf16() {
                b.extend_from_slice(&ch.to_le_bytes());
            }
        }
        M::Cell(_, items) => {
            for it in items {
                b.extend(element("", it));
            }
        }
    }
    pad8(&mut b);
    let mut out = Vec::new();
    tag(&mut out, 14, b.len());
    out.extend(b);
    out
}

/// Writes `vars` as a MAT v5 file.
pub fn write_mat(path: &Path, vars: &[(&str, M)]) {
    let mut out = b"MATLAB 5.0 MAT-file, written by the matcnn tests".to_vec();
    out.resize(116, b' ');
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, m) in vars {
        out.extend(element(name, m));
    }
    std::fs::write(path, out).unwrap();
}
