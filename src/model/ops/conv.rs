//! Convolution, transposed convolution and fully connected layers.

use super::{Op, burn_padding, pads, param, set, set_param};
use crate::model::ModelError;
use crate::net::layer::{self, Layer};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::prelude::*;

/// Transposed convolution followed by MATLAB's output cropping.
#[derive(Module, Debug)]
pub struct ConvT {
    pub conv: ConvTranspose2d,
    /// Cropping `[top, bottom, left, right]`.
    pub crop: [usize; 4],
}

impl ConvT {
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv.forward(x);
        let [n, ch, h, w] = y.dims();
        let [t, b, l, r] = self.crop;
        if t + b + l + r == 0 {
            y
        } else {
            y.slice([0..n, 0..ch, t..h - b, l..w - r])
        }
    }
}

/// A fully connected layer on the flattened `[N, C*H*W]` input, or on each time step of a
/// sequence `[N, C, 1, T]` (`per_step`, in sequence networks).
#[derive(Module, Debug)]
pub struct Fc {
    pub linear: Linear,
    pub per_step: bool,
}

impl Fc {
    /// `x [N, in]` through the layer: on plain Flex tensors by [`crate::cpu::linear`] (the
    /// weights read in place, in parallel), elsewhere (autodiff, other backends) by Burn's op.
    fn rows(&self, x: Tensor<2>) -> Tensor<2> {
        let bias = self.linear.bias.as_ref().map(|b| b.val());
        crate::cpu::linear(&x, &self.linear.weight.val(), bias.as_ref())
            .unwrap_or_else(|| self.linear.forward(x))
    }

    /// The layer on `[N, C, H, W]` (`[N, K, 1, 1]` out), or per time step on `[N, C, 1, T]`
    /// (`[N, K, 1, T]` out).
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.per_step {
            // [N, C, 1, T] → [N*T, C] → [N, K, 1, T]
            let [n, c, h, t] = x.dims();
            let y = self.rows(
                x.reshape([n, c * h, t])
                    .swap_dims(1, 2)
                    .reshape([n * t, c * h]),
            );
            let [_, k] = y.dims();
            y.reshape([n, t, k]).swap_dims(1, 2).reshape([n, k, 1, t])
        } else {
            let [n, c, h, w] = x.dims();
            let y = self.rows(x.reshape([n, c * h * w]));
            let [_, k] = y.dims();
            y.reshape([n, k, 1, 1])
        }
    }
}

pub(super) fn conv2d(l: &Layer, c: &layer::Conv2d, device: &Device) -> Result<Op, ModelError> {
    let p = pads(l, &c.padding)?;
    Ok(Op::Conv(Conv2d {
        weight: param::<4>(l, &c.weights, "Weights", device)?,
        bias: match &c.bias {
            Some(_) => Some(param::<1>(l, &c.bias, "Bias", device)?),
            None => None,
        },
        stride: c.stride,
        kernel_size: c.filter,
        dilation: c.dilation,
        groups: c.groups,
        padding: burn_padding(p),
    }))
}

pub(super) fn conv_transpose2d(
    l: &Layer,
    c: &layer::ConvTranspose2d,
    device: &Device,
) -> Result<Op, ModelError> {
    let crop = pads(l, &c.cropping)?;
    let mut conv = ConvTranspose2dConfig::new([c.in_channels, c.filters], c.filter)
        .with_stride(c.stride)
        .with_groups(c.groups)
        .with_bias(c.bias.is_some())
        .init(device);
    conv.weight = param::<4>(l, &c.weights, "Weights", device)?;
    if c.bias.is_some() {
        conv.bias = Some(param::<1>(l, &c.bias, "Bias", device)?);
    }
    Ok(Op::ConvT(ConvT {
        conv,
        crop: [crop.top, crop.bottom, crop.left, crop.right],
    }))
}

/// `per_step`: the layer of a sequence network, applied to each time step.
pub(super) fn fully_connected(
    l: &Layer,
    f: &layer::FullyConnected,
    per_step: bool,
    device: &Device,
) -> Result<Op, ModelError> {
    // Canonical [K, N]; Burn's Linear stores [N, K].
    let w: Param<Tensor<2>> = param::<2>(l, &f.weights, "Weights", device)?;
    let trainable = f.weights.as_ref().is_some_and(|p| p.lr_factor != 0.0);
    let w = Param::from_tensor(w.val().transpose().detach()).set_require_grad(trainable);
    let bias = match &f.bias {
        Some(_) => Some(param::<1>(l, &f.bias, "Bias", device)?),
        None => None,
    };
    Ok(Op::Fc(Fc {
        linear: Linear { weight: w, bias },
        per_step,
    }))
}

pub(super) fn write_back_conv2d(c: &Conv2d, d: &mut layer::Conv2d) {
    set_param(&mut d.weights, c.weight.val());
    if let Some(b) = &c.bias {
        set(&mut d.bias, b.val());
    }
}

pub(super) fn write_back_conv_transpose2d(c: &ConvT, d: &mut layer::ConvTranspose2d) {
    set_param(&mut d.weights, c.conv.weight.val());
    if let Some(b) = &c.conv.bias {
        set(&mut d.bias, b.val());
    }
}

pub(super) fn write_back_fully_connected(f: &Fc, d: &mut layer::FullyConnected) {
    // Burn [in, out] → canonical [K, N].
    set_param(&mut d.weights, f.linear.weight.val().transpose());
    if let Some(b) = &f.linear.bias {
        set(&mut d.bias, b.val());
    }
}

// 1-D layers over time, on `[N, C, 1, T]`: 2-D ops with a height-1 kernel, which compute
// exactly the 1-D operation.

/// `convolution1dLayer` on `[N, C, 1, T]`: a `1 x K` 2-D convolution whose time pads are
/// resolved for each input length ('same' depends on `T`).
#[derive(Module, Debug)]
pub struct Conv1d {
    /// `[Cout, Cin, 1, K]`.
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub dilation: usize,
    /// 0: `pads` as given, 1: 'same', 2: 'causal'.
    pub mode: usize,
    pub pads: [usize; 2],
}

impl Conv1d {
    pub(super) fn padding(&self) -> layer::Padding1d {
        match self.mode {
            1 => layer::Padding1d::Same,
            2 => layer::Padding1d::Causal,
            _ => layer::Padding1d::Manual(self.pads),
        }
    }

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let k = self.weight.dims()[3];
        let [l, r] = self
            .padding()
            .pads(x.dims()[3], k, self.stride, self.dilation);
        burn::tensor::module::conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            burn::tensor::ops::ConvOptions::new_with_padding(
                [1, self.stride.max(1)],
                [(0, 0), (l, r)],
                [1, self.dilation.max(1)],
                1,
            ),
        )
    }
}

impl Conv1d {
    /// Output steps for `t` input steps, `None` when the padded input is shorter than the
    /// (dilated) kernel.
    pub(super) fn steps(&self, t: usize) -> Option<usize> {
        let k = self.weight.dims()[3];
        let [l, r] = self.padding().pads(t, k, self.stride, self.dilation);
        let window = (k.max(1) - 1) * self.dilation.max(1) + 1;
        (t + l + r)
            .checked_sub(window)
            .map(|d| d / self.stride.max(1) + 1)
    }
}

impl ConvT {
    /// Output width for an input `t` wide, `None` when the cropping exceeds the full output.
    pub(super) fn steps(&self, t: usize) -> Option<usize> {
        let full = (t.max(1) - 1) * self.conv.stride[1]
            + (self.conv.kernel_size[1].max(1) - 1) * self.conv.dilation[1]
            + 1;
        full.checked_sub(self.crop[2] + self.crop[3])
            .filter(|&w| w > 0)
    }
}

pub(super) fn conv1d(l: &Layer, c: &layer::Conv1d, device: &Device) -> Result<Op, ModelError> {
    let w = param::<3>(l, &c.weights, "Weights", device)?;
    let trainable = c.weights.as_ref().is_some_and(|p| p.lr_factor != 0.0);
    let [o, i, k] = w.dims();
    let weight =
        Param::from_tensor(w.val().reshape([o, i, 1, k]).detach()).set_require_grad(trainable);
    let (mode, pads) = match c.padding {
        layer::Padding1d::Manual(p) => (0, p),
        layer::Padding1d::Same => (1, [0, 0]),
        layer::Padding1d::Causal => (2, [0, 0]),
    };
    Ok(Op::Conv1d(Conv1d {
        weight,
        bias: match &c.bias {
            Some(_) => Some(param::<1>(l, &c.bias, "Bias", device)?),
            None => None,
        },
        stride: c.stride,
        dilation: c.dilation,
        mode,
        pads,
    }))
}

/// `transposedConv1dLayer`: the 2-D transposed convolution op with a `1 x K` kernel and
/// cropping `[0, 0, start, end]`.
pub(super) fn conv_transpose1d(
    l: &Layer,
    c: &layer::ConvTranspose1d,
    device: &Device,
) -> Result<Op, ModelError> {
    let w = param::<3>(l, &c.weights, "Weights", device)?;
    let trainable = c.weights.as_ref().is_some_and(|p| p.lr_factor != 0.0);
    let [ci, co, k] = w.dims();
    let mut conv = ConvTranspose2dConfig::new([c.in_channels, c.filters], [1, c.filter])
        .with_stride([1, c.stride.max(1)])
        .with_bias(c.bias.is_some())
        .init(device);
    conv.weight =
        Param::from_tensor(w.val().reshape([ci, co, 1, k]).detach()).set_require_grad(trainable);
    if c.bias.is_some() {
        conv.bias = Some(param::<1>(l, &c.bias, "Bias", device)?);
    }
    Ok(Op::ConvT(ConvT {
        conv,
        crop: [0, 0, c.cropping[0], c.cropping[1]],
    }))
}

pub(super) fn write_back_conv1d(c: &Conv1d, d: &mut layer::Conv1d) {
    let [o, i, _, k] = c.weight.dims();
    set_param(&mut d.weights, c.weight.val().reshape([o, i, k]));
    if let Some(b) = &c.bias {
        set(&mut d.bias, b.val());
    }
}

pub(super) fn write_back_conv_transpose1d(c: &ConvT, d: &mut layer::ConvTranspose1d) {
    let [ci, co, _, k] = c.conv.weight.dims();
    set_param(&mut d.weights, c.conv.weight.val().reshape([ci, co, k]));
    if let Some(b) = &c.conv.bias {
        set(&mut d.bias, b.val());
    }
}
