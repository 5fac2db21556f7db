//! Fine-tuning sequence classification networks (sequence input, one label per sequence): a
//! `.mat` holding `X`, a cell array of `C x T` sequences (lengths may differ), and `Y`, one
//! label per sequence (categorical, cellstr or numeric).
//!
//! Sequences of equal length are batched together (at most `batch_size` at a time), so no
//! padding enters the recurrent layers: with OutputMode 'last' padding would change the result,
//! where MATLAB pads to the longest sequence of each mini-batch ('SequenceLength' 'longest').

use super::{EpochLog, OPTIMIZER_STATE, Progress, Rng, TrainError, TrainOptions, Trainer};
use crate::data;
use crate::mat::MatFile;
use crate::model::{MatNet, Sequence, saved};
use crate::net::layer::Network;
use burn::module::Module;
use burn::prelude::*;
use std::path::Path;

fn setup(msg: String) -> TrainError {
    TrainError::Setup(msg)
}

/// Labelled sequences, each a row-major `[C, T]` buffer.
#[derive(Debug, Clone)]
pub struct SequenceDataset {
    pub x: Vec<Sequence>,
    pub y: Vec<usize>,
    pub classes: Vec<String>,
}

impl SequenceDataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Reads the sequences `x_var` (a cell of `channels x T` matrices, or one matrix) and the
    /// labels `y_var` from `path`. Errors name the file, the variable and the cell element.
    pub fn from_mat(
        path: &Path,
        x_var: &str,
        y_var: &str,
        channels: usize,
    ) -> Result<SequenceDataset, TrainError> {
        let spec = format!("{}:{x_var}", path.display());
        let x = data::load_sequences(&spec, channels).map_err(|e| setup(e.to_string()))?;
        let m = MatFile::read_vars(path, &[y_var])
            .map_err(|e| setup(format!("{}: {e}", path.display())))?;
        let yv = m
            .get(y_var)
            .map_err(|e| setup(format!("{}: {e}", path.display())))?;
        let (y, classes) = super::dataset::labels(yv, path, y_var)?;
        if y.len() != x.len() {
            return Err(setup(format!(
                "{}: {x_var} has {} sequences, {y_var} {} labels",
                path.display(),
                x.len(),
                y.len()
            )));
        }
        Ok(SequenceDataset { x, y, classes })
    }

    /// Reorders class indices to follow `classes` (the network's order); labels the network
    /// lacks are an error.
    pub fn align_classes(&mut self, classes: &[String]) -> Result<(), TrainError> {
        let map: Vec<usize> = self
            .classes
            .iter()
            .map(|c| {
                classes.iter().position(|n| n == c).ok_or_else(|| {
                    setup(format!(
                        "class '{c}' of the data is not one of the network's classes"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        self.y.iter_mut().for_each(|y| *y = map[*y]);
        self.classes = classes.to_vec();
        Ok(())
    }

    /// Splits off a random `fraction` of the sequences (stratified per class) for validation.
    pub fn split(self, fraction: f64, seed: u64) -> (SequenceDataset, SequenceDataset) {
        let mut rng = Rng::new(seed.wrapping_add(0x5eed));
        let (mut val_idx, mut train_idx) = (vec![], vec![]);
        for k in 0..self.classes.len() {
            let mut idx: Vec<usize> = (0..self.len()).filter(|&i| self.y[i] == k).collect();
            rng.shuffle(&mut idx);
            let nv = (idx.len() as f64 * fraction).round() as usize;
            val_idx.extend_from_slice(&idx[..nv]);
            train_idx.extend_from_slice(&idx[nv..]);
        }
        val_idx.sort();
        train_idx.sort();
        let take = |idx: &[usize]| SequenceDataset {
            x: idx.iter().map(|&i| self.x[i].clone()).collect(),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            classes: self.classes.clone(),
        };
        (take(&train_idx), take(&val_idx))
    }

    /// `order` cut into batches of at most `batch_size` sequences of one length (in the order
    /// each length first appears in `order`).
    pub fn batches(&self, order: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for &i in order {
            let t = self.x[i].steps;
            match groups.iter_mut().find(|g| g.0 == t) {
                Some(g) => g.1.push(i),
                None => groups.push((t, vec![i])),
            }
        }
        groups
            .into_iter()
            .flat_map(|(_, idx)| {
                idx.chunks(batch_size.max(1))
                    .map(|c| c.to_vec())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The sequences `idx` (all of one length) as `[N, C, 1, T]` with their labels.
    pub fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<4>, Vec<usize>) {
        let first = &self.x[idx[0]];
        let (c, t) = (first.channels, first.steps);
        let mut buf = Vec::with_capacity(idx.len() * c * t);
        for &i in idx {
            buf.extend_from_slice(&self.x[i].data);
        }
        let x = Tensor::<4>::from_data(TensorData::new(buf, [idx.len(), c, 1, t]), device);
        (x, idx.iter().map(|&i| self.y[i]).collect())
    }
}

/// Checks that `net` classifies whole sequences (its output is one vector per sequence).
pub fn check_sequence_classifier(net: &Network) -> Result<(), TrainError> {
    let seq = net.sequence_outputs();
    if net
        .outputs
        .first()
        .is_some_and(|&o| seq.get(o).copied().unwrap_or(false))
    {
        return Err(setup(
            "the network outputs a sequence (a label per time step): fine-tuning takes \
             sequence classification networks whose last recurrent layer has OutputMode 'last'"
                .into(),
        ));
    }
    if net.classes.is_empty() {
        return Err(setup(
            "the network has no classes: fine-tuning takes classification networks".into(),
        ));
    }
    Ok(())
}

/// Loss and accuracy on a data set without training (inference mode).
pub fn evaluate(
    model: &MatNet,
    data: &SequenceDataset,
    batch_size: usize,
    device: &Device,
) -> (f64, f64) {
    let inf = model.clone().valid();
    let node = inf.logits_node();
    let (mut loss, mut correct) = (0.0, 0);
    let order: Vec<usize> = (0..data.len()).collect();
    for idx in data.batches(&order, batch_size) {
        let (x, y) = data.batch(&idx, device);
        let (l, c) = super::batch_loss(&inf, node, x, &y, device);
        loss += l.into_scalar::<f32>() as f64 * idx.len() as f64;
        correct += c;
    }
    let n = data.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// [`super::finetune`] for sequence classification networks: the same solvers, logs,
/// checkpoints and resumption, on [`SequenceDataset`]s (no augmentation).
#[allow(clippy::too_many_arguments)]
pub fn finetune_sequences(
    net: &Network,
    model: MatNet,
    train: &SequenceDataset,
    val: Option<&SequenceDataset>,
    opts: &TrainOptions,
    device: &Device,
    out_dir: &Path,
    start_epoch: usize,
    mut history: Vec<EpochLog>,
    progress: &mut dyn Progress,
) -> Result<(MatNet, Vec<EpochLog>), TrainError> {
    check_sequence_classifier(net)?;
    if train.is_empty() {
        return Err(setup("the training set is empty".into()));
    }
    if train.classes.len() != net.classes.len() {
        return Err(setup(format!(
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
    let previous = out_dir
        .join("checkpoints")
        .join(format!("epoch-{:03}", start_epoch.saturating_sub(1)));
    let resume_state = start_epoch > 1 && previous.join(OPTIMIZER_STATE).is_file();
    let model = if resume_state {
        super::restore_param_ids(model, &previous)?
    } else {
        model
    };
    let mut trainer = Trainer::new(net, model, opts)?;
    if resume_state {
        trainer.load_optimizer(&previous)?;
    }
    std::fs::create_dir_all(out_dir.join("checkpoints")).map_err(|e| io(out_dir, e))?;
    let mut rng = Rng::new(opts.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    for _ in 1..start_epoch {
        rng.shuffle(&mut order);
    }
    for epoch in start_epoch..=opts.epochs {
        let t0 = std::time::Instant::now();
        rng.shuffle(&mut order);
        let batches = train.batches(&order, opts.batch_size);
        progress.epoch_start(epoch, batches.len());
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for idx in &batches {
            let (x, y) = train.batch(idx, device);
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
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress.epoch_end(&log);
        history.push(log);
        let mut described = net.clone();
        let inference = model.clone().valid();
        inference.write_back(&mut described);
        let ckpt = out_dir
            .join("checkpoints")
            .join(format!("epoch-{epoch:03}"));
        saved::save(&described, &inference, &ckpt, true)?;
        trainer.save_optimizer(&ckpt)?;
        super::write_log(&out_dir.join("training_log.csv"), &history)
            .map_err(|e| io(out_dir, e))?;
        super::plot::training_curve(&history, &out_dir.join("training_curve.png"))
            .map_err(|e| io(out_dir, e))?;
    }
    Ok((trainer.into_model(), history))
}

/// The trainable parameters of a recurrent op (`Op::Rnn`, or the `rnn` of `Op::RnnProjected`
/// with its projectors `qi`, `qo`) with the stored `LearnRateFactor`s, for MATLAB's
/// per-parameter learning rates.
pub(super) fn rnn_factors(
    r: &crate::model::Rnn,
    d: &crate::net::layer::Recurrent,
    projectors: Option<(&ParamT<2>, &ParamT<2>, &crate::net::layer::Projected)>,
    out: &mut Vec<super::Factor>,
) {
    let lr = |p: &Option<crate::net::layer::Param>| p.as_ref().map_or(1.0, |p| p.lr_factor);
    let f = |id, rank, lr| super::Factor { id, rank, lr };
    out.push(f(r.input_weights.id, 2, lr(&d.input_weights)));
    out.push(f(r.recurrent_weights.id, 2, lr(&d.recurrent_weights)));
    out.push(f(r.bias.id, 1, lr(&d.bias)));
    if let Some((qi, qo, p)) = projectors {
        out.push(f(qi.id, 2, lr(&p.input_projector)));
        out.push(f(qo.id, 2, lr(&p.output_projector)));
    }
}

/// The L2 terms `(|w|^2, L2Factor)` of a recurrent op's parameters (MATLAB's
/// `L2Regularization` applies to `InputWeights`, `RecurrentWeights`, `Bias` and the projectors,
/// each weighted by its `L2Factor`; MATLAB stores 0 for biases by default).
pub(super) fn rnn_l2(
    r: &crate::model::Rnn,
    d: &crate::net::layer::Recurrent,
    projectors: Option<(&ParamT<2>, &ParamT<2>, &crate::net::layer::Projected)>,
) -> Vec<(Tensor<1>, f64)> {
    let l2f = |p: &Option<crate::net::layer::Param>| p.as_ref().map_or(0.0, |p| p.l2_factor as f64);
    let sq2 = |t: &ParamT<2>| t.val().powf_scalar(2.0).sum();
    let mut v = vec![
        (sq2(&r.input_weights), l2f(&d.input_weights)),
        (sq2(&r.recurrent_weights), l2f(&d.recurrent_weights)),
        (r.bias.val().powf_scalar(2.0).sum(), l2f(&d.bias)),
    ];
    if let Some((qi, qo, p)) = projectors {
        v.push((sq2(qi), l2f(&p.input_projector)));
        v.push((sq2(qo), l2f(&p.output_projector)));
    }
    v
}

type ParamT<const D: usize> = burn::module::Param<Tensor<D>>;
