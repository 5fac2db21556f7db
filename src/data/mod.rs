//! Data in and out: images for `infer`, arrays for `predict` (`.npy`, `.mat`), atomic writes.

use crate::mat::{MatFile, Value, permute_col_major};
use crate::model::Sequence;
use image::{ImageBuffer, Luma, Rgb, imageops::FilterType};
use npyz::WriterBuilder;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

mod image_seq;
pub use image_seq::load_image_sequences;

pub mod resize;
pub use resize::{ResizeMethod, resize};

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {msg}")]
    Image { path: String, msg: String },
    #[error("{path}: {msg}")]
    Array { path: String, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to write {0}: it is one of the inputs")]
    OverwriteInput(String),
    #[error("{0} exists: pass --force to replace it")]
    Exists(String),
}

/// A batch of observations as a row-major `[N, C, H, W]` f32 buffer.
#[derive(Debug, Clone)]
pub struct Batch {
    pub data: Vec<f32>,
    pub shape: [usize; 4],
}

/// Image file extensions `infer` reads from a directory.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// Reads an image (PNG, JPEG, BMP, TIFF; 8 or 16 bit; gray, RGB or RGBA) and returns it as
/// `[C, H, W]` f32 values on MATLAB's uint8 scale (0..255, 16-bit images divided by 257),
/// converted to `channels` (RGB → gray with MATLAB's `rgb2gray` weights, gray → RGB by
/// replication, alpha dropped) and resized to `h x w` with bilinear interpolation.
pub fn load_image(path: &Path, h: usize, w: usize, channels: usize) -> Result<Vec<f32>, DataError> {
    let err = |msg: String| DataError::Image {
        path: path.display().to_string(),
        msg,
    };
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::Io {
            path: path.display().to_string(),
            source: e,
        })?
        .with_guessed_format()
        .map_err(|e| DataError::Io {
            path: path.display().to_string(),
            source: e,
        })?
        .decode()
        .map_err(|e| err(format!("not a readable image: {e}")))?;
    let (iw, ih) = (img.width(), img.height());
    if iw == 0 || ih == 0 {
        return Err(err("the image is empty".into()));
    }
    let has_color = img.color().has_color();
    let rgb = img.to_rgb32f(); // values in [0,1] for 8-bit, raw/65535 for 16-bit
    // On MATLAB's uint8 scale the largest value is 255 whatever the source depth (16-bit values
    // are divided by 257, and 65535 / 257 = 255).
    let max = 255.0;
    let (w32, h32) = (w as u32, h as u32);
    match channels {
        1 => {
            let gray: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_fn(iw, ih, |x, y| {
                let p = rgb.get_pixel(x, y).0;
                let v = if has_color {
                    0.298936 * p[0] + 0.587043 * p[1] + 0.114021 * p[2]
                } else {
                    p[0]
                };
                Luma([v * max])
            });
            let r = if (iw, ih) == (w32, h32) {
                gray
            } else {
                image::imageops::resize(&gray, w32, h32, FilterType::Triangle)
            };
            Ok(r.into_raw())
        }
        3 => {
            let scaled: ImageBuffer<Rgb<f32>, Vec<f32>> = ImageBuffer::from_fn(iw, ih, |x, y| {
                let p = rgb.get_pixel(x, y).0;
                Rgb([p[0] * max, p[1] * max, p[2] * max])
            });
            let r = if (iw, ih) == (w32, h32) {
                scaled
            } else {
                image::imageops::resize(&scaled, w32, h32, FilterType::Triangle)
            };
            // HWC → CHW
            let raw = r.into_raw();
            let mut out = vec![0.0; raw.len()];
            for (i, px) in raw.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * h * w + i] = px[c];
                }
            }
            Ok(out)
        }
        c => Err(err(format!(
            "the network takes {c}-channel images; only 1- and 3-channel networks read image files"
        ))),
    }
}

/// An image as read from its file: `[C, H, W]` f32 values on MATLAB's uint8 scale (0..255,
/// 16-bit images divided by 257), converted to the requested channels.
#[derive(Debug, Clone)]
pub struct Image {
    pub data: Vec<f32>,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    /// Whether the file holds 16 bits per sample (else 8).
    pub sixteen_bit: bool,
}

/// Reads an image at its own size as `channels` (1 or 3) planes: RGB → gray with MATLAB's
/// `rgb2gray` weights (rounded like `rgb2gray` on `uint8` for 8-bit files), gray → RGB by
/// replication, alpha dropped.
pub fn read_image(path: &Path, channels: usize) -> Result<Image, DataError> {
    let err = |msg: String| DataError::Image {
        path: path.display().to_string(),
        msg,
    };
    let io = |e: std::io::Error| DataError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let img = image::ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?
        .decode()
        .map_err(|e| err(format!("not a readable image: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(err("the image is empty".into()));
    }
    let sixteen_bit = img.color().bytes_per_pixel() / img.color().channel_count() >= 2;
    let has_color = img.color().has_color();
    let rgb = img.to_rgb32f();
    let px = rgb.as_raw();
    let mut data = vec![0.0f32; channels * h * w];
    match channels {
        1 => {
            for (i, p) in px.chunks_exact(3).enumerate() {
                data[i] = if has_color {
                    let v = 255.0 * (0.298936 * p[0] + 0.587043 * p[1] + 0.114021 * p[2]);
                    if sixteen_bit { v } else { v.round() }
                } else {
                    255.0 * p[0]
                };
            }
        }
        3 => {
            for (i, p) in px.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    data[c * h * w + i] = 255.0 * p[c];
                }
            }
        }
        c => {
            return Err(err(format!(
                "the network takes {c}-channel images; only 1- and 3-channel networks read image files"
            )));
        }
    }
    Ok(Image {
        data,
        channels,
        h,
        w,
        sixteen_bit,
    })
}

/// As [`load_image`], resizing with `method` ([`ResizeMethod::Matlab`]: MATLAB's `imresize`,
/// rounded to `uint8` for 8-bit files as MATLAB's `imresize` of a `uint8` image).
pub fn load_image_with(
    path: &Path,
    h: usize,
    w: usize,
    channels: usize,
    method: ResizeMethod,
) -> Result<Vec<f32>, DataError> {
    if method == ResizeMethod::Bilinear {
        return load_image(path, h, w, channels);
    }
    let img = read_image(path, channels)?;
    Ok(resize(
        &img.data,
        channels,
        [img.h, img.w],
        [h, w],
        method,
        !img.sixteen_bit,
    ))
}

/// Lists the images of a directory (sorted), or the given files.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| DataError::Io {
                path: p.display().to_string(),
                source: e,
            })?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads observations for `predict`.
///
/// - `FILE.mat:VAR`: a MATLAB array as MATLAB stores it: `H x W x C x N` for images (a single
///   `H x W x C` image is N = 1), `C x N` for features.
/// - `FILE.npy`: numpy arrays in PyTorch's layout, `[N, C, H, W]` for images (or `[N, H, W]`
///   for one channel), `[N, C]` for features; any numeric dtype.
///
/// `spatial` says whether the network takes images; `input` is its `[H, W, C]` (features `[1, 1, C]`).
pub fn load_array(spec: &str, input: [usize; 3], spatial: bool) -> Result<Batch, DataError> {
    let [h, w, c] = input;
    if let Some((file, var)) = split_mat_spec(spec) {
        let err = |msg: String| DataError::Array {
            path: format!("{file}:{var}"),
            msg,
        };
        let mat = MatFile::read_vars(file, &[var]).map_err(|e| err(e.to_string()))?;
        let v = mat.get(var).map_err(|e| err(e.to_string()))?;
        let a = match v {
            Value::Numeric(a) if a.imag.is_none() => a,
            Value::Logical { .. } => {
                return Err(err("a logical array is not network input".into()));
            }
            other => {
                return Err(err(format!(
                    "expected a real numeric array, found {}",
                    other.class_name()
                )));
            }
        };
        let dims = &a.dims;
        let vals = a.real.to_f32_vec();
        if spatial {
            let n = if dims.len() >= 4 { dims[3] } else { 1 };
            let (ah, aw, ac) = (
                dims[0],
                dims.get(1).copied().unwrap_or(1),
                dims.get(2).copied().unwrap_or(1),
            );
            // A height or width of 0: the network takes any size (see `Network::open_size`).
            let (h, w) = (if h == 0 { ah } else { h }, if w == 0 { aw } else { w });
            if (ah, aw, ac) != (h, w, c) || dims.len() > 4 {
                return Err(err(format!(
                    "array of size {} does not match the network input {h}x{w}x{c}(xN)",
                    crate::dump::size_str(dims)
                )));
            }
            let (data, _) = permute_col_major(&vals, dims, &[3, 2, 0, 1]).map_err(err)?;
            Ok(Batch {
                data,
                shape: [n, c, h, w],
            })
        } else {
            if dims.len() != 2 || dims[0] != c {
                return Err(err(format!(
                    "array of size {} does not match the network's {c} features (C x N)",
                    crate::dump::size_str(dims)
                )));
            }
            let (data, _) = permute_col_major(&vals, dims, &[1, 0]).map_err(err)?;
            Ok(Batch {
                data,
                shape: [dims[1], c, 1, 1],
            })
        }
    } else {
        let err = |msg: String| DataError::Array {
            path: spec.to_string(),
            msg,
        };
        let (shape, data) = read_npy(spec)?;
        let any = |want: usize, got: usize| if want == 0 { got } else { want };
        let (h, w) = match shape.as_slice() {
            [_, _, hh, ww] | [_, hh, ww] if spatial => (any(h, *hh), any(w, *ww)),
            _ => (h, w),
        };
        let shape4 = match (spatial, shape.as_slice()) {
            (true, [n, ch, hh, ww]) if [*hh, *ww, *ch] == [h, w, c] => [*n, c, h, w],
            (true, [n, hh, ww]) if c == 1 && [*hh, *ww] == [h, w] => [*n, 1, h, w],
            (false, [n, ch]) if *ch == c => [*n, c, 1, 1],
            _ => {
                let want = if spatial {
                    format!("[N, {c}, {h}, {w}]")
                } else {
                    format!("[N, {c}]")
                };
                return Err(err(format!(
                    "array of shape {shape:?} does not match the network input {want}"
                )));
            }
        };
        Ok(Batch {
            data,
            shape: shape4,
        })
    }
}

/// `one` applied to each element of a MATLAB cell array of sequences (named `element {i}`,
/// 1-based, in errors), or to a lone array (named `the array`).
pub(crate) fn each_sequence<T>(
    v: &Value,
    err: impl Fn(String) -> DataError,
    one: impl Fn(&Value, &str) -> Result<T, DataError>,
) -> Result<Vec<T>, DataError> {
    match v {
        Value::Cell(cell) => {
            if cell.data.is_empty() {
                return Err(err(
                    "the cell array is empty: no sequences to predict".into()
                ));
            }
            cell.data
                .iter()
                .enumerate()
                .map(|(i, e)| one(e, &format!("element {{{}}}", i + 1)))
                .collect()
        }
        other => Ok(vec![one(other, "the array")?]),
    }
}

/// Reads the input of a sequence network with `channels` features per time step, as row-major
/// `[C, T]` sequences:
///
/// - `FILE.mat:VAR`: a cell array of `C x T` numeric matrices (lengths may differ), as MATLAB's
///   `predict`/`classify` take them, or a single `C x T` matrix;
/// - `FILE.npy`: `[N, C, T]` (N sequences of equal length) or `[C, T]` (one sequence).
///
/// Errors name the file, the variable and the cell element (1-based, as MATLAB counts).
pub fn load_sequences(spec: &str, channels: usize) -> Result<Vec<Sequence>, DataError> {
    let c = channels;
    if let Some((file, var)) = split_mat_spec(spec) {
        let err = |msg: String| DataError::Array {
            path: format!("{file}:{var}"),
            msg,
        };
        let mat = MatFile::read_vars(file, &[var]).map_err(|e| err(e.to_string()))?;
        let v = mat.get(var).map_err(|e| err(e.to_string()))?;
        // One C x T matrix; `what` names it in errors.
        let matrix = |v: &Value, what: &str| -> Result<Sequence, DataError> {
            let a = match v {
                Value::Numeric(a) if a.imag.is_none() => a,
                Value::Numeric(_) => {
                    return Err(err(format!(
                        "{what} is complex, expected a real C x T matrix"
                    )));
                }
                other => {
                    return Err(err(format!(
                        "{what} is a {} {}, expected a real numeric {c} x T matrix",
                        other.class_name(),
                        crate::dump::size_str(&other.dims())
                    )));
                }
            };
            let dims = &a.dims;
            let extra = dims.iter().skip(2).any(|&d| d != 1);
            if dims.len() < 2 || extra || dims[0] != c || dims[1] == 0 {
                return Err(err(format!(
                    "{what} has size {}, expected {c} x T (the network takes {c} features per time step, T >= 1)",
                    crate::dump::size_str(dims)
                )));
            }
            let t = dims[1];
            let vals = a.real.to_f32_vec();
            let (data, _) = permute_col_major(&vals, &[c, t], &[0, 1]).map_err(err)?;
            Ok(Sequence {
                data,
                channels: c,
                steps: t,
            })
        };
        each_sequence(v, err, matrix)
    } else {
        let err = |msg: String| DataError::Array {
            path: spec.to_string(),
            msg,
        };
        let (shape, data) = read_npy(spec)?;
        let (n, t) = match shape.as_slice() {
            [n, ch, t] if *ch == c && *t > 0 => (*n, *t),
            [ch, t] if *ch == c && *t > 0 => (1, *t),
            _ => {
                return Err(err(format!(
                    "array of shape {shape:?} does not match the network input [N, {c}, T] or [{c}, T] (T >= 1)"
                )));
            }
        };
        if n == 0 {
            return Err(err("the array holds no sequences".into()));
        }
        Ok(data
            .chunks_exact(c * t)
            .map(|s| Sequence {
                data: s.to_vec(),
                channels: c,
                steps: t,
            })
            .collect())
    }
}

/// A `.npy` file as a row-major f32 buffer and its shape.
fn read_npy(spec: &str) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    let err = |msg: String| DataError::Array {
        path: spec.to_string(),
        msg,
    };
    let bytes = std::fs::read(spec).map_err(|e| DataError::Io {
        path: spec.into(),
        source: e,
    })?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| err(format!("not a .npy file: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let order = npy.order();
    let total = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("shape {shape:?} overflows")))?;
    if total > bytes.len() {
        return Err(err(format!(
            "header declares {total} elements, more than the file holds"
        )));
    }
    let data = read_npy_f32(npy).map_err(err)?;
    let data = if order == npyz::Order::Fortran {
        let axes: Vec<usize> = (0..shape.len()).collect();
        permute_col_major(&data, &shape, &axes).map_err(err)?.0
    } else {
        data
    };
    Ok((shape, data))
}

fn read_npy_f32(npy: npyz::NpyFile<&[u8]>) -> Result<Vec<f32>, String> {
    use npyz::{DType, TypeChar};
    let dt = npy.dtype();
    let (tc, size) = match &dt {
        DType::Plain(t) => (t.type_char(), t.size_field()),
        _ => return Err("structured .npy arrays are not supported".into()),
    };
    let e = |x: std::io::Error| x.to_string();
    Ok(match (tc, size) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(e)?,
        (TypeChar::Float, 8) => npy
            .into_vec::<f64>()
            .map_err(e)?
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        (TypeChar::Uint, 1) => npy
            .into_vec::<u8>()
            .map_err(e)?
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        (TypeChar::Uint, 2) => npy
            .into_vec::<u16>()
            .map_err(e)?
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        (TypeChar::Int, 4) => npy
            .into_vec::<i32>()
            .map_err(e)?
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        (TypeChar::Int, 8) => npy
            .into_vec::<i64>()
            .map_err(e)?
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        _ => return Err(format!("unsupported .npy dtype {dt:?}")),
    })
}

/// Splits `FILE.mat:VAR`.
pub fn split_mat_spec(spec: &str) -> Option<(&str, &str)> {
    let i = spec.rfind(".mat:")?;
    Some((&spec[..i + 4], &spec[i + 5..]))
}

/// Writes `bytes` to `path` atomically (a temporary file in the same folder, then a rename),
/// refusing to replace any of `inputs`, and an existing file unless `force`.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    inputs: &[PathBuf],
    force: bool,
) -> Result<(), DataError> {
    let io = |e: std::io::Error| DataError::Io {
        path: path.display().to_string(),
        source: e,
    };
    if let Ok(target) = path.canonicalize() {
        if inputs
            .iter()
            .filter_map(|i| i.canonicalize().ok())
            .any(|i| i == target)
        {
            return Err(DataError::OverwriteInput(path.display().to_string()));
        }
        if !force {
            return Err(DataError::Exists(path.display().to_string()));
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    let r = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Writes `files` into the folder `dir` atomically (a temporary folder beside it, then a
/// rename), refusing to replace any of `inputs`, and an existing folder unless `force`.
pub fn write_folder_atomic(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    inputs: &[PathBuf],
    force: bool,
) -> Result<(), DataError> {
    let io = |p: &Path, e: std::io::Error| DataError::Io {
        path: p.display().to_string(),
        source: e,
    };
    if let Ok(target) = dir.canonicalize() {
        if inputs
            .iter()
            .filter_map(|i| i.canonicalize().ok())
            .any(|i| i.starts_with(&target))
        {
            return Err(DataError::OverwriteInput(dir.display().to_string()));
        }
        if !force {
            return Err(DataError::Exists(dir.display().to_string()));
        }
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = parent.join(format!(".{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| {
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        for (f, bytes) in files {
            std::fs::write(tmp.join(f), bytes).map_err(|e| io(&tmp.join(f), e))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// A row-major f32 array as `.npy` bytes.
pub fn npy_bytes(data: &[f32], shape: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape64)
        .writer(&mut out)
        .begin_nd()
        .expect("in-memory npy header");
    w.extend(data.iter().copied()).expect("in-memory write");
    w.finish().expect("in-memory write");
    out
}

/// A row-major `[N, K]` f32 array as a v5 `.mat` file holding one single-precision variable
/// `name` of size N x K (uncompressed).
pub fn mat_bytes(name: &str, data: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let (col_major, _) = permute_col_major(data, &[cols, rows], &[0, 1]).expect("N x K buffer");
    mat_file_bytes(&[(name, &[rows, cols], &col_major)])
}

/// A v5 `.mat` file (uncompressed) holding single-precision variables `(name, MATLAB dims,
/// column-major data)`.
pub fn mat_file_bytes(vars: &[(&str, &[usize], &[f32])]) -> Vec<u8> {
    fn pad8(v: &mut Vec<u8>) {
        while !v.len().is_multiple_of(8) {
            v.push(0);
        }
    }
    fn tag(m: &mut Vec<u8>, ty: u32, n: usize) {
        m.extend_from_slice(&ty.to_le_bytes());
        m.extend_from_slice(&(n as u32).to_le_bytes());
    }
    let mut out = format!(
        "MATLAB 5.0 MAT-file, written by matcnn {}",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes();
    out.resize(116, b' ');
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, dims, data) in vars {
        let mut m = Vec::new();
        tag(&mut m, 6, 8);
        m.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]); // single
        tag(&mut m, 5, 4 * dims.len());
        for d in *dims {
            m.extend_from_slice(&(*d as i32).to_le_bytes());
        }
        pad8(&mut m);
        tag(&mut m, 1, name.len());
        m.extend_from_slice(name.as_bytes());
        pad8(&mut m);
        tag(&mut m, 7, data.len() * 4);
        for v in *data {
            m.extend_from_slice(&v.to_le_bytes());
        }
        pad8(&mut m);
        tag(&mut out, 14, m.len());
        out.extend(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mat_output_reads_back() {
        let data: Vec<f32> = (0..6).map(|x| x as f32 * 0.5).collect();
        let bytes = mat_bytes("Y", &data, 2, 3);
        let m = MatFile::from_bytes(&bytes).unwrap();
        let a = m.get("Y").unwrap().as_numeric().unwrap();
        assert_eq!(a.dims, [2, 3]);
        let (row, _) = a.to_row_major(&[0, 1]).unwrap();
        assert_eq!(row, data);
    }

    #[test]
    fn npy_output_reads_back() {
        let data = vec![1.0f32, 2.0, 3.0, 4.0];
        let bytes = npy_bytes(&data, &[2, 2]);
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), &[2, 2]);
        assert_eq!(npy.into_vec::<f32>().unwrap(), data);
    }

    #[test]
    fn mat_spec_split() {
        assert_eq!(split_mat_spec("a/b.mat:img_V"), Some(("a/b.mat", "img_V")));
        assert_eq!(split_mat_spec("x.npy"), None);
    }
}
