//! Normalization layers in `model.py`.

use super::{Cx, Emit};
use crate::export::{bn_epsilon, float_lit};
use crate::net::layer::{BatchNorm, GroupNorm, LayerNorm, Lrn};

const LRN: &str = r#"
class MatlabLRN(nn.Module):
    """crossChannelNormalizationLayer with an even window: MATLAB's window takes (size - 1) // 2
    channels before and size // 2 after (nn.LocalResponseNorm does the opposite)."""

    def __init__(self, size, alpha, beta, k):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        sq = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, (self.size - 1) // 2, self.size // 2))
        mean = F.avg_pool3d(sq, (self.size, 1, 1), stride=1).squeeze(1)
        return x / (self.k + self.alpha * mean).pow(self.beta)
"#;

/// nn.BatchNorm2d on images, nn.BatchNorm1d on features and sequences.
pub(super) fn batch_norm(cx: &Cx, b: &BatchNorm) -> Emit {
    let dim = if cx.plan.in_rank(cx.i, 0) == 4 {
        "2d"
    } else {
        "1d"
    };
    cx.module(
        format!(
            "nn.BatchNorm{dim}({}, eps={})",
            b.channels,
            float_lit(bn_epsilon(b))
        ),
        false,
    )
}

pub(super) fn group_norm(cx: &Cx, g: &GroupNorm) -> Emit {
    cx.module(
        format!(
            "nn.GroupNorm({}, {}, eps={})",
            g.groups,
            g.channels,
            float_lit(g.epsilon)
        ),
        true,
    )
}

/// nn.LocalResponseNorm for an odd window, the MatlabLRN helper for an even one.
pub(super) fn lrn(cx: &mut Cx, n: &Lrn) -> Emit {
    // x / (k + alpha * sum_window(x^2) / n)^beta: MATLAB's formula and PyTorch's.
    let alpha = float_lit(n.alpha);
    let decl = if n.window % 2 == 1 {
        format!(
            "nn.LocalResponseNorm({}, alpha={alpha}, beta={}, k={})",
            n.window,
            float_lit(n.beta),
            float_lit(n.k)
        )
    } else {
        cx.need(LRN);
        format!(
            "MatlabLRN({}, alpha={alpha}, beta={}, k={})",
            n.window,
            float_lit(n.beta),
            float_lit(n.k)
        )
    };
    cx.module(decl, true)
}

const LAYER_NORM: &str = r#"
class MatlabLayerNorm(nn.Module):
    """layerNormalizationLayer: statistics over the channels at each position (channel_only) or
    over all of an observation's values, then a per-channel scale and offset."""

    def __init__(self, channels, eps, channel_only):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps, self.channel_only = eps, channel_only

    def forward(self, x):
        dims = (1,) if self.channel_only else tuple(range(1, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = (x - mean) / torch.sqrt(var + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)
"#;

/// The MatlabLayerNorm helper (on `[N, C]`, `[N, C, T]` or `[N, C, H, W]`).
pub(super) fn layer_norm(cx: &mut Cx, n: &LayerNorm) -> Emit {
    cx.need(LAYER_NORM);
    let sequence = cx.plan.in_rank(cx.i, 0) == 3;
    cx.module(
        format!(
            "MatlabLayerNorm({}, eps={}, channel_only={})",
            n.channels,
            float_lit(n.epsilon),
            if n.channel_only(sequence) {
                "True"
            } else {
                "False"
            }
        ),
        false,
    )
}
