//! Convolutions and fully connected layers in `model.rs`.

use super::{Cx, Stmt, arr2};
use crate::export::{ExportError, pads, param};
use crate::net::layer::{Conv2d, ConvTranspose2d, FullyConnected};

pub(super) fn conv2d(cx: &mut Cx, c: &Conv2d) -> Stmt {
    cx.import("use burn::nn::conv::{Conv2d, Conv2dConfig};");
    cx.import("use burn::nn::PaddingConfig2d;");
    let p = pads(&c.padding);
    cx.field(
        "Conv2d",
        format!(
            "Conv2dConfig::new([{}, {}], {}).with_stride({}).with_dilation({}).with_groups({}).with_padding(PaddingConfig2d::Explicit({}, {}, {}, {})).with_bias({}).init(device)",
            c.in_channels,
            c.filters,
            arr2(c.filter),
            arr2(c.stride),
            arr2(c.dilation),
            c.groups,
            p.top,
            p.left,
            p.bottom,
            p.right,
            c.bias.is_some()
        ),
    );
    cx.forward(true)
}

/// ConvTranspose2d, its output sliced by MATLAB's cropping.
pub(super) fn conv_transpose2d(cx: &mut Cx, c: &ConvTranspose2d) -> Stmt {
    cx.import("use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};");
    cx.field(
        "ConvTranspose2d",
        format!(
            "ConvTranspose2dConfig::new([{}, {}], {}).with_stride({}).with_groups({}).with_bias({}).init(device)",
            c.in_channels,
            c.filters,
            arr2(c.filter),
            arr2(c.stride),
            c.groups,
            c.bias.is_some()
        ),
    );
    let crop = pads(&c.cropping);
    if crop.top + crop.bottom + crop.left + crop.right == 0 {
        return cx.forward(true);
    }
    let id = cx.id;
    let x = cx.arg(0, true);
    Stmt::Let(format!(
        "{{\n            // MATLAB's cropping [top bottom left right] = [{} {} {} {}]\n            let y = self.{id}.forward({x});\n            let [n, c, h, w] = y.dims();\n            y.slice([0..n, 0..c, {}..h - {}, {}..w - {}])\n        }}",
        crop.top, crop.bottom, crop.left, crop.right, crop.top, crop.bottom, crop.left, crop.right
    ))
}

/// Linear, after an NCHW flatten on an image.
pub(super) fn fully_connected(cx: &mut Cx, f: &FullyConnected) -> Result<Stmt, ExportError> {
    cx.import("use burn::nn::{Linear, LinearConfig};");
    let w = param(cx.l, &f.weights, "Weights")?;
    let n_in = w.shape.get(1).copied().unwrap_or(0);
    cx.field(
        "Linear",
        format!(
            "LinearConfig::new({n_in}, {}).with_bias({}).init(device)",
            f.outputs,
            f.bias.is_some()
        ),
    );
    if cx.plan.in_rank(cx.i, 0) != 4 {
        return Ok(cx.forward(false));
    }
    // The weight columns follow an NCHW flatten.
    let x = cx.arg(0, false);
    Ok(Stmt::Let(format!(
        "self.{}.forward({x}.flatten::<2>(1, 3))",
        cx.id
    )))
}
