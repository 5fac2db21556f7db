//! Layers that move values without computing: flatten, dropout (an identity at inference),
//! resize (not supported by the Burn module yet).

use super::{Op, err, func};
use crate::model::ModelError;
use crate::net::layer::{Layer, LayerKind, Network};
use burn::nn::DropoutConfig;
use burn::prelude::*;

// Func codes (saved in records: never renumber).
pub(super) const FLATTEN: usize = 18;

pub(super) fn flatten() -> Result<Op, ModelError> {
    Ok(func(FLATTEN, 0.0))
}

pub(super) fn dropout(probability: f64) -> Result<Op, ModelError> {
    Ok(Op::Dropout(DropoutConfig::new(probability).init()))
}

pub(super) fn resize2d(l: &Layer) -> Result<Op, ModelError> {
    Err(err(l, "resize2d is not supported by the Burn module yet"))
}

/// [`FLATTEN`] on `x`: MATLAB flattens H x W x C column-major (h fastest), which is the order
/// `[C, W, H]` row-major.
pub(super) fn flatten_forward(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.swap_dims(2, 3).reshape([n, c * h * w, 1, 1])
}

// Image sequences (CNN-LSTM networks).
//
// An image sequence runs as `[N, C*H*W, 1, T]`, the features of each frame in `[C, H, W]`
// row-major order (so a `.npy` `[N, T, C, H, W]` is one transpose away); sequence folding makes it
// `[N*T, C, H, W]` images, observation-major (image `n*T + t` is time step `t` of sequence `n`),
// which the convolution, normalization and pooling ops take as they are; unfolding puts them back.
// MATLAB's `flattenLayer` on an image sequence gives `H*W*C` features per time step in its
// column-major order (h fastest), which is `[C, W, H]` row-major.

/// [`SeqReshape::code`] of sequence folding.
pub(super) const FOLD: usize = 0;
/// [`SeqReshape::code`] of sequence unfolding (second input: the folding layer's input).
pub(super) const UNFOLD: usize = 1;
/// [`SeqReshape::code`] of flattening an image sequence.
pub(super) const FLATTEN_SEQUENCE: usize = 2;

/// A reshape between image sequences and images. `c, h, w`: the frame of the image sequence (the
/// folding layer's input, the flatten layer's input); unused by unfolding.
#[derive(Module, Debug)]
pub struct SeqReshape {
    pub code: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// The frame `[C, H, W]` of layer `l`'s input, from shape inference.
fn input_frame(l: &Layer, net: &Network) -> Result<[usize; 3], ModelError> {
    let s = l
        .inputs
        .first()
        .and_then(|&j| net.layers.get(j))
        .and_then(|p| p.output)
        .filter(|s| s.numel() > 0)
        .ok_or_else(|| err(l, "the size of its input frames is unknown"))?;
    Ok([s.c, s.h, s.w])
}

pub(super) fn sequence_folding(l: &Layer, net: &Network) -> Result<Op, ModelError> {
    let [c, h, w] = input_frame(l, net)?;
    Ok(Op::SeqReshape(SeqReshape {
        code: FOLD,
        c,
        h,
        w,
    }))
}

pub(super) fn sequence_unfolding(l: &Layer, net: &Network) -> Result<Op, ModelError> {
    let folding = l.inputs.get(1).and_then(|&j| net.layers.get(j));
    if !folding.is_some_and(|f| matches!(f.kind, LayerKind::SequenceFolding)) {
        return Err(err(
            l,
            "its miniBatchSize input must come from a sequence folding layer",
        ));
    }
    Ok(Op::SeqReshape(SeqReshape {
        code: UNFOLD,
        c: 0,
        h: 0,
        w: 0,
    }))
}

/// Flatten: of images (the plain op), or of sequences (image sequences: MATLAB's order per time
/// step; vector sequences: unchanged).
pub(super) fn flatten_layer(l: &Layer, net: &Network) -> Result<Op, ModelError> {
    if !net.input_is_sequence(l) {
        return flatten();
    }
    let [c, h, w] = input_frame(l, net)?;
    Ok(Op::SeqReshape(SeqReshape {
        code: FLATTEN_SEQUENCE,
        c,
        h,
        w,
    }))
}

/// The nodes feeding layer `l` in the module: its inputs, except that an unfolding layer's
/// `miniBatchSize` input is the folding layer's own input (the image sequence, whose
/// `[N, _, 1, T]` gives the batch size to restore).
pub(crate) fn node_inputs(l: &Layer, net: &Network) -> Vec<usize> {
    let mut ins = l.inputs.clone();
    if matches!(l.kind, LayerKind::SequenceUnfolding)
        && let Some(k) = ins.get_mut(1)
        && let Some(fold) = net.layers.get(*k)
        && matches!(fold.kind, LayerKind::SequenceFolding)
        && let Some(&src) = fold.inputs.first()
    {
        *k = src;
    }
    ins
}

impl SeqReshape {
    pub(super) fn forward(
        &self,
        x: Tensor<4>,
        mut rest: std::vec::IntoIter<Tensor<4>>,
    ) -> Tensor<4> {
        match self.code {
            FOLD => fold(x, [self.c, self.h, self.w]),
            UNFOLD => {
                let n = rest.next().map_or(1, |s| s.dims()[0]);
                unfold(x, n)
            }
            _ => {
                let [n, _, _, t] = x.dims();
                // fold, flatten each image in MATLAB's order, back to [N, F, 1, T]
                let images = fold(x, [self.c, self.h, self.w]);
                let [nt, c, h, w] = images.dims();
                let flat = images.swap_dims(2, 3).reshape([nt, c * h * w, 1, 1]);
                debug_assert_eq!(nt, n * t);
                unfold(flat, n)
            }
        }
    }
}

/// `[N, C*H*W, 1, T]` → `[N*T, C, H, W]`.
pub(crate) fn fold(x: Tensor<4>, [c, h, w]: [usize; 3]) -> Tensor<4> {
    let [n, f, hh, t] = x.dims();
    x.reshape([n, f * hh, t])
        .swap_dims(1, 2)
        .reshape([n * t, c, h, w])
}

/// `[N*T, C, H, W]` → `[N, C*H*W, 1, T]`.
pub(crate) fn unfold(x: Tensor<4>, n: usize) -> Tensor<4> {
    let [nt, c, h, w] = x.dims();
    let n = n.max(1);
    let t = nt / n;
    x.reshape([n, t, c * h * w])
        .swap_dims(1, 2)
        .reshape([n, c * h * w, 1, t])
}
