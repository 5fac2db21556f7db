//! Inference-only rewrites of a built [`MatNet`]: batch normalization folded into the
//! convolution (or fully connected layer) that feeds it. The result computes the same function
//! (to rounding) with one op and one pass over memory fewer per folded layer; it is for
//! `infer`/`predict`/`bench`, never for training (batch statistics would be lost). The other
//! CPU rewrites are in [`prepare`](super::prepare).

use super::MatNet;
use super::ops::{Func, IDENTITY, Op};
use crate::cpu::scale_channels;
use burn::module::Param;
use burn::prelude::*;

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor data")
}

/// Takes a parameter's tensor out of it (leaving an empty placeholder), so that it is the
/// tensor's only holder.
fn take<const D: usize>(p: &mut Param<Tensor<D>>) -> Tensor<D> {
    let device = p.val().device();
    std::mem::replace(p, Param::from_tensor(Tensor::empty([0; D], &device))).into_value()
}

impl MatNet {
    /// Folds every batch normalization whose only input is a convolution (or fully connected
    /// layer) that feeds nothing else: `w' = w * g`, `b' = (b - mean) * g + beta` with
    /// `g = gamma / sqrt(var + eps)` per output channel. The batch normalization becomes an
    /// identity. Returns the module and how many layers were folded.
    pub fn fold_batch_norm(mut self) -> (MatNet, usize) {
        let mut consumers = vec![0usize; self.nodes.len()];
        for n in &self.nodes {
            for &i in &n.inputs {
                consumers[i] += 1;
            }
        }
        let mut folded = 0;
        for k in 0..self.nodes.len() {
            let (j, scale, shift) = match (&self.nodes[k].op, self.nodes[k].inputs.as_slice()) {
                (Op::BatchNorm(bn), &[j]) if consumers[j] == 1 && j != self.output => {
                    let gamma = host(bn.gamma.val());
                    let beta = host(bn.beta.val());
                    let mean = host(bn.running_mean.value());
                    let var = host(bn.running_var.value());
                    let g: Vec<f32> = gamma
                        .iter()
                        .zip(&var)
                        .map(|(g, v)| (*g as f64 / (*v as f64 + bn.epsilon).sqrt()) as f32)
                        .collect();
                    let shift: Vec<f32> = (0..g.len()).map(|c| beta[c] - mean[c] * g[c]).collect();
                    (j, g, shift)
                }
                _ => continue,
            };
            let channels = scale.len();
            let ok = match &mut self.nodes[j].op {
                Op::Conv(c) if c.weight.val().dims()[0] == channels => {
                    let w = take(&mut c.weight);
                    let device = w.device();
                    let dims = w.dims();
                    let s =
                        Tensor::<1>::from_data(TensorData::new(scale.clone(), [channels]), &device);
                    let inner = dims[1] * dims[2] * dims[3];
                    let w = scale_channels(w, &scale, inner, [channels, 1, 1, 1]);
                    let b = match &c.bias {
                        Some(b) => b.val().mul(s),
                        None => Tensor::zeros([channels], &device),
                    };
                    let t = Tensor::<1>::from_data(TensorData::new(shift, [channels]), &device);
                    debug_assert_eq!(w.dims(), dims);
                    c.weight = Param::from_tensor(w).set_require_grad(false);
                    c.bias = Some(Param::from_tensor(b + t).set_require_grad(false));
                    true
                }
                Op::Fc(f) if f.linear.weight.val().dims()[1] == channels => {
                    // Burn's Linear stores [in, out].
                    let w = take(&mut f.linear.weight);
                    let device = w.device();
                    let s =
                        Tensor::<1>::from_data(TensorData::new(scale.clone(), [channels]), &device);
                    let w = scale_channels(w, &scale, 1, [1, channels]);
                    let b = match &f.linear.bias {
                        Some(b) => b.val().mul(s),
                        None => Tensor::zeros([channels], &device),
                    };
                    let t = Tensor::<1>::from_data(TensorData::new(shift, [channels]), &device);
                    f.linear.weight = Param::from_tensor(w).set_require_grad(false);
                    f.linear.bias = Some(Param::from_tensor(b + t).set_require_grad(false));
                    true
                }
                _ => false,
            };
            if ok {
                self.nodes[k].op = Op::Func(Func {
                    code: IDENTITY,
                    a: 0.0,
                });
                folded += 1;
            }
        }
        (self, folded)
    }
}
