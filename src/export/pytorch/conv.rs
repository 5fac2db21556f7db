//! Convolutions and fully connected layers in `model.py`.

use super::{Cx, Emit, fpad, symmetric, tuple2};
use crate::export::{ExportError, pads, param};
use crate::net::layer::{Conv2d, ConvTranspose2d, FullyConnected, Padding};
use std::fmt::Write;

fn zero(p: Padding) -> bool {
    p.top + p.bottom + p.left + p.right == 0
}

/// nn.Conv2d, after an explicit `F.pad` where MATLAB's padding is asymmetric.
pub(super) fn conv2d(cx: &Cx, c: &Conv2d) -> Emit {
    let p = pads(&c.padding);
    let x = cx.arg(0, true);
    let (padding, x) = if symmetric(p) {
        (tuple2([p.top, p.left]), x)
    } else {
        ("0".into(), format!("F.pad({x}, {})", fpad(p)))
    };
    let mut decl = format!(
        "nn.Conv2d({}, {}, kernel_size={}, stride={}, padding={padding}",
        c.in_channels,
        c.filters,
        tuple2(c.filter),
        tuple2(c.stride)
    );
    if c.dilation != [1, 1] {
        write!(decl, ", dilation={}", tuple2(c.dilation)).unwrap();
    }
    if c.groups != 1 {
        write!(decl, ", groups={}", c.groups).unwrap();
    }
    if c.bias.is_none() {
        decl.push_str(", bias=False");
    }
    decl.push(')');
    Emit::Module {
        decl,
        call: cx.call(&x),
    }
}

/// nn.ConvTranspose2d, its output sliced by MATLAB's cropping.
pub(super) fn conv_transpose2d(cx: &Cx, c: &ConvTranspose2d) -> Emit {
    let crop = pads(&c.cropping);
    let mut decl = format!(
        "nn.ConvTranspose2d({}, {}, kernel_size={}, stride={}",
        c.in_channels,
        c.filters,
        tuple2(c.filter),
        tuple2(c.stride)
    );
    if c.groups != 1 {
        write!(decl, ", groups={}", c.groups).unwrap();
    }
    if c.bias.is_none() {
        decl.push_str(", bias=False");
    }
    decl.push(')');
    let mut call = cx.call(&cx.arg(0, true));
    if !zero(crop) {
        let end = |p: usize| {
            if p == 0 {
                String::new()
            } else {
                format!("-{p}")
            }
        };
        write!(
            call,
            "[:, :, {}:{}, {}:{}]  # MATLAB's cropping",
            crop.top,
            end(crop.bottom),
            crop.left,
            end(crop.right)
        )
        .unwrap();
    }
    Emit::Module { decl, call }
}

/// nn.Linear: per time step on a sequence, after an NCHW flatten on an image.
pub(super) fn fully_connected(cx: &Cx, f: &FullyConnected) -> Result<Emit, ExportError> {
    let w = param(cx.l, &f.weights, "Weights")?;
    let n_in = w.shape.get(1).copied().unwrap_or(0);
    let bias = if f.bias.is_none() { ", bias=False" } else { "" };
    let decl = format!("nn.Linear({n_in}, {}{bias})", f.outputs);
    let x = cx.arg(0, false);
    let call = match cx.plan.in_rank(cx.i, 0) {
        3 => format!(
            "self.{}({x}.transpose(1, 2)).transpose(1, 2)  # per time step",
            cx.id
        ),
        4 => cx.call(&format!("torch.flatten({x}, 1)")),
        _ => cx.call(&x),
    };
    Ok(Emit::Module { decl, call })
}
