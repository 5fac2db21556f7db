//! Layers that move values without computing: flatten, dropout (an identity at inference),
//! resize (not supported by the Burn module yet).

use super::{Op, err, func};
use crate::model::ModelError;
use crate::net::layer::Layer;
use burn::nn::DropoutConfig;
use burn::prelude::*;

// Func codes (saved in records: never renumber).
pub(super) const FLATTEN: usize = 18;

pub(super) fn flatten() -> Result<Op, ModelError> {
    Ok(func(FLATTEN, 0.0))
}

pub(super) fn dropout(probability: f64) -> Result<Op, ModelError> {
    Ok(Op::Dropout(DropoutConfig::new(probability).init()))
}

pub(super) fn resize2d(l: &Layer) -> Result<Op, ModelError> {
    Err(err(l, "resize2d is not supported by the Burn module yet"))
}

/// [`FLATTEN`] on `x`: MATLAB flattens H x W x C column-major (h fastest), which is the order
/// `[C, W, H]` row-major.
pub(super) fn flatten_forward(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.swap_dims(2, 3).reshape([n, c * h * w, 1, 1])
}
