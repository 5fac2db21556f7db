//! Pooling layers in `model.py`.

use super::conv::SAME_PAD_1D;
use super::{Cx, Emit, fpad, symmetric, tuple2};
use crate::export::pads;
use crate::net::layer::{Pool1d, Pool2d, Unpool2d};

const AVG_EXCLUDE: &str = r#"
def avg_pool_exclude_padding(pool, x, pad):
    """Average pooling over F.pad(x, pad) that leaves the padding out of the mean."""
    ones = torch.ones_like(x[:, :1])
    return pool(F.pad(x, pad)) / pool(F.pad(ones, pad))
"#;

/// nn.MaxPool2d (`max`) or nn.AvgPool2d, after an explicit `F.pad` where PyTorch's own padding
/// cannot express MATLAB's.
pub(super) fn pool2d(cx: &mut Cx, p: &Pool2d, max: bool) -> Emit {
    let id = cx.id;
    let pd = pads(&p.padding);
    // PyTorch pads symmetrically, at most half the kernel.
    let builtin = symmetric(pd) && pd.top * 2 <= p.size[0] && pd.left * 2 <= p.size[1];
    let padding = if builtin {
        tuple2([pd.top, pd.left])
    } else {
        "0".into()
    };
    let decl = if max {
        format!(
            "nn.MaxPool2d(kernel_size={}, stride={}, padding={padding})",
            tuple2(p.size),
            tuple2(p.stride)
        )
    } else {
        format!(
            "nn.AvgPool2d(kernel_size={}, stride={}, padding={padding}, count_include_pad={})",
            tuple2(p.size),
            tuple2(p.stride),
            if p.count_include_pad { "True" } else { "False" }
        )
    };
    let x = cx.arg(0, true);
    let call = if builtin {
        format!("self.{id}({x})")
    } else if max {
        format!("self.{id}(F.pad({x}, {}, value=float(\"-inf\")))", fpad(pd))
    } else if p.count_include_pad {
        format!("self.{id}(F.pad({x}, {}))", fpad(pd))
    } else {
        cx.need(AVG_EXCLUDE);
        format!("avg_pool_exclude_padding(self.{id}, {x}, {})", fpad(pd))
    };
    Emit::Module { decl, call }
}

pub(super) fn global_avg(cx: &Cx) -> Emit {
    cx.module("nn.AdaptiveAvgPool2d(1)", true)
}

pub(super) fn global_max(cx: &Cx) -> Emit {
    cx.module("nn.AdaptiveMaxPool2d(1)", true)
}

const AVG_EXCLUDE_1D: &str = r#"
def avg_pool1d_exclude_padding(pool, x, pad):
    """Average pooling over time that leaves padded steps out of the mean."""
    ones = torch.ones_like(x[:, :1])
    return pool(pad(x)) / pool(pad(ones))
"#;

/// nn.MaxPool1d (`max`) or nn.AvgPool1d on `[N, C, T]`, after MATLAB's padding along time.
pub(super) fn pool1d(cx: &mut Cx, p: &Pool1d, max: bool) -> Emit {
    let id = cx.id;
    let x = cx.arg(0, false);
    let value = if max { ", float(\"-inf\")" } else { "" };
    // The padding as a Python function of the input.
    let pad = match p.padding.static_pads(p.size, p.stride, 1) {
        None => {
            cx.need(SAME_PAD_1D);
            format!(
                "lambda v: matlab_same_pad1d(v, {}, {}, 1{value})",
                p.size, p.stride
            )
        }
        Some([a, b]) => {
            if max {
                format!("lambda v: F.pad(v, ({a}, {b}), value=float(\"-inf\"))")
            } else {
                format!("lambda v: F.pad(v, ({a}, {b}))")
            }
        }
    };
    let decl = if max {
        format!("nn.MaxPool1d({}, stride={})", p.size, p.stride)
    } else {
        format!(
            "nn.AvgPool1d({}, stride={}, count_include_pad=True)",
            p.size, p.stride
        )
    };
    let call = if max || p.count_include_pad {
        format!("self.{id}(({pad})({x}))")
    } else {
        cx.need(AVG_EXCLUDE_1D);
        format!("avg_pool1d_exclude_padding(self.{id}, {x}, {pad})")
    };
    Emit::Module { decl, call }
}

/// Global pooling over time: `[N, C, T]` → `[N, C]`.
pub(super) fn global_pool1d(cx: &Cx, module: &str) -> Emit {
    Emit::Module {
        decl: format!("nn.{module}(1)"),
        call: format!("{}.flatten(1)", cx.call(&cx.arg(0, false))),
    }
}

// --- max unpooling ---

const MAX_UNPOOL: &str = r#"
class MaxUnpoolOf(nn.Module):
    """MATLAB's maxUnpooling2dLayer: each value of x goes where the maximum of its window was in
    the max pooling layer's input `pooled_input` (nn.MaxPool2d(return_indices=True) recomputes the
    pooling layer's indices), zeros elsewhere. pad is F.pad's (left, right, top, bottom)."""

    def __init__(self, kernel_size, stride, pad):
        super().__init__()
        self.pad = pad
        self.pool = nn.MaxPool2d(kernel_size, stride, return_indices=True)
        self.unpool = nn.MaxUnpool2d(kernel_size, stride)

    def forward(self, x, pooled_input):
        left, right, top, bottom = self.pad
        padded = F.pad(pooled_input, self.pad, value=float("-inf"))
        _, indices = self.pool(padded)
        y = self.unpool(x, indices, output_size=padded.shape[-2:])
        return y[..., top : y.shape[-2] - bottom, left : y.shape[-1] - right]
"#;

/// MaxUnpoolOf (the helper above) on `[x, the pooling layer's input]`.
pub(super) fn max_unpool2d(cx: &mut Cx, u: &Unpool2d) -> Emit {
    cx.need(MAX_UNPOOL);
    let p = &u.window;
    let decl = format!(
        "MaxUnpoolOf({}, {}, {})",
        tuple2(p.size),
        tuple2(p.stride),
        fpad(pads(&p.padding))
    );
    let call = format!("self.{}({}, {})", cx.id, cx.arg(0, true), cx.arg(1, true));
    Emit::Module { decl, call }
}
