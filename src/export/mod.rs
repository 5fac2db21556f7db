//! Exporters: the network description (with its weights) → ONNX, PyTorch, Rust source.
//! They read the description only (`MatNet::write_back` puts a module's weights into it).
//!
//! Every exporter computes what the Burn module (`model::ops`) computes, layer by layer:
//! - the input normalization is `(x - shift) * scale` with the module's constants;
//! - activations are `[N, C, H, W]` until a fully connected or flatten layer makes them `[N, K]`
//!   (the module keeps `[N, K, 1, 1]`; a later layer that needs four dimensions gets them back);
//! - dropout and output (loss) layers compute nothing at inference;
//! - the output is `[N, K]` when the output layer's activation is `1 x 1 x K`, else `[N, C, H, W]`;
//! - sequence networks take `[N, C, T]`; activations stay `[N, C, T]` (rank 3) until a recurrent
//!   layer with OutputMode 'last' makes them `[N, C]`; fully connected layers apply per time step.
//!
//! [`Plan`] holds these decisions once for all formats.

mod onnx;
mod pickle;
mod pytorch;
mod rust_src;

use crate::net::layer::{self, Layer, LayerKind, Network, Normalization, Padding, PaddingMode};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("the network cannot be exported: {0}")]
    Unsupported(String),
    #[error("layer '{layer}' ({class}): {msg}")]
    Layer {
        layer: String,
        class: String,
        msg: String,
    },
}

/// Options shared by the exporters.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// ONNX opset version.
    pub opset: i64,
    /// Put the input normalization into the exported graph (MATLAB's exporter does).
    pub normalization: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            opset: 17,
            normalization: true,
        }
    }
}

/// The network as an ONNX model (serialized `ModelProto`).
pub fn onnx(net: &Network, opts: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    onnx::export(net, opts)
}

/// The network for PyTorch: `(file name, bytes)` for `model.py`, `weights.safetensors`, `model.pt`.
pub fn pytorch(net: &Network, opts: &ExportOptions) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    pytorch::export(net, opts)
}

/// The network as a Rust source module for Burn: `(file name, bytes)` for `model.rs` and
/// `weights.safetensors` (the same file as the PyTorch export's).
pub fn rust_source(
    net: &Network,
    opts: &ExportOptions,
) -> Result<Vec<(String, Vec<u8>)>, ExportError> {
    rust_src::export(net, opts)
}

/// The tensors of the exported PyTorch `state_dict` (also what the generated Burn module loads),
/// in layer order, with their keys.
pub fn state_dict(net: &Network, opts: &ExportOptions) -> Result<Vec<(String, Blob)>, ExportError> {
    let plan = Plan::new(net, opts)?;
    plan.state_dict()
}

/// A tensor of an exported state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub shape: Vec<usize>,
    pub data: BlobData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BlobData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Blob {
    fn f32(shape: Vec<usize>, data: Vec<f32>) -> Blob {
        Blob {
            shape,
            data: BlobData::F32(data),
        }
    }
    /// Little-endian bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match &self.data {
            BlobData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            BlobData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where a layer's output value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val {
    /// The graph input.
    Input,
    /// The value computed by layer `i`.
    Layer(usize),
}

/// The input normalization as `(x - shift) * scale`, computed exactly as the Burn module does.
pub(crate) struct NormConsts {
    /// Broadcast shape: `[1, C, H, W]`, `[1, C, 1, 1]`, `[1, 1, 1, 1]` for images, `[1, C]` or
    /// `[1, 1]` for features.
    pub shape: Vec<usize>,
    pub shift: Vec<f32>,
    pub scale: Vec<f32>,
    /// 'zerocenter': the scale is all ones.
    pub zero_center: bool,
    /// MATLAB's name of the normalization.
    pub kind: &'static str,
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

pub(crate) fn layer_err(l: &Layer, msg: impl Into<String>) -> ExportError {
    ExportError::Layer {
        layer: l.name.clone(),
        class: l.class.clone(),
        msg: msg.into(),
    }
}

/// Why a layer cannot be exported, if it cannot.
fn unsupported_reason(l: &Layer, first_input: bool) -> Option<String> {
    match &l.kind {
        LayerKind::Unsupported { reason } => Some(reason.clone()),
        LayerKind::Lstm(r) | LayerKind::Gru(r) => recurrent_reason(r),
        LayerKind::Resize2d { .. } => Some("resize2d is not supported by the exporters yet".into()),
        LayerKind::ImageInput { .. }
        | LayerKind::FeatureInput { .. }
        | LayerKind::SequenceInput { .. }
            if !first_input =>
        {
            Some("networks with several inputs are not supported by the exporters".into())
        }
        LayerKind::Concat { dim, .. } if !(1..=3).contains(dim) => Some(format!(
            "concatenation along dimension {dim} is not supported"
        )),
        LayerKind::Conv2d(c) if matches!(c.padding, PaddingMode::Same) => {
            Some("'same' padding could not be resolved (unknown input size)".into())
        }
        LayerKind::ConvTranspose2d(c) if matches!(c.cropping, PaddingMode::Same) => {
            Some("'same' cropping could not be resolved (unknown input size)".into())
        }
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p)
            if matches!(p.padding, PaddingMode::Same) =>
        {
            Some("'same' padding could not be resolved (unknown input size)".into())
        }
        _ => None,
    }
}

/// Why a recurrent layer cannot be exported (by any format), if it cannot.
fn recurrent_reason(r: &layer::Recurrent) -> Option<String> {
    if !matches!(r.state_activation.as_str(), "tanh" | "softsign") {
        return Some(format!(
            "StateActivationFunction '{}' is not supported",
            r.state_activation
        ));
    }
    if !matches!(r.gate_activation.as_str(), "sigmoid" | "hard-sigmoid") {
        return Some(format!(
            "GateActivationFunction '{}' is not supported",
            r.gate_activation
        ));
    }
    if !matches!(
        r.reset_gate_mode.as_str(),
        "" | "after-multiplication"
            | "before-multiplication"
            | "recurrent-bias-after-multiplication"
    ) {
        return Some(format!(
            "ResetGateMode '{}' is not supported",
            r.reset_gate_mode
        ));
    }
    None
}

/// Recurrent weights for ONNX and PyTorch: per direction, the input weights `[G*H, C]`, the
/// recurrent weights `[G*H, H]`, the input bias `[G*H]` and the recurrent bias `[G*H]` (zeros
/// unless a GRU stores recurrent biases), gate blocks in MATLAB's order; and the initial states
/// `[H]` per direction (zeros when not stored; the cell state for LSTMs only).
pub(crate) struct RecurrentWeights {
    pub hidden: usize,
    pub input_size: usize,
    pub w: Vec<Vec<f32>>,
    pub r: Vec<Vec<f32>>,
    pub wb: Vec<Vec<f32>>,
    pub rb: Vec<Vec<f32>>,
    pub h0: Vec<Vec<f32>>,
    pub c0: Vec<Vec<f32>>,
}

impl RecurrentWeights {
    pub fn new(l: &Layer, r: &layer::Recurrent, gates: usize) -> Result<Self, ExportError> {
        let h = r.hidden;
        let dirs = r.directions();
        let g = gates * h;
        let w = param(l, &r.input_weights, "InputWeights")?;
        let rw = param(l, &r.recurrent_weights, "RecurrentWeights")?;
        let b = param(l, &r.bias, "Bias")?;
        let c = w.shape.get(1).copied().unwrap_or(0);
        if w.shape != [g * dirs, c] || rw.shape != [g * dirs, h] || c == 0 {
            return Err(layer_err(
                l,
                format!(
                    "weights of shapes {:?} and {:?} do not fit {gates} gates of {h} hidden units",
                    w.shape, rw.shape
                ),
            ));
        }
        let two_bias = r.reset_gate_mode == "recurrent-bias-after-multiplication";
        let want = if two_bias { 2 * g } else { g * dirs };
        if b.numel() != want {
            return Err(layer_err(
                l,
                format!("Bias has {} values, expected {want}", b.numel()),
            ));
        }
        let state = |t: &Option<layer::Tensor>, what: &str| -> Result<Vec<f32>, ExportError> {
            match t {
                None => Ok(vec![0.0; h * dirs]),
                Some(t) => Ok(values(l, Some(t), what)?.data.clone()),
            }
        };
        let hs = state(&r.hidden_state, "HiddenState")?;
        let cs = state(&r.cell_state, "CellState")?;
        if hs.len() != h * dirs || cs.len() != h * dirs {
            return Err(layer_err(l, "the stored states do not fit the hidden size"));
        }
        let mut out = RecurrentWeights {
            hidden: h,
            input_size: c,
            w: vec![],
            r: vec![],
            wb: vec![],
            rb: vec![],
            h0: vec![],
            c0: vec![],
        };
        for d in 0..dirs {
            out.w.push(w.data[d * g * c..(d + 1) * g * c].to_vec());
            out.r.push(rw.data[d * g * h..(d + 1) * g * h].to_vec());
            out.wb.push(b.data[d * g..(d + 1) * g].to_vec());
            out.rb.push(if two_bias {
                b.data[g..2 * g].to_vec()
            } else {
                vec![0.0; g]
            });
            out.h0.push(hs[d * h..(d + 1) * h].to_vec());
            out.c0.push(cs[d * h..(d + 1) * h].to_vec());
        }
        Ok(out)
    }

    pub fn directions(&self) -> usize {
        self.w.len()
    }

    /// `rows` (gate blocks of `cols` values per row, `hidden` rows each) reordered: block `k`
    /// of the result is block `order[k]` of MATLAB's.
    pub fn reorder(&self, m: &[f32], cols: usize, order: &[usize]) -> Vec<f32> {
        let block = self.hidden * cols;
        order
            .iter()
            .flat_map(|&k| m[k * block..(k + 1) * block].iter().copied())
            .collect()
    }
}

/// Explicit padding (after shape inference resolved 'same').
pub(crate) fn pads(p: &PaddingMode) -> Padding {
    match p {
        PaddingMode::Manual(p) => *p,
        PaddingMode::Same => Padding::default(),
    }
}

/// A trained tensor's values, or an error naming the layer and property.
pub(crate) fn values<'t>(
    l: &Layer,
    t: Option<&'t layer::Tensor>,
    what: &str,
) -> Result<&'t layer::Tensor, ExportError> {
    let t = t.ok_or_else(|| {
        layer_err(
            l,
            format!("no trained weights ('{what}' is empty): is this an untrained layer array?"),
        )
    })?;
    if t.data.len() != t.numel() || t.numel() == 0 {
        return Err(layer_err(
            l,
            format!(
                "'{what}' has {} values for shape {:?}",
                t.data.len(),
                t.shape
            ),
        ));
    }
    Ok(t)
}

pub(crate) fn param<'t>(
    l: &Layer,
    p: &'t Option<layer::Param>,
    what: &str,
) -> Result<&'t layer::Tensor, ExportError> {
    values(l, p.as_ref().map(|p| &p.value), what)
}

/// Batch normalization epsilon as the Burn module uses it (MatConvNet's moments carry their own
/// epsilon and store 0; Burn needs a positive one).
pub(crate) fn bn_epsilon(b: &layer::BatchNorm) -> f64 {
    if b.epsilon > 0.0 { b.epsilon } else { 1e-30 }
}

/// MATLAB concatenation dimension → NCHW axis (as the Burn module maps it).
pub(crate) fn concat_axis(kind: &LayerKind) -> usize {
    match kind {
        LayerKind::Concat { dim: 1, .. } => 2,
        LayerKind::Concat { dim: 2, .. } => 3,
        _ => 1,
    }
}

/// Layers whose input must be `[N, C, H, W]`.
pub(crate) fn needs_rank4(kind: &LayerKind) -> bool {
    matches!(
        kind,
        LayerKind::Conv2d(_)
            | LayerKind::ConvTranspose2d(_)
            | LayerKind::GroupNorm(_)
            | LayerKind::Lrn(_)
            | LayerKind::MaxPool2d(_)
            | LayerKind::AvgPool2d(_)
            | LayerKind::GlobalAvgPool
            | LayerKind::GlobalMaxPool
            | LayerKind::Flatten
    )
}

/// Python keywords and builtins used by the generated code, names `nn.Module` defines, and Rust
/// keywords: no layer identifier may be one of them.
const RESERVED: &[&str] = &[
    // Python keywords and names the generated model.py uses
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "match",
    "case",
    "type",
    "x",
    "self",
    "torch",
    "nn",
    "F",
    "os",
    "float",
    "super",
    "input",
    "output",
    // nn.Module attributes
    "training",
    "forward",
    "eval",
    "train",
    "modules",
    "parameters",
    "buffers",
    "state_dict",
    "load_state_dict",
    "to",
    "cuda",
    "cpu",
    "double",
    "half",
    "apply",
    "children",
    "zero_grad",
    "register_buffer",
    "register_parameter",
    "add_module",
    "named_modules",
    "named_parameters",
    "named_buffers",
    "named_children",
    "get_submodule",
    "get_parameter",
    "get_buffer",
    "requires_grad_",
    "share_memory",
    "extra_repr",
    "dump_patches",
    "call_super_init",
    "bfloat16",
    "ipu",
    "xpu",
    "mtia",
    "to_empty",
    "compile",
    "register_module",
    // Rust keywords and names the generated model.rs uses
    "abstract",
    "become",
    "box",
    "const",
    "crate",
    "do",
    "dyn",
    "enum",
    "extern",
    "fn",
    "final",
    "gen",
    "impl",
    "let",
    "loop",
    "macro",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "static",
    "struct",
    "trait",
    "typeof",
    "union",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "Self",
    "new",
    "load",
    "device",
    "n",
    "Tensor",
    "Device",
    "Module",
];

/// Unique identifiers for the layers, valid in Python and Rust: the MATLAB name with every other
/// character replaced by `_`.
pub fn identifiers(net: &Network) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(net.layers.len());
    for l in &net.layers {
        let mut s: String = l
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
            s = format!("layer_{s}");
        }
        if s.chars().all(|c| c == '_') || s.starts_with("__") {
            s = format!("layer{s}");
        }
        if RESERVED.contains(&s.as_str()) {
            s.push('_');
        }
        let mut cand = s.clone();
        let mut k = 2;
        while !used.insert(cand.clone()) {
            cand = format!("{s}_{k}");
            k += 1;
        }
        out.push(cand);
    }
    out
}

/// `[C, H, W]` / `[C, 1, 1]` / `[1, 1, 1]` statistics → broadcast shape for an input of `rank`.
fn norm_shape(stat: &layer::Tensor, rank: usize) -> Vec<usize> {
    let s = &stat.shape;
    if rank == 2 {
        return vec![1, stat.numel()];
    }
    if rank == 3 {
        return vec![1, stat.numel(), 1];
    }
    match s.len() {
        3 => vec![1, s[0], s[1], s[2]],
        1 => vec![1, s[0], 1, 1],
        _ => vec![1, 1, 1, stat.numel()],
    }
}

fn norm_consts(
    l: &Layer,
    n: &Normalization,
    rank: usize,
) -> Result<Option<NormConsts>, ExportError> {
    let stat = |t: &layer::Tensor, what: &str| values(l, Some(t), what).map(|t| t.data.clone());
    let same_shape = |a: &layer::Tensor, b: &layer::Tensor| {
        if a.shape != b.shape {
            Err(layer_err(
                l,
                format!(
                    "normalization statistics of shapes {:?} and {:?} differ",
                    a.shape, b.shape
                ),
            ))
        } else {
            Ok(())
        }
    };
    let (shape_of, shift, scale, zero_center, kind) = match n {
        Normalization::None => return Ok(None),
        Normalization::ZeroCenter { mean } => {
            let m = stat(mean, "Mean")?;
            let ones = vec![1.0; m.len()];
            (mean, m, ones, true, "zerocenter")
        }
        Normalization::ZScore { mean, std } => {
            same_shape(mean, std)?;
            let m = stat(mean, "Mean")?;
            let s: Vec<f32> = stat(std, "StandardDeviation")?
                .iter()
                .map(|s| 1.0 / s)
                .collect();
            (mean, m, s, false, "zscore")
        }
        Normalization::RescaleZeroOne { min, max } => {
            same_shape(min, max)?;
            let lo = stat(min, "Min")?;
            let hi = stat(max, "Max")?;
            let scale = hi.iter().zip(&lo).map(|(h, l)| 1.0 / (h - l)).collect();
            (min, lo, scale, false, "rescale-zero-one")
        }
        Normalization::RescaleSymmetric { min, max } => {
            // 2 (x - min)/(max - min) - 1 = (x - (max + min)/2) * 2/(max - min)
            same_shape(min, max)?;
            let lo = stat(min, "Min")?;
            let hi = stat(max, "Max")?;
            let shift = hi.iter().zip(&lo).map(|(h, l)| (h + l) / 2.0).collect();
            let scale = hi
                .iter()
                .zip(&lo)
                .map(|(h, l)| (1.0 / (h - l)) * 2.0)
                .collect();
            (min, shift, scale, false, "rescale-symmetric")
        }
    };
    Ok(Some(NormConsts {
        shape: norm_shape(shape_of, rank),
        shift,
        scale,
        zero_center,
        kind,
    }))
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
                | LayerKind::RegressionOutput => {
                    value[i] = value[l.inputs[0]];
                    rank[i] = in_rank(0);
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
                    // nn.LSTM (i, f, g, o) and nn.GRU (r, z, n) use MATLAB's gate order.
                    let gates = if matches!(l.kind, LayerKind::Lstm(_)) {
                        4
                    } else {
                        3
                    };
                    let rw = RecurrentWeights::new(l, r, gates)?;
                    let (g, c, h) = (gates * rw.hidden, rw.input_size, rw.hidden);
                    let dirs = rw.directions();
                    for d in 0..dirs {
                        let sfx = if d == 0 { "l0" } else { "l0_reverse" };
                        let mut blob = |name: &str, shape: Vec<usize>, v: &[f32]| {
                            out.push((
                                format!("{id}.rnn.{name}_{sfx}"),
                                Blob::f32(shape, v.to_vec()),
                            ));
                        };
                        blob("weight_ih", vec![g, c], &rw.w[d]);
                        blob("weight_hh", vec![g, h], &rw.r[d]);
                        blob("bias_ih", vec![g], &rw.wb[d]);
                        blob("bias_hh", vec![g], &rw.rb[d]);
                    }
                    out.push((
                        format!("{id}.h0"),
                        Blob::f32(vec![dirs, 1, h], rw.h0.concat()),
                    ));
                    if gates == 4 {
                        out.push((
                            format!("{id}.c0"),
                            Blob::f32(vec![dirs, 1, h], rw.c0.concat()),
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Formats an `f64` as a Python/Rust float literal that reads back to the same `f32`/`f64`.
pub(crate) fn float_lit(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let s = format!("{v:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_unique_and_valid() {
        let mk = |name: &str| Layer {
            name: name.into(),
            class: "c".into(),
            kind: LayerKind::Softmax,
            inputs: vec![],
            output: None,
        };
        let net = Network {
            variable: "net".into(),
            source: layer::SourceKind::SeriesNetwork,
            layers: [
                "fire2-concat",
                "fire2_concat",
                "1conv",
                "input",
                "type",
                "",
                "a.b",
            ]
            .iter()
            .map(|n| mk(n))
            .collect(),
            outputs: vec![],
            classes: vec![],
        };
        assert_eq!(
            identifiers(&net),
            vec![
                "fire2_concat",
                "fire2_concat_2",
                "layer_1conv",
                "input_",
                "type_",
                "layer_",
                "a_b"
            ]
        );
    }

    #[test]
    fn float_literals() {
        assert_eq!(float_lit(1.0), "1.0");
        assert_eq!(float_lit(1e-5), "1e-5");
        assert_eq!(float_lit(0.75), "0.75");
    }
}
