//! The input normalization, as the exporters write it.

use super::{ExportError, layer_err, values};
use crate::net::layer::{self, Layer, Normalization};

/// The input normalization as `(x - shift) * scale`, computed exactly as the Burn module does.
pub(crate) struct NormConsts {
    /// Broadcast shape: `[1, C, H, W]`, `[1, C, 1, 1]`, `[1, 1, 1, 1]` for images, `[1, C]` or
    /// `[1, 1]` for features.
    pub shape: Vec<usize>,
    pub shift: Vec<f32>,
    pub scale: Vec<f32>,
    /// 'zerocenter': the scale is all ones.
    pub zero_center: bool,
    /// MATLAB's name of the normalization.
    pub kind: &'static str,
}

/// `[C, H, W]` / `[C, 1, 1]` / `[1, 1, 1]` statistics → broadcast shape for an input of `rank`.
fn norm_shape(stat: &layer::Tensor, rank: usize) -> Vec<usize> {
    let s = &stat.shape;
    if rank == 2 {
        return vec![1, stat.numel()];
    }
    if rank == 3 {
        return vec![1, stat.numel(), 1];
    }
    match s.len() {
        3 => vec![1, s[0], s[1], s[2]],
        1 => vec![1, s[0], 1, 1],
        _ => vec![1, 1, 1, stat.numel()],
    }
}

pub(super) fn norm_consts(
    l: &Layer,
    n: &Normalization,
    rank: usize,
) -> Result<Option<NormConsts>, ExportError> {
    let stat = |t: &layer::Tensor, what: &str| values(l, Some(t), what).map(|t| t.data.clone());
    let same_shape = |a: &layer::Tensor, b: &layer::Tensor| {
        if a.shape != b.shape {
            Err(layer_err(
                l,
                format!(
                    "normalization statistics of shapes {:?} and {:?} differ",
                    a.shape, b.shape
                ),
            ))
        } else {
            Ok(())
        }
    };
    let (shape_of, shift, scale, zero_center, kind) = match n {
        Normalization::None => return Ok(None),
        Normalization::ZeroCenter { mean } => {
            let m = stat(mean, "Mean")?;
            let ones = vec![1.0; m.len()];
            (mean, m, ones, true, "zerocenter")
        }
        Normalization::ZScore { mean, std } => {
            same_shape(mean, std)?;
            let m = stat(mean, "Mean")?;
            let s: Vec<f32> = stat(std, "StandardDeviation")?
                .iter()
                .map(|s| 1.0 / s)
                .collect();
            (mean, m, s, false, "zscore")
        }
        Normalization::RescaleZeroOne { min, max } => {
            same_shape(min, max)?;
            let lo = stat(min, "Min")?;
            let hi = stat(max, "Max")?;
            let scale = hi.iter().zip(&lo).map(|(h, l)| 1.0 / (h - l)).collect();
            (min, lo, scale, false, "rescale-zero-one")
        }
        Normalization::RescaleSymmetric { min, max } => {
            // 2 (x - min)/(max - min) - 1 = (x - (max + min)/2) * 2/(max - min)
            same_shape(min, max)?;
            let lo = stat(min, "Min")?;
            let hi = stat(max, "Max")?;
            let shift = hi.iter().zip(&lo).map(|(h, l)| (h + l) / 2.0).collect();
            let scale = hi
                .iter()
                .zip(&lo)
                .map(|(h, l)| (1.0 / (h - l)) * 2.0)
                .collect();
            (min, shift, scale, false, "rescale-symmetric")
        }
    };
    Ok(Some(NormConsts {
        shape: norm_shape(shape_of, rank),
        shift,
        scale,
        zero_center,
        kind,
    }))
}

/// For an image-sequence input (`[N, C*H*W, T]`, each frame's features in `[C, H, W]` order):
/// per-channel constants (`C` values) repeated over each channel's `H*W` features, so that they
/// broadcast as `[1, C*H*W, 1]`; per-element and scalar constants are already in that order.
pub(crate) fn per_frame_feature(mut n: NormConsts, frame: &layer::Shape) -> NormConsts {
    let hw = frame.h * frame.w;
    if hw > 1 && frame.c > 1 && n.shift.len() == frame.c {
        let spread = |v: &[f32]| -> Vec<f32> {
            v.iter().flat_map(|&x| std::iter::repeat_n(x, hw)).collect()
        };
        n.shift = spread(&n.shift);
        n.scale = spread(&n.scale);
        n.shape = vec![1, frame.c * hw, 1];
    }
    n
}
