//! Batch, group and local response normalization: Burn's layers, with MATLAB's statistics.

use super::{Op, param, set, tensor};
use crate::model::{ModelError, tensor_values};
use crate::net::layer::{self, Layer};
use burn::module::{Module, Param, RunningState};
use burn::nn::norm::LocalResponseNormConfig;
use burn::nn::{BatchNorm, BatchNormConfig, GroupNorm, GroupNormConfig};
use burn::prelude::*;

pub(super) fn batch_norm(
    l: &Layer,
    b: &layer::BatchNorm,
    device: &Device,
) -> Result<Op, ModelError> {
    // Burn requires epsilon > 0; MatConvNet's moments already include theirs (0 here).
    let epsilon = if b.epsilon > 0.0 { b.epsilon } else { 1e-30 };
    // MATLAB: running = MeanDecay * batch + (1 - MeanDecay) * running, which is
    // Burn's momentum.
    let mut bn = BatchNormConfig::new(b.channels)
        .with_epsilon(epsilon)
        .with_momentum(b.mean_decay.clamp(0.0, 1.0))
        .init(device);
    bn.gamma = param::<1>(l, &b.scale, "Scale", device)?;
    bn.beta = param::<1>(l, &b.offset, "Offset", device)?;
    let mean = b.mean.as_ref().ok_or_else(|| ModelError::NoWeights {
        layer: l.name.clone(),
        class: l.class.clone(),
        property: "TrainedMean".into(),
    })?;
    let var = b.variance.as_ref().ok_or_else(|| ModelError::NoWeights {
        layer: l.name.clone(),
        class: l.class.clone(),
        property: "TrainedVariance".into(),
    })?;
    bn.running_mean = RunningState::new(tensor::<1>(l, mean, "TrainedMean", device)?);
    bn.running_var = RunningState::new(tensor::<1>(l, var, "TrainedVariance", device)?);
    Ok(Op::BatchNorm(bn))
}

pub(super) fn group_norm(
    l: &Layer,
    g: &layer::GroupNorm,
    device: &Device,
) -> Result<Op, ModelError> {
    let mut gn = GroupNormConfig::new(g.groups, g.channels)
        .with_epsilon(g.epsilon)
        .init(device);
    gn.gamma = Some(param::<1>(l, &g.scale, "Scale", device)?);
    gn.beta = Some(param::<1>(l, &g.offset, "Offset", device)?);
    Ok(Op::GroupNorm(gn))
}

pub(super) fn lrn(n: &layer::Lrn) -> Result<Op, ModelError> {
    // Burn computes x / (k + alpha * sum_window(x^2) / n)^beta with MATLAB's window
    // placement for even sizes: the description's formula (tests/model.rs checks it).
    Ok(Op::Lrn(
        LocalResponseNormConfig::new(n.window)
            .with_alpha(n.alpha)
            .with_beta(n.beta)
            .with_k(n.k)
            .init(),
    ))
}

pub(super) fn write_back_batch_norm(b: &BatchNorm, d: &mut layer::BatchNorm) {
    set(&mut d.scale, b.gamma.val());
    set(&mut d.offset, b.beta.val());
    if let Some(m) = &mut d.mean {
        m.data = tensor_values(b.running_mean.value());
    }
    if let Some(v) = &mut d.variance {
        v.data = tensor_values(b.running_var.value());
    }
}

pub(super) fn write_back_group_norm(g: &GroupNorm, d: &mut layer::GroupNorm) {
    if let Some(gm) = &g.gamma {
        set(&mut d.scale, gm.val());
    }
    if let Some(bt) = &g.beta {
        set(&mut d.offset, bt.val());
    }
}

/// `layerNormalizationLayer` on `[N, C, H, W]` (sequences `[N, C, 1, T]`): statistics over the
/// channels at each position (`channel_only`), or over all of an observation's values.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// `[C]`.
    pub gamma: Param<Tensor<1>>,
    /// `[C]`.
    pub beta: Param<Tensor<1>>,
    pub epsilon: f64,
    pub channel_only: bool,
}

impl LayerNorm {
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let y = if self.channel_only {
            let d = x.clone() - x.mean_dim(1);
            let var = (d.clone() * d.clone()).mean_dim(1);
            d / var.add_scalar(self.epsilon).sqrt()
        } else {
            let f = x.reshape([n, c * h * w]);
            let d = f.clone() - f.mean_dim(1);
            let var = (d.clone() * d.clone()).mean_dim(1);
            (d / var.add_scalar(self.epsilon).sqrt()).reshape([n, c, h, w])
        };
        y * self.gamma.val().reshape([1, c, 1, 1]) + self.beta.val().reshape([1, c, 1, 1])
    }
}

/// `sequence`: the layer's input is a `C x T` sequence (see `LayerNorm::channel_only`).
pub(super) fn layer_norm(
    l: &Layer,
    n: &layer::LayerNorm,
    sequence: bool,
    device: &Device,
) -> Result<Op, ModelError> {
    Ok(Op::LayerNorm(LayerNorm {
        gamma: param::<1>(l, &n.scale, "Scale", device)?,
        beta: param::<1>(l, &n.offset, "Offset", device)?,
        epsilon: n.epsilon,
        channel_only: n.channel_only(sequence),
    }))
}

pub(super) fn write_back_layer_norm(g: &LayerNorm, d: &mut layer::LayerNorm) {
    set(&mut d.scale, g.gamma.val());
    set(&mut d.offset, g.beta.val());
}
