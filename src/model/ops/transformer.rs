//! Transformer layers as Burn ops on sequence activations `[N, C, 1, T]` (the semantics are in
//! `net/layers/transformer.rs`). Everything is tensor ops, so the ops run on every backend and
//! the learned parameters train.

use super::{Op, err, param, set_param};
use crate::model::ModelError;
use crate::net::layer::{Layer, Transformer};
use crate::net::layers::transformer::{SelfAttention, SinusoidalEncoding};
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation;

/// [`Embed`] codes.
const POSITION: usize = 0;
const CONCAT: usize = 1;
const WORD: usize = 2;

/// [`Fixed`] codes.
const SINUSOIDAL: usize = 0;
const FIRST: usize = 1;
const LAST: usize = 2;

/// A transformer layer's op. (Burn's `Module` derive takes no `Box`, hence the large variant.)
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum TransformerOp {
    Embed(Embed),
    Attention(Attention),
    Fixed(Fixed),
}

/// A learned table: position embedding (`[C, MaxPosition]`), embedding concatenation
/// (`[C, 1]`) or word embedding (`[Dimension, NumWords]`).
#[derive(Module, Debug)]
pub struct Embed {
    pub weights: Param<Tensor<2>>,
    pub code: usize,
    /// Word embedding: out-of-range ids map to the last word (else they are refused before the
    /// forward pass, see [`check_tokens`]; the op itself maps them to the last word too, so it
    /// never indexes out of bounds).
    pub map_to_last: bool,
}

/// Parameter-free: sinusoidal encoding (`channels`), first/last time step.
#[derive(Module, Debug)]
pub struct Fixed {
    pub code: usize,
    pub channels: usize,
}

/// Multi-head self-attention. Weights `[out, in]` as MATLAB stores them.
#[derive(Module, Debug)]
pub struct Attention {
    pub query_weights: Param<Tensor<2>>,
    pub key_weights: Param<Tensor<2>>,
    pub value_weights: Param<Tensor<2>>,
    pub output_weights: Param<Tensor<2>>,
    pub query_bias: Param<Tensor<1>>,
    pub key_bias: Param<Tensor<1>>,
    pub value_bias: Param<Tensor<1>>,
    pub output_bias: Param<Tensor<1>>,
    pub heads: usize,
    pub causal: bool,
}

pub(super) fn build(l: &Layer, t: &Transformer, device: &Device) -> Result<Op, ModelError> {
    let op = match t {
        Transformer::PositionEmbedding(p) => TransformerOp::Embed(Embed {
            weights: param::<2>(l, &p.weights, "Weights", device)?,
            code: POSITION,
            map_to_last: false,
        }),
        Transformer::EmbeddingConcat(e) => {
            let w = param::<1>(l, &e.weights, "Weights", device)?;
            let trainable = e.weights.as_ref().is_some_and(|p| p.lr_factor != 0.0);
            let c = w.dims()[0];
            TransformerOp::Embed(Embed {
                weights: Param::from_tensor(w.val().reshape([c, 1])).set_require_grad(trainable),
                code: CONCAT,
                map_to_last: false,
            })
        }
        Transformer::WordEmbedding(w) => TransformerOp::Embed(Embed {
            weights: param::<2>(l, &w.weights, "Weights", device)?,
            code: WORD,
            map_to_last: w.map_to_last,
        }),
        Transformer::SinusoidalEncoding(SinusoidalEncoding { output_size }) => {
            TransformerOp::Fixed(Fixed {
                code: SINUSOIDAL,
                channels: *output_size,
            })
        }
        Transformer::Indexing1d { last } => TransformerOp::Fixed(Fixed {
            code: if *last { LAST } else { FIRST },
            channels: 0,
        }),
        Transformer::SelfAttention(a) => TransformerOp::Attention(attention(l, a, device)?),
    };
    Ok(Op::Transformer(op))
}

fn attention(l: &Layer, a: &SelfAttention, device: &Device) -> Result<Attention, ModelError> {
    if a.num_heads == 0
        || !a.num_key_channels.is_multiple_of(a.num_heads)
        || !a.num_value_channels.is_multiple_of(a.num_heads)
    {
        return Err(err(
            l,
            format!(
                "NumHeads {} does not divide NumKeyChannels {} and NumValueChannels {}",
                a.num_heads, a.num_key_channels, a.num_value_channels
            ),
        ));
    }
    let m = |p, what| param::<2>(l, p, what, device);
    let v = |p, what| param::<1>(l, p, what, device);
    let att = Attention {
        query_weights: m(&a.query_weights, "QueryWeights")?,
        key_weights: m(&a.key_weights, "KeyWeights")?,
        value_weights: m(&a.value_weights, "ValueWeights")?,
        output_weights: m(&a.output_weights, "OutputWeights")?,
        query_bias: v(&a.query_bias, "QueryBias")?,
        key_bias: v(&a.key_bias, "KeyBias")?,
        value_bias: v(&a.value_bias, "ValueBias")?,
        output_bias: v(&a.output_bias, "OutputBias")?,
        heads: a.num_heads,
        causal: a.causal,
    };
    let [kc, c] = att.query_weights.dims();
    let [vc, _] = att.value_weights.dims();
    let ok = att.key_weights.dims() == [kc, c]
        && att.value_weights.dims()[1] == c
        && att.output_weights.dims()[1] == vc
        && att.query_bias.dims() == [kc]
        && att.key_bias.dims() == [kc]
        && att.value_bias.dims() == [vc]
        && att.output_bias.dims() == [att.output_weights.dims()[0]];
    if !ok {
        return Err(err(
            l,
            "the query, key, value and output weights do not fit together",
        ));
    }
    Ok(att)
}

impl TransformerOp {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            TransformerOp::Embed(e) => e.forward(x),
            TransformerOp::Attention(a) => a.forward(x),
            TransformerOp::Fixed(f) => f.forward(x),
        }
    }

    /// Copies the learned parameters into `d`, the description of the layer.
    pub(super) fn write_back(&self, d: &mut Transformer) {
        match (self, d) {
            (TransformerOp::Embed(e), Transformer::PositionEmbedding(p)) => {
                set_param(&mut p.weights, e.weights.val())
            }
            (TransformerOp::Embed(e), Transformer::WordEmbedding(w)) => {
                set_param(&mut w.weights, e.weights.val())
            }
            (TransformerOp::Embed(e), Transformer::EmbeddingConcat(c)) => {
                let w = e.weights.val();
                let n = w.dims()[0];
                set_param(&mut c.weights, w.reshape([n]))
            }
            (TransformerOp::Attention(a), Transformer::SelfAttention(d)) => {
                set_param(&mut d.query_weights, a.query_weights.val());
                set_param(&mut d.key_weights, a.key_weights.val());
                set_param(&mut d.value_weights, a.value_weights.val());
                set_param(&mut d.output_weights, a.output_weights.val());
                set_param(&mut d.query_bias, a.query_bias.val());
                set_param(&mut d.key_bias, a.key_bias.val());
                set_param(&mut d.value_bias, a.value_bias.val());
                set_param(&mut d.output_bias, a.output_bias.val());
            }
            _ => {}
        }
    }
}

impl Embed {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, _, _, t] = x.dims();
        let w = self.weights.val();
        let [c, cols] = w.dims();
        match self.code {
            POSITION => {
                // Positions past MaxPosition are refused before the forward pass
                // (`check_sequences`); here they repeat the last column rather than fail.
                let have = t.min(cols);
                let mut e = w.slice([0..c, 0..have]);
                if have < t {
                    let last = e
                        .clone()
                        .slice([0..c, have - 1..have])
                        .repeat_dim(1, t - have);
                    e = Tensor::cat(vec![e, last], 1);
                }
                e.reshape([1, c, 1, t]).repeat_dim(0, n)
            }
            CONCAT => {
                let first = w.reshape([1, c, 1, 1]).repeat_dim(0, n);
                Tensor::cat(vec![first, x], 3)
            }
            _ => {
                // Token ids 1..NumWords; anything else (NaN included) → the last word.
                let ids = x.reshape([n * t]).round();
                let inside = ids
                    .clone()
                    .greater_equal_elem(1.0)
                    .bool_and(ids.clone().lower_equal_elem(cols as f64));
                let ids = ids
                    .mask_fill(inside.bool_not(), cols as f64)
                    .sub_scalar(1.0);
                let rows = w.transpose().select(0, ids.int()); // [N*T, C]
                rows.reshape([n, t, c])
                    .swap_dims(1, 2)
                    .reshape([n, c, 1, t])
            }
        }
    }
}

impl Fixed {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, t] = x.dims();
        match self.code {
            FIRST => x.slice([0..n, 0..c, 0..h, 0..1]),
            LAST => x.slice([0..n, 0..c, 0..h, t - 1..t]),
            _ => {
                let d = self.channels;
                let e = sinusoidal_table(d, t);
                Tensor::<4>::from_data(TensorData::new(e, [1, d, 1, t]), &x.device())
                    .repeat_dim(0, n)
            }
        }
    }
}

/// The sinusoidal encoding `[d, t]` (row-major: channel, position), positions `0..t`:
/// channel `2k` is `sin(p / 10000^(2k/d))`, channel `2k+1` `cos(p / 10000^(2k/d))`.
pub fn sinusoidal_table(d: usize, t: usize) -> Vec<f32> {
    let mut e = vec![0f32; d * t];
    for ch in 0..d {
        let k2 = (ch - ch % 2) as f64;
        let freq = 10000f64.powf(-k2 / d as f64);
        for p in 0..t {
            let a = p as f64 * freq;
            e[ch * t + p] = if ch % 2 == 0 { a.sin() } else { a.cos() } as f32;
        }
    }
    e
}

impl Attention {
    /// `[N, C, 1, T]` → `[N, OutputSize, 1, T]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, _, t] = x.dims();
        let hds = self.heads;
        let xs = x.reshape([n, c, t]).swap_dims(1, 2).reshape([n * t, c]);
        // [N*T, out] → [N, heads, T, out/heads].
        let project = |w: Tensor<2>, b: Tensor<1>| {
            let y = xs.clone().matmul(w.transpose()).add(b.unsqueeze::<2>());
            let k = y.dims()[1];
            y.reshape([n, t, hds, k / hds]).swap_dims(1, 2)
        };
        let q = project(self.query_weights.val(), self.query_bias.val());
        let k = project(self.key_weights.val(), self.key_bias.val());
        let v = project(self.value_weights.val(), self.value_bias.val());
        let dk = q.dims()[3];
        let mut scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (dk as f64).sqrt());
        if self.causal {
            let mut mask = vec![0f32; t * t];
            for i in 0..t {
                for j in i + 1..t {
                    mask[i * t + j] = f32::NEG_INFINITY;
                }
            }
            let mask =
                Tensor::<4>::from_data(TensorData::new(mask, [1, 1, t, t]), &scores.device());
            scores = scores.add(mask);
        }
        let weights = activation::softmax(scores, 3);
        let heads = weights.matmul(v); // [N, heads, T, dv]
        let dv = heads.dims()[3];
        let merged = heads.swap_dims(1, 2).reshape([n * t, hds * dv]);
        let y = merged
            .matmul(self.output_weights.val().transpose())
            .add(self.output_bias.val().unsqueeze::<2>());
        let o = y.dims()[1];
        y.reshape([n, t, o]).swap_dims(1, 2).reshape([n, o, 1, t])
    }
}

/// Refuses, before a forward pass, what the transformer layers cannot take: token ids that are
/// not integers in `1..NumWords` at a word embedding fed by the input layer (OOVMode 'error'),
/// and sequences longer than a position embedding's `MaxPosition`. The error names the layer,
/// the sequence and the time step (1-based, as MATLAB counts).
pub(crate) fn check_sequences(
    net: &crate::model::MatNet,
    seqs: &[crate::model::Sequence],
) -> Result<(), ModelError> {
    let fail = |name: &str, class: &str, msg: String| ModelError::Layer {
        layer: name.to_string(),
        class: class.into(),
        msg,
    };
    for node in &net.nodes {
        let Op::Transformer(TransformerOp::Embed(e)) = &node.op else {
            continue;
        };
        let cols = e.weights.dims()[1];
        match e.code {
            POSITION => {
                if let Some((i, s)) = seqs.iter().enumerate().find(|(_, s)| s.steps > cols) {
                    return Err(fail(
                        &node.name,
                        "PositionEmbeddingLayer",
                        format!(
                            "sequence {} has {} time steps, more than the position embedding's MaxPosition {cols}",
                            i + 1,
                            s.steps
                        ),
                    ));
                }
            }
            WORD if !e.map_to_last && node.inputs == [0] => {
                for (i, s) in seqs.iter().enumerate() {
                    if let Some((t, v)) = s
                        .data
                        .iter()
                        .enumerate()
                        .find(|(_, v)| !(v.fract() == 0.0 && **v >= 1.0 && **v <= cols as f32))
                    {
                        return Err(fail(
                            &node.name,
                            "WordEmbeddingLayer",
                            format!(
                                "sequence {}, element {} (time step {}): token id {v} is not an integer in 1..{cols} (NumWords; OOVMode 'error')",
                                i + 1,
                                t + 1,
                                t % s.steps.max(1) + 1
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

impl crate::model::MatNet {
    /// What the transformer layers refuse in `seqs` before a forward pass (token ids outside
    /// `1..NumWords` with OOVMode 'error', sequences longer than `MaxPosition`); also run by
    /// [`MatNet::predict_sequences`](crate::model::MatNet::predict_sequences).
    pub fn check_sequences(&self, seqs: &[crate::model::Sequence]) -> Result<(), ModelError> {
        check_sequences(self, seqs)
    }
}
