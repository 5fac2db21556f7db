//! Activations and softmax: parameter-free [`Func`]s.

use super::{Func, Op, func};
use crate::model::ModelError;
use crate::net::layer::Activation;
use burn::prelude::*;
use burn::tensor::activation;

// Func codes (saved in records: never renumber).
pub const RELU: usize = 1;
pub(super) const LEAKY: usize = 2;
pub(super) const CLIPPED: usize = 3;
pub(super) const ELU: usize = 4;
pub(super) const TANH: usize = 5;
pub(super) const SIGMOID: usize = 6;
pub(super) const SWISH: usize = 7;
pub(super) const GELU: usize = 8;
pub(super) const GELU_TANH: usize = 9;
pub(crate) const SOFTMAX: usize = 10;
/// Every code [`forward`] computes (what `Func::forward` routes here).
pub(super) const CODES: &[usize] = &[
    RELU, LEAKY, CLIPPED, ELU, TANH, SIGMOID, SWISH, GELU, GELU_TANH, SOFTMAX,
];

pub(super) fn activation(a: Activation) -> Result<Op, ModelError> {
    Ok(match a {
        Activation::Relu => func(RELU, 0.0),
        Activation::LeakyRelu { scale } => func(LEAKY, scale),
        Activation::ClippedRelu { ceiling } => func(CLIPPED, ceiling),
        Activation::Elu { alpha } => func(ELU, alpha),
        Activation::Tanh => func(TANH, 0.0),
        Activation::Sigmoid => func(SIGMOID, 0.0),
        Activation::Swish => func(SWISH, 0.0),
        Activation::Gelu { tanh } => func(if tanh { GELU_TANH } else { GELU }, 0.0),
    })
}

pub(super) fn softmax() -> Result<Op, ModelError> {
    Ok(func(SOFTMAX, 0.0))
}

/// `f` (one of this file's codes) on `x`.
pub(super) fn forward(f: &Func, x: Tensor<4>) -> Tensor<4> {
    match f.code {
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
        _ => x,
    }
}
