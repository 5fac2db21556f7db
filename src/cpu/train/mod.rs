//! Training kernels: convolution, batch normalization and max pooling as operations of Burn's
//! autodiff backend over Flex, each with its own backward pass, so that a training step runs
//! matcnn's CPU kernels where Burn's are slow (issue 20: the step was 3.4-5.9 times slower than
//! PyTorch's; the profile is in `docs/training-performance.md`).
//!
//! Each entry point takes a Burn layer and its input and returns `None` where it does not
//! apply: a tensor that is not on the autodiff Flex device (`Device::flex().autodiff()`, no
//! checkpointing), not f32, or a configuration the kernel leaves to Burn (said at each entry).
//! The caller then runs Burn's own op, so training on other backends (wgpu) is unchanged.
//!
//! How an op joins Burn's graph: the autodiff tensor is taken apart
//! (`Tensor::try_into_primitive::<Autodiff<Flex>>`), a [`Backward`] step is prepared on its
//! inputs' nodes, the forward kernel runs on the Flex primitives, and the step keeps what its
//! backward needs (the inputs, argmax positions, batch statistics). Burn calls the backward
//! with the output's gradient; it registers a gradient for every input that needs one.
//!
//! - `conv.rs`: forward by the inference engine's kernels; the input gradient as the
//!   convolution of the output gradient with the flipped, transposed weights (stride 1) or by
//!   gemm and col2im (other strides and dilations); the weight gradient as one gemm per image
//!   and group over the input's column matrix; the bias gradient as sums.
//! - `norm.rs`: batch normalization on the batch's statistics (training) or the stored ones
//!   (a frozen layer still passes gradients), with the running statistics updated as Burn's
//!   `BatchNorm` does.
//! - `pool.rs`: max pooling that keeps each output's argmax; its backward scatters.
//! - `dropout.rs`: dropout with its own mask generator (seeded from the device's generator).
//! - `concat.rs`: channel concatenation of 2 to 4 inputs.
//!
//! `MatNet`'s pass fuses a ReLU into the batch normalization or convolution before it
//! ([`batch_norm_relu`], [`conv2d_relu`]) where the ReLU is that layer's only consumer.

mod concat;
mod conv;
mod dropout;
mod norm;
mod pool;
#[cfg(test)]
mod tests;

pub use concat::concat_channels;
pub use conv::{conv2d, conv2d_relu};
pub use dropout::dropout;
pub use norm::{batch_norm, batch_norm_relu};
pub use pool::max_pool2d;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, BackendTypes, Flex};
use burn::prelude::*;

/// Burn's autodiff backend over Flex, without checkpointing (what `Device::flex().autodiff()`
/// gives).
type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

/// `x` as an autodiff Flex f32 tensor, `None` for any other tensor.
fn tracked<const D: usize>(x: &Tensor<D>) -> Option<AdTensor> {
    // Inference passes ask for every layer: answer them without the failed conversion's message.
    if !x.device().is_autodiff() {
        return None;
    }
    let t = x.clone().try_into_primitive::<Ad>().ok()?;
    (t.primitive().dtype() == burn::tensor::DType::F32).then_some(t)
}

/// An autodiff Flex primitive as a tensor.
fn wrap<const D: usize>(t: AdTensor) -> Tensor<D> {
    Tensor::from_primitive::<Ad>(t)
}

/// `t` with its values in one contiguous f32 run (a copy only where they are not).
fn dense(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The values of a tensor made by [`dense`] (or by these kernels).
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("training kernels hold contiguous f32 tensors")
}

/// A Flex tensor of `shape` owning `v`.
fn flex(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

/// A plain Flex tensor as a `Tensor` (to run the inference engine's kernels on it).
fn plain<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}

/// The Flex primitive of a tensor made by the inference engine's kernels.
fn unplain<const D: usize>(t: Tensor<D>) -> FlexTensor {
    dense(
        t.try_into_primitive::<Flex>()
            .expect("the inference kernels return plain Flex tensors"),
    )
}

/// `len` floats, every one written by `fill` (given them uninitialized) before it returns: an
/// output buffer without the pass that would zero it first.
fn written(len: usize, fill: impl FnOnce(&mut [std::mem::MaybeUninit<f32>])) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote all `len` floats (the callers' loops cover every element).
    unsafe { v.set_len(len) };
    v
}
