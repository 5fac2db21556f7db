//! The layer families of the net stage, one file each: a family's hyperparameter types, its Deep
//! Learning Toolbox and MatConvNet import, its shape inference, its names, its parameter tensors
//! and its `inspect` text.
//!
//! This file holds the dispatch: one exhaustive `match` over [`LayerKind`] per question, one line
//! per variant routing into the family file, so that a new variant makes the compiler list every
//! place to extend here. The importers dispatch on the stored class in `dlt.rs` and
//! `matconvnet.rs` (each family recognizes its own classes).

pub mod activation;
pub mod combine;
pub mod conv;
pub mod detect;
pub mod io;
pub mod norm;
pub mod pool;
pub mod recurrent;
pub mod reshape;
pub mod transformer;

use super::error::{Ctx, NetError};
use super::fields::Fields;
use super::layer::{LayerKind, Padding, PaddingMode, Param, Shape, Tensor};
use super::shape::Declared;

/// A family importer's answer for one stored class: `None` when the class is not the family's.
pub(crate) type Imported = Result<Option<LayerKind>, NetError>;

/// A layer kept as [`LayerKind::Unsupported`] with `reason`.
pub(crate) fn unsupported(reason: String) -> Imported {
    Ok(Some(LayerKind::Unsupported { reason }))
}

/// A layer kind's names: `kind` as `inspect` reports it (`Conv2d`, `Relu`), `stem` as MATLAB names
/// a layer left unnamed (`conv`, `relu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    pub kind: &'static str,
    pub stem: &'static str,
}

/// The names of a layer kind.
pub fn names(kind: &LayerKind) -> Names {
    use LayerKind as K;
    match kind {
        K::ImageInput { .. } => io::IMAGE_INPUT,
        K::FeatureInput { .. } => io::FEATURE_INPUT,
        K::SequenceInput { .. } => io::SEQUENCE_INPUT,
        K::Conv2d(c) => c.names(),
        K::ConvTranspose2d(_) => conv::CONV_TRANSPOSE_2D,
        K::FullyConnected(_) => conv::FULLY_CONNECTED,
        K::BatchNorm(_) => norm::BATCH_NORM,
        K::GroupNorm(_) => norm::GROUP_NORM,
        K::Lrn(_) => norm::LRN,
        K::Activation(a) => a.names(),
        K::MaxPool2d(_) => pool::MAX_POOL_2D,
        K::AvgPool2d(_) => pool::AVG_POOL_2D,
        K::GlobalAvgPool => pool::GLOBAL_AVG_POOL,
        K::GlobalMaxPool => pool::GLOBAL_MAX_POOL,
        K::Addition { .. } => combine::ADDITION,
        K::Multiplication { .. } => combine::MULTIPLICATION,
        K::DepthConcat { .. } => combine::DEPTH_CONCAT,
        K::Concat { .. } => combine::CONCAT,
        K::Dropout { .. } => reshape::DROPOUT,
        K::Flatten => reshape::FLATTEN,
        K::Resize2d { .. } => reshape::RESIZE_2D,
        K::Softmax => activation::SOFTMAX,
        K::ClassificationOutput { .. } => io::CLASSIFICATION_OUTPUT,
        K::RegressionOutput => io::REGRESSION_OUTPUT,
        K::Lstm(r) => recurrent::lstm_names(r),
        K::Gru(_) => recurrent::GRU,
        K::SequenceFolding => reshape::SEQUENCE_FOLDING,
        K::SequenceUnfolding => reshape::SEQUENCE_UNFOLDING,
        K::Conv1d(_) => conv::CONV_1D,
        K::ConvTranspose1d(_) => conv::CONV_TRANSPOSE_1D,
        K::MaxPool1d(_) => pool::MAX_POOL_1D,
        K::AvgPool1d(_) => pool::AVG_POOL_1D,
        K::GlobalAvgPool1d => pool::GLOBAL_AVG_POOL_1D,
        K::GlobalMaxPool1d => pool::GLOBAL_MAX_POOL_1D,
        K::LayerNorm(_) => norm::LAYER_NORM,
        K::LstmProjected(_) => recurrent::LSTM_PROJECTED,
        K::GruProjected(_) => recurrent::GRU_PROJECTED,
        K::Transformer(t) => t.names(),
        K::MaxUnpool2d(_) => pool::MAX_UNPOOL_2D,
        K::Yolov2Transform { .. } => detect::YOLOV2_TRANSFORM,
        K::Yolov2Output { .. } => detect::YOLOV2_OUTPUT,
        K::Unsupported { .. } => Names {
            kind: "Unsupported",
            stem: "layer",
        },
    }
}

/// One line saying what a layer computes, e.g. `3x3 conv, 16 filters, stride [1 1], padding [1 1 1 1]`.
pub fn describe(kind: &LayerKind) -> String {
    use LayerKind as K;
    match kind {
        K::ImageInput {
            size,
            normalization,
        } => io::describe_image_input(size, normalization),
        K::FeatureInput {
            size,
            normalization,
        } => io::describe_feature_input(*size, normalization),
        K::SequenceInput {
            size,
            normalization,
            frame: None,
        } => io::describe_sequence_input(*size, normalization),
        K::SequenceInput {
            normalization,
            frame: Some(frame),
            ..
        } => reshape::describe_image_sequence_input(frame, normalization),
        K::Conv2d(c) => c.describe(),
        K::ConvTranspose2d(c) => c.describe(),
        K::FullyConnected(f) => f.describe(),
        K::BatchNorm(b) => b.describe(),
        K::GroupNorm(g) => g.describe(),
        K::Lrn(l) => l.describe(),
        K::Activation(a) => a.describe(),
        K::MaxPool2d(p) => p.describe("max"),
        K::AvgPool2d(p) => p.describe("average"),
        K::GlobalAvgPool => "global average pooling".into(),
        K::GlobalMaxPool => "global max pooling".into(),
        K::Addition { inputs } => combine::describe_addition(*inputs),
        K::Multiplication { inputs } => combine::describe_multiplication(*inputs),
        K::DepthConcat { inputs } => combine::describe_depth_concat(*inputs),
        K::Concat { dim, inputs } => combine::describe_concat(*dim, *inputs),
        K::Dropout { probability } => reshape::describe_dropout(*probability),
        K::Flatten => "flatten".into(),
        K::Resize2d {
            scale,
            output_size,
            method,
            ..
        } => reshape::describe_resize(scale, output_size, method),
        K::Softmax => "softmax".into(),
        K::ClassificationOutput { classes } => io::describe_classification(classes),
        K::RegressionOutput => "mean-squared-error".into(),
        K::Lstm(r) => r.describe(false),
        K::Gru(r) => r.describe(true),
        K::SequenceFolding => reshape::describe_folding(),
        K::SequenceUnfolding => reshape::describe_unfolding(),
        K::Conv1d(c) => c.describe(),
        K::ConvTranspose1d(c) => c.describe(),
        K::MaxPool1d(p) => p.describe("max"),
        K::AvgPool1d(p) => p.describe("average"),
        K::GlobalAvgPool1d => "global average pooling over time".into(),
        K::GlobalMaxPool1d => "global max pooling over time".into(),
        K::LayerNorm(n) => n.describe(),
        K::LstmProjected(p) => p.describe(false),
        K::GruProjected(p) => p.describe(true),
        K::Transformer(t) => t.describe(),
        K::MaxUnpool2d(u) => u.describe(),
        K::Yolov2Transform { anchors } => detect::describe_transform(*anchors),
        K::Yolov2Output {
            anchor_boxes,
            classes,
        } => detect::describe_output(anchor_boxes, classes),
        K::Unsupported { reason } => format!("unsupported: {reason}"),
    }
}

/// The output of one layer given its inputs' shapes (in port order), resolving 'same' padding and
/// channel counts left 'auto'; `None` when it cannot be known.
pub(crate) fn output(
    kind: &mut LayerKind,
    ins: &[Option<Shape>],
    decl: &Declared,
    ctx: &Ctx,
) -> Result<Option<Shape>, NetError> {
    use super::shape::one_input as same;
    use LayerKind as K;
    match kind {
        K::ImageInput { size, .. } => Ok(Some(*size)),
        K::SequenceInput {
            frame: Some(frame), ..
        } => Ok(Some(*frame)),
        K::FeatureInput { size, .. } | K::SequenceInput { size, .. } => {
            Ok(Some(Shape::features(*size)))
        }
        K::Conv2d(c) => c.output(ins, decl, ctx),
        K::ConvTranspose2d(c) => c.output(ins, decl, ctx),
        K::FullyConnected(f) => f.output(ins, decl, ctx),
        K::BatchNorm(b) => b.output(ins, ctx),
        K::GroupNorm(g) => g.output(ins, ctx),
        K::Lrn(_) => same(ins, ctx),
        K::Activation(_) => same(ins, ctx),
        K::MaxPool2d(p) | K::AvgPool2d(p) => p.output(ins, decl, ctx),
        K::GlobalAvgPool | K::GlobalMaxPool => pool::global_output(ins, ctx),
        K::Addition { inputs } | K::Multiplication { inputs } => {
            combine::elementwise_output(*inputs, ins, ctx)
        }
        K::DepthConcat { inputs } => combine::concat_output(3, *inputs, ins, ctx),
        K::Concat { dim, inputs } => combine::concat_output(*dim, *inputs, ins, ctx),
        K::Dropout { .. } => same(ins, ctx),
        K::Flatten => reshape::flatten_output(ins, ctx),
        K::Resize2d {
            scale, output_size, ..
        } => reshape::resize_output(scale, output_size, ins, ctx),
        K::Softmax => same(ins, ctx),
        K::ClassificationOutput { classes } => io::classification_output(classes, ins, ctx),
        K::RegressionOutput => same(ins, ctx),
        K::Lstm(r) | K::Gru(r) => r.output(ins, ctx),
        K::SequenceFolding => same(ins, ctx),
        K::SequenceUnfolding => reshape::unfolding_output(ins, ctx),
        K::Conv1d(c) => c.output(ins, ctx),
        K::ConvTranspose1d(c) => c.output(ins, ctx),
        K::MaxPool1d(p) | K::AvgPool1d(p) => p.output(ins, ctx),
        K::GlobalAvgPool1d | K::GlobalMaxPool1d => pool::global_1d_output(ins, ctx),
        K::LayerNorm(n) => n.output(ins, ctx),
        K::LstmProjected(p) | K::GruProjected(p) => p.output(ins, ctx),
        K::Transformer(t) => t.output(ins, ctx),
        K::MaxUnpool2d(u) => u.output(ins, ctx),
        K::Yolov2Transform { anchors } => detect::transform_output(*anchors, ins, ctx),
        K::Yolov2Output { .. } => same(ins, ctx),
        K::Unsupported { .. } => Ok(None),
    }
}

/// Every tensor of a layer (weights, statistics, normalization constants, states).
pub fn tensors_mut(kind: &mut LayerKind) -> Vec<&mut Tensor> {
    use LayerKind as K;
    match kind {
        K::ImageInput { normalization, .. }
        | K::FeatureInput { normalization, .. }
        | K::SequenceInput { normalization, .. } => normalization.tensors_mut(),
        K::Conv2d(c) => c.tensors_mut(),
        K::ConvTranspose2d(c) => c.tensors_mut(),
        K::FullyConnected(f) => f.tensors_mut(),
        K::BatchNorm(b) => b.tensors_mut(),
        K::GroupNorm(g) => g.tensors_mut(),
        K::Lstm(r) | K::Gru(r) => r.tensors_mut(),
        K::Conv1d(c) => c.tensors_mut(),
        K::ConvTranspose1d(c) => c.tensors_mut(),
        K::LayerNorm(n) => n.tensors_mut(),
        K::MaxPool1d(_) | K::AvgPool1d(_) | K::GlobalAvgPool1d | K::GlobalMaxPool1d => Vec::new(),
        K::LstmProjected(p) | K::GruProjected(p) => p.tensors_mut(),
        K::Transformer(t) => t.tensors_mut(),
        K::Lrn(_)
        | K::Activation(_)
        | K::MaxPool2d(_)
        | K::AvgPool2d(_)
        | K::GlobalAvgPool
        | K::GlobalMaxPool
        | K::Addition { .. }
        | K::Multiplication { .. }
        | K::DepthConcat { .. }
        | K::Concat { .. }
        | K::Dropout { .. }
        | K::Flatten
        | K::Resize2d { .. }
        | K::Softmax
        | K::ClassificationOutput { .. }
        | K::RegressionOutput
        | K::SequenceFolding
        | K::SequenceUnfolding
        | K::MaxUnpool2d(_)
        | K::Yolov2Transform { .. }
        | K::Yolov2Output { .. }
        | K::Unsupported { .. } => Vec::new(),
    }
}

/// Number of learnable parameters of a layer, as MATLAB's `analyzeNetwork` counts them:
/// `Weights`, `Bias`, `Scale`, `Offset`, `InputWeights`, `RecurrentWeights` (not the batch
/// normalization running statistics).
pub fn learnables(kind: &LayerKind) -> usize {
    use LayerKind as K;
    match kind {
        K::Conv2d(c) => c.learnables(),
        K::ConvTranspose2d(c) => c.learnables(),
        K::FullyConnected(f) => f.learnables(),
        K::BatchNorm(b) => b.learnables(),
        K::GroupNorm(g) => g.learnables(),
        K::Lstm(r) | K::Gru(r) => r.learnables(),
        K::Conv1d(c) => c.learnables(),
        K::ConvTranspose1d(c) => c.learnables(),
        K::LayerNorm(n) => n.learnables(),
        K::MaxPool1d(_) | K::AvgPool1d(_) | K::GlobalAvgPool1d | K::GlobalMaxPool1d => 0,
        K::LstmProjected(p) | K::GruProjected(p) => p.learnables(),
        K::Transformer(t) => t.learnables(),
        K::ImageInput { .. }
        | K::FeatureInput { .. }
        | K::SequenceInput { .. }
        | K::Lrn(_)
        | K::Activation(_)
        | K::MaxPool2d(_)
        | K::AvgPool2d(_)
        | K::GlobalAvgPool
        | K::GlobalMaxPool
        | K::Addition { .. }
        | K::Multiplication { .. }
        | K::DepthConcat { .. }
        | K::Concat { .. }
        | K::Dropout { .. }
        | K::Flatten
        | K::Resize2d { .. }
        | K::Softmax
        | K::ClassificationOutput { .. }
        | K::RegressionOutput
        | K::SequenceFolding
        | K::SequenceUnfolding
        | K::MaxUnpool2d(_)
        | K::Yolov2Transform { .. }
        | K::Yolov2Output { .. }
        | K::Unsupported { .. } => 0,
    }
}

/// Whether a layer has all its parameters and statistics stored (false in untrained layer arrays).
pub fn is_trained(kind: &LayerKind) -> bool {
    use LayerKind as K;
    match kind {
        K::ImageInput { normalization, .. }
        | K::FeatureInput { normalization, .. }
        | K::SequenceInput { normalization, .. } => normalization.is_trained(),
        K::Conv2d(c) => c.is_trained(),
        K::ConvTranspose2d(c) => c.is_trained(),
        K::FullyConnected(f) => f.is_trained(),
        K::BatchNorm(b) => b.is_trained(),
        K::GroupNorm(g) => g.is_trained(),
        K::Lstm(r) | K::Gru(r) => r.is_trained(),
        K::Conv1d(c) => c.is_trained(),
        K::ConvTranspose1d(c) => c.is_trained(),
        K::LayerNorm(n) => n.is_trained(),
        K::MaxPool1d(_) | K::AvgPool1d(_) | K::GlobalAvgPool1d | K::GlobalMaxPool1d => true,
        K::LstmProjected(p) | K::GruProjected(p) => p.is_trained(),
        K::Transformer(t) => t.is_trained(),
        K::Lrn(_)
        | K::Activation(_)
        | K::MaxPool2d(_)
        | K::AvgPool2d(_)
        | K::GlobalAvgPool
        | K::GlobalMaxPool
        | K::Addition { .. }
        | K::Multiplication { .. }
        | K::DepthConcat { .. }
        | K::Concat { .. }
        | K::Dropout { .. }
        | K::Flatten
        | K::Resize2d { .. }
        | K::Softmax
        | K::ClassificationOutput { .. }
        | K::RegressionOutput
        | K::SequenceFolding
        | K::SequenceUnfolding
        | K::MaxUnpool2d(_)
        | K::Yolov2Transform { .. }
        | K::Yolov2Output { .. }
        | K::Unsupported { .. } => true,
    }
}

// Helpers the families share.

/// The tensor of an optional parameter.
pub(crate) fn param_tensor(p: &mut Option<Param>) -> Option<&mut Tensor> {
    p.as_mut().map(|p| &mut p.value)
}

/// Element count of an optional parameter (0 when absent).
pub(crate) fn param_numel(p: &Option<Param>) -> usize {
    p.as_ref().map_or(0, |p| p.value.numel())
}

/// Deep Learning Toolbox padding from `<mode>` ('same'/'manual') and `<size>`; 'same' records
/// the stored pads to check.
pub(in crate::net) fn dlt_padding(
    f: &Fields,
    mode: &str,
    size: &str,
    declared: &mut Declared,
) -> Result<PaddingMode, NetError> {
    let pads = match f.opt_padding(size)? {
        // Layers saved before `PaddingSize` existed (2017, e.g. in fasterRCNNObjectDetector)
        // store `[vertical horizontal]` as `Padding`.
        None if f.get(size).is_none()
            && f.get("Padding").is_some_and(|v| v.as_numeric().is_some()) =>
        {
            f.opt_padding("Padding")?
        }
        pads => pads,
    };
    Ok(match f.string(mode).as_deref() {
        Some("same") => {
            declared.same_padding = pads;
            PaddingMode::Same
        }
        _ => PaddingMode::Manual(pads.unwrap_or_default()),
    })
}

/// `[a b]`.
pub(crate) fn pair_text(p: [usize; 2]) -> String {
    format!("[{} {}]", p[0], p[1])
}

/// `[top bottom left right]` or `'same'`.
pub(crate) fn padding_text(p: &PaddingMode) -> String {
    match p {
        PaddingMode::Manual(p) => pads_text(p),
        PaddingMode::Same => "'same'".into(),
    }
}

/// `[top bottom left right]`.
pub(crate) fn pads_text(p: &Padding) -> String {
    format!("[{} {} {} {}]", p.top, p.bottom, p.left, p.right)
}

/// `1 filter`, `2 filters`.
pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A number as Rust writes an `f64` (`0.01`, `2`).
pub(crate) fn number(x: f64) -> String {
    format!("{x}")
}
