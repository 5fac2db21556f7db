//! The v5/v7 container: a 128-byte header, then tagged data elements (optionally zlib-compressed).
//!
//! Written by hand rather than on `matfile`/`matrw` (see DESIGN.md): the object decoder needs the
//! opaque (class 17) elements and the subsystem stream as raw values, which neither crate exposes.

use super::error::{MatError, Result};
use super::value::*;
use rayon::prelude::*;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

// Data element types.
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

// Array classes.
const MX_CELL: u8 = 1;
const MX_STRUCT: u8 = 2;
const MX_OBJECT: u8 = 3;
const MX_CHAR: u8 = 4;
const MX_SPARSE: u8 = 5;
const MX_FUNCTION: u8 = 16;
const MX_OPAQUE: u8 = 17;

/// How deep cells, structs and objects may nest before the reader refuses the file.
pub const MAX_DEPTH: usize = 200;
/// zlib cannot expand data by more than about 1032:1; anything claiming more is refused.
pub const MAX_INFLATE_RATIO: u64 = 1100;
/// Most elements of a struct array without fields: they hold no data, so nothing in the file
/// bounds their number.
pub const MAX_FIELDLESS_ELEMENTS: usize = 1 << 20;

/// A raw top-level element: a variable, or the subsystem blob.
pub(crate) struct TopElement {
    pub offset: u64,
    pub variable: Variable,
}

/// A read position inside one buffer. `base` is the buffer's offset in the file; `origin`
/// describes the buffer (the file itself, or an element inflated from file byte N).
#[derive(Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    pub big_endian: bool,
    base: u64,
    origin: &'a str,
    /// The decoded parts of the buffer may be handed back to the kernel ([`release`]): it is a
    /// read-only file mapping, or an inflated element owned by the decoder.
    pub releasable: bool,
}

/// Hands the whole pages inside `data` back to the kernel once they have been decoded: they
/// leave the resident set, so a file's bytes (mapped, or inflated) and the arrays decoded from
/// them are not resident together.
///
/// Only for buffers the decoder reads strictly forward and never again behind its position
/// ([`Cursor::releasable`]): a read-only file mapping (a released page faults back in from the
/// page cache, unchanged) or an element inflated by [`inflate`] for this decoding alone (a
/// released page reads back as zeros; nothing reads it).
fn release(data: &[u8]) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let start = (data.as_ptr() as usize).next_multiple_of(PAGE);
        let end = (data.as_ptr() as usize + data.len()) / PAGE * PAGE;
        if end > start {
            // SAFETY: [start, end) lies inside `data`, already decoded and never read again (see
            // above); MADV_DONTNEED frees no memory the program owns, it only drops the pages.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = data;
}

/// A reader over a compressed element that releases the input behind it in 4 MiB steps.
struct ReleasingReader<'a> {
    data: &'a [u8],
    pos: usize,
    released: usize,
    releasable: bool,
}

impl Read for ReleasingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const STEP: usize = 4 << 20;
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        // flate2 reads ahead into its own buffer: everything before `pos` has been consumed.
        if self.releasable && self.pos - self.released >= STEP {
            release(&self.data[self.released..self.pos]);
            self.released = self.pos / 4096 * 4096;
        }
        Ok(n)
    }
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], big_endian: bool, base: u64, origin: &'a str) -> Self {
        Cursor {
            buf,
            pos: 0,
            big_endian,
            base,
            origin,
            releasable: false,
        }
    }
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn truncated(&self, needed: usize) -> MatError {
        MatError::Truncated {
            offset: self.offset(),
            needed: needed as u64,
            available: (self.buf.len().saturating_sub(self.pos)) as u64,
            context: self.origin.to_string(),
        }
    }
    fn malformed(&self, msg: impl Into<String>) -> MatError {
        MatError::Malformed {
            offset: self.offset(),
            msg: msg.into(),
            context: self.origin.to_string(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.truncated(n))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| self.truncated(4))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn align8(&mut self) {
        let pad = (8 - self.pos % 8) % 8;
        self.pos = (self.pos + pad).min(self.buf.len());
    }

    /// Reads one element tag and its data. Returns (type, data, file offset of the data).
    fn element(&mut self) -> Result<(u32, &'a [u8], u64)> {
        let at = self.offset();
        let first = self.u32()?;
        let (ty, n, small) = if first >> 16 != 0 {
            (first & 0xffff, (first >> 16) as usize, true)
        } else {
            (first, self.u32()? as usize, false)
        };
        if small {
            if n > 4 {
                return Err(
                    self.malformed(format!("small data element claims {n} bytes (at most 4)"))
                );
            }
            let d = self.take(4)?;
            return Ok((ty, &d[..n], at + 4));
        }
        if n > self.buf.len().saturating_sub(self.pos) {
            return Err(MatError::TooLarge {
                what: format!("data element (type {ty}) at byte {at}"),
                requested: n as u64,
                limit: (self.buf.len().saturating_sub(self.pos)) as u64,
                context: self.origin.to_string(),
            });
        }
        let d = self.take(n)?;
        if ty != MI_COMPRESSED {
            self.align8();
        }
        Ok((ty, d, at + 8))
    }
}

/// Element size in bytes of a numeric data type, None for non-numeric types.
fn mi_size(ty: u32) -> Option<usize> {
    Some(match ty {
        MI_INT8 | MI_UINT8 | MI_UTF8 => 1,
        MI_INT16 | MI_UINT16 | MI_UTF16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE | MI_UTF32 => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        _ => return None,
    })
}

macro_rules! decode_as {
    ($data:expr, $big:expr, $src:ty, $n:expr) => {{
        let sz = std::mem::size_of::<$src>();
        $data.chunks_exact(sz).take($n).map(|c| {
            let mut b = [0u8; std::mem::size_of::<$src>()];
            b.copy_from_slice(c);
            if $big {
                <$src>::from_be_bytes(b)
            } else {
                <$src>::from_le_bytes(b)
            }
        })
    }};
}

/// Decodes `n` numbers of element type `ty` into storage of MATLAB class `class`.
/// `releasable`: `data` may be released ([`release`]) as it is decoded.
fn numeric(
    ty: u32,
    data: &[u8],
    big: bool,
    class: u8,
    n: usize,
    releasable: bool,
) -> Option<NumData> {
    macro_rules! conv {
        ($dst:ty) => {{
            let v: Vec<$dst> = match ty {
                MI_INT8 => decode_as!(data, big, i8, n).map(|x| x as $dst).collect(),
                MI_UINT8 | MI_UTF8 => decode_as!(data, big, u8, n).map(|x| x as $dst).collect(),
                MI_INT16 => decode_as!(data, big, i16, n).map(|x| x as $dst).collect(),
                MI_UINT16 | MI_UTF16 => decode_as!(data, big, u16, n).map(|x| x as $dst).collect(),
                MI_INT32 => decode_as!(data, big, i32, n).map(|x| x as $dst).collect(),
                MI_UINT32 | MI_UTF32 => decode_as!(data, big, u32, n).map(|x| x as $dst).collect(),
                MI_SINGLE => decode_as!(data, big, f32, n).map(|x| x as $dst).collect(),
                MI_DOUBLE => decode_as!(data, big, f64, n).map(|x| x as $dst).collect(),
                MI_INT64 => decode_as!(data, big, i64, n).map(|x| x as $dst).collect(),
                MI_UINT64 => decode_as!(data, big, u64, n).map(|x| x as $dst).collect(),
                _ => return None,
            };
            v
        }};
    }
    if ty == MI_SINGLE && class == 7 {
        // The common case (weights): a plain loop over aligned-size chunks, which compiles to
        // vector loads (or byte swaps).
        // Decoded in steps of 4 MiB, each step's source pages released once decoded, so that
        // a large array and its stored bytes are never resident together.
        const STEP: usize = 1 << 20;
        let mut v = vec![0f32; n];
        v.par_chunks_mut(STEP)
            .zip(data.par_chunks(4 * STEP))
            .for_each(|(dst, src)| {
                for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    let b = [c[0], c[1], c[2], c[3]];
                    *d = if big {
                        f32::from_be_bytes(b)
                    } else {
                        f32::from_le_bytes(b)
                    };
                }
                if releasable {
                    release(src);
                }
            });
        return Some(NumData::F32(v));
    }
    Some(match class {
        6 => NumData::F64(conv!(f64)),
        7 => NumData::F32(conv!(f32)),
        8 => NumData::I8(conv!(i8)),
        9 => NumData::U8(conv!(u8)),
        10 => NumData::I16(conv!(i16)),
        11 => NumData::U16(conv!(u16)),
        12 => NumData::I32(conv!(i32)),
        13 => NumData::U32(conv!(u32)),
        14 => NumData::I64(conv!(i64)),
        15 => NumData::U64(conv!(u64)),
        _ => return None,
    })
}

/// Reads the text of an miINT8/miUTF8 element (names, class names).
fn text(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Inflates one miCOMPRESSED element, drawing its output size from `budget` (shared by the
/// elements inflated in parallel): once the budget is spent, inflation stops with
/// [`MatError::TooLarge`]. The output is read in 1 MiB steps, so no thread overshoots the
/// budget by more than that.
///
/// `releasable`: `data` is part of a read-only file mapping, released as it is consumed.
pub(crate) fn inflate(
    data: &[u8],
    budget: &AtomicU64,
    at: u64,
    context: &str,
    releasable: bool,
) -> Result<Vec<u8>> {
    const STEP: u64 = 1 << 20;
    let limit = budget.load(Ordering::Relaxed);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit as usize));
    let mut dec = flate2::read::ZlibDecoder::new(ReleasingReader {
        data,
        pos: 0,
        released: 0,
        releasable,
    });
    loop {
        let n = (&mut dec)
            .take(STEP)
            .read_to_end(&mut out)
            .map_err(|e| MatError::Inflate {
                offset: at,
                msg: e.to_string(),
                context: context.to_string(),
            })?;
        if n == 0 {
            return Ok(out);
        }
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_sub(n as u64)
            })
            .is_err()
        {
            return Err(MatError::TooLarge {
                what: format!("compressed element at byte {at}"),
                requested: out.len() as u64,
                limit,
                context: context.to_string(),
            });
        }
    }
}

/// Which top-level variables to decode: called with the variable's name and the file offset of
/// its element.
pub(crate) type KeepFn<'a> = dyn Fn(&str, u64) -> bool + Sync + 'a;

/// Parses the data elements of a v5 stream (after its header) into top-level elements.
/// The tags are read first; then the elements (each a variable) are inflated and decoded in
/// parallel, all drawing on `budget`, which bounds the total inflated size.
pub(crate) fn read_elements(
    cur: &mut Cursor,
    budget: &mut u64,
    keep: Option<&KeepFn<'_>>,
) -> Result<Vec<TopElement>> {
    let mut raw = Vec::new();
    while !cur.at_end() {
        // Trailing zero padding shorter than a tag is tolerated; anything else is a cut tag.
        if cur.buf.len() - cur.pos < 8 {
            if cur.buf[cur.pos..].iter().all(|&b| b == 0) {
                break;
            }
            return Err(cur.truncated(8));
        }
        let (ty, data, at) = cur.element()?;
        if ty != MI_COMPRESSED && ty != MI_MATRIX {
            return Err(cur.malformed(format!(
                "top-level element of type {ty}, expected miMATRIX or miCOMPRESSED"
            )));
        }
        raw.push((ty, data, at));
    }
    let shared = AtomicU64::new(*budget);
    let parent: &Cursor = cur;
    let decode = |&(ty, data, at): &(u32, &[u8], u64)| -> Result<Option<TopElement>> {
        // Lazy reading: a variable the caller does not want is skipped after reading its name
        // (for a compressed one, from the first few KiB inflated).
        if let Some(keep) = keep
            && let Some(name) = variable_name(ty, data, parent.big_endian)
            && !keep(&name, at - 8)
        {
            return Ok(None);
        }
        if ty == MI_MATRIX {
            return Ok(Some(TopElement {
                offset: at - 8,
                variable: matrix(parent, data, at, 0)?,
            }));
        }
        let at = at - 8;
        let ctx = format!("element at file byte {at}");
        let inflated = inflate(data, &shared, at, &ctx, parent.releasable)?;
        let mut inner = Cursor::new(&inflated, parent.big_endian, 0, &ctx);
        // The inflated bytes belong to this decoding alone, which reads them forward once.
        inner.releasable = true;
        let (ity, idata, _) = inner.element()?;
        if ity != MI_MATRIX {
            return Err(inner.malformed(format!(
                "compressed element holds type {ity}, expected miMATRIX (14)"
            )));
        }
        Ok(Some(TopElement {
            offset: at,
            variable: matrix(&inner, idata, 8, 0)?,
        }))
    };
    let decoded: Vec<Result<Option<TopElement>>> = if raw.len() > 1 {
        raw.par_iter().map(decode).collect()
    } else {
        raw.iter().map(decode).collect()
    };
    *budget = shared.load(Ordering::Relaxed);
    // The first error in file order, as a sequential reader would report.
    let all: Vec<Option<TopElement>> = decoded.into_iter().collect::<Result<_>>()?;
    Ok(all.into_iter().flatten().collect())
}

/// The name of the variable in a top-level element, read without decoding its data; `None`
/// when the header cannot be read that way (the element is then decoded in full).
fn variable_name(ty: u32, data: &[u8], big_endian: bool) -> Option<String> {
    let prefix;
    let payload: &[u8] = if ty == MI_COMPRESSED {
        let mut p = Vec::with_capacity(4096);
        flate2::read::ZlibDecoder::new(data)
            .take(4096)
            .read_to_end(&mut p)
            .ok()?;
        prefix = p;
        let tag = prefix.get(..4)?;
        let t = if big_endian {
            u32::from_be_bytes(tag.try_into().ok()?)
        } else {
            u32::from_le_bytes(tag.try_into().ok()?)
        };
        if t != MI_MATRIX {
            return None;
        }
        prefix.get(8..)?
    } else {
        data
    };
    let mut c = Cursor::new(payload, big_endian, 0, "");
    let (fty, flags, _) = c.element().ok()?;
    if fty != MI_UINT32 || flags.len() < 8 {
        return None;
    }
    let w0 = if big_endian {
        u32::from_be_bytes([flags[0], flags[1], flags[2], flags[3]])
    } else {
        u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]])
    };
    if (w0 & 0xff) as u8 != MX_OPAQUE {
        c.element().ok()?; // dimensions
    }
    let (nty, name, _) = c.element().ok()?;
    (nty == MI_INT8 || nty == MI_UTF8).then(|| text(name))
}

/// Decodes an miMATRIX payload (`data`, found at offset `start` of `parent`'s buffer) into a
/// named value.
fn matrix(parent: &Cursor, data: &[u8], start: u64, depth: usize) -> Result<Variable> {
    let mut c = Cursor {
        buf: data,
        pos: 0,
        big_endian: parent.big_endian,
        base: start,
        origin: parent.origin,
        releasable: parent.releasable,
    };
    if data.is_empty() {
        // An empty miMATRIX is MATLAB's empty double [].
        return Ok(Variable {
            name: String::new(),
            global: false,
            value: Value::Numeric(NumericArray::new(vec![0, 0], NumData::F64(vec![]))),
        });
    }
    if depth > MAX_DEPTH {
        return Err(MatError::TooDeep {
            offset: c.offset(),
            limit: MAX_DEPTH,
            context: parent.origin.to_string(),
        });
    }
    let (fty, flags, _) = c.element()?;
    if fty != MI_UINT32 || flags.len() < 8 {
        return Err(c.malformed("array flags element missing"));
    }
    let w0 = if c.big_endian {
        u32::from_be_bytes([flags[0], flags[1], flags[2], flags[3]])
    } else {
        u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]])
    };
    let class = (w0 & 0xff) as u8;
    let complex = w0 & 0x0800 != 0;
    let global = w0 & 0x0400 != 0;
    let logical = w0 & 0x0200 != 0;

    if class == MX_OPAQUE {
        let (_, name, _) = c.element()?;
        let (_, ts, _) = c.element()?;
        let (_, cls, _) = c.element()?;
        let name = text(name);
        let (dty, ddata, dat) = c.element()?;
        if dty != MI_MATRIX {
            return Err(c.malformed(format!(
                "opaque object '{name}' holds element type {dty}, expected miMATRIX"
            )));
        }
        let inner = matrix(&c, ddata, dat, depth + 1).map_err(|e| e.in_context(&name))?;
        let value = Value::Opaque(Opaque {
            type_system: text(ts),
            class: text(cls),
            data: Box::new(inner.value),
        });
        return Ok(Variable {
            name,
            global,
            value,
        });
    }

    let (dty, ddims, _) = c.element()?;
    if dty != MI_INT32 || ddims.len() % 4 != 0 {
        return Err(c.malformed("dimensions element missing"));
    }
    let dims: Vec<usize> = decode_as!(ddims, c.big_endian, i32, ddims.len() / 4)
        .map(|d| if d < 0 { usize::MAX } else { d as usize })
        .collect();
    if dims.contains(&usize::MAX) {
        return Err(c.malformed(format!("negative dimension in {dims:?}")));
    }
    let (_, name, _) = c.element()?;
    let name = text(name);
    let value = body(&mut c, class, complex, logical, dims, depth).map_err(|e| {
        if name.is_empty() {
            e
        } else {
            e.in_context(&name)
        }
    })?;
    Ok(Variable {
        name,
        global,
        value,
    })
}

/// Number of elements of `dims`, refusing products that overflow or exceed what `avail` bytes
/// could hold when each element takes at least `min_bytes`.
fn numel(c: &Cursor, dims: &[usize], min_bytes: usize) -> Result<usize> {
    let mut n: usize = 1;
    for &d in dims {
        n = n
            .checked_mul(d)
            .ok_or_else(|| c.malformed(format!("dimensions {dims:?} overflow")))?;
    }
    let avail = c.buf.len().saturating_sub(c.pos);
    if min_bytes > 0 && n.saturating_mul(min_bytes) > avail.max(8) * 8 {
        return Err(MatError::TooLarge {
            what: format!("array of dims {dims:?}"),
            requested: (n as u64).saturating_mul(min_bytes as u64),
            limit: avail as u64,
            context: c.origin.to_string(),
        });
    }
    Ok(n)
}

fn body(
    c: &mut Cursor,
    class: u8,
    complex: bool,
    logical: bool,
    dims: Vec<usize>,
    depth: usize,
) -> Result<Value> {
    match class {
        6..=15 => {
            let n = numel(c, &dims, 0)?;
            let real = numeric_part(c, class, n, &dims)?;
            let imag = if complex {
                Some(numeric_part(c, class, n, &dims)?)
            } else {
                None
            };
            if logical {
                let data: Vec<bool> = real.to_f64_vec().iter().map(|x| *x != 0.0).collect();
                return Ok(Value::Logical { dims, data });
            }
            Ok(Value::Numeric(NumericArray { dims, real, imag }))
        }
        MX_CHAR => {
            let n = numel(c, &dims, 0)?;
            let (ty, data, _) = c.element()?;
            let units: Vec<u16> = match ty {
                MI_UTF8 => String::from_utf8_lossy(data).encode_utf16().collect(),
                MI_UINT8 | MI_INT8 => data.iter().map(|&b| b as u16).collect(),
                MI_UTF16 | MI_UINT16 | MI_INT16 => {
                    decode_as!(data, c.big_endian, u16, data.len() / 2).collect()
                }
                MI_UTF32 | MI_UINT32 | MI_INT32 => {
                    let s: String = decode_as!(data, c.big_endian, u32, data.len() / 4)
                        .map(|u| char::from_u32(u).unwrap_or('\u{fffd}'))
                        .collect();
                    s.encode_utf16().collect()
                }
                other => return Err(c.malformed(format!("char data of element type {other}"))),
            };
            if units.len() != n {
                return Err(c.malformed(format!(
                    "char array of dims {dims:?} holds {} characters",
                    units.len()
                )));
            }
            Ok(Value::Char(CharArray { dims, data: units }))
        }
        MX_CELL => {
            let n = numel(c, &dims, 8)?;
            let mut data = Vec::with_capacity(n);
            for i in 0..n {
                data.push(
                    sub_matrix(c, depth).map_err(|e| e.in_context(&format!("{{{}}}", i + 1)))?,
                );
            }
            Ok(Value::Cell(CellArray { dims, data }))
        }
        MX_STRUCT | MX_OBJECT => {
            let class_name = if class == MX_OBJECT {
                let (_, cn, _) = c.element()?;
                Some(text(cn))
            } else {
                None
            };
            let s = struct_body(c, dims, depth)?;
            match class_name {
                None => Ok(Value::Struct(s)),
                Some(cn) => {
                    // Old-style (pre-classdef) objects: a struct with a class name.
                    let elements = s
                        .elements
                        .into_iter()
                        .map(|vals| {
                            std::sync::Arc::new(Object {
                                class: cn.clone(),
                                id: 0,
                                props: s.fields.iter().cloned().zip(vals).collect(),
                            })
                        })
                        .collect();
                    Ok(Value::Object(ObjectArray {
                        class: cn,
                        dims: s.dims,
                        elements,
                    }))
                }
            }
        }
        MX_SPARSE => {
            let (_, ir, _) = c.element()?;
            let (_, jc, _) = c.element()?;
            let ir: Vec<usize> = decode_as!(ir, c.big_endian, i32, ir.len() / 4)
                .map(|x| x.max(0) as usize)
                .collect();
            let jc: Vec<usize> = decode_as!(jc, c.big_endian, i32, jc.len() / 4)
                .map(|x| x.max(0) as usize)
                .collect();
            let nnz = jc.last().copied().unwrap_or(0);
            if nnz > ir.len() {
                return Err(c.malformed(format!(
                    "sparse array claims {nnz} values but has {} row indices",
                    ir.len()
                )));
            }
            let part = |c: &mut Cursor| -> Result<Vec<f64>> {
                let (ty, d, _) = c.element()?;
                let n = mi_size(ty).map(|s| d.len() / s).unwrap_or(0);
                if n < nnz {
                    return Err(c.malformed(format!("sparse array has {n} values, needs {nnz}")));
                }
                numeric(ty, d, c.big_endian, 6, nnz, false)
                    .map(|v| v.to_f64_vec())
                    .ok_or_else(|| c.malformed(format!("sparse values of element type {ty}")))
            };
            let real = part(c)?;
            let imag = if complex { Some(part(c)?) } else { None };
            Ok(Value::Sparse(SparseArray {
                dims,
                logical,
                ir,
                jc,
                real,
                imag,
            }))
        }
        MX_FUNCTION => {
            // An empty function handle (dims [0 0]) carries no workspace element.
            if c.at_end() {
                return Ok(Value::FunctionHandle(Box::new(Value::Numeric(
                    NumericArray::new(dims, NumData::F64(vec![])),
                ))));
            }
            let v = sub_matrix(c, depth)?;
            Ok(Value::FunctionHandle(Box::new(v)))
        }
        other => Err(c.malformed(format!("unknown array class {other}"))),
    }
}

fn numeric_part(c: &mut Cursor, class: u8, n: usize, dims: &[usize]) -> Result<NumData> {
    let (ty, data, _) = c.element()?;
    let sz =
        mi_size(ty).ok_or_else(|| c.malformed(format!("numeric data of element type {ty}")))?;
    if data.len() / sz != n {
        return Err(c.malformed(format!(
            "array of dims {dims:?} needs {n} values, its data element (type {ty}) holds {}",
            data.len() / sz
        )));
    }
    let v = numeric(ty, data, c.big_endian, class, n, c.releasable)
        .ok_or_else(|| c.malformed(format!("numeric class {class}")))?;
    if c.releasable {
        release(data);
    }
    Ok(v)
}

fn sub_matrix(c: &mut Cursor, depth: usize) -> Result<Value> {
    let (ty, data, at) = c.element()?;
    if ty != MI_MATRIX {
        return Err(c.malformed(format!(
            "expected a nested miMATRIX, found element type {ty}"
        )));
    }
    Ok(matrix(c, data, at, depth + 1)?.value)
}

fn struct_body(c: &mut Cursor, dims: Vec<usize>, depth: usize) -> Result<StructArray> {
    let (_, fl, _) = c.element()?;
    if fl.len() < 4 {
        return Err(c.malformed("struct field-name length missing"));
    }
    let flen = decode_as!(fl, c.big_endian, i32, 1).next().unwrap_or(0);
    if flen <= 0 {
        return Err(c.malformed(format!("struct field-name length {flen}")));
    }
    let flen = flen as usize;
    let (_, names, _) = c.element()?;
    let fields: Vec<String> = names.chunks_exact(flen).map(text).collect();
    let nfields = fields.len();
    let n = numel(c, &dims, if nfields == 0 { 0 } else { 8 * nfields })?;
    if nfields == 0 && n > MAX_FIELDLESS_ELEMENTS {
        return Err(MatError::TooLarge {
            what: format!("struct array of dims {dims:?} without fields"),
            requested: n as u64,
            limit: MAX_FIELDLESS_ELEMENTS as u64,
            context: c.origin.to_string(),
        });
    }
    let mut elements = Vec::with_capacity(n);
    for i in 0..n {
        let mut vals = Vec::with_capacity(nfields);
        for f in &fields {
            vals.push(
                sub_matrix(c, depth).map_err(|e| e.in_context(&format!("({}).{}", i + 1, f)))?,
            );
        }
        elements.push(vals);
    }
    Ok(StructArray {
        dims,
        fields,
        elements,
    })
}

/// Parses the subsystem blob (a uint8 array holding a headerless MAT stream) and returns the
/// FileWrapper__ cells, or None when it holds no MCOS data.
pub(crate) fn subsystem_cells(blob: &[u8], budget: &mut u64) -> Result<Option<Vec<Value>>> {
    let origin = "subsystem (__function_workspace__)";
    if blob.len() < 8 {
        return Err(MatError::Truncated {
            offset: 0,
            needed: 8,
            available: blob.len() as u64,
            context: origin.into(),
        });
    }
    let big = match &blob[2..4] {
        b"IM" => false,
        b"MI" => true,
        _ => {
            return Err(MatError::Malformed {
                offset: 2,
                msg: "subsystem has no endian marker".into(),
                context: origin.into(),
            });
        }
    };
    let mut cur = Cursor::new(&blob[8..], big, 8, origin);
    let elems = read_elements(&mut cur, budget, None)?;
    let Some(first) = elems.into_iter().next() else {
        return Ok(None);
    };
    let Value::Struct(s) = first.variable.value else {
        return Err(MatError::Mcos(
            "subsystem does not start with a struct".into(),
        ));
    };
    match s.field("MCOS") {
        Some(Value::Opaque(o)) => match o.data.as_ref() {
            Value::Cell(cells) => Ok(Some(cells.data.clone())),
            _ => Err(MatError::Mcos(
                "FileWrapper__ data is not a cell array".into(),
            )),
        },
        _ => Ok(None),
    }
}
