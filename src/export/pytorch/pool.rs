//! Pooling layers in `model.py`.

use super::{Cx, Emit, fpad, symmetric, tuple2};
use crate::export::pads;
use crate::net::layer::Pool2d;

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
