//! One Burn op per layer kind: built from the description, run on `[N, C, H, W]` tensors.

use super::ModelError;
use super::recurrent::{self, Rnn};
use crate::net::layer::{
    self, Activation, Layer, LayerKind, Network, Normalization, Padding, PaddingMode,
};
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::norm::{LocalResponseNorm, LocalResponseNormConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, GroupNorm, GroupNormConfig, Linear,
    PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation;
use std::cell::RefCell;
use std::collections::HashMap;

/// Input normalization: `(x - shift) * scale` with broadcastable `[1, C, H, W]` constants, saved
/// in records as frozen parameters.
#[derive(Module, Debug)]
pub struct InputNorm {
    pub shift: Param<Tensor<4>>,
    pub scale: Param<Tensor<4>>,
}

/// A parameter-free op; `code` picks the function and `a` is its coefficient.
#[derive(Module, Debug)]
pub struct Func {
    pub code: usize,
    pub a: f64,
}

/// Transposed convolution followed by MATLAB's output cropping.
#[derive(Module, Debug)]
pub struct ConvT {
    pub conv: ConvTranspose2d,
    /// Cropping `[top, bottom, left, right]`.
    pub crop: [usize; 4],
}

/// A fully connected layer on the flattened `[N, C*H*W]` input, or on each time step of a
/// sequence `[N, C, 1, T]` (`per_step`, in sequence networks).
#[derive(Module, Debug)]
pub struct Fc {
    pub linear: Linear,
    pub per_step: bool,
}

impl Fc {
    /// `x [N, in]` through the layer: on plain Flex tensors by [`super::cpu::linear`] (the
    /// weights read in place, in parallel), elsewhere (autodiff, other backends) by Burn's op.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let bias = self.linear.bias.as_ref().map(|b| b.val());
        super::cpu::linear(&x, &self.linear.weight.val(), bias.as_ref())
            .unwrap_or_else(|| self.linear.forward(x))
    }
}

/// What each node computes.
#[derive(Module, Debug)]
pub enum Op {
    Input(InputNorm),
    Conv(Conv2d),
    ConvT(ConvT),
    Fc(Fc),
    BatchNorm(BatchNorm),
    GroupNorm(GroupNorm),
    Lrn(LocalResponseNorm),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    Dropout(Dropout),
    Func(Func),
    Rnn(Rnn),
}

// Func codes.
pub const IDENTITY: usize = 0;
pub const RELU: usize = 1;
const LEAKY: usize = 2;
const CLIPPED: usize = 3;
const ELU: usize = 4;
const TANH: usize = 5;
const SIGMOID: usize = 6;
const SWISH: usize = 7;
const GELU: usize = 8;
const GELU_TANH: usize = 9;
pub(crate) const SOFTMAX: usize = 10;
const GLOBAL_AVG: usize = 11;
const GLOBAL_MAX: usize = 12;
pub(crate) const ADD: usize = 13;
const MUL: usize = 14;
pub(crate) const CONCAT_C: usize = 15;
const CONCAT_H: usize = 16;
const CONCAT_W: usize = 17;
const FLATTEN: usize = 18;
/// An addition followed by a ReLU, in one pass (made by `MatNet::prepare_cpu`).
pub const ADD_RELU: usize = 19;

fn func(code: usize, a: f64) -> Op {
    Op::Func(Func { code, a })
}

fn err(l: &Layer, msg: impl Into<String>) -> ModelError {
    ModelError::Layer {
        layer: l.name.clone(),
        class: l.class.clone(),
        msg: msg.into(),
    }
}

pub(crate) fn param<const D: usize>(
    l: &Layer,
    p: &Option<layer::Param>,
    what: &str,
    device: &Device,
) -> Result<Param<Tensor<D>>, ModelError> {
    let p = p.as_ref().ok_or_else(|| ModelError::NoWeights {
        layer: l.name.clone(),
        class: l.class.clone(),
        property: what.into(),
    })?;
    let t = tensor::<D>(l, &p.value, what, device)?;
    // A zero LearnRateFactor freezes the parameter (MATLAB's way of freezing layers).
    Ok(Param::from_tensor(t).set_require_grad(p.lr_factor != 0.0))
}

pub(crate) fn tensor<const D: usize>(
    l: &Layer,
    t: &layer::Tensor,
    what: &str,
    device: &Device,
) -> Result<Tensor<D>, ModelError> {
    if t.shape.len() != D {
        return Err(err(
            l,
            format!("{what} has shape {:?}, expected {D} dimensions", t.shape),
        ));
    }
    let data = values(t);
    if data.is_empty() && t.numel() > 0 {
        // A description read back without data: zeros until the Burn record is loaded.
        return Ok(Tensor::zeros(t.shape.clone(), device));
    }
    if t.numel() != data.len() {
        return Err(err(
            l,
            format!("{what} has {} values for shape {:?}", data.len(), t.shape),
        ));
    }
    Ok(Tensor::from_data(
        TensorData::new(data, t.shape.clone()),
        device,
    ))
}

thread_local! {
    /// While [`TakeGuard`] lives: tensor values moved out of the description being built,
    /// keyed by the address of the [`layer::Tensor`] they belong to.
    static TAKEN: RefCell<HashMap<usize, Vec<f32>>> = RefCell::new(HashMap::new());
}

/// Hands `values` (keyed as [`TAKEN`]) to the module being built, instead of copies of the
/// description's values; whatever is left is dropped with the guard.
pub(crate) struct TakeGuard;

impl TakeGuard {
    pub(crate) fn new(values: HashMap<usize, Vec<f32>>) -> TakeGuard {
        TAKEN.with(|t| *t.borrow_mut() = values);
        TakeGuard
    }
}

impl Drop for TakeGuard {
    fn drop(&mut self) {
        TAKEN.with(|t| t.borrow_mut().clear());
    }
}

/// `t`'s values: moved from [`TAKEN`] when they were handed over, else copied.
fn values(t: &layer::Tensor) -> Vec<f32> {
    TAKEN
        .with(|m| m.borrow_mut().remove(&(t as *const layer::Tensor as usize)))
        .unwrap_or_else(|| t.data.clone())
}

fn pads(l: &Layer, p: &PaddingMode) -> Result<Padding, ModelError> {
    match p {
        PaddingMode::Manual(p) => Ok(*p),
        PaddingMode::Same => Err(err(l, "'same' padding was not resolved")),
    }
}

/// MATLAB `[top bottom left right]` → Burn's `Explicit(top, left, bottom, right)`.
fn burn_padding(p: Padding) -> PaddingConfig2d {
    PaddingConfig2d::Explicit(p.top, p.left, p.bottom, p.right)
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

impl Op {
    pub fn build(l: &Layer, net: &Network, device: &Device) -> Result<Op, ModelError> {
        Ok(match &l.kind {
            LayerKind::ImageInput { normalization, .. }
            | LayerKind::FeatureInput { normalization, .. }
            | LayerKind::SequenceInput { normalization, .. } => {
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
                Op::Input(InputNorm {
                    shift: frozen(shift),
                    scale: frozen(scale),
                })
            }
            LayerKind::Conv2d(c) => {
                let p = pads(l, &c.padding)?;
                Op::Conv(Conv2d {
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
                })
            }
            LayerKind::ConvTranspose2d(c) => {
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
                Op::ConvT(ConvT {
                    conv,
                    crop: [crop.top, crop.bottom, crop.left, crop.right],
                })
            }
            LayerKind::FullyConnected(f) => {
                // Canonical [K, N]; Burn's Linear stores [N, K].
                let w: Param<Tensor<2>> = param::<2>(l, &f.weights, "Weights", device)?;
                let trainable = f.weights.as_ref().is_some_and(|p| p.lr_factor != 0.0);
                let w =
                    Param::from_tensor(w.val().transpose().detach()).set_require_grad(trainable);
                let bias = match &f.bias {
                    Some(_) => Some(param::<1>(l, &f.bias, "Bias", device)?),
                    None => None,
                };
                Op::Fc(Fc {
                    linear: Linear { weight: w, bias },
                    per_step: net.is_sequence(),
                })
            }
            LayerKind::BatchNorm(b) => {
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
                Op::BatchNorm(bn)
            }
            LayerKind::GroupNorm(g) => {
                let mut gn = GroupNormConfig::new(g.groups, g.channels)
                    .with_epsilon(g.epsilon)
                    .init(device);
                gn.gamma = Some(param::<1>(l, &g.scale, "Scale", device)?);
                gn.beta = Some(param::<1>(l, &g.offset, "Offset", device)?);
                Op::GroupNorm(gn)
            }
            LayerKind::Lrn(n) => {
                // Burn computes x / (k + alpha * sum_window(x^2) / n)^beta with MATLAB's window
                // placement for even sizes: the description's formula (tests/model.rs checks it).
                Op::Lrn(
                    LocalResponseNormConfig::new(n.window)
                        .with_alpha(n.alpha)
                        .with_beta(n.beta)
                        .with_k(n.k)
                        .init(),
                )
            }
            LayerKind::Activation(a) => match *a {
                Activation::Relu => func(RELU, 0.0),
                Activation::LeakyRelu { scale } => func(LEAKY, scale),
                Activation::ClippedRelu { ceiling } => func(CLIPPED, ceiling),
                Activation::Elu { alpha } => func(ELU, alpha),
                Activation::Tanh => func(TANH, 0.0),
                Activation::Sigmoid => func(SIGMOID, 0.0),
                Activation::Swish => func(SWISH, 0.0),
                Activation::Gelu { tanh } => func(if tanh { GELU_TANH } else { GELU }, 0.0),
            },
            LayerKind::MaxPool2d(p) => {
                let pad = pads(l, &p.padding)?;
                Op::MaxPool(
                    MaxPool2dConfig::new(p.size)
                        .with_strides(p.stride)
                        .with_padding(burn_padding(pad))
                        .init(),
                )
            }
            LayerKind::AvgPool2d(p) => {
                let pad = pads(l, &p.padding)?;
                Op::AvgPool(
                    AvgPool2dConfig::new(p.size)
                        .with_strides(p.stride)
                        .with_padding(burn_padding(pad))
                        .with_count_include_pad(p.count_include_pad)
                        .init(),
                )
            }
            LayerKind::GlobalAvgPool => func(GLOBAL_AVG, 0.0),
            LayerKind::GlobalMaxPool => func(GLOBAL_MAX, 0.0),
            LayerKind::Addition { .. } => func(ADD, 0.0),
            LayerKind::Multiplication { .. } => func(MUL, 0.0),
            LayerKind::DepthConcat { .. } => func(CONCAT_C, 0.0),
            LayerKind::Concat { dim, .. } => match dim {
                1 => func(CONCAT_H, 0.0),
                2 => func(CONCAT_W, 0.0),
                3 => func(CONCAT_C, 0.0),
                d => {
                    return Err(err(
                        l,
                        format!("concatenation along dimension {d} is not supported"),
                    ));
                }
            },
            LayerKind::Dropout { probability } => {
                Op::Dropout(DropoutConfig::new(*probability).init())
            }
            LayerKind::Flatten => func(FLATTEN, 0.0),
            LayerKind::Softmax => func(SOFTMAX, 0.0),
            LayerKind::ClassificationOutput { .. } | LayerKind::RegressionOutput => {
                func(IDENTITY, 0.0)
            }
            LayerKind::Resize2d { .. } => {
                return Err(err(l, "resize2d is not supported by the Burn module yet"));
            }
            LayerKind::Lstm(r) => Op::Rnn(Rnn::build(l, r, recurrent::LSTM, device)?),
            LayerKind::Gru(r) => Op::Rnn(Rnn::build(l, r, recurrent::GRU, device)?),
            LayerKind::Unsupported { reason } => return Err(err(l, reason.clone())),
        })
    }

    /// Applies the op to its inputs (in port order).
    pub fn forward(&self, ins: Vec<Tensor<4>>) -> Tensor<4> {
        let mut rest = ins.into_iter();
        let x = rest.next().expect("every node has at least one input");
        match self {
            Op::Input(n) => super::cpu::normalize(x, n.shift.val(), n.scale.val()),
            Op::Conv(c) => c.forward(x),
            Op::ConvT(c) => {
                let y = c.conv.forward(x);
                let [n, ch, h, w] = y.dims();
                let [t, b, l, r] = c.crop;
                if t + b + l + r == 0 {
                    y
                } else {
                    y.slice([0..n, 0..ch, t..h - b, l..w - r])
                }
            }
            Op::Fc(f) if f.per_step => {
                // [N, C, 1, T] → [N*T, C] → [N, K, 1, T]
                let [n, c, h, t] = x.dims();
                let y = f.forward(
                    x.reshape([n, c * h, t])
                        .swap_dims(1, 2)
                        .reshape([n * t, c * h]),
                );
                let [_, k] = y.dims();
                y.reshape([n, t, k]).swap_dims(1, 2).reshape([n, k, 1, t])
            }
            Op::Fc(f) => {
                let [n, c, h, w] = x.dims();
                let y = f.forward(x.reshape([n, c * h * w]));
                let [_, k] = y.dims();
                y.reshape([n, k, 1, 1])
            }
            Op::BatchNorm(b) => b.forward(x),
            Op::GroupNorm(g) => g.forward(x),
            Op::Lrn(n) => n.forward(x),
            Op::MaxPool(p) => match super::cpu::Pool::of(p) {
                Some(q)
                    if super::cpu::is_plain_flex(&x)
                        && q.output([x.dims()[2], x.dims()[3]]).is_some() =>
                {
                    super::cpu::max_pool2d(x, q.k, q.s, q.pad)
                }
                _ => p.forward(x),
            },
            Op::AvgPool(p) => p.forward(x),
            Op::Dropout(d) => d.forward(x),
            Op::Rnn(r) => r.forward(x),
            Op::Func(f) => match f.code {
                RELU => activation::relu(x),
                LEAKY => activation::leaky_relu(x, f.a),
                CLIPPED => x.clamp(0.0, f.a),
                ELU => activation::elu(x, f.a),
                TANH => activation::tanh(x),
                SIGMOID => activation::sigmoid(x),
                SWISH => activation::silu(x),
                GELU => activation::gelu(x),
                GELU_TANH => activation::gelu_approximate(x),
                SOFTMAX => activation::softmax(x, 1),
                GLOBAL_AVG => x.mean_dim(3).mean_dim(2),
                GLOBAL_MAX => x.max_dim(3).max_dim(2),
                ADD => rest.fold(x, |a, b| a + b),
                ADD_RELU => super::cpu::add_relu(std::iter::once(x).chain(rest).collect()),
                MUL => rest.fold(x, |a, b| a * b),
                CONCAT_C | CONCAT_H | CONCAT_W => {
                    let all: Vec<Tensor<4>> = std::iter::once(x).chain(rest).collect();
                    let axis = match f.code {
                        CONCAT_C => 1,
                        CONCAT_H => 2,
                        _ => 3,
                    };
                    if axis == 1 && super::cpu::is_plain_flex(&all[0]) {
                        return super::cpu::concat_channels(all);
                    }
                    Tensor::cat(all, axis)
                }
                FLATTEN => {
                    // MATLAB flattens H x W x C column-major (h fastest): order [C, W, H] row-major.
                    let [n, c, h, w] = x.dims();
                    x.swap_dims(2, 3).reshape([n, c * h * w, 1, 1])
                }
                _ => x,
            },
        }
    }
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
