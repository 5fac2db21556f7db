//! Channel concatenation (depth concatenation) of 2 to 4 inputs with its own backward pass:
//! copies of each image's contiguous channel run, both ways. Burn's `cat` took 10 ms of
//! SqueezeNet's training forward pass per fire module at batch 16.

use super::{AdTensor, dense, flex, tracked, values, wrap, written};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Flex, TensorMetadata};
use burn::prelude::*;
use rayon::prelude::*;

/// The inputs `[N, C_i, H, W]` side by side along the channels on the autodiff Flex device;
/// `None` for other devices, other counts and inputs whose other sizes differ.
pub fn concat_channels(xs: &[Tensor<4>]) -> Option<Tensor<4>> {
    match xs.len() {
        2 => concat::<2>(xs),
        3 => concat::<3>(xs),
        4 => concat::<4>(xs),
        _ => None,
    }
}

fn concat<const K: usize>(xs: &[Tensor<4>]) -> Option<Tensor<4>> {
    let mut ad = Vec::with_capacity(K);
    for x in xs {
        ad.push(tracked(x)?);
    }
    let dims: Vec<[usize; 4]> = ad.iter().map(|t| t.primitive().shape().dims()).collect();
    let [n, _, h, w] = dims[0];
    if dims.iter().any(|d| d[0] != n || d[2] != h || d[3] != w) {
        return None;
    }
    let channels: [usize; K] = std::array::from_fn(|i| dims[i][1]);
    let ad: [AdTensor; K] = ad.try_into().ok()?;
    Some(wrap(forward(ad, channels, [n, h, w])))
}

#[derive(Debug)]
struct ConcatBackward;

impl<const K: usize> Backward<Flex, K> for ConcatBackward {
    /// Each input's channels, and `[N, H, W]`.
    type State = ([usize; K], [usize; 3]);

    fn backward(self, ops: Ops<Self::State, K>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (channels, [n, h, w]) = ops.state;
        let plane = h * w;
        let total: usize = channels.iter().sum();
        let dy = values(&dy);
        let mut offset = 0;
        for (parent, c) in ops.parents.into_iter().zip(channels) {
            if let Some(node) = parent {
                let run = c * plane;
                let dx = written(n * run, |out| {
                    out.par_chunks_mut(run.max(1))
                        .enumerate()
                        .for_each(|(img, o)| {
                            let src = &dy[(img * total + offset) * plane..][..run];
                            for (o, v) in o.iter_mut().zip(src) {
                                o.write(*v);
                            }
                        })
                });
                grads.register::<Flex>(node.id, flex(dx, &[n, c, h, w]));
            }
            offset += c;
        }
    }
}

fn forward<const K: usize>(
    xs: [AdTensor; K],
    channels: [usize; K],
    [n, h, w]: [usize; 3],
) -> AdTensor {
    let prep = ConcatBackward
        .prepare::<NoCheckpointing>(std::array::from_fn(|i| xs[i].node()))
        .compute_bound()
        .stateful();
    let plane = h * w;
    let vals: Vec<_> = xs.into_iter().map(|x| dense(x.into_primitive())).collect();
    let total: usize = channels.iter().sum();
    let y = written(n * total * plane, |out| {
        out.par_chunks_mut((total * plane).max(1))
            .enumerate()
            .for_each(|(img, o)| {
                let mut at = 0;
                for (v, c) in vals.iter().zip(channels) {
                    let run = c * plane;
                    let src = &values(v)[img * run..(img + 1) * run];
                    for (o, v) in o[at..at + run].iter_mut().zip(src) {
                        o.write(*v);
                    }
                    at += run;
                }
            })
    });
    let y = flex(y, &[n, total, h, w]);
    match prep {
        OpsKind::Tracked(prep) => prep.finish((channels, [n, h, w]), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}
