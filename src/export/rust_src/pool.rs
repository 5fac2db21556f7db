//! Pooling layers in `model.rs`.

use super::{Cx, Stmt, arr2};
use crate::export::pads;
use crate::net::layer::Pool2d;

/// MaxPool2d (`max`) or AvgPool2d with MATLAB's padding.
pub(super) fn pool2d(cx: &mut Cx, p: &Pool2d, max: bool) -> Stmt {
    cx.import("use burn::nn::PaddingConfig2d;");
    let pd = pads(&p.padding);
    let padding = format!(
        "PaddingConfig2d::Explicit({}, {}, {}, {})",
        pd.top, pd.left, pd.bottom, pd.right
    );
    if max {
        cx.import("use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};");
        cx.field(
            "MaxPool2d",
            format!(
                "MaxPool2dConfig::new({}).with_strides({}).with_padding({padding}).init()",
                arr2(p.size),
                arr2(p.stride)
            ),
        );
    } else {
        cx.import("use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};");
        cx.field(
            "AvgPool2d",
            format!(
                "AvgPool2dConfig::new({}).with_strides({}).with_padding({padding}).with_count_include_pad({}).init()",
                arr2(p.size),
                arr2(p.stride),
                p.count_include_pad
            ),
        );
    }
    cx.forward(true)
}

pub(super) fn global_avg(cx: &mut Cx) -> Stmt {
    Stmt::Let(format!("{}.mean_dim(3).mean_dim(2)", cx.arg(0, true)))
}

pub(super) fn global_max(cx: &mut Cx) -> Stmt {
    Stmt::Let(format!("{}.max_dim(3).max_dim(2)", cx.arg(0, true)))
}
