//! Max, average and global poolings.

use super::{Func, Op, burn_padding, func, pads};
use crate::model::ModelError;
use crate::net::layer::{Layer, Padding1d, Pool1d as Pool1dDesc, Pool2d};
use burn::module::Module;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::prelude::*;
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

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

// 1-D pooling over time on `[N, C, 1, T]`: 2-D pooling with a `1 x K` window, the time pads
// resolved for each input length ('same' depends on `T`).

/// `maxPooling1dLayer` (`max`) or `averagePooling1dLayer`.
#[derive(Module, Debug)]
pub struct Pool1d {
    pub max: bool,
    pub size: usize,
    pub stride: usize,
    /// 0: `pads` as given, 1: 'same'.
    pub mode: usize,
    pub pads: [usize; 2],
    pub count_include_pad: bool,
}

impl Pool1d {
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [l, r] = if self.mode == 1 {
            Padding1d::Same.pads(x.dims()[3], self.size, self.stride, 1)
        } else {
            self.pads
        };
        let (k, s) = ([1, self.size.max(1)], [1, self.stride.max(1)]);
        if self.max {
            let mut o = MaxPoolOptions::new(k).with_stride(s);
            o.padding = [(0, 0), (l, r)];
            burn::tensor::module::max_pool2d(x, o)
        } else {
            let mut o = AvgPoolOptions::new(k).with_stride(s);
            o.padding = [(0, 0), (l, r)];
            o.count_include_pad = self.count_include_pad;
            burn::tensor::module::avg_pool2d(x, o)
        }
    }
}

impl Pool1d {
    /// Output steps for `t` input steps, `None` when the padded input is shorter than the pool.
    pub(super) fn steps(&self, t: usize) -> Option<usize> {
        let [l, r] = if self.mode == 1 {
            Padding1d::Same.pads(t, self.size, self.stride, 1)
        } else {
            self.pads
        };
        (t + l + r)
            .checked_sub(self.size.max(1))
            .map(|d| d / self.stride.max(1) + 1)
    }
}

pub(super) fn pool1d(p: &Pool1dDesc, max: bool) -> Result<Op, ModelError> {
    let (mode, pads) = match p.padding {
        Padding1d::Same => (1, [0, 0]),
        Padding1d::Manual(p) => (0, p),
        // Not a MATLAB pooling mode; the description rule gives its pads.
        Padding1d::Causal => (0, Padding1d::Causal.pads(0, p.size, p.stride, 1)),
    };
    Ok(Op::Pool1d(Pool1d {
        max,
        size: p.size,
        stride: p.stride,
        mode,
        pads,
        count_include_pad: p.count_include_pad,
    }))
}
