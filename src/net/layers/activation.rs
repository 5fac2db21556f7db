//! Element-wise activations (ReLU and its variants, ELU, tanh, sigmoid, swish, GELU) and softmax.

use serde::{Deserialize, Serialize};

use crate::net::fields::Fields;
use crate::net::layer::LayerKind;
use crate::net::matconvnet::Params;
use crate::net::shape::Declared;

use super::{Imported, Names, number};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    Relu,
    LeakyRelu { scale: f64 },
    ClippedRelu { ceiling: f64 },
    Elu { alpha: f64 },
    Tanh,
    Sigmoid,
    Swish,
    Gelu { tanh: bool },
}

pub const SOFTMAX: Names = Names {
    kind: "Softmax",
    stem: "softmax",
};

impl Activation {
    pub(crate) fn names(&self) -> Names {
        let (kind, stem) = match self {
            Activation::Relu => ("Relu", "relu"),
            Activation::LeakyRelu { .. } => ("LeakyRelu", "leakyrelu"),
            Activation::ClippedRelu { .. } => ("ClippedRelu", "clippedrelu"),
            Activation::Elu { .. } => ("Elu", "elu"),
            Activation::Tanh => ("Tanh", "tanh"),
            Activation::Sigmoid => ("Sigmoid", "sigmoid"),
            Activation::Swish => ("Swish", "swish"),
            Activation::Gelu { .. } => ("Gelu", "gelu"),
        };
        Names { kind, stem }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Activation::Relu => "ReLU".into(),
            Activation::LeakyRelu { scale } => format!("leaky ReLU with scale {}", number(*scale)),
            Activation::ClippedRelu { ceiling } => {
                format!("clipped ReLU with ceiling {}", number(*ceiling))
            }
            Activation::Elu { alpha } => format!("ELU with alpha {}", number(*alpha)),
            Activation::Tanh => "hyperbolic tangent".into(),
            Activation::Sigmoid => "sigmoid".into(),
            Activation::Swish => "swish".into(),
            Activation::Gelu { tanh: false } => "GELU".into(),
            Activation::Gelu { tanh: true } => "GELU (tanh approximation)".into(),
        }
    }
}

/// Activation and softmax layer classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    let a = match short {
        "ReLULayer" => Activation::Relu,
        "LeakyReLULayer" => Activation::LeakyRelu {
            scale: f.f64_or("Scale", 0.01)?,
        },
        "ClippedReLULayer" => Activation::ClippedRelu {
            ceiling: f.f64("Ceiling")?,
        },
        "ELULayer" => Activation::Elu {
            alpha: f.f64_or("Alpha", 1.0)?,
        },
        "TanhLayer" => Activation::Tanh,
        "SigmoidLayer" => Activation::Sigmoid,
        "SwishLayer" => Activation::Swish,
        "GELULayer" => Activation::Gelu {
            tanh: f.string("Approximation").as_deref() == Some("tanh"),
        },
        "SoftmaxLayer" => return Ok(Some(LayerKind::Softmax)),
        _ => return Ok(None),
    };
    Ok(Some(LayerKind::Activation(a)))
}

/// `relu` (with `leak`: leaky ReLU), `sigmoid` and `softmax` (and their DagNN blocks).
pub(in crate::net) fn from_matconvnet(
    ty: &str,
    f: &Fields,
    _params: &Params,
    _declared: &mut Declared,
) -> Imported {
    Ok(Some(match ty {
        "relu" | "ReLU" => match f.opt_f64("leak")? {
            Some(leak) if leak != 0.0 => {
                LayerKind::Activation(Activation::LeakyRelu { scale: leak })
            }
            _ => LayerKind::Activation(Activation::Relu),
        },
        "sigmoid" | "Sigmoid" => LayerKind::Activation(Activation::Sigmoid),
        "softmax" | "SoftMax" => LayerKind::Softmax,
        _ => return Ok(None),
    }))
}
