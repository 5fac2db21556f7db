//! Layers that combine several inputs: addition, multiplication, concatenation.

use super::{Func, Op, err, func};
use crate::model::ModelError;
use crate::net::layer::Layer;
use burn::prelude::*;

// Func codes (saved in records: never renumber).
pub(crate) const ADD: usize = 13;
pub(super) const MUL: usize = 14;
pub(crate) const CONCAT_C: usize = 15;
pub(super) const CONCAT_H: usize = 16;
pub(super) const CONCAT_W: usize = 17;
/// An addition followed by a ReLU, in one pass (made by `MatNet::prepare_cpu`).
pub const ADD_RELU: usize = 19;

pub(super) fn addition() -> Result<Op, ModelError> {
    Ok(func(ADD, 0.0))
}

pub(super) fn multiplication() -> Result<Op, ModelError> {
    Ok(func(MUL, 0.0))
}

pub(super) fn depth_concat() -> Result<Op, ModelError> {
    Ok(func(CONCAT_C, 0.0))
}

/// Concatenation along MATLAB dimension `dim` (1 = H, 2 = W, 3 = C).
pub(super) fn concat(l: &Layer, dim: usize) -> Result<Op, ModelError> {
    Ok(match dim {
        1 => func(CONCAT_H, 0.0),
        2 => func(CONCAT_W, 0.0),
        3 => func(CONCAT_C, 0.0),
        d => {
            return Err(err(
                l,
                format!("concatenation along dimension {d} is not supported"),
            ));
        }
    })
}

/// `f` (one of this file's codes) on the inputs `x` and `rest` (in port order).
pub(super) fn forward(f: &Func, x: Tensor<4>, rest: std::vec::IntoIter<Tensor<4>>) -> Tensor<4> {
    match f.code {
        ADD => rest.fold(x, |a, b| a + b),
        ADD_RELU => crate::cpu::add_relu(std::iter::once(x).chain(rest).collect()),
        MUL => rest.fold(x, |a, b| a * b),
        CONCAT_C | CONCAT_H | CONCAT_W => {
            let all: Vec<Tensor<4>> = std::iter::once(x).chain(rest).collect();
            let axis = match f.code {
                CONCAT_C => 1,
                CONCAT_H => 2,
                _ => 3,
            };
            if axis == 1 && crate::cpu::is_plain_flex(&all[0]) {
                return crate::cpu::concat_channels(all);
            }
            if axis == 1
                && let Some(y) = crate::cpu::train::concat_channels(&all)
            {
                return y;
            }
            Tensor::cat(all, axis)
        }
        _ => x,
    }
}
