//! Convolutions and fully connected layers in `model.py`.

use super::{Cx, Emit, fpad, symmetric, tuple2};
use crate::export::{ExportError, pads, param};
use crate::net::layer::{Conv1d, ConvTranspose1d};
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

/// MATLAB's 'same' padding along time, computed from the input length as MATLAB does.
pub(super) const SAME_PAD_1D: &str = r#"
def matlab_same_pad1d(x, k, s, d=1, value=0.0):
    """MATLAB's 'same' padding along time: ceil(T / s) outputs, the extra step at the end."""
    t = x.shape[-1]
    total = max((-(-t // s) - 1) * s + (k - 1) * d + 1 - t, 0)
    return F.pad(x, (total // 2, total - total // 2), value=value)
"#;

/// nn.Conv1d on `[N, C, T]`, after an explicit `F.pad` for causal, asymmetric or 'same' padding.
pub(super) fn conv1d(cx: &mut Cx, c: &Conv1d) -> Emit {
    let x = cx.arg(0, false);
    let (padding, x) = match c.padding.static_pads(c.filter, c.stride, c.dilation) {
        Some([a, b]) if a == b => (a.to_string(), x),
        Some([a, b]) => ("0".to_string(), format!("F.pad({x}, ({a}, {b}))")),
        None => {
            cx.need(SAME_PAD_1D);
            (
                "0".to_string(),
                format!(
                    "matlab_same_pad1d({x}, {}, {}, {})",
                    c.filter, c.stride, c.dilation
                ),
            )
        }
    };
    let mut decl = format!(
        "nn.Conv1d({}, {}, kernel_size={}, stride={}, padding={padding}",
        c.in_channels, c.filters, c.filter, c.stride
    );
    if c.dilation != 1 {
        write!(decl, ", dilation={}", c.dilation).unwrap();
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

/// nn.ConvTranspose1d on `[N, C, T]`, its output sliced by MATLAB's cropping.
pub(super) fn conv_transpose1d(cx: &Cx, c: &ConvTranspose1d) -> Emit {
    let mut decl = format!(
        "nn.ConvTranspose1d({}, {}, kernel_size={}, stride={}",
        c.in_channels, c.filters, c.filter, c.stride
    );
    if c.bias.is_none() {
        decl.push_str(", bias=False");
    }
    decl.push(')');
    let mut call = cx.call(&cx.arg(0, false));
    let [a, b] = c.cropping;
    if a + b > 0 {
        let end = if b == 0 {
            String::new()
        } else {
            format!("-{b}")
        };
        write!(call, "[:, :, {a}:{end}]  # MATLAB's cropping").unwrap();
    }
    Emit::Module { decl, call }
}
