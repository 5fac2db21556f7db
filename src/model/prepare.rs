//! The graph rewrites for the CPU kernels ([`crate::cpu`]): which convolutions the kernels
//! compute, and what each fuses (its ReLU, a residual block's addition and ReLU, a max pooling
//! after it, the channel concatenation it feeds). The decisions are made here, on the module's
//! nodes; the kernels only take the configuration ([`FastConv`]'s `relu` and `pool`, the
//! nodes' `concat_into`).

use super::MatNet;
use super::ops::{ADD, ADD_RELU, CONCAT_C, Func, IDENTITY, Op, RELU};
use crate::cpu::{self, FastConv};
use burn::prelude::*;

impl MatNet {
    /// On the plain CPU (flex) device, replaces convolutions by matcnn's own kernel
    /// ([`cpu::conv2d`]: weights packed once, bias and ReLU applied as the result is written) and
    /// fuses a ReLU that is a convolution's only consumer (possibly through folded batch
    /// normalizations) into it, and one that is an addition's only consumer into the addition
    /// ([`cpu::add_relu`]). Elsewhere the module is returned as is.
    /// The result is for inference only: the replaced convolutions' weights live in the kernel,
    /// not in the module's parameters (do not save or write it back).
    pub fn prepare_cpu(mut self) -> MatNet {
        let Some(first) = self.nodes.iter().find_map(|n| match &n.op {
            Op::Conv(c) => Some(c.weight.val()),
            _ => None,
        }) else {
            return self;
        };
        let probe: Tensor<4> = first;
        if !cpu::is_plain_flex(&probe) {
            return self;
        }
        let mut consumers = vec![0usize; self.nodes.len()];
        for n in &self.nodes {
            for &i in &n.inputs {
                consumers[i] += 1;
            }
        }
        for node in self.nodes.iter_mut() {
            if matches!(&node.op, Op::Conv(c) if FastConv::supports(c)) {
                // The kernel takes the weights over: the Burn op is left as an identity that
                // never runs, so the weights are held once.
                let op = std::mem::replace(
                    &mut node.op,
                    Op::Func(Func {
                        code: IDENTITY,
                        a: 0.0,
                    }),
                );
                if let Op::Conv(c) = op {
                    node.fast = FastConv::new(c);
                }
            }
        }
        for k in 0..self.nodes.len() {
            let j = match (&self.nodes[k].op, self.nodes[k].inputs.as_slice()) {
                (Op::Func(f), &[j]) if f.code == RELU => j,
                _ => continue,
            };
            // Through identities left by folded batch normalizations (conv -> bn -> relu).
            let Some(&producer) = self
                .sole_chain(j, &consumers)
                .as_ref()
                .and_then(|c| c.last())
            else {
                continue;
            };
            if let Some(f) = self.nodes[producer].fast.as_mut() {
                f.relu = true;
            } else if let Op::Func(f) = &mut self.nodes[producer].op
                && f.code == ADD
            {
                // A residual block's addition and ReLU in one pass.
                f.code = ADD_RELU;
            } else {
                continue;
            }
            self.nodes[k].op = Op::Func(Func {
                code: IDENTITY,
                a: 0.0,
            });
        }
        self.fuse_residuals(&consumers);
        self.fuse_pools(&consumers);
        self.fuse_concatenations(&consumers);
        self
    }

    /// Max poolings whose input is a convolution (possibly through identities left by a fused
    /// ReLU or folded batch norms) read by nothing else, without a residual: the convolution
    /// pools its output before storing it ([`cpu::Pool`]), and the pooling is left as an
    /// identity of the convolution's chain.
    fn fuse_pools(&mut self, consumers: &[usize]) {
        for k in 0..self.nodes.len() {
            let (Op::MaxPool(p), &[j]) = (&self.nodes[k].op, self.nodes[k].inputs.as_slice())
            else {
                continue;
            };
            let Some(pool) = cpu::Pool::of(p) else {
                continue;
            };
            let op = p.clone();
            let Some(conv) = self
                .sole_chain(j, consumers)
                .and_then(|c| c.last().copied())
            else {
                continue;
            };
            let node = &mut self.nodes[conv];
            if node.inputs.len() != 1 || node.concat_into.is_some() {
                continue;
            }
            let Some(f) = node.fast.as_mut().filter(|f| f.pool.is_none()) else {
                continue;
            };
            f.pool = Some((pool, op));
            self.nodes[k].op = Op::Func(Func {
                code: IDENTITY,
                a: 0.0,
            });
        }
    }

    /// Additions of two inputs where one is a convolution (possibly through identities left by
    /// folded batch norms) read by nothing else, without a ReLU of its own, and the other is
    /// computed before it (a residual block's shortcut): the convolution takes the other input
    /// and adds it as it stores its result ([`cpu::conv2d_add`]), with the addition's ReLU; the
    /// addition is left as an identity of the convolution's chain.
    fn fuse_residuals(&mut self, consumers: &[usize]) {
        for k in 0..self.nodes.len() {
            let code = match (&self.nodes[k].op, self.nodes[k].inputs.len()) {
                (Op::Func(f), 2) if f.code == ADD || f.code == ADD_RELU => f.code,
                _ => continue,
            };
            // The later of the two convolutions when both qualify (the other input must be
            // ready when it runs).
            let mut best = None;
            for (side, &i) in self.nodes[k].inputs.iter().enumerate() {
                let other = self.nodes[k].inputs[1 - side];
                let Some(conv) = self
                    .sole_chain(i, consumers)
                    .and_then(|c| c.last().copied())
                else {
                    continue;
                };
                let node = &self.nodes[conv];
                if node.fast.as_ref().is_some_and(|f| !f.relu)
                    && node.inputs.len() == 1
                    && other < conv
                    && best.is_none_or(|(c, _, _)| conv > c)
                {
                    best = Some((conv, i, other));
                }
            }
            let Some((conv, i, other)) = best else {
                continue;
            };
            self.nodes[conv].inputs.push(other);
            if let Some(f) = self.nodes[conv].fast.as_mut() {
                f.relu = code == ADD_RELU;
            }
            self.nodes[k].inputs = vec![i];
            self.nodes[k].op = Op::Func(Func {
                code: IDENTITY,
                a: 0.0,
            });
        }
    }

    /// The nodes from `j` back through identities (left by fused ReLUs or folded batch norms)
    /// to the node that computes them, when each is read only by the one before it and none is
    /// the output: `[j, ..., producer]`; `None` when something else reads one of them.
    fn sole_chain(&self, j: usize, consumers: &[usize]) -> Option<Vec<usize>> {
        let sole = |j: usize| consumers[j] == 1 && j != self.output;
        let mut chain = vec![j];
        let mut j = j;
        while sole(j)
            && self.nodes[j].fast.is_none()
            && matches!(&self.nodes[j].op, Op::Func(f) if f.code == IDENTITY)
            && self.nodes[j].inputs.len() == 1
        {
            j = self.nodes[j].inputs[0];
            chain.push(j);
        }
        sole(j).then_some(chain)
    }

    /// Channel concatenations whose every input is a convolution (possibly through identities
    /// left by fused ReLUs or folded batch norms) read by nothing else: the convolutions write
    /// their channels straight into the concatenation's output (no copy afterwards).
    fn fuse_concatenations(&mut self, consumers: &[usize]) {
        for k in 0..self.nodes.len() {
            if !matches!(&self.nodes[k].op, Op::Func(f) if f.code == CONCAT_C) {
                continue;
            }
            // Each input's chain back to its convolution.
            let mut chains = Vec::new();
            for &i in &self.nodes[k].inputs {
                let ok = self.sole_chain(i, consumers).filter(|chain| {
                    // (Not a convolution that adds a residual: it writes its own output.)
                    // (Nor one that pools its output.)
                    chain.last().is_some_and(|&j| {
                        self.nodes[j]
                            .fast
                            .as_ref()
                            .is_some_and(|f| f.pool.is_none())
                            && self.nodes[j].inputs.len() == 1
                    }) && chain.iter().all(|&c| self.nodes[c].concat_into.is_none())
                });
                let Some(chain) = ok else {
                    chains.clear();
                    break;
                };
                chains.push(chain);
            }
            if chains.is_empty() {
                continue;
            }
            let channels: usize = chains
                .iter()
                .filter_map(|c| c.last().and_then(|&j| self.nodes[j].fast.as_ref()))
                .map(|f| f.out_channels())
                .sum();
            let mut offset = 0;
            for chain in chains {
                let conv = *chain.last().expect("a chain ends at its convolution");
                let c = self.nodes[conv]
                    .fast
                    .as_ref()
                    .map_or(0, |f| f.out_channels());
                for &j in &chain {
                    self.nodes[j].concat_into = Some((k, offset, channels));
                }
                offset += c;
            }
        }
    }
}
