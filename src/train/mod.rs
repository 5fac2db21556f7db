//! Fine-tuning imported networks: data sets, new classes, MATLAB's training options, logs,
//! checkpoints.
//!
//! What is honoured from the `.mat`: each parameter's `LearnRateFactor` (0 freezes it; other
//! values multiply the learning rate of that parameter, for every solver, as MATLAB does) and `L2Factor` (its weight in the L2 penalty
//! `l2/2 * factor * |w|^2`, as MATLAB's `L2Regularization`), batch-normalization statistics
//! updated with the layer's `MeanDecay` when `freeze_bn` is off (by default it is on: see
//! [`DEFAULT_FREEZE_BN`]), dropout active while
//! training, and the loss of the output layer (cross-entropy for classification, half mean
//! squared error for regression).

pub mod dataset;
pub mod plot;
pub mod sequence;

pub use dataset::Dataset;
pub use sequence::SequenceDataset;

use crate::model::{MatNet, ModelError, saved};
use crate::net::layer::{
    FullyConnected, LayerKind, Network, Param as NetParam, Tensor as NetTensor,
};
use burn::module::{Module, ParamGroup, ParamId};
use burn::optim::lr_scheduler::{
    constant::ConstantLr,
    module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler},
};
use burn::optim::{
    AdamConfig, GradientsParams, ModuleOptimizer, RmsPropConfig, SgdConfig,
    momentum::MomentumConfig,
};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use std::io::Write;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Setup(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Optimizer {
    /// SGD with momentum (MATLAB 'sgdm').
    Sgdm,
    Adam,
    Rmsprop,
}

/// Training options (MATLAB's `trainingOptions` names where they exist).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: Optimizer,
    pub momentum: f64,
    /// `L2Regularization`.
    pub l2: f64,
    /// Freeze every layer up to and including this one.
    pub freeze_until: Option<String>,
    /// Keep batch-normalization statistics and parameters as stored.
    pub freeze_bn: bool,
    pub seed: u64,
    /// Random horizontal flips (`RandXReflection`).
    pub flip: bool,
    /// Random translations of up to this many pixels in x and y (`RandXTranslation`/`RandYTranslation`).
    pub translate: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 5,
            batch_size: DEFAULT_BATCH_SIZE,
            lr: DEFAULT_LR,
            optimizer: Optimizer::Sgdm,
            momentum: 0.9,
            l2: 1e-4,
            freeze_until: None,
            freeze_bn: DEFAULT_FREEZE_BN,
            seed: 0,
            flip: false,
            translate: 0,
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub seconds: f64,
}

/// A small deterministic generator (SplitMix64) for shuffling, augmentation and initialization.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

// The defaults of `finetune`, chosen by measurement (docs/training-performance.md): the demo
// network fine-tuned to "digit < 5 / >= 5" from 1,500 digits in 2 epochs, and SqueezeNet
// (gender-audio) on new classes. MATLAB's trainingOptions defaults (lr 0.01, batch 128, batch
// norm updated) with a new layer at factor 10 overshoot (first-epoch loss 2-10, held-out 0.82-0.92)
// and diverge on SqueezeNet, whose inputs are raw 0-255 pixels (loss NaN); at factor 1 they reach
// 0.944 on the digits and still diverge on SqueezeNet.

/// Default learning rate (MATLAB's InitialLearnRate).
pub const DEFAULT_LR: f64 = 0.001;
/// Default mini-batch size.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Batch normalization kept as stored (statistics, scale and offset) unless asked otherwise:
/// small fine-tuning sets estimate the statistics poorly.
pub const DEFAULT_FREEZE_BN: bool = true;
/// The default learn-rate factor of a replaced classifier layer (weights and bias): MATLAB's
/// transfer-learning recipe, the new layer learning 10 times faster than the pretrained ones.
pub const DEFAULT_NEW_LAYER_LR_FACTOR: f64 = 10.0;

/// The index of the learnable layer that produces the class scores: a fully connected layer, or
/// a convolution followed by global pooling (SqueezeNet style), reached from the output through
/// single-input layers that keep the class channels (softmax, dropout, activations, pooling,
/// flatten).
fn final_classifier(net: &Network) -> Option<usize> {
    let mut k = *net.outputs.first()?;
    let mut pooled = false;
    loop {
        let l = &net.layers[k];
        if l.inputs.len() > 1 {
            return None;
        }
        match &l.kind {
            LayerKind::FullyConnected(_) => return Some(k),
            LayerKind::Conv2d(c) if pooled && c.groups == 1 => return Some(k),
            LayerKind::GlobalAvgPool | LayerKind::GlobalMaxPool => pooled = true,
            LayerKind::Softmax
            | LayerKind::ClassificationOutput { .. }
            | LayerKind::Dropout { .. }
            | LayerKind::Activation(_)
            | LayerKind::Flatten => {}
            _ => return None,
        }
        k = *l.inputs.first()?;
    }
}

/// Adapts a classification network to `classes` with [`DEFAULT_NEW_LAYER_LR_FACTOR`]; see
/// [`adapt_classes_with`].
pub fn adapt_classes(net: &mut Network, classes: &[String], seed: u64) -> Result<bool, TrainError> {
    adapt_classes_with(net, classes, seed, DEFAULT_NEW_LAYER_LR_FACTOR)
}

/// Adapts a classification network to `classes`: when they differ from the network's, the last
/// learnable layer that produces the class scores (a fully connected layer, or the 1x1
/// convolution before global pooling) is replaced by a new one with one output per class
/// (Glorot-uniform weights, zero bias, weight and bias learn-rate factors `lr_factor`) and the
/// class names are replaced, as MATLAB's transfer-learning recipe does. Returns whether the layer
/// was replaced.
pub fn adapt_classes_with(
    net: &mut Network,
    classes: &[String],
    seed: u64,
    lr_factor: f64,
) -> Result<bool, TrainError> {
    if net.classes == classes {
        return Ok(false);
    }
    let k = final_classifier(net).ok_or_else(|| {
        TrainError::Setup(
            "cannot find the layer that produces the class scores (a fully connected layer, \
             or a convolution before global pooling)"
                .into(),
        )
    })?;
    let n = classes.len();
    let layer = &mut net.layers[k];
    let no_weights = || {
        TrainError::Setup(format!(
            "layer '{}' has no weights to size the replacement from",
            layer.name
        ))
    };
    let mut rng = Rng::new(seed.wrapping_add(0xfc));
    let mut glorot = |fan_in: usize, fan_out: usize, count: usize| -> Vec<f32> {
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
        (0..count)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * limit) as f32)
            .collect()
    };
    let lr = lr_factor as f32;
    let new_param = |old: &Option<NetParam>, shape: Vec<usize>, value: Vec<f32>, l2: f32| {
        Some(NetParam {
            value: NetTensor::new(shape, value),
            lr_factor: lr,
            l2_factor: old.as_ref().map_or(l2, |p| p.l2_factor),
        })
    };
    layer.kind = match &layer.kind {
        LayerKind::FullyConnected(fc) => {
            let inputs = fc
                .weights
                .as_ref()
                .map(|w| w.value.shape[1])
                .ok_or_else(no_weights)?;
            let w = glorot(inputs, n, n * inputs);
            LayerKind::FullyConnected(FullyConnected {
                outputs: n,
                weights: new_param(&fc.weights, vec![n, inputs], w, 1.0),
                bias: new_param(&fc.bias, vec![n], vec![0.0; n], 0.0),
            })
        }
        LayerKind::Conv2d(c) => {
            let shape = c
                .weights
                .as_ref()
                .map(|w| w.value.shape.clone())
                .ok_or_else(no_weights)?;
            let per = shape.iter().skip(1).product::<usize>();
            let [kh, kw] = c.filter;
            // MATLAB's Glorot for convolutions: fan-in kh*kw*Cin/groups, fan-out kh*kw*Cout.
            let w = glorot(per, kh * kw * n, n * per);
            let mut new_shape = shape;
            new_shape[0] = n;
            let mut conv = c.clone();
            conv.filters = n;
            conv.weights = new_param(&c.weights, new_shape, w, 1.0);
            conv.bias = new_param(&c.bias, vec![n], vec![0.0; n], 0.0);
            LayerKind::Conv2d(conv)
        }
        _ => unreachable!("final_classifier returns a fully connected or convolution layer"),
    };
    layer.name = format!("{}_new", layer.name);
    // The class scores flow from the replaced layer to the output: n channels all along.
    let mut i = *net.outputs.first().unwrap_or(&k);
    loop {
        let l = &mut net.layers[i];
        if let Some(out) = &mut l.output {
            out.c = n;
        }
        if let LayerKind::ClassificationOutput { classes: c } = &mut l.kind {
            *c = classes.to_vec();
        }
        if i == k || l.inputs.len() != 1 {
            break;
        }
        i = l.inputs[0];
    }
    net.classes = classes.to_vec();
    Ok(true)
}

/// (parameter id, rank, learn-rate factor, L2 factor) of every trainable parameter.
struct Factor {
    id: ParamId,
    rank: usize,
    lr: f32,
}

fn factors(model: &MatNet, net: &Network) -> Vec<Factor> {
    use crate::model::Op;
    let mut out = Vec::new();
    let lr = |p: &Option<NetParam>| p.as_ref().map_or(1.0, |p| p.lr_factor);
    for (node, l) in model.nodes.iter().zip(&net.layers) {
        match (&node.op, &l.kind) {
            (Op::Conv(c), LayerKind::Conv2d(d)) => {
                out.push(Factor {
                    id: c.weight.id,
                    rank: 4,
                    lr: lr(&d.weights),
                });
                if let Some(b) = &c.bias {
                    out.push(Factor {
                        id: b.id,
                        rank: 1,
                        lr: lr(&d.bias),
                    });
                }
            }
            (Op::Fc(f), LayerKind::FullyConnected(d)) => {
                out.push(Factor {
                    id: f.linear.weight.id,
                    rank: 2,
                    lr: lr(&d.weights),
                });
                if let Some(b) = &f.linear.bias {
                    out.push(Factor {
                        id: b.id,
                        rank: 1,
                        lr: lr(&d.bias),
                    });
                }
            }
            (Op::BatchNorm(b), LayerKind::BatchNorm(d)) => {
                out.push(Factor {
                    id: b.gamma.id,
                    rank: 1,
                    lr: lr(&d.scale),
                });
                out.push(Factor {
                    id: b.beta.id,
                    rank: 1,
                    lr: lr(&d.offset),
                });
            }
            (Op::Conv1d(c), LayerKind::Conv1d(d)) => {
                out.push(Factor {
                    id: c.weight.id,
                    rank: 4,
                    lr: lr(&d.weights),
                });
                if let Some(b) = &c.bias {
                    out.push(Factor {
                        id: b.id,
                        rank: 1,
                        lr: lr(&d.bias),
                    });
                }
            }
            (Op::LayerNorm(n), LayerKind::LayerNorm(d)) => {
                out.push(Factor {
                    id: n.gamma.id,
                    rank: 1,
                    lr: lr(&d.scale),
                });
                out.push(Factor {
                    id: n.beta.id,
                    rank: 1,
                    lr: lr(&d.offset),
                });
            }
            (Op::Rnn(r), LayerKind::Lstm(d) | LayerKind::Gru(d)) => {
                sequence::rnn_factors(r, d, None, &mut out)
            }
            (Op::RnnProjected(r), LayerKind::LstmProjected(d) | LayerKind::GruProjected(d)) => {
                let qs = (&r.input_projector, &r.output_projector, d);
                sequence::rnn_factors(&r.rnn, &d.rnn, Some(qs), &mut out)
            }
            _ => {}
        }
    }
    out
}

/// The effective recipe, as printed at the start of training: solver, learning rate per group of
/// layers, batch size, L2, frozen layers.
pub fn describe_recipe(net: &Network, opts: &TrainOptions) -> String {
    let until = opts
        .freeze_until
        .as_ref()
        .and_then(|n| net.layers.iter().position(|l| &l.name == n));
    let solver = match opts.optimizer {
        Optimizer::Sgdm => format!("sgdm (momentum {})", opts.momentum),
        Optimizer::Adam => "adam".to_string(),
        Optimizer::Rmsprop => "rmsprop".to_string(),
    };
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    let mut frozen: Vec<&str> = Vec::new();
    for (i, l) in net.layers.iter().enumerate() {
        let factors: Vec<f32> = layer_params(&l.kind)
            .iter()
            .filter_map(|p| p.as_ref().map(|p| p.lr_factor))
            .collect();
        if factors.is_empty() {
            continue;
        }
        let is_bn = matches!(l.kind, LayerKind::BatchNorm(_));
        if until.is_some_and(|u| i <= u)
            || (opts.freeze_bn && is_bn)
            || factors.iter().all(|f| *f == 0.0)
        {
            frozen.push(&l.name);
            continue;
        }
        let key = factors
            .iter()
            .map(|f| format!("{}", opts.lr * *f as f64))
            .collect::<Vec<_>>()
            .join("/");
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(&l.name),
            None => groups.push((key, vec![&l.name])),
        }
    }
    let mut s = format!(
        "recipe: solver {solver}, batch size {}, epochs {}, L2 {}, seed {}\n",
        opts.batch_size, opts.epochs, opts.l2, opts.seed
    );
    for (lr, layers) in &groups {
        s += &format!(
            "  learning rate {lr} (weights/bias): {}\n",
            layers.join(", ")
        );
    }
    s += &format!(
        "  frozen: {}\n",
        if frozen.is_empty() {
            "none".to_string()
        } else {
            frozen.join(", ")
        }
    );
    if opts.freeze_bn {
        s += "  batch normalization kept as stored (--train-bn updates it)\n";
    }
    s
}

/// The learnable parameters of a layer kind that the recipe lists (weights, then bias).
fn layer_params(kind: &LayerKind) -> Vec<&Option<NetParam>> {
    match kind {
        LayerKind::Conv2d(d) => vec![&d.weights, &d.bias],
        LayerKind::FullyConnected(d) => vec![&d.weights, &d.bias],
        LayerKind::BatchNorm(d) => vec![&d.scale, &d.offset],
        LayerKind::Conv1d(d) => vec![&d.weights, &d.bias],
        LayerKind::LayerNorm(d) => vec![&d.scale, &d.offset],
        _ => vec![],
    }
}

/// `sum over weights of l2/2 * L2Factor * |w|^2`.
fn l2_penalty(model: &MatNet, net: &Network, l2: f64) -> Option<Tensor<1>> {
    use crate::model::Op;
    if l2 == 0.0 {
        return None;
    }
    let l2f = |p: &Option<NetParam>| p.as_ref().map_or(0.0, |p| p.l2_factor as f64);
    let mut terms: Vec<Tensor<1>> = Vec::new();
    let mut add = |t: Tensor<1>, f: f64| {
        if f != 0.0 {
            terms.push(t.mul_scalar(l2 * f / 2.0));
        }
    };
    for (node, l) in model.nodes.iter().zip(&net.layers) {
        match (&node.op, &l.kind) {
            (Op::Conv(c), LayerKind::Conv2d(d)) => {
                add(c.weight.val().powf_scalar(2.0).sum(), l2f(&d.weights));
                if let Some(b) = &c.bias {
                    add(b.val().powf_scalar(2.0).sum(), l2f(&d.bias));
                }
            }
            (Op::Fc(f), LayerKind::FullyConnected(d)) => {
                add(
                    f.linear.weight.val().powf_scalar(2.0).sum(),
                    l2f(&d.weights),
                );
                if let Some(b) = &f.linear.bias {
                    add(b.val().powf_scalar(2.0).sum(), l2f(&d.bias));
                }
            }
            (Op::BatchNorm(b), LayerKind::BatchNorm(d)) => {
                add(b.gamma.val().powf_scalar(2.0).sum(), l2f(&d.scale));
                add(b.beta.val().powf_scalar(2.0).sum(), l2f(&d.offset));
            }
            (Op::Conv1d(c), LayerKind::Conv1d(d)) => {
                add(c.weight.val().powf_scalar(2.0).sum(), l2f(&d.weights));
                if let Some(b) = &c.bias {
                    add(b.val().powf_scalar(2.0).sum(), l2f(&d.bias));
                }
            }
            (Op::LayerNorm(n), LayerKind::LayerNorm(d)) => {
                add(n.gamma.val().powf_scalar(2.0).sum(), l2f(&d.scale));
                add(n.beta.val().powf_scalar(2.0).sum(), l2f(&d.offset));
            }
            (Op::Rnn(r), LayerKind::Lstm(d) | LayerKind::Gru(d)) => {
                for (t, f) in sequence::rnn_l2(r, d, None) {
                    add(t, f);
                }
            }
            (Op::RnnProjected(r), LayerKind::LstmProjected(d) | LayerKind::GruProjected(d)) => {
                let qs = (&r.input_projector, &r.output_projector, d);
                for (t, f) in sequence::rnn_l2(&r.rnn, &d.rnn, Some(qs)) {
                    add(t, f);
                }
            }
            _ => {}
        }
    }
    terms.into_iter().reduce(|a, b| a + b)
}

/// MATLAB's per-parameter learning rates: `lr * LearnRateFactor` for every parameter, exactly,
/// whatever the solver (one learning-rate group per distinct factor).
fn learning_rates(lr: f64, factors: &[Factor]) -> ModuleLearningRate {
    let mut groups: Vec<(f32, Vec<ParamId>)> = Vec::new();
    for f in factors.iter().filter(|f| f.lr != 1.0 && f.lr != 0.0) {
        match groups.iter_mut().find(|g| g.0 == f.lr) {
            Some(g) => g.1.push(f.id),
            None => groups.push((f.lr, vec![f.id])),
        }
    }
    let mut sched = ModuleLrScheduler::new(ConstantLr::from(lr));
    for (factor, ids) in groups {
        sched = sched.with_group(
            ParamGroup::from_ids(ids),
            ConstantLr::from(lr * factor as f64),
        );
    }
    sched.step()
}

/// Drops the gradients of parameters whose LearnRateFactor is 0 (they are frozen).
fn drop_frozen(grads: &mut GradientsParams, factors: &[Factor]) {
    for f in factors.iter().filter(|f| f.lr == 0.0) {
        match f.rank {
            4 => drop(grads.remove::<4>(f.id)),
            2 => drop(grads.remove::<2>(f.id)),
            _ => drop(grads.remove::<1>(f.id)),
        }
    }
}

/// Freezes layers `0..=until` (weights and batch-norm statistics) and, with `freeze_bn`, every
/// batch normalization.
fn apply_freezing(
    mut model: MatNet,
    net: &Network,
    opts: &TrainOptions,
) -> Result<MatNet, TrainError> {
    let until =
        match &opts.freeze_until {
            Some(name) => Some(net.layers.iter().position(|l| &l.name == name).ok_or_else(
                || {
                    TrainError::Setup(format!(
                        "--freeze-until: no layer named '{name}' (layers: {})",
                        net.layers
                            .iter()
                            .map(|l| l.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                },
            )?),
            None => None,
        };
    let nodes = std::mem::take(&mut model.nodes);
    model.nodes = nodes
        .into_iter()
        .enumerate()
        .map(|(i, mut n)| {
            let is_bn = matches!(n.op, crate::model::Op::BatchNorm(_));
            if until.is_some_and(|u| i <= u) || (opts.freeze_bn && is_bn) {
                n.op = n.op.freeze();
            }
            n
        })
        .collect();
    Ok(model)
}

/// Loss and correct count of one batch (classification when `targets` are class indices).
pub(crate) fn batch_loss(
    model: &MatNet,
    logits_node: usize,
    x: Tensor<4>,
    y: &[usize],
    device: &Device,
) -> (Tensor<1>, usize) {
    let out = model.forward_node(x, logits_node);
    let [n, c, h, w] = out.dims();
    let logits: Tensor<2> = out.reshape([n, c * h * w]);
    let k = c * h * w;
    let pred = logits
        .clone()
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default();
    let correct = pred
        .iter()
        .zip(y)
        .filter(|(p, t)| **p as usize == **t)
        .count();
    let onehot: Vec<f32> = y
        .iter()
        .flat_map(|&t| (0..k).map(move |j| if j == t { 1.0 } else { 0.0 }))
        .collect();
    let target = Tensor::<2>::from_data(TensorData::new(onehot, [n, k]), device);
    // Cross-entropy of the softmax, computed stably from the logits.
    let loss = (log_softmax(logits, 1) * target)
        .sum()
        .neg()
        .div_scalar(n as f64);
    (loss, correct)
}

/// Loss and accuracy on a data set without training (inference mode).
pub fn evaluate(model: &MatNet, data: &Dataset, batch_size: usize, device: &Device) -> (f64, f64) {
    let inf = model.clone().valid();
    let node = inf.logits_node();
    let (mut loss, mut correct) = (0.0, 0);
    for idx in (0..data.len())
        .collect::<Vec<_>>()
        .chunks(batch_size.max(1))
    {
        let (x, y) = data.batch(idx, device, None);
        let (l, c) = batch_loss(&inf, node, x, &y, device);
        loss += l.into_scalar::<f32>() as f64 * idx.len() as f64;
        correct += c;
    }
    (
        loss / data.len().max(1) as f64,
        correct as f64 / data.len().max(1) as f64,
    )
}

/// One optimizer step at a time: the loss of the output layer plus the L2 penalty, gradients,
/// MATLAB's per-parameter learning rates, frozen parameters left alone. [`finetune`] drives it
/// over epochs; the training benchmark drives it directly.
pub struct Trainer<'a> {
    net: &'a Network,
    model: Option<MatNet>,
    optim: ModuleOptimizer,
    lrs: ModuleLearningRate,
    factors: Vec<Factor>,
    node: usize,
    l2: f64,
}

impl<'a> Trainer<'a> {
    /// `model` must live on an autodiff device (`device.autodiff()`); layers are frozen as
    /// `opts` says.
    pub fn new(net: &'a Network, model: MatNet, opts: &TrainOptions) -> Result<Self, TrainError> {
        let model = apply_freezing(model, net, opts)?;
        let factors = factors(&model, net);
        let node = model.logits_node();
        let lrs = learning_rates(opts.lr, &factors);
        let optim = match opts.optimizer {
            Optimizer::Sgdm => SgdConfig::new()
                .with_momentum(Some(
                    MomentumConfig::new()
                        .with_momentum(opts.momentum)
                        .with_dampening(0.0),
                ))
                .init(),
            Optimizer::Adam => AdamConfig::new().init(),
            Optimizer::Rmsprop => RmsPropConfig::new().init(),
        };
        Ok(Trainer {
            net,
            model: Some(model),
            optim,
            lrs,
            factors,
            node,
            l2: opts.l2,
        })
    }

    /// Trains on one batch; returns its loss (before the step, without the L2 term) and how many
    /// of its observations the network classified right.
    pub fn step(&mut self, x: Tensor<4>, y: &[usize]) -> (f64, usize) {
        let model = self
            .model
            .take()
            .expect("the trainer always holds its model");
        let device = x.device();
        let (loss, correct) = batch_loss(&model, self.node, x, y, &device);
        let total = match l2_penalty(&model, self.net, self.l2) {
            Some(p) => loss.clone() + p,
            None => loss.clone(),
        };
        let mut grads = GradientsParams::from_grads(total.backward(), &model);
        drop_frozen(&mut grads, &self.factors);
        self.model = Some(self.optim.step(self.lrs.clone(), model, grads));
        (loss.into_scalar::<f32>() as f64, correct)
    }

    /// As [`step`](Self::step), also returning the milliseconds of its phases:
    /// `[forward and loss, backward, update]` (the CPU backends run ops when called; the loss is
    /// read back before the backward pass starts).
    pub fn step_profiled(&mut self, x: Tensor<4>, y: &[usize]) -> (f64, [f64; 3]) {
        let model = self
            .model
            .take()
            .expect("the trainer always holds its model");
        let device = x.device();
        let t0 = std::time::Instant::now();
        let (loss, _) = batch_loss(&model, self.node, x, y, &device);
        let total = match l2_penalty(&model, self.net, self.l2) {
            Some(p) => loss.clone() + p,
            None => loss.clone(),
        };
        let value = loss.into_scalar::<f32>() as f64;
        let t1 = std::time::Instant::now();
        let mut grads = GradientsParams::from_grads(total.backward(), &model);
        drop_frozen(&mut grads, &self.factors);
        let t2 = std::time::Instant::now();
        self.model = Some(self.optim.step(self.lrs.clone(), model, grads));
        let t3 = std::time::Instant::now();
        let ms = |a: std::time::Instant, b: std::time::Instant| (b - a).as_secs_f64() * 1e3;
        (value, [ms(t0, t1), ms(t1, t2), ms(t2, t3)])
    }

    /// The network as trained so far.
    pub fn model(&self) -> &MatNet {
        self.model
            .as_ref()
            .expect("the trainer always holds its model")
    }

    pub fn into_model(self) -> MatNet {
        self.model.expect("the trainer always holds its model")
    }
}

/// The optimizer's state in a checkpoint, and the ids of the parameters it is keyed by.
pub const OPTIMIZER_STATE: &str = "optimizer.bpk";
const PARAM_IDS: &str = "param_ids.json";

struct IdCollector(Vec<u64>);

impl burn::module::ModuleVisitor for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

struct IdSetter<'a> {
    ids: &'a [u64],
    next: usize,
}

impl burn::module::ModuleMapper for IdSetter<'_> {
    fn map_float<const D: usize>(
        &mut self,
        mut param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        if let Some(&id) = self.ids.get(self.next) {
            param.id = ParamId::from(id);
        }
        self.next += 1;
        param
    }
}

/// Gives the parameters of a module rebuilt from a checkpoint the ids they had when the
/// checkpoint was written (the optimizer's saved state is keyed by them).
pub(crate) fn restore_param_ids(model: MatNet, dir: &Path) -> Result<MatNet, TrainError> {
    let path = dir.join(PARAM_IDS);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let ids: Vec<u64> = serde_json::from_str(&text)
        .map_err(|e| TrainError::Setup(format!("{}: {e}", path.display())))?;
    let mut count = IdCollector(vec![]);
    model.visit(&mut count);
    if count.0.len() != ids.len() {
        return Err(TrainError::Setup(format!(
            "{}: {} parameter ids for a network with {} parameters",
            path.display(),
            ids.len(),
            count.0.len()
        )));
    }
    Ok(model.map(&mut IdSetter { ids: &ids, next: 0 }))
}

impl Trainer<'_> {
    /// Writes the optimizer's state and the parameter ids it refers to into `dir`.
    pub fn save_optimizer(&self, dir: &Path) -> Result<(), TrainError> {
        let mut ids = IdCollector(vec![]);
        self.model().visit(&mut ids);
        let path = dir.join(PARAM_IDS);
        std::fs::write(
            &path,
            serde_json::to_string(&ids.0).unwrap_or_else(|_| "[]".into()),
        )
        .map_err(|e| TrainError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let path = dir.join(OPTIMIZER_STATE);
        self.optim
            .to_record()
            .save(&path)
            .map_err(|e| TrainError::Setup(format!("{}: {e:?}", path.display())))
    }

    /// Loads the optimizer's state written by [`save_optimizer`](Self::save_optimizer).
    pub fn load_optimizer(&mut self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join(OPTIMIZER_STATE);
        let record = burn::optim::OptimizerRecord::load(&path)
            .map_err(|e| TrainError::Setup(format!("{}: {e:?}", path.display())))?;
        let optim = std::mem::replace(&mut self.optim, SgdConfig::new().init());
        self.optim = optim.load_record(record);
        Ok(())
    }
}

/// What the caller sees of training.
pub trait Progress {
    fn epoch_start(&mut self, _epoch: usize, _batches: usize) {}
    fn batch(&mut self, _loss: f64, _accuracy: f64) {}
    fn epoch_end(&mut self, _log: &EpochLog) {}
}

impl Progress for () {}

/// Fine-tunes `net` on `train`, validating on `val` each epoch. Writes into `out_dir`:
/// `training_log.csv`, `training_curve.png` and `checkpoints/epoch-NNN/` (saved networks). With
/// `start_epoch > 1` training resumes after a checkpoint. Returns the trained module (on the
/// training device) and the log.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    net: &Network,
    model: MatNet,
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &TrainOptions,
    device: &Device,
    out_dir: &Path,
    start_epoch: usize,
    mut history: Vec<EpochLog>,
    progress: &mut dyn Progress,
) -> Result<(MatNet, Vec<EpochLog>), TrainError> {
    if train.is_empty() {
        return Err(TrainError::Setup("the training set is empty".into()));
    }
    if train.classes.len() != net.classes.len() {
        return Err(TrainError::Setup(format!(
            "the data has {} classes, the network {}",
            train.classes.len(),
            net.classes.len()
        )));
    }
    device.seed(opts.seed);
    let io = |p: &Path, e: std::io::Error| TrainError::Io {
        path: p.display().to_string(),
        source: e,
    };
    // Resuming: the optimizer's state (momentum, Adam's moments) from the last checkpoint, when
    // it was saved there, so that training continues as if it had not stopped.
    let previous = out_dir
        .join("checkpoints")
        .join(format!("epoch-{:03}", start_epoch.saturating_sub(1)));
    let resume_state = start_epoch > 1 && previous.join(OPTIMIZER_STATE).is_file();
    let model = if resume_state {
        restore_param_ids(model, &previous)?
    } else {
        model
    };
    let mut trainer = Trainer::new(net, model, opts)?;
    if resume_state {
        trainer.load_optimizer(&previous)?;
    }
    std::fs::create_dir_all(out_dir.join("checkpoints")).map_err(|e| io(out_dir, e))?;
    let mut rng = Rng::new(opts.seed);
    // Advance the shuffling generator past the epochs already done.
    let mut order: Vec<usize> = (0..train.len()).collect();
    for _ in 1..start_epoch {
        rng.shuffle(&mut order);
    }
    for epoch in start_epoch..=opts.epochs {
        let t0 = std::time::Instant::now();
        rng.shuffle(&mut order);
        let batches: Vec<&[usize]> = order.chunks(opts.batch_size.max(1)).collect();
        progress.epoch_start(epoch, batches.len());
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for idx in batches {
            let aug = dataset::Augment {
                flip: opts.flip,
                translate: opts.translate,
            };
            let (x, y) = train.batch(idx, device, Some((&aug, &mut rng)));
            let (l, c) = trainer.step(x, &y);
            loss_sum += l * idx.len() as f64;
            correct += c;
            seen += idx.len();
            progress.batch(l, c as f64 / idx.len() as f64);
        }
        let model = trainer.model();
        let (val_loss, val_accuracy) = match val {
            Some(v) if !v.is_empty() => {
                let (l, a) = evaluate(model, v, opts.batch_size, device);
                (Some(l), Some(a))
            }
            _ => (None, None),
        };
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            val_loss,
            val_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress.epoch_end(&log);
        history.push(log);
        // Checkpoint, log and curve after every epoch.
        let mut described = net.clone();
        let inference = model.clone().valid();
        inference.write_back(&mut described);
        let ckpt = out_dir
            .join("checkpoints")
            .join(format!("epoch-{epoch:03}"));
        saved::save(&described, &inference, &ckpt, true)?;
        trainer.save_optimizer(&ckpt)?;
        write_log(&out_dir.join("training_log.csv"), &history).map_err(|e| io(out_dir, e))?;
        plot::training_curve(&history, &out_dir.join("training_curve.png"))
            .map_err(|e| io(out_dir, e))?;
    }
    Ok((trainer.into_model(), history))
}

/// Writes the CSV log (header + one row per epoch).
pub fn write_log(path: &Path, history: &[EpochLog]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    writeln!(
        f,
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds"
    )?;
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for l in history {
        writeln!(
            f,
            "{},{:.6},{:.6},{},{},{:.3}",
            l.epoch,
            l.train_loss,
            l.train_accuracy,
            opt(l.val_loss),
            opt(l.val_accuracy),
            l.seconds
        )?;
    }
    Ok(())
}

/// Reads a CSV log written by [`write_log`] (for `--resume`).
pub fn read_log(path: &Path) -> std::io::Result<Vec<EpochLog>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 6 {
            continue;
        }
        let num = |s: &str| s.parse::<f64>().ok();
        out.push(EpochLog {
            epoch: f[0].parse().unwrap_or(0),
            train_loss: num(f[1]).unwrap_or(f64::NAN),
            train_accuracy: num(f[2]).unwrap_or(f64::NAN),
            val_loss: num(f[3]),
            val_accuracy: num(f[4]),
            seconds: num(f[5]).unwrap_or(0.0),
        });
    }
    Ok(out)
}
