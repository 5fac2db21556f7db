//! Normalization layers in `model.rs`.

use super::{Cx, Stmt, f64_lit};
use crate::export::bn_epsilon;
use crate::export::{ExportError, layer_err};
use crate::net::layer::{BatchNorm, GroupNorm, LayerNorm, Lrn};

pub(super) fn batch_norm(cx: &mut Cx, b: &BatchNorm) -> Stmt {
    cx.import("use burn::nn::{BatchNorm, BatchNormConfig};");
    cx.field(
        "BatchNorm",
        format!(
            "BatchNormConfig::new({}).with_epsilon({}).init(device)",
            b.channels,
            f64_lit(bn_epsilon(b))
        ),
    );
    cx.forward(false)
}

pub(super) fn group_norm(cx: &mut Cx, g: &GroupNorm) -> Stmt {
    cx.import("use burn::nn::{GroupNorm, GroupNormConfig};");
    cx.field(
        "GroupNorm",
        format!(
            "GroupNormConfig::new({}, {}).with_epsilon({}).init(device)",
            g.groups,
            g.channels,
            f64_lit(g.epsilon)
        ),
    );
    cx.forward(true)
}

pub(super) fn lrn(cx: &mut Cx, lrn: &Lrn) -> Stmt {
    cx.import("use burn::nn::norm::{LocalResponseNorm, LocalResponseNormConfig};");
    // Burn computes x / (k + alpha * mean_window(x^2))^beta with MATLAB's window placement.
    cx.field(
        "LocalResponseNorm",
        format!(
            "LocalResponseNormConfig::new({}).with_alpha({}).with_beta({}).with_k({}).init()",
            lrn.window,
            f64_lit(lrn.alpha),
            f64_lit(lrn.beta),
            f64_lit(lrn.k)
        ),
    );
    cx.forward(true)
}

/// layerNormalizationLayer on images and features, statistics over all of an observation's
/// values: Burn's `GroupNorm` with one group (the same computation and weights as PyTorch's
/// `GroupNorm(1, C)`). Statistics per position have no Burn module and are refused.
pub(super) fn layer_norm(cx: &mut Cx, n: &LayerNorm) -> Result<Stmt, ExportError> {
    if n.channel_only(false) {
        return Err(layer_err(
            cx.l,
            format!(
                "layer normalization with OperationDimension '{}' (statistics per position) \
                 is not supported by the Rust source export (use ONNX or PyTorch)",
                n.operation_dimension
            ),
        ));
    }
    let g = GroupNorm {
        groups: 1,
        channels: n.channels,
        epsilon: n.epsilon,
        scale: None,
        offset: None,
    };
    Ok(group_norm(cx, &g))
}
