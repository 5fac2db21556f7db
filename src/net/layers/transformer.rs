//! Transformer layers on `C x T` sequences: learned position embedding, sinusoidal position
//! encoding, (multi-head) self-attention, 1-D indexing, embedding concatenation and word
//! embedding.
//!
//! Semantics, from MATLAB's documentation (R2023b and later):
//! - `positionEmbeddingLayer(OutputSize, MaxPosition)`: outputs `Weights(:, 1:T)`, the learned
//!   embedding of each time step's position (the input's values are not used; an addition layer
//!   usually adds it to the input). `Weights` is `OutputSize x MaxPosition`.
//! - `sinusoidalPositionEncodingLayer(OutputSize)`: outputs, for each time step, the fixed
//!   encoding `e(2k) = sin(p / 10000^(2k/d))`, `e(2k+1) = cos(p / 10000^(2k/d))` (`d` =
//!   OutputSize, channels 0-based) with positions `p = 0, 1, ..., T-1`. **[UNVERIFIED]**: no
//!   fixture has this layer; the interleaving and the first position (0) follow Vaswani et al.,
//!   which MATLAB's documentation cites.
//! - `selfAttentionLayer(NumHeads, NumKeyChannels)`: `Q = Wq X + bq`, `K = Wk X + bk`,
//!   `V = Wv X + bv` (per time step), split along channels into `NumHeads` contiguous blocks;
//!   per head `A = softmax_keys(K_h' Q_h / sqrt(dk))` with `dk = NumKeyChannels / NumHeads`
//!   (the "auto" scale of MATLAB's attention), keys after the query masked out for
//!   AttentionMask 'causal'; the heads' `V_h A` stacked back along channels and
//!   `Y = Wo [..] + bo`. Dropout is off at inference.
//! - `indexing1dLayer("first"|"last")`: the first or last time step (the output is no longer a
//!   sequence).
//! - `embeddingConcatenationLayer`: prepends the learned vector `Weights` (`C x 1`) as a new first
//!   time step (`C x (T+1)`). **[UNVERIFIED]** against MATLAB (no fixture).
//! - `wordEmbeddingLayer(Dimension, NumWords)`: the input (one channel) holds token indices
//!   `1..NumWords`; the output is `Weights(:, id)` per time step (`Dimension x T`). OOVMode 'error'
//!   (the default) refuses other values; 'map-to-last' maps them to the last word.

use serde::{Deserialize, Serialize};

use crate::net::error::{Ctx, NetError};
use crate::net::fields::Fields;
use crate::net::layer::{LayerKind, Param, Shape, Tensor};
use crate::net::layout;
use crate::net::shape::{self, Declared};

use super::{Imported, Names, number, param_numel, param_tensor, unsupported};

/// A transformer layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Transformer {
    PositionEmbedding(PositionEmbedding),
    SinusoidalEncoding(SinusoidalEncoding),
    SelfAttention(Box<SelfAttention>),
    /// `indexing1dLayer`: true for 'last', false for 'first'.
    Indexing1d {
        last: bool,
    },
    EmbeddingConcat(EmbeddingConcat),
    WordEmbedding(WordEmbedding),
}

/// `positionEmbeddingLayer` (temporal positions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionEmbedding {
    pub output_size: usize,
    pub max_position: usize,
    /// `Weights` `[OutputSize, MaxPosition]` (row-major: row = channel).
    pub weights: Option<Param>,
}

/// `sinusoidalPositionEncodingLayer` (temporal-index positions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinusoidalEncoding {
    pub output_size: usize,
}

/// `selfAttentionLayer`. Weights as MATLAB stores them, `[out, in]` row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfAttention {
    pub input_size: usize,
    pub num_heads: usize,
    pub num_key_channels: usize,
    pub num_value_channels: usize,
    pub output_size: usize,
    /// AttentionMask 'causal' (else 'none').
    pub causal: bool,
    pub dropout: f64,
    /// `[NumKeyChannels, C]`.
    pub query_weights: Option<Param>,
    /// `[NumKeyChannels, C]`.
    pub key_weights: Option<Param>,
    /// `[NumValueChannels, C]`.
    pub value_weights: Option<Param>,
    /// `[OutputSize, NumValueChannels]`.
    pub output_weights: Option<Param>,
    pub query_bias: Option<Param>,
    pub key_bias: Option<Param>,
    pub value_bias: Option<Param>,
    pub output_bias: Option<Param>,
}

/// `embeddingConcatenationLayer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingConcat {
    /// Channels (0 until known).
    pub input_size: usize,
    /// `Weights` `[C]`.
    pub weights: Option<Param>,
}

/// `wordEmbeddingLayer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordEmbedding {
    pub dimension: usize,
    pub num_words: usize,
    /// OOVMode 'map-to-last' (else 'error').
    pub map_to_last: bool,
    /// `Weights` `[Dimension, NumWords]` (row-major: row = channel, column = word).
    pub weights: Option<Param>,
}

pub const POSITION_EMBEDDING: Names = Names {
    kind: "PositionEmbedding",
    stem: "posemb",
};
pub const SINUSOIDAL_ENCODING: Names = Names {
    kind: "SinusoidalPositionEncoding",
    stem: "posenc",
};
pub const SELF_ATTENTION: Names = Names {
    kind: "SelfAttention",
    stem: "selfattention",
};
pub const INDEXING_1D: Names = Names {
    kind: "Indexing1d",
    stem: "index1d",
};
pub const EMBEDDING_CONCAT: Names = Names {
    kind: "EmbeddingConcat",
    stem: "embedconcat",
};
pub const WORD_EMBEDDING: Names = Names {
    kind: "WordEmbedding",
    stem: "embedding",
};

impl Transformer {
    pub(crate) fn names(&self) -> Names {
        match self {
            Transformer::PositionEmbedding(_) => POSITION_EMBEDDING,
            Transformer::SinusoidalEncoding(_) => SINUSOIDAL_ENCODING,
            Transformer::SelfAttention(_) => SELF_ATTENTION,
            Transformer::Indexing1d { .. } => INDEXING_1D,
            Transformer::EmbeddingConcat(_) => EMBEDDING_CONCAT,
            Transformer::WordEmbedding(_) => WORD_EMBEDDING,
        }
    }

    /// The `inspect` description, with `C x T` sizes.
    pub(crate) fn describe(&self) -> String {
        match self {
            Transformer::PositionEmbedding(p) => format!(
                "learned position embedding, {} x T (T <= MaxPosition {})",
                p.output_size, p.max_position
            ),
            Transformer::SinusoidalEncoding(s) => {
                format!("sinusoidal position encoding, {} x T", s.output_size)
            }
            Transformer::SelfAttention(a) => {
                let mut d = format!(
                    "self-attention, {} heads, {} key and {} value channels, {} x T -> {} x T",
                    a.num_heads,
                    a.num_key_channels,
                    a.num_value_channels,
                    a.input_size,
                    a.output_size
                );
                if a.causal {
                    d += ", causal mask";
                }
                if a.dropout > 0.0 {
                    d += &format!(", {}% dropout (training only)", number(a.dropout * 100.0));
                }
                d
            }
            Transformer::Indexing1d { last } => format!(
                "1-D indexing, {} time step (C x T -> C)",
                if *last { "last" } else { "first" }
            ),
            Transformer::EmbeddingConcat(e) => format!(
                "embedding concatenation, {} x T -> {} x (T+1)",
                e.input_size, e.input_size
            ),
            Transformer::WordEmbedding(w) => format!(
                "word embedding, {} words -> {} x T{}",
                w.num_words,
                w.dimension,
                if w.map_to_last {
                    ", unknown ids map to the last word"
                } else {
                    ""
                }
            ),
        }
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        match self {
            Transformer::PositionEmbedding(p) => param_tensor(&mut p.weights).into_iter().collect(),
            Transformer::EmbeddingConcat(e) => param_tensor(&mut e.weights).into_iter().collect(),
            Transformer::WordEmbedding(w) => param_tensor(&mut w.weights).into_iter().collect(),
            Transformer::SelfAttention(a) => [
                &mut a.query_weights,
                &mut a.key_weights,
                &mut a.value_weights,
                &mut a.output_weights,
                &mut a.query_bias,
                &mut a.key_bias,
                &mut a.value_bias,
                &mut a.output_bias,
            ]
            .into_iter()
            .filter_map(param_tensor)
            .collect(),
            Transformer::SinusoidalEncoding(_) | Transformer::Indexing1d { .. } => Vec::new(),
        }
    }

    pub(crate) fn learnables(&self) -> usize {
        match self {
            Transformer::PositionEmbedding(p) => param_numel(&p.weights),
            Transformer::EmbeddingConcat(e) => param_numel(&e.weights),
            Transformer::WordEmbedding(w) => param_numel(&w.weights),
            Transformer::SelfAttention(a) => a.params().iter().map(|p| param_numel(p)).sum(),
            Transformer::SinusoidalEncoding(_) | Transformer::Indexing1d { .. } => 0,
        }
    }

    pub(crate) fn is_trained(&self) -> bool {
        match self {
            Transformer::PositionEmbedding(p) => p.weights.is_some(),
            Transformer::EmbeddingConcat(e) => e.weights.is_some(),
            Transformer::WordEmbedding(w) => w.weights.is_some(),
            Transformer::SelfAttention(a) => a.params().iter().all(|p| p.is_some()),
            Transformer::SinusoidalEncoding(_) | Transformer::Indexing1d { .. } => true,
        }
    }

    /// Whether the output keeps the time dimension (all but 1-D indexing).
    pub fn keeps_sequence(&self) -> bool {
        !matches!(self, Transformer::Indexing1d { .. })
    }

    /// Output channels from the input's (all layers work on `C x T`, `h = w = 1`).
    pub(crate) fn output(
        &mut self,
        ins: &[Option<Shape>],
        ctx: &Ctx,
    ) -> Result<Option<Shape>, NetError> {
        let Some(x) = shape::one_input(ins, ctx)? else {
            return Ok(None);
        };
        if x.spatial {
            return Err(ctx.shape("input", "a sequence (C x T)", format!("image data {x}")));
        }
        let c = x.c;
        Ok(Some(Shape::features(match self {
            Transformer::PositionEmbedding(p) => p.output_size,
            Transformer::SinusoidalEncoding(s) => s.output_size,
            Transformer::SelfAttention(a) => {
                shape::check_channels(&mut a.input_size, "InputSize", c, ctx)?;
                a.check_weights(ctx)?;
                a.output_size
            }
            Transformer::Indexing1d { .. } => c,
            Transformer::EmbeddingConcat(e) => {
                shape::check_channels(&mut e.input_size, "input channels (Weights)", c, ctx)?;
                c
            }
            Transformer::WordEmbedding(w) => {
                if c != 1 {
                    return Err(ctx.shape(
                        "input",
                        "one channel of token indices (1 x T)",
                        format!("{c} channels"),
                    ));
                }
                w.dimension
            }
        })))
    }
}

impl SelfAttention {
    pub(crate) fn params(&self) -> [&Option<Param>; 8] {
        [
            &self.query_weights,
            &self.key_weights,
            &self.value_weights,
            &self.output_weights,
            &self.query_bias,
            &self.key_bias,
            &self.value_bias,
            &self.output_bias,
        ]
    }

    /// Key channels per head.
    pub fn head_key_channels(&self) -> usize {
        self.num_key_channels / self.num_heads.max(1)
    }

    /// Value channels per head.
    pub fn head_value_channels(&self) -> usize {
        self.num_value_channels / self.num_heads.max(1)
    }

    /// The weights' shapes against the sizes (once the input size is known).
    fn check_weights(&self, ctx: &Ctx) -> Result<(), NetError> {
        let (c, kc, vc, o) = (
            self.input_size,
            self.num_key_channels,
            self.num_value_channels,
            self.output_size,
        );
        let want: [(&str, &Option<Param>, Vec<usize>); 8] = [
            ("QueryWeights", &self.query_weights, vec![kc, c]),
            ("KeyWeights", &self.key_weights, vec![kc, c]),
            ("ValueWeights", &self.value_weights, vec![vc, c]),
            ("OutputWeights", &self.output_weights, vec![o, vc]),
            ("QueryBias", &self.query_bias, vec![kc]),
            ("KeyBias", &self.key_bias, vec![kc]),
            ("ValueBias", &self.value_bias, vec![vc]),
            ("OutputBias", &self.output_bias, vec![o]),
        ];
        for (name, p, shape) in want {
            if let Some(p) = p
                && p.value.shape != shape
            {
                return Err(ctx.shape(
                    name,
                    layout::dims_str(&shape),
                    layout::dims_str(&p.value.shape),
                ));
            }
        }
        Ok(())
    }
}

/// The transformer classes.
pub(in crate::net) fn from_dlt(short: &str, f: &Fields, _declared: &mut Declared) -> Imported {
    Ok(Some(match short {
        "PositionEmbeddingLayer" => {
            match f.string("PositionDimension").as_deref() {
                None | Some("auto") | Some("temporal") => {}
                Some(other) => {
                    return unsupported(format!(
                        "position embedding over PositionDimension '{other}' (only temporal positions are supported)"
                    ));
                }
            }
            let output_size = f.usize("OutputSize")?;
            let max_position = f.usize("MaxPosition")?;
            let weights = matrix_param(f, "Weights", output_size, max_position)?;
            LayerKind::Transformer(Transformer::PositionEmbedding(PositionEmbedding {
                output_size,
                max_position,
                weights,
            }))
        }
        "SinusoidalPositionEncodingLayer" => {
            match f.string("Positions").as_deref() {
                None | Some("auto") | Some("temporal-indices") => {}
                Some(other) => {
                    return unsupported(format!(
                        "sinusoidal position encoding of Positions '{other}' (only temporal indices are supported)"
                    ));
                }
            }
            let output_size = f.usize("OutputSize")?;
            if output_size % 2 != 0 {
                return Err(f.err("OutputSize", "an even number", output_size.to_string()));
            }
            LayerKind::Transformer(Transformer::SinusoidalEncoding(SinusoidalEncoding {
                output_size,
            }))
        }
        "SelfAttentionLayer" => return self_attention(f),
        "Indexing1DLayer" => {
            let index = f
                .string("Index")
                .or_else(|| f.string("IndexingMode"))
                .unwrap_or_else(|| "last".into());
            let last = match index.as_str() {
                "last" => true,
                "first" => false,
                other => {
                    return unsupported(format!("1-D indexing of index '{other}'"));
                }
            };
            LayerKind::Transformer(Transformer::Indexing1d { last })
        }
        "EmbeddingConcatenationLayer" => {
            let weights = match f.param("Weights")? {
                Some(p) => {
                    let n = p.value.numel();
                    Some(
                        p.with(layout::vector(p.value, n).map_err(|e| f.layout_err("Weights", e))?),
                    )
                }
                None => None,
            };
            LayerKind::Transformer(Transformer::EmbeddingConcat(EmbeddingConcat {
                input_size: weights.as_ref().map_or(0, |w| w.value.numel()),
                weights,
            }))
        }
        "WordEmbeddingLayer" => {
            let dimension = f.usize("Dimension")?;
            let num_words = f.usize("NumWords")?;
            let map_to_last = match f.string("OOVMode").as_deref() {
                None | Some("error") => false,
                Some("map-to-last") => true,
                Some(other) => {
                    return Err(f.err("OOVMode", "'error' or 'map-to-last'", other.to_string()));
                }
            };
            let weights = matrix_param(f, "Weights", dimension, num_words)?;
            LayerKind::Transformer(Transformer::WordEmbedding(WordEmbedding {
                dimension,
                num_words,
                map_to_last,
                weights,
            }))
        }
        _ => return Ok(None),
    }))
}

fn matrix_param(
    f: &Fields,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Option<Param>, NetError> {
    Ok(match f.param(name)? {
        Some(p) => {
            Some(p.with(layout::matrix(p.value, rows, cols).map_err(|e| f.layout_err(name, e))?))
        }
        None => None,
    })
}

fn vector_param(f: &Fields, name: &str, n: usize) -> Result<Option<Param>, NetError> {
    Ok(match f.param(name)? {
        Some(p) => Some(p.with(layout::vector(p.value, n).map_err(|e| f.layout_err(name, e))?)),
        None => None,
    })
}

fn self_attention(f: &Fields) -> Imported {
    if f.flag("HasScoresOutput") == Some(true) {
        return unsupported("self-attention with HasScoresOutput (a second output)".into());
    }
    if f.flag("HasPaddingMaskInput") == Some(true) {
        return unsupported("self-attention with HasPaddingMaskInput (a mask input)".into());
    }
    let num_heads = f.usize("NumHeads")?;
    let num_key_channels = f.usize("NumKeyChannels")?;
    let num_value_channels = f.opt_usize("NumValueChannels")?.unwrap_or(num_key_channels);
    if num_heads == 0
        || !num_key_channels.is_multiple_of(num_heads)
        || !num_value_channels.is_multiple_of(num_heads)
    {
        return Err(f.err(
            "NumHeads",
            format!(
                "a positive divisor of NumKeyChannels ({num_key_channels}) and NumValueChannels ({num_value_channels})"
            ),
            num_heads.to_string(),
        ));
    }
    let query_weights = f.param("QueryWeights")?;
    // InputSize may be 'auto' in an untrained layer: then the weights say it, or shape inference.
    let input_size = match (f.opt_usize("InputSize")?, &query_weights) {
        (Some(n), _) => n,
        (None, Some(w)) => w.value.dims.get(1).copied().unwrap_or(0),
        (None, None) => 0,
    };
    let output_size = match f.opt_usize("OutputSize")? {
        Some(n) => n,
        None => input_size,
    };
    let causal = match f.string("AttentionMask").as_deref() {
        None | Some("none") => false,
        Some("causal") => true,
        Some(other) => {
            return unsupported(format!(
                "self-attention with AttentionMask '{other}' (only 'none' and 'causal')"
            ));
        }
    };
    let c = input_size;
    let m = |name: &str, rows: usize, cols: usize| -> Result<Option<Param>, NetError> {
        if cols == 0 {
            // Size unknown: take the stored matrix as it is.
            return match f.param(name)? {
                Some(p) => {
                    let cols = p.value.dims.get(1).copied().unwrap_or(1);
                    matrix_param(f, name, rows, cols)
                }
                None => Ok(None),
            };
        }
        matrix_param(f, name, rows, cols)
    };
    Ok(Some(LayerKind::Transformer(Transformer::SelfAttention(
        Box::new(SelfAttention {
            input_size,
            num_heads,
            num_key_channels,
            num_value_channels,
            output_size,
            causal,
            dropout: f.f64_or("DropoutProbability", 0.0)?,
            query_weights: m("QueryWeights", num_key_channels, c)?,
            key_weights: m("KeyWeights", num_key_channels, c)?,
            value_weights: m("ValueWeights", num_value_channels, c)?,
            output_weights: matrix_param(f, "OutputWeights", output_size, num_value_channels)?,
            query_bias: vector_param(f, "QueryBias", num_key_channels)?,
            key_bias: vector_param(f, "KeyBias", num_key_channels)?,
            value_bias: vector_param(f, "ValueBias", num_value_channels)?,
            output_bias: vector_param(f, "OutputBias", output_size)?,
        }),
    ))))
}
