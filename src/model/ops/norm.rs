//! Batch, group and local response normalization: Burn's layers, with MATLAB's statistics.

use super::{Op, param, set, tensor};
use crate::model::{ModelError, tensor_values};
use crate::net::layer::{self, Layer};
use burn::module::RunningState;
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
