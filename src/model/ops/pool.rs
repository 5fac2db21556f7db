//! Max, average and global poolings.

use super::{Func, Op, burn_padding, func, pads};
use crate::model::ModelError;
use crate::net::layer::{Layer, Pool2d};
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::prelude::*;

// Func codes (saved in records: never renumber).
pub(super) const GLOBAL_AVG: usize = 11;
pub(super) const GLOBAL_MAX: usize = 12;

pub(super) fn max_pool2d(l: &Layer, p: &Pool2d) -> Result<Op, ModelError> {
    let pad = pads(l, &p.padding)?;
    Ok(Op::MaxPool(
        MaxPool2dConfig::new(p.size)
            .with_strides(p.stride)
            .with_padding(burn_padding(pad))
            .init(),
    ))
}

pub(super) fn avg_pool2d(l: &Layer, p: &Pool2d) -> Result<Op, ModelError> {
    let pad = pads(l, &p.padding)?;
    Ok(Op::AvgPool(
        AvgPool2dConfig::new(p.size)
            .with_strides(p.stride)
            .with_padding(burn_padding(pad))
            .with_count_include_pad(p.count_include_pad)
            .init(),
    ))
}

pub(super) fn global_avg_pool() -> Result<Op, ModelError> {
    Ok(func(GLOBAL_AVG, 0.0))
}

pub(super) fn global_max_pool() -> Result<Op, ModelError> {
    Ok(func(GLOBAL_MAX, 0.0))
}

/// `f` (one of this file's codes) on `x`.
pub(super) fn forward(f: &Func, x: Tensor<4>) -> Tensor<4> {
    match f.code {
        GLOBAL_AVG => x.mean_dim(3).mean_dim(2),
        GLOBAL_MAX => x.max_dim(3).max_dim(2),
        _ => x,
    }
}
