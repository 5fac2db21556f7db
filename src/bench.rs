//! `matcnn bench`: wall-clock timings of loading a network and of its forward pass, for
//! comparison scripts (`scripts/compare.py`). Criterion benches live in `benches/`; this is the
//! same measurement from the command line, on any network file, so it can be interleaved with
//! another runtime's.

use crate::model::MatNet;
use crate::train::Rng;
use burn::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// Timings of one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardTimes {
    pub batch: usize,
    /// Milliseconds per forward pass (input upload, forward and output download), one per repetition.
    pub times_ms: Vec<f64>,
    pub median_ms: f64,
    /// Observations per second at the median.
    pub throughput: f64,
    /// With profiling: each layer's mean milliseconds per timed pass, in network order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerTime>>,
}

/// One layer's share of a forward pass.
#[derive(Debug, Clone, Serialize)]
pub struct LayerTime {
    pub layer: String,
    pub ms: f64,
}

/// The median of `v` (0 for an empty slice).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Times `repeat` forward passes of `model` on `batch` observations of shape `[C, H, W]` (after
/// `warmup` untimed ones). The input is `data` when given (observations are taken cyclically),
/// else seeded uniform noise in [0, 255]. With `profile`, each layer's time is measured too.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    model: &MatNet,
    shape: [usize; 3],
    batch: usize,
    repeat: usize,
    warmup: usize,
    data: Option<&[f32]>,
    device: &Device,
    profile: bool,
) -> ForwardTimes {
    let per: usize = shape.iter().product();
    let x: Vec<f32> = match data {
        Some(d) if !d.is_empty() => d.iter().copied().cycle().take(batch * per).collect(),
        _ => {
            let mut rng = Rng::new(batch as u64);
            (0..batch * per)
                .map(|_| (rng.uniform() * 255.0) as f32)
                .collect()
        }
    };
    let [c, h, w] = shape;
    let names = model.node_names();
    let mut layer_ms = vec![0f64; names.len()];
    let run = |timed: Option<&mut Vec<f64>>| {
        let t0 = Instant::now();
        let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, c, h, w]), device);
        let out = match timed {
            Some(t) => model.forward_timed(input, t),
            None => model.forward(input),
        };
        // Reading the output back waits for the backend to finish.
        let _ = out.into_data();
        t0.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..warmup {
        run(None);
    }
    let repeat = repeat.max(1);
    let times_ms: Vec<f64> = (0..repeat)
        .map(|_| run(profile.then_some(&mut layer_ms)))
        .collect();
    let median_ms = median(&times_ms);
    let layers = profile.then(|| {
        names
            .iter()
            .zip(&layer_ms)
            .map(|(n, ms)| LayerTime {
                layer: n.to_string(),
                ms: ms / repeat as f64,
            })
            .collect()
    });
    ForwardTimes {
        batch,
        throughput: batch as f64 / (median_ms / 1e3),
        median_ms,
        times_ms,
        layers,
    }
}

/// Timings of one training step at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct TrainTimes {
    pub batch: usize,
    /// Milliseconds per step (input upload, forward, loss, backward, update), one per repetition.
    pub times_ms: Vec<f64>,
    pub median_ms: f64,
    /// Observations per second at the median.
    pub throughput: f64,
    /// With profiling: median milliseconds of the phases (forward and loss, backward, update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases_ms: Option<PhaseTimes>,
    /// With profiling: each layer's mean milliseconds in the training forward pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerTime>>,
}

/// The phases of a training step.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTimes {
    pub forward_loss: f64,
    pub backward: f64,
    pub update: f64,
}

/// Times `repeat` training steps of `trainer` (after `warmup` untimed ones) on `batch`
/// observations of shape `[C, H, W]` of seeded noise in [0, 255], labels cycling over `classes`.
/// `device` is the trainer's autodiff device.
pub fn train(
    trainer: &mut crate::train::Trainer,
    shape: [usize; 3],
    classes: usize,
    batch: usize,
    (repeat, warmup): (usize, usize),
    device: &Device,
    profile: bool,
) -> TrainTimes {
    let per: usize = shape.iter().product();
    let mut rng = Rng::new(batch as u64);
    let x: Vec<f32> = (0..batch * per)
        .map(|_| (rng.uniform() * 255.0) as f32)
        .collect();
    let y: Vec<usize> = (0..batch).map(|i| i % classes.max(1)).collect();
    let [c, h, w] = shape;
    let input = || Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, c, h, w]), device);
    for _ in 0..warmup {
        trainer.step(input(), &y);
    }
    let repeat = repeat.max(1);
    let mut phases: [Vec<f64>; 3] = Default::default();
    let times_ms: Vec<f64> = (0..repeat)
        .map(|_| {
            let t0 = Instant::now();
            if profile {
                let (_, p) = trainer.step_profiled(input(), &y);
                for (v, t) in phases.iter_mut().zip(p) {
                    v.push(t);
                }
            } else {
                trainer.step(input(), &y);
            }
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let layers = profile.then(|| {
        let model = trainer.model();
        let names = model.node_names();
        let mut ms = vec![0f64; names.len()];
        for _ in 0..repeat {
            let _ = model.forward_timed(input(), &mut ms).into_data();
        }
        names
            .iter()
            .zip(&ms)
            .map(|(n, t)| LayerTime {
                layer: n.to_string(),
                ms: t / repeat as f64,
            })
            .collect()
    });
    let median_ms = median(&times_ms);
    TrainTimes {
        batch,
        throughput: batch as f64 / (median_ms / 1e3),
        median_ms,
        times_ms,
        phases_ms: profile.then(|| PhaseTimes {
            forward_loss: median(&phases[0]),
            backward: median(&phases[1]),
            update: median(&phases[2]),
        }),
        layers,
    }
}
