//! Activations and softmax in `model.rs`: single lines of `forward`.

use super::{Cx, Stmt, f64_lit};
use crate::net::layer::Activation;

pub(super) fn activation(cx: &mut Cx, a: Activation) -> Stmt {
    cx.import("use burn::tensor::activation;");
    let x = cx.arg(0, false);
    Stmt::Let(match a {
        Activation::Relu => format!("activation::relu({x})"),
        Activation::LeakyRelu { scale } => {
            format!("activation::leaky_relu({x}, {})", f64_lit(scale))
        }
        Activation::ClippedRelu { ceiling } => {
            format!("{x}.clamp(0.0, {})", f64_lit(ceiling))
        }
        Activation::Elu { alpha } => {
            format!("activation::elu({x}, {})", f64_lit(alpha))
        }
        Activation::Tanh => format!("activation::tanh({x})"),
        Activation::Sigmoid => format!("activation::sigmoid({x})"),
        Activation::Swish => format!("activation::silu({x})"),
        Activation::Gelu { tanh: false } => format!("activation::gelu({x})"),
        Activation::Gelu { tanh: true } => {
            format!("activation::gelu_approximate({x})")
        }
    })
}

pub(super) fn softmax(cx: &mut Cx) -> Stmt {
    cx.import("use burn::tensor::activation;");
    Stmt::Let(format!("activation::softmax({}, 1)", cx.arg(0, false)))
}
