//! Image sequences for `predict` on CNN-LSTM networks (a `sequenceInputLayer` whose `InputSize`
//! is `[H W C]`).
//!
//! Each sequence becomes a [`Sequence`] of `C*H*W` features per time step, the features of a
//! frame in `[C, H, W]` row-major order: the layout the network's sequence folding expects
//! (`model::ops::reshape`).

use super::{DataError, read_npy, split_mat_spec};
use crate::mat::{MatFile, Value, permute_col_major};
use crate::model::Sequence;

/// Reads image sequences with frames of `[h, w, c]`:
///
/// - `FILE.mat:VAR`: a cell array of `H x W x C x T` numeric arrays (lengths may differ), as
///   MATLAB's `predict`/`classify` take them, or a single `H x W x C x T` array;
/// - `FILE.npy`: `[N, T, C, H, W]` (N sequences of equal length) or `[T, C, H, W]` (one).
///
/// Errors name the file, the variable and the cell element (1-based, as MATLAB counts).
pub fn load_image_sequences(spec: &str, frame: [usize; 3]) -> Result<Vec<Sequence>, DataError> {
    let [h, w, c] = frame;
    let f = h * w * c;
    if let Some((file, var)) = split_mat_spec(spec) {
        let err = |msg: String| DataError::Array {
            path: format!("{file}:{var}"),
            msg,
        };
        let mat = MatFile::read_vars(file, &[var]).map_err(|e| err(e.to_string()))?;
        let v = mat.get(var).map_err(|e| err(e.to_string()))?;
        // One H x W x C x T array; `what` names it in errors.
        let sequence = |v: &Value, what: &str| -> Result<Sequence, DataError> {
            let a = match v {
                Value::Numeric(a) if a.imag.is_none() => a,
                Value::Numeric(_) => {
                    return Err(err(format!(
                        "{what} is complex, expected a real {h} x {w} x {c} x T array"
                    )));
                }
                other => {
                    return Err(err(format!(
                        "{what} is a {} {}, expected a real numeric {h} x {w} x {c} x T array",
                        other.class_name(),
                        crate::dump::size_str(&other.dims())
                    )));
                }
            };
            let d = |i: usize| a.dims.get(i).copied().unwrap_or(1);
            let extra = a.dims.iter().skip(4).any(|&x| x != 1);
            if d(0) != h || d(1) != w || d(2) != c || d(3) == 0 || extra {
                return Err(err(format!(
                    "{what} has size {}, expected {h} x {w} x {c} x T (the network takes \
                     {h}x{w}x{c} frames, T >= 1 time steps)",
                    crate::dump::size_str(&a.dims)
                )));
            }
            let t = d(3);
            let vals = a.real.to_f32_vec();
            // MATLAB [H, W, C, T] → row-major [C, H, W, T].
            let (data, _) = permute_col_major(&vals, &[h, w, c, t], &[2, 0, 1, 3]).map_err(err)?;
            Ok(Sequence {
                data,
                channels: f,
                steps: t,
            })
        };
        super::each_sequence(v, err, sequence)
    } else {
        let err = |msg: String| DataError::Array {
            path: spec.to_string(),
            msg,
        };
        let (shape, data) = read_npy(spec)?;
        let (n, t) = match shape.as_slice() {
            [n, t, cc, hh, ww] if [*hh, *ww, *cc] == frame && *t > 0 => (*n, *t),
            [t, cc, hh, ww] if [*hh, *ww, *cc] == frame && *t > 0 => (1, *t),
            _ => {
                return Err(err(format!(
                    "array of shape {shape:?} does not match the network input [N, T, {c}, {h}, {w}] \
                     or [T, {c}, {h}, {w}] ({h}x{w}x{c} frames, T >= 1)"
                )));
            }
        };
        if n == 0 {
            return Err(err("the array holds no sequences".into()));
        }
        // [T, F] per sequence → [F, T].
        Ok(data
            .chunks_exact(t * f)
            .map(|s| {
                let mut out = vec![0.0f32; f * t];
                for (ti, frame) in s.chunks_exact(f).enumerate() {
                    for (k, &x) in frame.iter().enumerate() {
                        out[k * t + ti] = x;
                    }
                }
                Sequence {
                    data: out,
                    channels: f,
                    steps: t,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_image_sequences_become_feature_major() {
        let dir = std::env::temp_dir().join(format!("matcnn-imgseq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.npy");
        // [N=1, T=2, C=1, H=2, W=3]: value = t*10 + h*3 + w.
        let mut v = Vec::new();
        for t in 0..2 {
            for hw in 0..6 {
                v.push((t * 10 + hw) as f32);
            }
        }
        std::fs::write(&p, crate::data::npy_bytes(&v, &[1, 2, 1, 2, 3])).unwrap();
        let s = load_image_sequences(p.to_str().unwrap(), [2, 3, 1]).unwrap();
        assert_eq!((s.len(), s[0].channels, s[0].steps), (1, 6, 2));
        assert_eq!(s[0].data[4 * 2 + 1], 14.0);
        let e = load_image_sequences(p.to_str().unwrap(), [3, 2, 1]).unwrap_err();
        assert!(e.to_string().contains("[N, T, 1, 3, 2]"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
