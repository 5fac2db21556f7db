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
//! [`Plan`] holds these decisions once for all formats (`plan.rs`); `io.rs` computes the input
//! normalization's constants, `recurrent.rs` what recurrent layers can export and their weights
//! per direction, `idents.rs` the layer identifiers of the generated code. Each format has its
//! own module (`onnx`, `pytorch`, `rust_src`; `pickle` writes PyTorch's `model.pt`).

mod idents;
mod io;
mod onnx;
mod pickle;
mod plan;
mod pytorch;
mod recurrent;
mod rust_src;

pub use idents::identifiers;
pub(crate) use plan::{Plan, Val};
pub(crate) use recurrent::RecurrentWeights;
pub(crate) use recurrent::multiplied_out;

use crate::net::layer::{self, Layer, LayerKind, Network, Padding, PaddingMode};
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

pub(crate) fn layer_err(l: &Layer, msg: impl Into<String>) -> ExportError {
    ExportError::Layer {
        layer: l.name.clone(),
        class: l.class.clone(),
        msg: msg.into(),
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
    match kind {
        LayerKind::Conv2d(_)
        | LayerKind::ConvTranspose2d(_)
        | LayerKind::GroupNorm(_)
        | LayerKind::Lrn(_)
        | LayerKind::MaxPool2d(_)
        | LayerKind::AvgPool2d(_)
        | LayerKind::GlobalAvgPool
        | LayerKind::GlobalMaxPool
        | LayerKind::MaxUnpool2d(_)
        | LayerKind::Yolov2Transform { .. }
        | LayerKind::Flatten => true,
        LayerKind::ImageInput { .. }
        | LayerKind::FeatureInput { .. }
        | LayerKind::SequenceInput { .. }
        | LayerKind::FullyConnected(_)
        | LayerKind::BatchNorm(_)
        | LayerKind::Activation(_)
        | LayerKind::Softmax
        | LayerKind::Addition { .. }
        | LayerKind::Multiplication { .. }
        | LayerKind::DepthConcat { .. }
        | LayerKind::Concat { .. }
        | LayerKind::Dropout { .. }
        | LayerKind::Resize2d { .. }
        | LayerKind::ClassificationOutput { .. }
        | LayerKind::RegressionOutput
        | LayerKind::Lstm(_)
        | LayerKind::Gru(_)
        | LayerKind::SequenceFolding
        | LayerKind::SequenceUnfolding
        | LayerKind::Conv1d(_)
        | LayerKind::ConvTranspose1d(_)
        | LayerKind::MaxPool1d(_)
        | LayerKind::AvgPool1d(_)
        | LayerKind::GlobalAvgPool1d
        | LayerKind::GlobalMaxPool1d
        | LayerKind::LayerNorm(_)
        | LayerKind::LstmProjected(_)
        | LayerKind::GruProjected(_)
        | LayerKind::Yolov2Output { .. }
        | LayerKind::Unsupported { .. } => false,
        LayerKind::Transformer(_) => false,
    }
}

/// Why a max unpooling layer cannot be exported, if it cannot: unconnected, unresolved 'same'
/// padding, or overlapping windows (matcnn adds the values that land on one element; ONNX's
/// MaxUnpool and PyTorch's max_unpool2d overwrite).
pub(crate) fn unpool_reason(u: &layer::Unpool2d) -> Option<String> {
    let p = &u.window;
    if u.pool.is_empty() {
        Some("its 'indices' and 'size' inputs are not connected to a max pooling layer".into())
    } else if matches!(p.padding, PaddingMode::Same) {
        Some("'same' padding could not be resolved (unknown input size)".into())
    } else if p.stride[0] < p.size[0] || p.stride[1] < p.size[1] {
        Some(format!(
            "unpooling of overlapping windows (pool {:?}, stride {:?}) is not supported by the exporters",
            p.size, p.stride
        ))
    } else {
        None
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
    fn float_literals() {
        assert_eq!(float_lit(1.0), "1.0");
        assert_eq!(float_lit(1e-5), "1e-5");
        assert_eq!(float_lit(0.75), "0.75");
    }
}
