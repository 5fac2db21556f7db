//! One Burn op per layer kind: built from the description, run on `[N, C, H, W]` tensors.
//!
//! [`Op`] is the module's record format (`weights.bpk`): its variants, their order and
//! [`Func`]'s fields and codes never change. [`Op::build`] and [`Op::forward`] route each layer
//! kind to its family's file, which holds its build and forward code and its `Func` codes:
//!
//! | codes | file |
//! |---|---|
//! | 0 identity | here (also: outputs, inputs without normalization, rewritten nodes) |
//! | 1-10 activations, softmax | `activation.rs` |
//! | 11, 12 global poolings | `pool.rs` |
//! | 13-17 addition, multiplication, concatenations; 19 addition + ReLU | `combine.rs` |
//! | 18 flatten | `reshape.rs` |
//! | 40 YOLO v2 transform | `detect.rs` |

mod activation;
mod combine;
mod conv;
mod detect;
mod io;
mod norm;
mod pool;
mod recurrent;
mod reshape;
pub(crate) mod transformer;

pub use activation::RELU;
pub(crate) use activation::SOFTMAX;
pub use combine::ADD_RELU;
pub(crate) use combine::{ADD, CONCAT_C};
pub use conv::{ConvT, Fc};
pub use io::InputNorm;
pub use recurrent::Rnn;
pub use reshape::SeqReshape;
pub(crate) use reshape::node_inputs;
pub use transformer::TransformerOp;

use super::{ModelError, tensor_values};
use crate::net::layer::{self, Layer, LayerKind, Network, Padding, PaddingMode};
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::norm::LocalResponseNorm;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, Dropout, GroupNorm, PaddingConfig2d};
use burn::prelude::*;
use combine::{CONCAT_H, CONCAT_W, MUL};
use pool::{GLOBAL_AVG, GLOBAL_MAX};
use reshape::FLATTEN;
use std::cell::RefCell;
use std::collections::HashMap;

/// A parameter-free op; `code` picks the function and `a` is its coefficient.
#[derive(Module, Debug)]
pub struct Func {
    pub code: usize,
    pub a: f64,
}

/// What each node computes.
#[derive(Module, Debug)]
// Burn's `Module` derive takes no `Box`: the self-attention op stays inline.
#[allow(clippy::large_enum_variant)]
pub enum Op {
    Input(InputNorm),
    Conv(Conv2d),
    ConvT(ConvT),
    Fc(Fc),
    BatchNorm(BatchNorm),
    GroupNorm(GroupNorm),
    Lrn(LocalResponseNorm),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    Dropout(Dropout),
    Func(Func),
    Rnn(Rnn),
    SeqReshape(SeqReshape),
    Conv1d(conv::Conv1d),
    Pool1d(pool::Pool1d),
    LayerNorm(norm::LayerNorm),
    RnnProjected(recurrent::RnnProjected),
    Transformer(TransformerOp),
    /// Max unpooling with the max pooling layer's window (inputs: x, the pooling layer's input).
    MaxUnpool(MaxPool2d),
}

/// Func code of the identity (the other codes are in the family files, see the module's
/// documentation).
pub const IDENTITY: usize = 0;

impl Op {
    pub fn build(l: &Layer, net: &Network, device: &Device) -> Result<Op, ModelError> {
        match &l.kind {
            LayerKind::ImageInput { normalization, .. } => io::input(normalization, device),
            LayerKind::FeatureInput { normalization, .. } => io::input(normalization, device),
            LayerKind::SequenceInput {
                normalization,
                frame,
                ..
            } => io::sequence_input(normalization, frame, device),
            LayerKind::Conv2d(c) => conv::conv2d(l, c, device),
            LayerKind::ConvTranspose2d(c) => conv::conv_transpose2d(l, c, device),
            LayerKind::FullyConnected(f) => {
                conv::fully_connected(l, f, net.input_is_sequence(l), device)
            }
            LayerKind::BatchNorm(b) => norm::batch_norm(l, b, device),
            LayerKind::GroupNorm(g) => norm::group_norm(l, g, device),
            LayerKind::Lrn(n) => norm::lrn(n),
            LayerKind::Activation(a) => activation::activation(*a),
            LayerKind::MaxPool2d(p) => pool::max_pool2d(l, p),
            LayerKind::AvgPool2d(p) => pool::avg_pool2d(l, p),
            LayerKind::GlobalAvgPool => pool::global_avg_pool(),
            LayerKind::GlobalMaxPool => pool::global_max_pool(),
            LayerKind::Addition { .. } => combine::addition(),
            LayerKind::Multiplication { .. } => combine::multiplication(),
            LayerKind::DepthConcat { .. } => combine::depth_concat(),
            LayerKind::Concat { dim, .. } => combine::concat(l, *dim),
            LayerKind::Dropout { probability } => reshape::dropout(*probability),
            LayerKind::Flatten => reshape::flatten_layer(l, net),
            LayerKind::Resize2d { .. } => reshape::resize2d(l),
            LayerKind::Softmax => activation::softmax(),
            LayerKind::ClassificationOutput { .. } => io::output(),
            LayerKind::RegressionOutput => io::output(),
            LayerKind::Lstm(r) => recurrent::lstm(l, r, device),
            LayerKind::Gru(r) => recurrent::gru(l, r, device),
            LayerKind::SequenceFolding => reshape::sequence_folding(l, net),
            LayerKind::SequenceUnfolding => reshape::sequence_unfolding(l, net),
            LayerKind::Conv1d(c) => conv::conv1d(l, c, device),
            LayerKind::ConvTranspose1d(c) => conv::conv_transpose1d(l, c, device),
            LayerKind::MaxPool1d(p) => pool::pool1d(p, true),
            LayerKind::AvgPool1d(p) => pool::pool1d(p, false),
            LayerKind::GlobalAvgPool1d => pool::global_avg_pool(),
            LayerKind::GlobalMaxPool1d => pool::global_max_pool(),
            LayerKind::LayerNorm(n) => norm::layer_norm(l, n, input_is_sequence(l, net), device),
            LayerKind::LstmProjected(p) => recurrent::lstm_projected(l, p, device),
            LayerKind::GruProjected(p) => recurrent::gru_projected(l, p, device),
            LayerKind::Transformer(t) => transformer::build(l, t, device),
            LayerKind::MaxUnpool2d(u) => pool::max_unpool2d(l, u),
            LayerKind::Yolov2Transform { anchors } => detect::yolov2_transform(*anchors),
            LayerKind::Yolov2Output { .. } => io::output(),
            LayerKind::Unsupported { reason } => Err(err(l, reason.clone())),
        }
    }

    /// Applies the op to its inputs (in port order).
    pub fn forward(&self, ins: Vec<Tensor<4>>) -> Tensor<4> {
        let mut rest = ins.into_iter();
        let x = rest.next().expect("every node has at least one input");
        match self {
            Op::Input(n) => n.forward(x),
            Op::Conv(c) => crate::cpu::train::conv2d(c, &x).unwrap_or_else(|| c.forward(x)),
            Op::ConvT(c) => c.forward(x),
            Op::Fc(f) => f.forward(x),
            Op::BatchNorm(b) => {
                crate::cpu::train::batch_norm(b, &x).unwrap_or_else(|| b.forward(x))
            }
            Op::GroupNorm(g) => g.forward(x),
            Op::Lrn(n) => n.forward(x),
            Op::MaxPool(p) => {
                crate::cpu::train::max_pool2d(p, &x).unwrap_or_else(|| crate::cpu::max_pool(x, p))
            }
            Op::AvgPool(p) => p.forward(x),
            Op::Dropout(d) => crate::cpu::train::dropout(d, &x).unwrap_or_else(|| d.forward(x)),
            Op::Rnn(r) => r.forward(x),
            Op::RnnProjected(r) => r.forward(x),
            Op::Transformer(t) => t.forward(x),
            Op::Func(f) => f.forward(x, rest),
            Op::SeqReshape(s) => s.forward(x, rest),
            Op::Conv1d(c) => c.forward(x),
            Op::Pool1d(p) => p.forward(x),
            Op::LayerNorm(n) => n.forward(x),
            Op::MaxUnpool(p) => {
                let pooled_input = rest.next().expect("max unpooling has two inputs");
                pool::max_unpool_forward(p, x, pooled_input)
            }
        }
    }
}

impl Op {
    /// Time steps out of the op for `t` steps in (sequences `[N, C, 1, T]`), `None` when a
    /// 1-D window op gets fewer steps than its window.
    pub(crate) fn sequence_steps(&self, t: usize) -> Option<usize> {
        match self {
            Op::Conv1d(c) => c.steps(t),
            Op::Pool1d(p) => p.steps(t),
            Op::ConvT(c) => c.steps(t),
            Op::Rnn(r) => Some(if r.return_sequence { t } else { 1 }),
            Op::Func(f) => Some(if matches!(f.code, GLOBAL_AVG | GLOBAL_MAX) {
                1
            } else {
                t
            }),
            Op::Input(_) => Some(t),
            Op::Conv(_) => Some(t),
            Op::Fc(_) => Some(t),
            Op::BatchNorm(_) => Some(t),
            Op::GroupNorm(_) => Some(t),
            Op::Lrn(_) => Some(t),
            Op::MaxPool(_) => Some(t),
            Op::AvgPool(_) => Some(t),
            Op::Dropout(_) => Some(t),
            Op::LayerNorm(_) => Some(t),
            Op::RnnProjected(r) => Some(if r.rnn.return_sequence { t } else { 1 }),
            // Only the 1-D window ops can refuse a length; the transformer ops keep (or index)
            // the time steps, which the length check does not need exactly.
            Op::Transformer(_) => Some(t),
            Op::SeqReshape(_) => Some(t),
            Op::MaxUnpool(_) => Some(t),
        }
    }
}

impl Op {
    /// Copies the op's current parameters and statistics into `kind`, the description of the
    /// layer it was built from (in the description's canonical layouts); ops without any, or
    /// built from another kind, leave it as it is.
    pub(crate) fn write_back(&self, kind: &mut LayerKind) {
        match (self, kind) {
            (Op::Conv(c), LayerKind::Conv2d(d)) => conv::write_back_conv2d(c, d),
            (Op::ConvT(c), LayerKind::ConvTranspose2d(d)) => {
                conv::write_back_conv_transpose2d(c, d)
            }
            (Op::Fc(f), LayerKind::FullyConnected(d)) => conv::write_back_fully_connected(f, d),
            (Op::BatchNorm(b), LayerKind::BatchNorm(d)) => norm::write_back_batch_norm(b, d),
            (Op::GroupNorm(g), LayerKind::GroupNorm(d)) => norm::write_back_group_norm(g, d),
            (Op::Rnn(r), LayerKind::Lstm(d)) => r.write_back(d),
            (Op::Rnn(r), LayerKind::Gru(d)) => r.write_back(d),
            (Op::Conv1d(c), LayerKind::Conv1d(d)) => conv::write_back_conv1d(c, d),
            (Op::ConvT(c), LayerKind::ConvTranspose1d(d)) => {
                conv::write_back_conv_transpose1d(c, d)
            }
            (Op::LayerNorm(n), LayerKind::LayerNorm(d)) => norm::write_back_layer_norm(n, d),
            (Op::RnnProjected(r), LayerKind::LstmProjected(d)) => r.write_back(d),
            (Op::RnnProjected(r), LayerKind::GruProjected(d)) => r.write_back(d),
            (Op::Transformer(t), LayerKind::Transformer(d)) => t.write_back(d),
            (Op::Input(n), LayerKind::ImageInput { normalization, .. }) => {
                io::write_back_normalization(n, normalization)
            }
            (Op::Input(n), LayerKind::FeatureInput { normalization, .. }) => {
                io::write_back_normalization(n, normalization)
            }
            (Op::Input(n), LayerKind::SequenceInput { normalization, .. }) => {
                io::write_back_normalization(n, normalization)
            }
            _ => {}
        }
    }
}

impl Func {
    /// The function on the node's first input `x` and its other inputs `rest`.
    fn forward(&self, x: Tensor<4>, rest: std::vec::IntoIter<Tensor<4>>) -> Tensor<4> {
        match self.code {
            c if activation::CODES.contains(&c) => activation::forward(self, x),
            GLOBAL_AVG | GLOBAL_MAX => pool::forward(self, x),
            ADD | ADD_RELU | MUL | CONCAT_C | CONCAT_H | CONCAT_W => {
                combine::forward(self, x, rest)
            }
            FLATTEN => reshape::flatten_forward(x),
            c if detect::CODES.contains(&c) => detect::forward(self, x),
            _ => x,
        }
    }
}

/// Sets `dst`'s values (when the description has the parameter) to `t`'s.
fn set(dst: &mut Option<layer::Param>, t: Tensor<1>) {
    if let Some(p) = dst {
        p.value.data = tensor_values(t);
    }
}

/// Sets `dst`'s shape and values (when the description has the parameter) to `t`'s.
fn set_param<const D: usize>(dst: &mut Option<layer::Param>, t: Tensor<D>) {
    if let Some(p) = dst {
        p.value.shape = t.dims().to_vec();
        p.value.data = tensor_values(t);
    }
}

/// Whether layer `l`'s (first) input is a `C x T` sequence.
fn input_is_sequence(l: &Layer, net: &Network) -> bool {
    let seq = net.sequence_outputs();
    l.inputs
        .first()
        .is_some_and(|&j| seq.get(j).copied().unwrap_or(false))
}

fn func(code: usize, a: f64) -> Op {
    Op::Func(Func { code, a })
}

fn err(l: &Layer, msg: impl Into<String>) -> ModelError {
    ModelError::Layer {
        layer: l.name.clone(),
        class: l.class.clone(),
        msg: msg.into(),
    }
}

pub(crate) fn param<const D: usize>(
    l: &Layer,
    p: &Option<layer::Param>,
    what: &str,
    device: &Device,
) -> Result<Param<Tensor<D>>, ModelError> {
    let p = p.as_ref().ok_or_else(|| ModelError::NoWeights {
        layer: l.name.clone(),
        class: l.class.clone(),
        property: what.into(),
    })?;
    let t = tensor::<D>(l, &p.value, what, device)?;
    // A zero LearnRateFactor freezes the parameter (MATLAB's way of freezing layers).
    Ok(Param::from_tensor(t).set_require_grad(p.lr_factor != 0.0))
}

pub(crate) fn tensor<const D: usize>(
    l: &Layer,
    t: &layer::Tensor,
    what: &str,
    device: &Device,
) -> Result<Tensor<D>, ModelError> {
    if t.shape.len() != D {
        return Err(err(
            l,
            format!("{what} has shape {:?}, expected {D} dimensions", t.shape),
        ));
    }
    let data = values(t);
    if data.is_empty() && t.numel() > 0 {
        // A description read back without data: zeros until the Burn record is loaded.
        return Ok(Tensor::zeros(t.shape.clone(), device));
    }
    if t.numel() != data.len() {
        return Err(err(
            l,
            format!("{what} has {} values for shape {:?}", data.len(), t.shape),
        ));
    }
    Ok(Tensor::from_data(
        TensorData::new(data, t.shape.clone()),
        device,
    ))
}

thread_local! {
    /// While [`TakeGuard`] lives: tensor values moved out of the description being built,
    /// keyed by the address of the [`layer::Tensor`] they belong to.
    static TAKEN: RefCell<HashMap<usize, Vec<f32>>> = RefCell::new(HashMap::new());
}

/// Hands `values` (keyed as [`TAKEN`]) to the module being built, instead of copies of the
/// description's values; whatever is left is dropped with the guard.
pub(crate) struct TakeGuard;

impl TakeGuard {
    pub(crate) fn new(values: HashMap<usize, Vec<f32>>) -> TakeGuard {
        TAKEN.with(|t| *t.borrow_mut() = values);
        TakeGuard
    }
}

impl Drop for TakeGuard {
    fn drop(&mut self) {
        TAKEN.with(|t| t.borrow_mut().clear());
    }
}

/// `t`'s values: moved from [`TAKEN`] when they were handed over, else copied.
fn values(t: &layer::Tensor) -> Vec<f32> {
    TAKEN
        .with(|m| m.borrow_mut().remove(&(t as *const layer::Tensor as usize)))
        .unwrap_or_else(|| t.data.clone())
}

fn pads(l: &Layer, p: &PaddingMode) -> Result<Padding, ModelError> {
    match p {
        PaddingMode::Manual(p) => Ok(*p),
        PaddingMode::Same => Err(err(l, "'same' padding was not resolved")),
    }
}

/// MATLAB `[top bottom left right]` → Burn's `Explicit(top, left, bottom, right)`.
fn burn_padding(p: Padding) -> PaddingConfig2d {
    PaddingConfig2d::Explicit(p.top, p.left, p.bottom, p.right)
}
