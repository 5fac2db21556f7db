//! Transformer layers in `model.py`: small helper modules written with explicit tensor ops
//! (self-attention through `F.scaled_dot_product_attention`), and their state dict entries.

use super::{Cx, Emit};
use crate::export::{Blob, ExportError, layer_err, param};
use crate::net::layer::{self, Layer, Transformer};

const POSITION_EMBEDDING: &str = r#"
class PositionEmbedding(nn.Module):
    """positionEmbeddingLayer: the learned embedding Weights[:, :T] of each time step."""

    def __init__(self, channels, max_position):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, max_position))

    def forward(self, x):
        t = x.shape[2]
        if t > self.weight.shape[1]:
            raise ValueError(f"{t} time steps: more than MaxPosition {self.weight.shape[1]}")
        return self.weight[:, :t].unsqueeze(0).expand(x.shape[0], -1, -1)
"#;

const SINUSOIDAL: &str = r#"
class SinusoidalPositionEncoding(nn.Module):
    """sinusoidalPositionEncodingLayer: channel 2k = sin(p / 10000^(2k/d)), 2k+1 = cos(..),
    positions p = 0..T-1."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        d, t = self.channels, x.shape[2]
        ch = torch.arange(d, dtype=torch.float64)
        freq = torch.pow(10000.0, -(ch - ch % 2) / d)
        angles = freq[:, None] * torch.arange(t, dtype=torch.float64)[None, :]
        table = torch.where((ch % 2 == 0)[:, None], torch.sin(angles), torch.cos(angles))
        return table.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
"#;

const SELF_ATTENTION: &str = r#"
class SelfAttention(nn.Module):
    """selfAttentionLayer on [N, C, T]: per time step Q, K, V = W x + b, split into heads along
    channels, scaled dot-product attention (scale 1/sqrt(key channels per head), causal mask for
    AttentionMask 'causal'), heads merged along channels, then the output projection."""

    def __init__(self, channels, key_channels, value_channels, output_size, heads, causal):
        super().__init__()
        self.q_weight = nn.Parameter(torch.zeros(key_channels, channels))
        self.q_bias = nn.Parameter(torch.zeros(key_channels))
        self.k_weight = nn.Parameter(torch.zeros(key_channels, channels))
        self.k_bias = nn.Parameter(torch.zeros(key_channels))
        self.v_weight = nn.Parameter(torch.zeros(value_channels, channels))
        self.v_bias = nn.Parameter(torch.zeros(value_channels))
        self.out_weight = nn.Parameter(torch.zeros(output_size, value_channels))
        self.out_bias = nn.Parameter(torch.zeros(output_size))
        self.heads, self.causal = heads, causal

    def forward(self, x):
        n, _, t = x.shape
        x = x.transpose(1, 2)

        def split(w, b):
            y = F.linear(x, w, b)
            return y.reshape(n, t, self.heads, -1).transpose(1, 2)

        q = split(self.q_weight, self.q_bias)
        k = split(self.k_weight, self.k_bias)
        v = split(self.v_weight, self.v_bias)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        y = y.transpose(1, 2).reshape(n, t, -1)
        return F.linear(y, self.out_weight, self.out_bias).transpose(1, 2)
"#;

const INDEXING: &str = r#"
class Indexing1d(nn.Module):
    """indexing1dLayer: the first or last time step, [N, C, T] -> [N, C]."""

    def __init__(self, last):
        super().__init__()
        self.index = -1 if last else 0

    def forward(self, x):
        return x[:, :, self.index]
"#;

const EMBEDDING_CONCAT: &str = r#"
class EmbeddingConcatenation(nn.Module):
    """embeddingConcatenationLayer: the learned vector as a new first time step."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        first = self.weight[None, :, None].expand(x.shape[0], -1, 1)
        return torch.cat([first, x], dim=2)
"#;

const WORD_EMBEDDING: &str = r#"
class WordEmbedding(nn.Module):
    """wordEmbeddingLayer: token ids 1..NumWords in [N, 1, T] -> Weights[:, id] as [N, D, T].
    Ids are rounded; with OOVMode 'error' other values raise, with 'map-to-last' they map to
    the last word."""

    def __init__(self, dimension, num_words, map_to_last):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dimension, num_words))
        self.map_to_last = map_to_last

    def forward(self, x):
        ids = x[:, 0, :]
        v = self.weight.shape[1]
        r = torch.round(ids)
        bad = (r < 1) | (r > v) | torch.isnan(r)
        if not self.map_to_last and ((ids != r) | bad).any():
            raise ValueError(f"token ids must be integers in 1..{v} (OOVMode 'error')")
        r = torch.where(bad, torch.full_like(r, v), r)
        return F.embedding(r.long() - 1, self.weight.t()).transpose(1, 2)
"#;

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

pub(super) fn transformer(cx: &mut Cx, t: &Transformer) -> Result<Emit, ExportError> {
    let l = cx.l;
    let (helper, decl) = match t {
        Transformer::PositionEmbedding(p) => {
            let w = param(l, &p.weights, "Weights")?;
            (
                POSITION_EMBEDDING,
                format!("PositionEmbedding({}, {})", w.shape[0], w.shape[1]),
            )
        }
        Transformer::SinusoidalEncoding(s) => (
            SINUSOIDAL,
            format!("SinusoidalPositionEncoding({})", s.output_size),
        ),
        Transformer::SelfAttention(a) => {
            let wq = param(l, &a.query_weights, "QueryWeights")?;
            let wv = param(l, &a.value_weights, "ValueWeights")?;
            let wo = param(l, &a.output_weights, "OutputWeights")?;
            (
                SELF_ATTENTION,
                format!(
                    "SelfAttention({}, {}, {}, {}, heads={}, causal={})",
                    wq.shape[1],
                    wq.shape[0],
                    wv.shape[0],
                    wo.shape[0],
                    a.num_heads,
                    py_bool(a.causal)
                ),
            )
        }
        Transformer::Indexing1d { last } => {
            (INDEXING, format!("Indexing1d(last={})", py_bool(*last)))
        }
        Transformer::EmbeddingConcat(e) => {
            let w = param(l, &e.weights, "Weights")?;
            (
                EMBEDDING_CONCAT,
                format!("EmbeddingConcatenation({})", w.numel()),
            )
        }
        Transformer::WordEmbedding(w) => {
            let ws = param(l, &w.weights, "Weights")?;
            (
                WORD_EMBEDDING,
                format!(
                    "WordEmbedding({}, {}, map_to_last={})",
                    ws.shape[0],
                    ws.shape[1],
                    py_bool(w.map_to_last)
                ),
            )
        }
    };
    if cx.plan.in_rank(cx.i, 0) != 3 {
        return Err(layer_err(l, "a transformer layer needs sequence input"));
    }
    cx.need(helper);
    Ok(cx.module(decl, false))
}

/// The layer's state dict entries (`{id}.weight`, `{id}.q_weight`, ...), in the stored layouts.
pub(crate) fn state_dict(
    l: &Layer,
    t: &Transformer,
    id: &str,
    out: &mut Vec<(String, Blob)>,
) -> Result<(), ExportError> {
    let mut put = |name: &str, p: &Option<layer::Param>, what: &str| -> Result<(), ExportError> {
        let v = param(l, p, what)?;
        out.push((
            format!("{id}.{name}"),
            Blob::f32(v.shape.clone(), v.data.clone()),
        ));
        Ok(())
    };
    match t {
        Transformer::PositionEmbedding(p) => put("weight", &p.weights, "Weights"),
        Transformer::EmbeddingConcat(e) => put("weight", &e.weights, "Weights"),
        Transformer::WordEmbedding(w) => put("weight", &w.weights, "Weights"),
        Transformer::SelfAttention(a) => {
            put("q_weight", &a.query_weights, "QueryWeights")?;
            put("q_bias", &a.query_bias, "QueryBias")?;
            put("k_weight", &a.key_weights, "KeyWeights")?;
            put("k_bias", &a.key_bias, "KeyBias")?;
            put("v_weight", &a.value_weights, "ValueWeights")?;
            put("v_bias", &a.value_bias, "ValueBias")?;
            put("out_weight", &a.output_weights, "OutputWeights")?;
            put("out_bias", &a.output_bias, "OutputBias")
        }
        Transformer::SinusoidalEncoding(_) | Transformer::Indexing1d { .. } => Ok(()),
    }
}
