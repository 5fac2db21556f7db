//! Activations and softmax in `model.py`.

use super::{Cx, Emit};
use crate::export::float_lit;
use crate::net::layer::Activation;

pub(super) fn activation(cx: &Cx, a: Activation) -> Emit {
    let decl = match a {
        Activation::Relu => "nn.ReLU()".to_string(),
        Activation::LeakyRelu { scale } => {
            format!("nn.LeakyReLU(negative_slope={})", float_lit(scale))
        }
        Activation::ClippedRelu { ceiling } => {
            format!("nn.Hardtanh(0.0, {})", float_lit(ceiling))
        }
        Activation::Elu { alpha } => format!("nn.ELU(alpha={})", float_lit(alpha)),
        Activation::Tanh => "nn.Tanh()".into(),
        Activation::Sigmoid => "nn.Sigmoid()".into(),
        Activation::Swish => "nn.SiLU()".into(),
        Activation::Gelu { tanh } => format!(
            "nn.GELU(approximate={})",
            if tanh { "\"tanh\"" } else { "\"none\"" }
        ),
    };
    cx.module(decl, false)
}

pub(super) fn softmax(cx: &Cx) -> Emit {
    cx.module("nn.Softmax(dim=1)", false)
}
