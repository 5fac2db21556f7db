//! The CPU inference engine: hand-written kernels for the plain Flex (CPU) backend, used where
//! Burn 0.22's own op does avoidable work. They run on plain Flex tensors only (no autodiff, no
//! GPU); training and other backends keep Burn's ops, and every entry point either falls back
//! to Burn's op itself or says when it does not apply.
//!
//! This module depends on Burn, `gemm`, rayon, libc and std only, never on the rest of matcnn:
//! the model (`src/model/`) decides which layers run here (its graph rewrites, in
//! `model/prepare.rs`, pick fusions such as a convolution with its ReLU, residual addition or
//! max pooling) and calls these kernels with Burn tensors, slices and the configuration types
//! defined here.
//!
//! The interface:
//! - Convolution (`conv.rs`): [`FastConv`] (a `burn::nn::conv::Conv2d`'s weights held in the
//!   form the kernel takes, with a fused ReLU and max pooling), [`conv2d`], [`conv2d_add`] (plus
//!   a residual, before the ReLU), [`conv2d_part`] into a [`ConcatBuf`] (a channel
//!   concatenation written in place), [`Geometry`] (the sizes of one call).
//! - Pooling (`pool.rs`): [`max_pool`] (a Burn max pooling layer, Burn's op where the kernel does
//!   not apply), [`max_pool2d`] (the kernel), [`Pool`] (a max pooling in the kernels' form).
//! - Fully connected (`linear.rs`): [`linear`] (`None` where Burn's op should run).
//! - Element-wise (`elementwise.rs`): [`normalize`] (an input layer's normalization),
//!   [`add_relu`], [`concat_channels`], [`scale_channels`] (batch-norm folding's per-channel
//!   weight scaling).
//! - [`is_plain_flex`]: whether a tensor is one these kernels take.
//!
//! Inside: `matmul.rs` (`x Wᵀ` by parallel gemms, the AVX-512 gemv), and on x86-64 the AVX-512
//! kernels `direct.rs` (direct convolution, with fused max pooling) and `winograd.rs` (F(2x2, 3x3)).

mod conv;
#[cfg(target_arch = "x86_64")]
mod direct;
mod elementwise;
mod linear;
mod matmul;
mod pool;
pub mod train;
#[cfg(target_arch = "x86_64")]
mod winograd;

pub use conv::{ConcatBuf, FastConv, Geometry, conv2d, conv2d_add, conv2d_part};
pub use elementwise::{add_relu, concat_channels, normalize, scale_channels};
pub use linear::linear;
pub use pool::{Pool, max_pool, max_pool2d};

use burn::prelude::*;

/// An activation's values, borrowed from its buffer when the tensor is a contiguous f32 tensor
/// of the Flex (CPU) backend, even when another tensor shares that buffer: `into_data` copies a
/// shared buffer, and a residual block's input is shared with its skip connection (ResNet-18 at
/// batch 32 spent 55 ms of a 670 ms pass in those copies). Elsewhere, a copy.
enum Values {
    Flex(burn::backend::flex::FlexTensor),
    Owned(Vec<f32>),
}

impl Values {
    pub fn of<const D: usize>(x: Tensor<D>) -> Values {
        if let Ok(t) = x.clone().try_into_primitive::<burn::backend::Flex>()
            && t.as_slice::<f32>().is_some()
        {
            return Values::Flex(t);
        }
        Values::Owned(host(x))
    }
}

impl std::ops::Deref for Values {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Values::Flex(t) => t
                .as_slice::<f32>()
                .expect("checked contiguous f32 by Values::of"),
            Values::Owned(v) => v,
        }
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

/// Raw pointer to an output buffer, shared by parallel tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the kernels give every task a region no other task touches.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// True when `x` lives on the plain flex CPU device.
pub fn is_plain_flex<const D: usize>(x: &Tensor<D>) -> bool {
    let d = x.device();
    !d.is_autodiff() && d == Device::flex()
}

/// Zeroes `s` and returns it as floats (a chunk of a vector's spare capacity, zeroed by the
/// thread that then fills it).
fn zeroed(s: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    s.fill(std::mem::MaybeUninit::new(0.0));
    // SAFETY: every element was just initialised, and f32 has MaybeUninit<f32>'s layout.
    unsafe { &mut *(s as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

/// Helpers of the kernels' tests.
#[cfg(test)]
mod test_util {
    /// The tests' random numbers: the same sequence as `train::Rng` (SplitMix64), kept
    /// here so that this module depends on nothing else of the crate.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
        }

        fn next_u64(&mut self) -> u64 {
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
    }

    /// The largest `|a - b|` over two equally long slices.
    pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    }
}
