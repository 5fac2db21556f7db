//! Input layers (their normalization) and output layers.

use super::{IDENTITY, Op, func, values};
use crate::model::ModelError;
use crate::net::layer::{self, Normalization, Shape};
use burn::module::{Module, Param};
use burn::prelude::*;

/// Input normalization: `(x - shift) * scale` with broadcastable `[1, C, H, W]` constants, saved
/// in records as frozen parameters.
#[derive(Module, Debug)]
pub struct InputNorm {
    pub shift: Param<Tensor<4>>,
    pub scale: Param<Tensor<4>>,
}

impl InputNorm {
    /// `(x - shift) * scale` ([`crate::cpu::normalize`]).
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::cpu::normalize(x, self.shift.val(), self.scale.val())
    }
}

/// An image, feature or sequence input layer: its normalization, or an identity.
pub(super) fn input(normalization: &Normalization, device: &Device) -> Result<Op, ModelError> {
    let (shift, scale) = match normalization {
        Normalization::None => return Ok(func(IDENTITY, 0.0)),
        Normalization::ZeroCenter { mean } => {
            let m = constant4(mean, device);
            let one = m.ones_like();
            (m, one)
        }
        Normalization::ZScore { mean, std } => {
            (constant4(mean, device), constant4(std, device).recip())
        }
        Normalization::RescaleZeroOne { min, max } => {
            let lo = constant4(min, device);
            let hi = constant4(max, device);
            (lo.clone(), (hi - lo).recip())
        }
        Normalization::RescaleSymmetric { min, max } => {
            // 2 (x - min)/(max - min) - 1 = (x - (max + min)/2) * 2/(max - min)
            let lo = constant4(min, device);
            let hi = constant4(max, device);
            (
                (hi.clone() + lo.clone()).div_scalar(2.0),
                (hi - lo).recip().mul_scalar(2.0),
            )
        }
    };
    Ok(Op::Input(InputNorm {
        shift: frozen(shift),
        scale: frozen(scale),
    }))
}

/// A sequence input layer. For image sequences (`frame`), whose values run as
/// `[N, C*H*W, 1, T]` (features in `[C, H, W]` order), the `[1, C, H, W]` (per element),
/// `[1, C, 1, 1]` (per channel) constants become `[1, C*H*W, 1, 1]`.
pub(super) fn sequence_input(
    normalization: &Normalization,
    frame: &Option<Shape>,
    device: &Device,
) -> Result<Op, ModelError> {
    let op = input(normalization, device)?;
    let (Some(s), Op::Input(n)) = (frame, &op) else {
        return Ok(op);
    };
    let f = s.c * s.h * s.w;
    let per_feature = |t: Tensor<4>| -> Tensor<4> {
        let [_, c, h, w] = t.dims();
        match (c, h * w) {
            (1, 1) => t,
            (_, 1) if s.h * s.w > 1 => t.repeat_dim(2, s.h * s.w).reshape([1, f, 1, 1]),
            _ => t.reshape([1, c * h * w, 1, 1]),
        }
    };
    Ok(Op::Input(InputNorm {
        shift: frozen(per_feature(n.shift.val())),
        scale: frozen(per_feature(n.scale.val())),
    }))
}

/// A classification or regression output layer: an identity (the loss is training's).
pub(super) fn output() -> Result<Op, ModelError> {
    Ok(func(IDENTITY, 0.0))
}

fn constant4(v: &layer::Tensor, device: &Device) -> Tensor<4> {
    let s = &v.shape;
    let shape = match s.len() {
        3 => [1, s[0], s[1], s[2]],
        1 => [1, s[0], 1, 1],
        _ => [1, 1, 1, v.numel().max(1)],
    };
    let data = values(v);
    if data.is_empty() {
        // Unknown statistics, or a description read back without data (the record fills it).
        let shape = if v.numel() == 0 { [1, 1, 1, 1] } else { shape };
        return Tensor::zeros(shape, device);
    }
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn frozen<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(t).set_require_grad(false)
}

/// Restores a normalization's statistics from the module's `(x - shift) * scale` constants.
pub(crate) fn write_back_normalization(n: &InputNorm, norm: &mut Normalization) {
    let vals = |t: Tensor<4>| {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 data")
    };
    let shift = vals(n.shift.val());
    let scale = vals(n.scale.val());
    let fill = |t: &mut layer::Tensor, v: Vec<f32>| {
        if v.len() == t.numel() {
            t.data = v;
        } else if t.numel() > 0 && v.len().is_multiple_of(t.numel()) {
            // Per-channel statistics of an image sequence, spread over each channel's H*W
            // features by `sequence_input`: the first of each block.
            t.data = v.iter().step_by(v.len() / t.numel()).copied().collect();
        }
    };
    match norm {
        Normalization::None => {}
        Normalization::ZeroCenter { mean } => fill(mean, shift),
        Normalization::ZScore { mean, std } => {
            fill(mean, shift);
            fill(std, scale.iter().map(|s| 1.0 / s).collect());
        }
        Normalization::RescaleZeroOne { min, max } => {
            let range: Vec<f32> = scale.iter().map(|s| 1.0 / s).collect();
            fill(max, shift.iter().zip(&range).map(|(m, r)| m + r).collect());
            fill(min, shift);
        }
        Normalization::RescaleSymmetric { min, max } => {
            // shift = (max + min)/2, scale = 2/(max - min)
            let half: Vec<f32> = scale.iter().map(|s| 1.0 / s).collect();
            fill(min, shift.iter().zip(&half).map(|(c, h)| c - h).collect());
            fill(max, shift.iter().zip(&half).map(|(c, h)| c + h).collect());
        }
    }
}
