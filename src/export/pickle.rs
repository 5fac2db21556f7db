//! `torch.save`'s file format for a state dict, written without torch: a zip archive (stored,
//! not compressed) holding
//! - `<name>/data.pkl`: a protocol-2 pickle of an `OrderedDict` whose values are rebuilt by
//!   `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`,
//!   each storage a persistent id `('storage', torch.FloatStorage, key, 'cpu', numel)`;
//! - `<name>/data/<key>`: each storage's raw little-endian bytes;
//! - `<name>/version` (`3`) and `<name>/byteorder` (`little`).
//!
//! Only opcodes that `torch.load(..., weights_only=True)` accepts are used, and only the globals
//! it allows (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `torch.*Storage`).

use super::{Blob, BlobData, ExportError};
use std::io::Write;

/// A minimal pickle (protocol 2) emitter.
struct Pickler {
    out: Vec<u8>,
}

// Opcodes (Lib/pickle.py).
const PROTO: u8 = 0x80;
const STOP: u8 = b'.';
const MARK: u8 = b'(';
const GLOBAL: u8 = b'c';
const EMPTY_TUPLE: u8 = b')';
const TUPLE: u8 = b't';
const REDUCE: u8 = b'R';
const SETITEMS: u8 = b'u';
const BINUNICODE: u8 = b'X';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const LONG1: u8 = 0x8a;
const NEWFALSE: u8 = 0x89;
const BINPERSID: u8 = b'Q';

impl Pickler {
    fn new() -> Self {
        Pickler {
            out: vec![PROTO, 2],
        }
    }
    fn op(&mut self, op: u8) {
        self.out.push(op);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(GLOBAL);
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }
    fn str(&mut self, s: &str) {
        self.out.push(BINUNICODE);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: u64) {
        if v < 256 {
            self.out.extend_from_slice(&[BININT1, v as u8]);
        } else if v < (1 << 31) {
            self.out.push(BININT);
            self.out.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, with a sign byte to keep it positive.
            let mut bytes = v.to_le_bytes().to_vec();
            while bytes.len() > 1 && bytes[bytes.len() - 1] == 0 && bytes[bytes.len() - 2] < 0x80 {
                bytes.pop();
            }
            if bytes[bytes.len() - 1] >= 0x80 {
                bytes.push(0);
            }
            self.out.extend_from_slice(&[LONG1, bytes.len() as u8]);
            self.out.extend_from_slice(&bytes);
        }
    }
    fn int_tuple(&mut self, v: &[usize]) {
        if v.is_empty() {
            self.op(EMPTY_TUPLE);
            return;
        }
        self.op(MARK);
        for &x in v {
            self.int(x as u64);
        }
        self.op(TUPLE);
    }
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(EMPTY_TUPLE);
        self.op(REDUCE);
    }
}

/// The pickled state dict: storage key `i` for tensor `i`.
fn data_pkl(tensors: &[(String, Blob)]) -> Vec<u8> {
    let mut p = Pickler::new();
    p.empty_ordered_dict();
    p.op(MARK);
    for (i, (key, t)) in tensors.iter().enumerate() {
        p.str(key);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(MARK);
        // The storage, as a persistent id.
        p.op(MARK);
        p.str("storage");
        p.global(
            "torch",
            match t.data {
                BlobData::F32(_) => "FloatStorage",
                BlobData::I64(_) => "LongStorage",
            },
        );
        p.str(&i.to_string());
        p.str("cpu");
        p.int(t.numel() as u64);
        p.op(TUPLE);
        p.op(BINPERSID);
        // storage offset, size, stride (row-major contiguous), requires_grad, backward hooks
        p.int(0);
        p.int_tuple(&t.shape);
        let mut stride = vec![1usize; t.shape.len()];
        for d in (0..t.shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * t.shape[d + 1];
        }
        p.int_tuple(&stride);
        p.op(NEWFALSE);
        p.empty_ordered_dict();
        p.op(TUPLE);
        p.op(REDUCE);
    }
    p.op(SETITEMS);
    p.op(STOP);
    p.out
}

/// A `torch.save`-compatible `.pt` file of `tensors`, with archive folder `name`.
pub fn torch_file(name: &str, tensors: &[(String, Blob)]) -> Result<Vec<u8>, ExportError> {
    let err =
        |e: &dyn std::fmt::Display| ExportError::Unsupported(format!("writing model.pt: {e}"));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let total: usize = tensors.iter().map(|(_, t)| t.numel() * 8).sum();
    // Stored entries, aligned to 64 bytes as torch.save aligns them (lets torch mmap them).
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(total > u32::MAX as usize / 2)
        .with_alignment(64);
    let mut put = |path: String, bytes: &[u8]| -> Result<(), ExportError> {
        zip.start_file(path, opts).map_err(|e| err(&e))?;
        zip.write_all(bytes).map_err(|e| err(&e))
    };
    put(format!("{name}/data.pkl"), &data_pkl(tensors))?;
    put(format!("{name}/byteorder"), b"little")?;
    for (i, (_, t)) in tensors.iter().enumerate() {
        put(format!("{name}/data/{i}"), &t.bytes())?;
    }
    put(format!("{name}/version"), b"3\n")?;
    let cursor = zip.finish().map_err(|e| err(&e))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_use_the_shortest_opcode() {
        let mut p = Pickler::new();
        p.int(5);
        p.int(70000);
        p.int(1 << 40);
        assert_eq!(
            &p.out[2..],
            &[
                BININT1, 5, BININT, 0x70, 0x11, 0x01, 0x00, LONG1, 6, 0, 0, 0, 0, 0, 1
            ]
        );
    }
}
