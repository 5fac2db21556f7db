//! Batch normalization with its own backward pass: on the batch's statistics in training mode
//! (the running statistics updated as Burn's `BatchNorm` does), on the stored ones for a
//! frozen layer. Either way the output is `x * a + b` per channel, and every gradient comes
//! from two passes: per-channel sums, then one fused element-wise pass.

use super::{AdTensor, dense, flex, tracked, values, wrap, written};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::nn::BatchNorm;
use burn::prelude::*;
use rayon::prelude::*;

/// `bn` applied to `x` (`[N, C, H, W]`) on the autodiff Flex device with this module's
/// backward pass, the running statistics updated in training mode; `None` on other devices.
pub fn batch_norm(bn: &BatchNorm, x: &Tensor<4>) -> Option<Tensor<4>> {
    norm(bn, x, false)
}

/// [`batch_norm`] followed by a ReLU, in the same passes over the activation: the ReLU's mask
/// is recomputed from the input in the backward pass, so nothing more is stored.
pub fn batch_norm_relu(bn: &BatchNorm, x: &Tensor<4>) -> Option<Tensor<4>> {
    norm(bn, x, true)
}

fn norm(bn: &BatchNorm, x: &Tensor<4>, relu: bool) -> Option<Tensor<4>> {
    let xa = tracked(x)?;
    let gamma = tracked(&bn.gamma.val())?;
    let beta = tracked(&bn.beta.val())?;
    let [n, c, h, w] = xa.primitive().shape().dims();
    if gamma.primitive().shape().dims::<1>() != [c] {
        return None;
    }
    let training = bn.training.is_enabled();
    let xv = dense(xa.primitive().clone());
    let (mean, var) = if training {
        batch_stats(values(&xv), c, h * w)
    } else {
        let host = |t: Tensor<1>| {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .ok()
                .filter(|v| v.len() == c)
        };
        (
            host(bn.running_mean.value())?,
            host(bn.running_var.value())?,
        )
    };
    if training {
        // Burn's update, with the biased batch variance: running = (1 - m) running + m batch.
        let m = bn.momentum as f32;
        let device = x.device();
        let update = |state: &burn::module::RunningState<Tensor<1>>, batch: &[f32]| {
            let old = state
                .value_sync()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap_or_else(|_| batch.to_vec());
            let new: Vec<f32> = old
                .iter()
                .zip(batch)
                .map(|(o, b)| o * (1.0 - m) + b * m)
                .collect();
            state.update(Tensor::from_data(TensorData::new(new, [c]), &device).detach());
        };
        update(&bn.running_mean, &mean);
        update(&bn.running_var, &var);
    }
    let eps = bn.epsilon as f32;
    let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let gv = values(&dense(gamma.primitive().clone())).to_vec();
    let bv = values(&dense(beta.primitive().clone())).to_vec();
    // The output is x * a + b per channel.
    let a: Vec<f32> = (0..c).map(|ch| gv[ch] * invstd[ch]).collect();
    let b: Vec<f32> = (0..c).map(|ch| bv[ch] - mean[ch] * a[ch]).collect();
    let state = Stats {
        mean,
        invstd,
        gamma: gv,
        a,
        b,
        batch: training,
        relu,
        n,
    };
    Some(wrap(forward(xa, gamma, beta, xv, state)))
}

/// What the backward pass needs besides the input.
#[derive(Debug, Clone)]
struct Stats {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    gamma: Vec<f32>,
    /// The output's per-channel scale and shift.
    a: Vec<f32>,
    b: Vec<f32>,
    /// Statistics of the batch (their gradients flow back into the input).
    batch: bool,
    /// A ReLU follows (the output gradient counts where `x * a + b > 0`).
    relu: bool,
    n: usize,
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = (FlexTensor, Stats);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (x, s) = ops.state;
        let shape = x.shape().dims::<4>();
        let (c, plane) = (shape[1], shape[2] * shape[3]);
        let (xs, dys) = (values(&x), values(&dy));
        let gate = s.relu.then_some((&s.a[..], &s.b[..]));
        // Per channel: Σ g and Σ g (x - mean), g the output gradient (zero where a ReLU
        // after the layer cut the output).
        let (sdy, sdyx) = channel_sums(dys, xs, c, plane, &s.mean, gate);
        if let Some(node) = node_x {
            let count = (s.n * plane) as f64;
            let mut k1 = vec![0f32; c];
            let mut k2 = vec![0f32; c];
            let mut k3 = vec![0f32; c];
            for ch in 0..c {
                let g = s.gamma[ch] as f64 * s.invstd[ch] as f64;
                k1[ch] = g as f32;
                if s.batch {
                    // dx = g (dy - Σdy/M - (x - mean) invstd² Σdy(x - mean)/M)
                    let is2 = s.invstd[ch] as f64 * s.invstd[ch] as f64;
                    let b2 = -g * is2 * sdyx[ch] / count;
                    k2[ch] = b2 as f32;
                    k3[ch] = (-g * sdy[ch] / count - b2 * s.mean[ch] as f64) as f32;
                }
            }
            let dx = input_grad(dys, xs, c, plane, [&k1, &k2, &k3], gate);
            grads.register::<Flex>(node.id, flex(dx, &shape));
        }
        if let Some(node) = node_gamma {
            let dg: Vec<f32> = (0..c)
                .map(|ch| (sdyx[ch] * s.invstd[ch] as f64) as f32)
                .collect();
            grads.register::<Flex>(node.id, flex(dg, &[c]));
        }
        if let Some(node) = node_beta {
            let db: Vec<f32> = sdy.iter().map(|v| *v as f32).collect();
            grads.register::<Flex>(node.id, flex(db, &[c]));
        }
    }
}

fn forward(x: AdTensor, gamma: AdTensor, beta: AdTensor, xv: FlexTensor, s: Stats) -> AdTensor {
    let prep = NormBackward
        .prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful();
    let shape = xv.shape().dims::<4>();
    let (c, plane) = (shape[1], shape[2] * shape[3]);
    let y = flex(affine(values(&xv), c, plane, &s.a, &s.b, s.relu), &shape);
    drop((x, gamma, beta));
    match prep {
        OpsKind::Tracked(prep) => prep.finish((xv, s), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// Biased mean and variance of each channel of `[N, C, plane]` values, in f64 around the
/// channel's first value (so that a large mean does not cancel the variance away).
pub(super) fn batch_stats(x: &[f32], c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let n = x.len() / (c * plane).max(1);
    let count = (n * plane).max(1) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let shift = x.get(ch * plane).copied().unwrap_or(0.0);
            let (mut s, mut s2) = (0f64, 0f64);
            for img in 0..n {
                let p = &x[(img * c + ch) * plane..][..plane];
                let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
                let mut chunks = p.chunks_exact(8);
                for ch8 in &mut chunks {
                    for i in 0..8 {
                        let d = ch8[i] - shift;
                        a[i] += d;
                        b[i] += d * d;
                    }
                }
                for v in chunks.remainder() {
                    let d = v - shift;
                    a[0] += d;
                    b[0] += d * d;
                }
                s += a.iter().map(|v| *v as f64).sum::<f64>();
                s2 += b.iter().map(|v| *v as f64).sum::<f64>();
            }
            let m = s / count;
            let var = (s2 / count - m * m).max(0.0);
            ((shift as f64 + m) as f32, var as f32)
        })
        .unzip()
}

/// Per channel of `[N, C, plane]` values: `Σ g` and `Σ g (x - center)`, in f64, `g` the output
/// gradient `dy`, zero where `x * a + b <= 0` with a `gate` `(a, b)`.
fn channel_sums(
    dy: &[f32],
    x: &[f32],
    c: usize,
    plane: usize,
    center: &[f32],
    gate: Option<(&[f32], &[f32])>,
) -> (Vec<f64>, Vec<f64>) {
    match gate {
        Some(gate) => sums::<true>(dy, x, c, plane, center, gate),
        None => sums::<false>(dy, x, c, plane, center, (&[], &[])),
    }
}

/// The output gradient where the gate is open (every value without a gate: `G` false), as a
/// select that vectorizes.
#[inline(always)]
fn gated<const G: bool>(g: f32, x: f32, a: f32, b: f32) -> f32 {
    if !G || x * a + b > 0.0 { g } else { 0.0 }
}

fn sums<const G: bool>(
    dy: &[f32],
    x: &[f32],
    c: usize,
    plane: usize,
    center: &[f32],
    (ga, gb): (&[f32], &[f32]),
) -> (Vec<f64>, Vec<f64>) {
    const L: usize = 16;
    let n = dy.len() / (c * plane).max(1);
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut s, mut s2) = (0f64, 0f64);
            let m = center[ch];
            let (ga, gb) = if G { (ga[ch], gb[ch]) } else { (0.0, 0.0) };
            for img in 0..n {
                let o = (img * c + ch) * plane;
                let (g, v) = (&dy[o..o + plane], &x[o..o + plane]);
                let (mut a, mut b) = ([0f32; L], [0f32; L]);
                let (mut gc, mut vc) = (g.chunks_exact(L), v.chunks_exact(L));
                for (gl, vl) in (&mut gc).zip(&mut vc) {
                    for i in 0..L {
                        let g = gated::<G>(gl[i], vl[i], ga, gb);
                        a[i] += g;
                        b[i] += g * (vl[i] - m);
                    }
                }
                for (g1, v1) in gc.remainder().iter().zip(vc.remainder()) {
                    let g = gated::<G>(*g1, *v1, ga, gb);
                    a[0] += g;
                    b[0] += g * (v1 - m);
                }
                s += a.iter().map(|v| *v as f64).sum::<f64>();
                s2 += b.iter().map(|v| *v as f64).sum::<f64>();
            }
            (s, s2)
        })
        .unzip()
}

/// `x * a + b` per channel of `[N, C, plane]` values, then a ReLU with `relu`.
fn affine(x: &[f32], c: usize, plane: usize, a: &[f32], b: &[f32], relu: bool) -> Vec<f32> {
    let plane = plane.max(1);
    written(x.len(), |out| {
        out.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(i, (o, x))| {
                let (p, r) = (a[i % c], b[i % c]);
                for (o, x) in o.iter_mut().zip(x) {
                    let v = x * p + r;
                    // The gate of the backward pass tests the same expression.
                    o.write(if relu && v <= 0.0 { 0.0 } else { v });
                }
            })
    })
}

/// The input gradient `k1 g + k2 x + k3` per channel of `[N, C, plane]` values, `g` the output
/// gradient `dy`, zero where `x * a + b <= 0` with a `gate` `(a, b)`.
fn input_grad(
    dy: &[f32],
    x: &[f32],
    c: usize,
    plane: usize,
    k: [&[f32]; 3],
    gate: Option<(&[f32], &[f32])>,
) -> Vec<f32> {
    match gate {
        Some(gate) => input_grad_::<true>(dy, x, c, plane, k, gate),
        None => input_grad_::<false>(dy, x, c, plane, k, (&[], &[])),
    }
}

fn input_grad_<const G: bool>(
    dy: &[f32],
    x: &[f32],
    c: usize,
    plane: usize,
    [k1, k2, k3]: [&[f32]; 3],
    (ga, gb): (&[f32], &[f32]),
) -> Vec<f32> {
    let plane = plane.max(1);
    written(dy.len(), |out| {
        out.par_chunks_mut(plane)
            .zip(dy.par_chunks(plane))
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(i, ((o, dy), x))| {
                let ch = i % c;
                let (p, q, r) = (k1[ch], k2[ch], k3[ch]);
                let (ga, gb) = if G { (ga[ch], gb[ch]) } else { (0.0, 0.0) };
                for ((o, g), x) in o.iter_mut().zip(dy).zip(x) {
                    o.write(p * gated::<G>(*g, *x, ga, gb) + q * x + r);
                }
            })
    })
}
