//! Max, average and global poolings.

use super::{Func, Op, burn_padding, func, pads};
use crate::model::ModelError;
use crate::net::layer::{Layer, Padding1d, Pool1d as Pool1dDesc, Pool2d, Unpool2d};
use burn::module::Module;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
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

// --- max unpooling ---

/// Max unpooling: the op holds the max pooling layer's window (`Op::MaxUnpool`).
pub(super) fn max_unpool2d(l: &Layer, u: &Unpool2d) -> Result<Op, ModelError> {
    if u.pool.is_empty() {
        return Err(super::err(
            l,
            "its 'indices' and 'size' inputs are not connected to a max pooling layer",
        ));
    }
    let pad = pads(l, &u.window.padding)?;
    Ok(Op::MaxUnpool(
        MaxPool2dConfig::new(u.window.size)
            .with_strides(u.window.stride)
            .with_padding(burn_padding(pad))
            .init(),
    ))
}

/// Unpools `x` `[N, C, h, w]` into zeros the size of `pooled_input` `[N, C', H, W]` (the max
/// pooling layer's input): each value goes where the maximum of its window was. The indices are
/// the max pooling's (recomputed from its input with `pool`'s window): the first maximum of each
/// window in row-major order (the same as ONNX's and PyTorch's MaxPool), which is also MATLAB's
/// column-major first maximum whenever the tie includes the window's first element (all-zero
/// windows after a ReLU) **[UNVERIFIED]** for other ties. Values of overlapping windows that pick
/// the same element add up **[UNVERIFIED]**: MATLAB does not document that case.
pub(super) fn max_unpool_forward(
    pool: &MaxPool2d,
    x: Tensor<4>,
    pooled_input: Tensor<4>,
) -> Tensor<4> {
    use burn::tensor::IndexingUpdateOp;
    use burn::tensor::module::max_pool2d_with_indices;
    use burn::tensor::ops::MaxPoolOptions;
    let [_, _, h, w] = pooled_input.dims();
    let [n, c, ph, pw] = x.dims();
    // Built with explicit padding (`max_unpool2d`).
    let (pad_h, pad_w) = match pool.padding {
        burn::nn::PaddingConfig2d::Explicit(top, left, bottom, right) => {
            ((top, bottom), (left, right))
        }
        _ => ((0, 0), (0, 0)),
    };
    let (_, indices) = max_pool2d_with_indices(
        pooled_input,
        MaxPoolOptions::new(pool.kernel_size)
            .with_stride(pool.stride)
            .with_padding_pairs([pad_h, pad_w])
            .with_dilation(pool.dilation),
    );
    let [_, ic, ih, iw] = indices.dims();
    // x and the pooled input's own pooling have the same size (shape inference checks it); x
    // may have other channels only when the indices cannot be used, which shape inference refuses.
    debug_assert_eq!([ic, ih, iw], [c, ph, pw]);
    let device = x.device();
    let zeros = Tensor::<3>::zeros([n, c, h * w], &device);
    zeros
        .scatter(
            2,
            indices.reshape([n, ic, ih * iw]),
            x.reshape([n, c, ph * pw]),
            IndexingUpdateOp::Add,
        )
        .reshape([n, c, h, w])
}
