//! The export decisions shared by all formats: which value each layer's output is, its rank,
//! the input normalization, the layer identifiers, the state dict.

use super::io::{NormConsts, norm_consts};
use super::recurrent::{self, recurrent_reason};
use super::{
    Blob, BlobData, ExportError, ExportOptions, concat_axis, identifiers, layer_err, needs_rank4,
    param, values,
};
use crate::net::layer::{self, Layer, LayerKind, Network, PaddingMode};

/// Where a layer's output value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val {
    /// The graph input.
    Input,
    /// The value computed by layer `i`.
    Layer(usize),
}

/// The export decisions shared by all formats.
pub(crate) struct Plan<'a> {
    pub net: &'a Network,
    pub opts: ExportOptions,
    /// Index of the input layer.
    pub input: usize,
    /// 4 for image input `[N, C, H, W]`, 2 for feature input `[N, C]`.
    pub input_rank: usize,
    /// The value each layer's output is (aliases for layers that compute nothing).
    pub value: Vec<Val>,
    /// Rank (2 or 4) of each layer's output value.
    pub rank: Vec<usize>,
    /// True for layers that compute something in the exported graph.
    pub computes: Vec<bool>,
    /// The layer whose activation is the network's output (MATLAB's output layer).
    pub output_layer: usize,
    /// The network output's value.
    pub out: Val,
    /// Flatten the output value from `[N, K, 1, 1]` to `[N, K]`.
    pub out_flatten: bool,
    /// The input normalization, when exported.
    pub norm: Option<NormConsts>,
    /// Unique identifiers (Python and Rust) for the layers.
    pub idents: Vec<String>,
}

/// Why a layer cannot be exported, if it cannot.
fn unsupported_reason(l: &Layer, first_input: bool) -> Option<String> {
    let same = |p: &PaddingMode, what: &str| {
        matches!(p, PaddingMode::Same)
            .then(|| format!("'same' {what} could not be resolved (unknown input size)"))
    };
    match &l.kind {
        LayerKind::Unsupported { reason } => Some(reason.clone()),
        LayerKind::ImageInput { .. }
        | LayerKind::FeatureInput { .. }
        | LayerKind::SequenceInput { .. } => (!first_input)
            .then(|| "networks with several inputs are not supported by the exporters".into()),
        LayerKind::Conv2d(c) => same(&c.padding, "padding"),
        LayerKind::ConvTranspose2d(c) => same(&c.cropping, "cropping"),
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => same(&p.padding, "padding"),
        LayerKind::Concat { dim, .. } => (!(1..=3).contains(dim))
            .then(|| format!("concatenation along dimension {dim} is not supported")),
        LayerKind::Resize2d { .. } => Some("resize2d is not supported by the exporters yet".into()),
        LayerKind::Lstm(r) | LayerKind::Gru(r) => recurrent_reason(r),
        LayerKind::SequenceFolding | LayerKind::SequenceUnfolding => None,
        LayerKind::Conv1d(_)
        | LayerKind::ConvTranspose1d(_)
        | LayerKind::MaxPool1d(_)
        | LayerKind::AvgPool1d(_)
        | LayerKind::GlobalAvgPool1d
        | LayerKind::GlobalMaxPool1d
        | LayerKind::LayerNorm(_) => None,
        LayerKind::LstmProjected(p) | LayerKind::GruProjected(p) => recurrent_reason(&p.rnn),
        LayerKind::Transformer(_) => None,
        LayerKind::MaxUnpool2d(u) => super::unpool_reason(u),
        LayerKind::Yolov2Transform { .. } | LayerKind::Yolov2Output { .. } => None,
        LayerKind::FullyConnected(_)
        | LayerKind::BatchNorm(_)
        | LayerKind::GroupNorm(_)
        | LayerKind::Lrn(_)
        | LayerKind::Activation(_)
        | LayerKind::Softmax
        | LayerKind::GlobalAvgPool
        | LayerKind::GlobalMaxPool
        | LayerKind::Addition { .. }
        | LayerKind::Multiplication { .. }
        | LayerKind::DepthConcat { .. }
        | LayerKind::Dropout { .. }
        | LayerKind::Flatten
        | LayerKind::ClassificationOutput { .. }
        | LayerKind::RegressionOutput => None,
    }
}

impl<'a> Plan<'a> {
    pub fn new(net: &'a Network, opts: &ExportOptions) -> Result<Plan<'a>, ExportError> {
        // Every layer that cannot be exported, named in one message.
        let mut seen_input = false;
        let mut bad = Vec::new();
        for l in &net.layers {
            let is_input = matches!(
                l.kind,
                LayerKind::ImageInput { .. }
                    | LayerKind::FeatureInput { .. }
                    | LayerKind::SequenceInput { .. }
            );
            if let Some(r) = unsupported_reason(l, !seen_input) {
                bad.push(format!("layer '{}' ({}): {r}", l.name, l.class));
            }
            seen_input |= is_input;
        }
        if !bad.is_empty() {
            return Err(ExportError::Unsupported(bad.join("; ")));
        }
        let input = net
            .layers
            .iter()
            .position(|l| l.inputs.is_empty())
            .ok_or_else(|| ExportError::Unsupported("the network has no input layer".into()))?;
        let in_layer = &net.layers[input];
        let (input_rank, normalization) = match &in_layer.kind {
            LayerKind::ImageInput { normalization, .. } => (4, normalization),
            LayerKind::FeatureInput { normalization, .. } => (2, normalization),
            LayerKind::SequenceInput { normalization, .. } => (3, normalization),
            _ => {
                return Err(ExportError::Unsupported(format!(
                    "the first layer '{}' ({}) is not an input layer",
                    in_layer.name, in_layer.class
                )));
            }
        };
        let norm = if opts.normalization {
            norm_consts(in_layer, normalization, input_rank)?
        } else {
            None
        };
        // Image sequences run as [N, C*H*W, T] (see `super::io::per_frame_feature`).
        let norm = match (norm, &in_layer.kind) {
            (Some(n), LayerKind::SequenceInput { frame: Some(f), .. }) => {
                Some(super::io::per_frame_feature(n, f))
            }
            (n, _) => n,
        };
        let n = net.layers.len();
        let mut value = vec![Val::Input; n];
        let mut rank = vec![input_rank; n];
        let mut computes = vec![false; n];
        for (i, l) in net.layers.iter().enumerate() {
            if i != input && l.inputs.is_empty() {
                return Err(ExportError::Unsupported(format!(
                    "layer '{}' ({}) has no inputs",
                    l.name, l.class
                )));
            }
            if let Some(&j) = l.inputs.iter().find(|&&j| j >= i) {
                return Err(ExportError::Unsupported(format!(
                    "layer '{}' ({}) is fed by layer {j}, which comes later: the layers are not in topological order",
                    l.name, l.class
                )));
            }
            let in_rank = |k: usize| rank[l.inputs[k]];
            match &l.kind {
                LayerKind::ImageInput { .. }
                | LayerKind::FeatureInput { .. }
                | LayerKind::SequenceInput { .. } => {
                    if norm.is_some() {
                        value[i] = Val::Layer(i);
                        computes[i] = true;
                    }
                    rank[i] = input_rank;
                }
                LayerKind::Dropout { .. }
                | LayerKind::ClassificationOutput { .. }
                | LayerKind::Yolov2Output { .. }
                | LayerKind::RegressionOutput => {
                    value[i] = value[l.inputs[0]];
                    rank[i] = in_rank(0);
                }
                // Image sequences: [N, C*H*W, T] ↔ [N*T, C, H, W] (see the family files).
                LayerKind::SequenceFolding => {
                    if in_rank(0) != 3 {
                        return Err(layer_err(l, "sequence folding needs sequence input"));
                    }
                    value[i] = Val::Layer(i);
                    computes[i] = true;
                    rank[i] = 4;
                }
                LayerKind::SequenceUnfolding => {
                    value[i] = Val::Layer(i);
                    computes[i] = true;
                    rank[i] = 3;
                }
                LayerKind::Flatten if in_rank(0) == 3 => {
                    value[i] = Val::Layer(i);
                    computes[i] = true;
                    rank[i] = 3;
                }
                kind => {
                    value[i] = Val::Layer(i);
                    computes[i] = true;
                    if in_rank(0) == 3 && needs_rank4(kind) {
                        return Err(layer_err(
                            l,
                            "this layer cannot follow sequence data in the exporters",
                        ));
                    }
                    rank[i] = match kind {
                        LayerKind::Lstm(r) | LayerKind::Gru(r) => {
                            if in_rank(0) != 3 {
                                return Err(layer_err(l, "a recurrent layer needs sequence input"));
                            }
                            if r.return_sequence { 3 } else { 2 }
                        }
                        LayerKind::Conv1d(_)
                        | LayerKind::ConvTranspose1d(_)
                        | LayerKind::MaxPool1d(_)
                        | LayerKind::AvgPool1d(_)
                        | LayerKind::GlobalAvgPool1d
                        | LayerKind::GlobalMaxPool1d
                            if in_rank(0) != 3 =>
                        {
                            return Err(layer_err(
                                l,
                                "a 1-D layer over time needs sequence ([N, C, T]) input",
                            ));
                        }
                        LayerKind::GlobalAvgPool1d | LayerKind::GlobalMaxPool1d => 2,
                        LayerKind::LstmProjected(p) | LayerKind::GruProjected(p) => {
                            if in_rank(0) != 3 {
                                return Err(layer_err(l, "a recurrent layer needs sequence input"));
                            }
                            if p.rnn.return_sequence { 3 } else { 2 }
                        }
                        LayerKind::Transformer(t) => {
                            if in_rank(0) != 3 {
                                return Err(layer_err(
                                    l,
                                    "a transformer layer needs sequence input",
                                ));
                            }
                            if t.keeps_sequence() { 3 } else { 2 }
                        }
                        // Element-wise combinations of sequences stay sequences.
                        LayerKind::Addition { .. } | LayerKind::Multiplication { .. }
                            if (0..l.inputs.len()).all(|k| in_rank(k) == 3) =>
                        {
                            3
                        }
                        LayerKind::FullyConnected(_) if in_rank(0) == 3 => 3,
                        LayerKind::FullyConnected(_) | LayerKind::Flatten => 2,
                        k if needs_rank4(k) => 4,
                        LayerKind::Addition { .. }
                        | LayerKind::Multiplication { .. }
                        | LayerKind::DepthConcat { .. }
                        | LayerKind::Concat { .. } => {
                            let any4 = (0..l.inputs.len()).any(|k| in_rank(k) == 4);
                            if any4 || concat_axis(kind) != 1 { 4 } else { 2 }
                        }
                        _ => in_rank(0),
                    };
                }
            }
        }
        let output_layer = net.outputs.first().copied().unwrap_or(n - 1);
        let out = value[output_layer];
        let out_flatten = rank[output_layer] == 4
            && net.layers[output_layer]
                .output
                .is_some_and(|s| s.h == 1 && s.w == 1);
        Ok(Plan {
            net,
            opts: opts.clone(),
            input,
            input_rank,
            value,
            rank,
            computes,
            output_layer,
            out,
            out_flatten,
            norm,
            idents: identifiers(net),
        })
    }

    /// Rank of the value a layer's `k`-th input is.
    pub fn in_rank(&self, i: usize, k: usize) -> usize {
        self.rank[self.net.layers[i].inputs[k]]
    }

    /// Whether all of a multi-input layer's inputs must be lifted to rank 4.
    pub fn lift_all(&self, i: usize) -> bool {
        self.rank[i] == 4
    }

    /// Channels of the input.
    pub fn input_channels(&self) -> usize {
        match &self.net.layers[self.input].kind {
            LayerKind::ImageInput { size, .. } => size.c,
            LayerKind::FeatureInput { size, .. } | LayerKind::SequenceInput { size, .. } => *size,
            _ => 0,
        }
    }

    /// Input `[H, W]` (0 = any).
    pub fn input_hw(&self) -> [usize; 2] {
        match &self.net.layers[self.input].kind {
            LayerKind::ImageInput { size, .. } => [size.h, size.w],
            _ => [1, 1],
        }
    }

    /// Output dimensions after the batch: `[K]`, `[K, T]` (sequences) or `[C, H, W]` (0 = any).
    pub fn output_dims(&self) -> Vec<usize> {
        let s = self.net.layers[self.output_layer].output;
        let rank = if self.out_flatten {
            2
        } else {
            self.rank[self.output_layer]
        };
        match (rank, s) {
            (3, Some(s)) => vec![s.numel(), 0],
            (3, None) => vec![0, 0],
            (2, Some(s)) => vec![s.numel()],
            (2, None) => vec![0],
            (_, Some(s)) => vec![s.c, s.h, s.w],
            (_, None) => vec![0, 0, 0],
        }
    }

    /// The state dict: keys `<ident>.<parameter>` in PyTorch's names and layouts.
    pub fn state_dict(&self) -> Result<Vec<(String, Blob)>, ExportError> {
        let mut out = Vec::new();
        for (i, l) in self.net.layers.iter().enumerate() {
            let id = &self.idents[i];
            let mut put = |name: &str, t: &layer::Tensor, shape: Option<Vec<usize>>| {
                out.push((
                    format!("{id}.{name}"),
                    Blob::f32(shape.unwrap_or_else(|| t.shape.clone()), t.data.clone()),
                ));
            };
            match &l.kind {
                LayerKind::ImageInput { .. }
                | LayerKind::FeatureInput { .. }
                | LayerKind::SequenceInput { .. } => {
                    if let Some(n) = &self.norm {
                        out.push((
                            format!("{id}.shift"),
                            Blob::f32(n.shape.clone(), n.shift.clone()),
                        ));
                        out.push((
                            format!("{id}.scale"),
                            Blob::f32(n.shape.clone(), n.scale.clone()),
                        ));
                    }
                }
                LayerKind::Conv2d(c) => {
                    put("weight", param(l, &c.weights, "Weights")?, None);
                    if c.bias.is_some() {
                        put("bias", param(l, &c.bias, "Bias")?, None);
                    }
                }
                LayerKind::ConvTranspose2d(c) => {
                    put("weight", param(l, &c.weights, "Weights")?, None);
                    if c.bias.is_some() {
                        put("bias", param(l, &c.bias, "Bias")?, None);
                    }
                }
                LayerKind::FullyConnected(f) => {
                    let w = param(l, &f.weights, "Weights")?;
                    if w.shape.len() != 2 {
                        return Err(layer_err(
                            l,
                            format!("'Weights' has shape {:?}, expected [K, N]", w.shape),
                        ));
                    }
                    put("weight", w, None);
                    if f.bias.is_some() {
                        put("bias", param(l, &f.bias, "Bias")?, None);
                    }
                }
                LayerKind::BatchNorm(b) => {
                    put("weight", param(l, &b.scale, "Scale")?, None);
                    put("bias", param(l, &b.offset, "Offset")?, None);
                    put(
                        "running_mean",
                        values(l, b.mean.as_ref(), "TrainedMean")?,
                        None,
                    );
                    put(
                        "running_var",
                        values(l, b.variance.as_ref(), "TrainedVariance")?,
                        None,
                    );
                    out.push((
                        format!("{id}.num_batches_tracked"),
                        Blob {
                            shape: vec![],
                            data: BlobData::I64(vec![0]),
                        },
                    ));
                }
                LayerKind::GroupNorm(g) => {
                    put("weight", param(l, &g.scale, "Scale")?, None);
                    put("bias", param(l, &g.offset, "Offset")?, None);
                }
                LayerKind::Lstm(r) | LayerKind::Gru(r) => {
                    recurrent::state_dict(l, r, id, &mut out)?;
                }
                LayerKind::Conv1d(c) => {
                    put("weight", param(l, &c.weights, "Weights")?, None);
                    if c.bias.is_some() {
                        put("bias", param(l, &c.bias, "Bias")?, None);
                    }
                }
                LayerKind::ConvTranspose1d(c) => {
                    put("weight", param(l, &c.weights, "Weights")?, None);
                    if c.bias.is_some() {
                        put("bias", param(l, &c.bias, "Bias")?, None);
                    }
                }
                LayerKind::LayerNorm(n) => {
                    put("weight", param(l, &n.scale, "Scale")?, None);
                    put("bias", param(l, &n.offset, "Offset")?, None);
                }
                LayerKind::MaxPool1d(_)
                | LayerKind::AvgPool1d(_)
                | LayerKind::GlobalAvgPool1d
                | LayerKind::GlobalMaxPool1d => {}
                LayerKind::LstmProjected(p) | LayerKind::GruProjected(p) => {
                    let r = super::multiplied_out(l, p)?;
                    recurrent::state_dict(l, &r, id, &mut out)?;
                }
                LayerKind::Transformer(t) => {
                    super::pytorch::transformer::state_dict(l, t, id, &mut out)?;
                }
                LayerKind::Lrn(_)
                | LayerKind::Activation(_)
                | LayerKind::Softmax
                | LayerKind::MaxPool2d(_)
                | LayerKind::AvgPool2d(_)
                | LayerKind::GlobalAvgPool
                | LayerKind::GlobalMaxPool
                | LayerKind::Addition { .. }
                | LayerKind::Multiplication { .. }
                | LayerKind::DepthConcat { .. }
                | LayerKind::Concat { .. }
                | LayerKind::Dropout { .. }
                | LayerKind::Flatten
                | LayerKind::Resize2d { .. }
                | LayerKind::ClassificationOutput { .. }
                | LayerKind::RegressionOutput
                | LayerKind::SequenceFolding
                | LayerKind::SequenceUnfolding
                | LayerKind::MaxUnpool2d(_)
                | LayerKind::Yolov2Transform { .. }
                | LayerKind::Yolov2Output { .. }
                | LayerKind::Unsupported { .. } => {}
            }
        }
        Ok(out)
    }
}
