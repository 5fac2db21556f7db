//! Max pooling that keeps the position of each output's maximum; its backward pass adds each
//! output's gradient onto that position.

use super::{AdTensor, dense, flex, tracked, values, wrap};
use crate::cpu::Pool;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Flex, TensorMetadata};
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use rayon::prelude::*;
use std::sync::Arc;

/// `p` applied to `x` on the autodiff Flex device with this module's backward pass; `None`
/// on other devices and where [`Pool::of`] leaves the layer to Burn or the window does not fit.
pub fn max_pool2d(p: &MaxPool2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let q = Pool::of(p)?;
    let xa = tracked(x)?;
    let [_, _, h, w] = xa.primitive().shape().dims();
    q.output([h, w])?;
    Some(wrap(forward(xa, q)))
}

/// Sizes of the input, and the position of each output's maximum in its input plane.
#[derive(Debug, Clone)]
struct Argmax {
    input: [usize; 4],
    at: Arc<Vec<u32>>,
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = Argmax;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = dense(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node_x {
            let s = ops.state;
            let dx = scatter(values(&dy), &s.at, s.input);
            grads.register::<Flex>(node.id, flex(dx, &s.input));
        }
    }
}

fn forward(x: AdTensor, q: Pool) -> AdTensor {
    let prep = PoolBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful();
    let xv = dense(x.into_primitive());
    let input = xv.shape().dims::<4>();
    let (y, at, out) = pool(values(&xv), input, &q);
    let y = flex(y, &out);
    match prep {
        OpsKind::Tracked(prep) => prep.finish(
            Argmax {
                input,
                at: Arc::new(at),
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The 2x2 windows at stride 2 of one plane (`w` wide) into `y` and `at` (`[oh, ow]`): plain
/// comparisons (measured faster on real activations than selects), and a NaN-aware pass only
/// for windows holding a NaN (their sum is NaN).
fn pool_2x2(xi: &[f32], yo: &mut [f32], ao: &mut [u32], w: usize, [oh, ow]: [usize; 2]) {
    for oy in 0..oh {
        let (r0, r1) = (&xi[2 * oy * w..][..w], &xi[(2 * oy + 1) * w..][..w]);
        for ox in 0..ow {
            let (a, b, cc, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
            let i0 = (2 * oy * w + 2 * ox) as u32;
            let quad = [(b, i0 + 1), (cc, i0 + w as u32), (d, i0 + w as u32 + 1)];
            let (mut m, mut i) = (a, i0);
            if (a + b + cc + d).is_nan() {
                for (v, at) in quad {
                    if wins(v, m) {
                        (m, i) = (v, at);
                    }
                }
            } else {
                for (v, at) in quad {
                    if v > m {
                        (m, i) = (v, at);
                    }
                }
            }
            yo[oy * ow + ox] = m;
            ao[oy * ow + ox] = i;
        }
    }
}

/// Whether `v` replaces the running maximum `m`: larger, or a NaN (which then stays, as in
/// Burn's op: a diverging run shows through the pooling).
#[inline(always)]
fn wins(v: f32, m: f32) -> bool {
    v > m || (v.is_nan() && !m.is_nan())
}

/// The pooled values, the position of each in its input plane (the first maximum in row-major
/// window order, as Burn's op; padded positions never win; a NaN wins) and the output's shape.
pub(super) fn pool(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    q: &Pool,
) -> (Vec<f32>, Vec<u32>, [usize; 4]) {
    let [oh, ow] = q.output([h, w]).expect("checked by the caller");
    let ([kh, kw], [sh, sw], [t, _, l, _]) = (q.k, q.s, q.pad);
    let (plane, oplane) = (h * w, oh * ow);
    let mut y = vec![0f32; n * c * oplane];
    let mut at = vec![0u32; n * c * oplane];
    y.par_chunks_mut(oplane)
        .zip(at.par_chunks_mut(oplane))
        .zip(x.par_chunks(plane))
        .for_each_init(
            || vec![0f32; w],
            |vm, ((yo, ao), xi)| {
                if q.k == [2, 2] && q.s == [2, 2] && q.pad == [0; 4] {
                    return pool_2x2(xi, yo, ao, w, [oh, ow]);
                }
                // Separable: the maximum over the window's rows for every column (a vector
                // pass), then over each window's columns of that; the winner's position is looked
                // up afterwards in row-major order. Padding < kernel, so every window holds an
                // input row and column.
                for oy in 0..oh {
                    let y0 = (oy * sh) as isize - t as isize;
                    let ys = y0.max(0) as usize;
                    let ye = (y0 + kh as isize).min(h as isize) as usize;
                    vm.copy_from_slice(&xi[ys * w..(ys + 1) * w]);
                    for iy in ys + 1..ye {
                        let row = &xi[iy * w..(iy + 1) * w];
                        for (m, v) in vm.iter_mut().zip(row) {
                            // A NaN stays (the position is looked up below); `|`, so that it
                            // vectorizes.
                            *m = if (*v > *m) | v.is_nan() { *v } else { *m };
                        }
                    }
                    for ox in 0..ow {
                        let x0 = (ox * sw) as isize - l as isize;
                        let xs = x0.max(0) as usize;
                        let xe = (x0 + kw as isize).min(w as isize) as usize;
                        let mut m = vm[xs];
                        for &v in &vm[xs + 1..xe] {
                            // A select, not a branch: on real activations it is a coin flip.
                            m = if wins(v, m) { v } else { m };
                        }
                        let same = |v: f32| v == m || (v.is_nan() && m.is_nan());
                        let at = (ys..ye)
                            .flat_map(|iy| (xs..xe).map(move |ix| iy * w + ix))
                            .find(|&p| same(xi[p]))
                            .unwrap_or(ys * w + xs);
                        yo[oy * ow + ox] = m;
                        ao[oy * ow + ox] = at as u32;
                    }
                }
            },
        );
    (y, at, [n, c, oh, ow])
}

/// The input gradient: each output's gradient added at its maximum's position.
pub(super) fn scatter(dy: &[f32], at: &[u32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    let plane = h * w;
    let oplane = dy.len() / (n * c).max(1);
    let mut dx = vec![0f32; n * c * plane];
    dx.par_chunks_mut(plane)
        .zip(dy.par_chunks(oplane.max(1)))
        .zip(at.par_chunks(oplane.max(1)))
        .for_each(|((d, g), a)| {
            for (g, &i) in g.iter().zip(a) {
                if let Some(v) = d.get_mut(i as usize) {
                    *v += g;
                }
            }
        });
    dx
}
