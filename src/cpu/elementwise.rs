//! One-pass element-wise kernels on plain Flex tensors: an input layer's normalization, a
//! residual block's addition and ReLU, channel concatenation, and the per-channel scaling of
//! weights that batch-norm folding does.

use super::{Values, is_plain_flex};
use burn::prelude::*;
use rayon::prelude::*;

/// An input layer's normalization, `(x - shift) * scale`, with `shift` and `scale` each
/// `[1, C, H, W]` (per pixel) or `[1, C, 1, 1]` (per channel): one parallel pass on plain Flex
/// tensors, the same operations in the same order as Burn's two (which are each a
/// single-threaded pass with its own output: SqueezeNet at batch 32, 4.3 -> 1.7 ms).
/// Elsewhere, Burn's ops.
pub fn normalize(x: Tensor<4>, shift: Tensor<4>, scale: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let fits = |t: &Tensor<4>| {
        let [one, tc, th, tw] = t.dims();
        one == 1 && tc == c && ([th, tw] == [h, w] || [th, tw] == [1, 1])
    };
    let fast = [&x, &shift, &scale].into_iter().all(is_plain_flex) && fits(&shift) && fits(&scale);
    if !fast {
        return (x - shift) * scale;
    }
    let device = x.device();
    let hw = h * w;
    let (x, shift, scale) = (Values::of(x), Values::of(shift), Values::of(scale));
    let per_pixel = |t: &Values| t.len() == c * hw && hw > 1;
    let (ps, pk) = (per_pixel(&shift), per_pixel(&scale));
    let mut out: Vec<f32> = Vec::with_capacity(n * c * hw);
    // Tasks: planes, or pieces of planes when there are few of them (a batch-1 RGB image is
    // three planes, which two threads split 2:1).
    let piece = if n * c < 4 * rayon::current_num_threads() {
        hw.div_ceil(4 * rayon::current_num_threads())
            .next_multiple_of(16)
    } else {
        hw
    }
    .max(1);
    out.spare_capacity_mut()[..n * c * hw]
        .par_chunks_mut(hw.max(1))
        .zip(x.par_chunks(hw.max(1)))
        .enumerate()
        .flat_map(|(i, (o, x))| {
            o.par_chunks_mut(piece)
                .zip(x.par_chunks(piece))
                .enumerate()
                .map(move |(j, (o, x))| (i, j * piece, o, x))
        })
        .for_each(|(i, at, o, x)| {
            let ch = i % c;
            let len = o.len();
            let s = if ps {
                &shift[ch * hw + at..][..len]
            } else {
                &shift[ch..ch + 1]
            };
            let k = if pk {
                &scale[ch * hw + at..][..len]
            } else {
                &scale[ch..ch + 1]
            };
            // One loop per case, so that each vectorizes.
            let xo = o.iter_mut().zip(x);
            match (ps, pk) {
                (true, true) => xo.zip(s.iter().zip(k)).for_each(|((o, &x), (&s, &k))| {
                    o.write((x - s) * k);
                }),
                (true, false) => xo.zip(s).for_each(|((o, &x), &s)| {
                    o.write((x - s) * k[0]);
                }),
                (false, true) => xo.zip(k).for_each(|((o, &x), &k)| {
                    o.write((x - s[0]) * k);
                }),
                (false, false) => xo.for_each(|(o, &x)| {
                    o.write((x - s[0]) * k[0]);
                }),
            }
        });
    // SAFETY: the chunks cover all n * c * hw elements, each written above.
    unsafe { out.set_len(n * c * hw) };
    Tensor::from_data(TensorData::new(out, [n, c, h, w]), &device)
}

/// The sum of `xs` (in order) through a ReLU (NaN stays NaN, as Burn's), in one pass over
/// memory on plain Flex tensors of one shape, written in place into an input that nothing else
/// holds (a residual branch's output) when there is one: a residual block's addition and ReLU
/// as Burn ops read and write every activation twice more. Elsewhere, Burn's ops.
pub fn add_relu(xs: Vec<Tensor<4>>) -> Tensor<4> {
    let dims = xs[0].dims();
    if xs.len() < 2 || !xs.iter().all(|x| is_plain_flex(x) && x.dims() == dims) {
        let mut it = xs.into_iter();
        let first = it.next().expect("an addition has inputs");
        return burn::tensor::activation::relu(it.fold(first, |a, b| a + b));
    }
    use burn::backend::Flex;
    let total: usize = dims.iter().product();
    // d = relu(d + others...), in parallel chunks.
    let sum_relu = |d: &mut [f32], others: &[Values]| {
        const CHUNK: usize = 1 << 14;
        d.par_chunks_mut(CHUNK).enumerate().for_each(|(i, d)| {
            let at = i * CHUNK;
            for v in others {
                for (d, &s) in d.iter_mut().zip(&v[at..]) {
                    *d += s;
                }
            }
            for d in d.iter_mut() {
                // `|`, not `||`: no branch, so the loop vectorizes.
                *d = if d.is_nan() | (*d > 0.0) { *d } else { 0.0 };
            }
        });
    };
    let mut xs = xs;
    // With two inputs either may take the sum (a + b = b + a exactly); with more, the first,
    // to keep the order of the additions.
    let candidates = if xs.len() == 2 { 2 } else { 1 };
    for k in 0..candidates {
        let x = xs.remove(k);
        let Ok(mut t) = x.try_into_primitive::<Flex>() else {
            unreachable!("a plain Flex tensor converts to Flex's primitive");
        };
        if t.is_contiguous()
            && t.layout().start_offset() == 0
            && let Some(d) = t.try_storage_mut::<f32>()
            && d.len() >= total
        {
            let others: Vec<Values> = xs.into_iter().map(Values::of).collect();
            sum_relu(&mut d[..total], &others);
            return Tensor::from_primitive::<Flex>(t);
        }
        xs.insert(k, Tensor::from_primitive::<Flex>(t));
    }
    // Every input is shared: the sum goes into a copy of the first.
    let device = xs[0].device();
    let vals: Vec<Values> = xs.into_iter().map(Values::of).collect();
    let mut out = vals[0].to_vec();
    sum_relu(&mut out, &vals[1..]);
    Tensor::from_data(TensorData::new(out, dims), &device)
}

/// Concatenation of `[N, C_i, H, W]` tensors along the channels: each image's block of each
/// input is one contiguous copy.
pub fn concat_channels(xs: Vec<Tensor<4>>) -> Tensor<4> {
    let [n, _, h, w] = xs[0].dims();
    let device = xs[0].device();
    let chans: Vec<usize> = xs.iter().map(|t| t.dims()[1]).collect();
    if xs.iter().any(|t| {
        let [tn, _, th, tw] = t.dims();
        (tn, th, tw) != (n, h, w)
    }) {
        // Shapes that do not line up: Burn's op reports it.
        return Tensor::cat(xs, 1);
    }
    let ctot: usize = chans.iter().sum();
    let datas: Vec<Values> = xs.into_iter().map(Values::of).collect();
    let hw = h * w;
    let mut out = vec![0f32; n * ctot * hw];
    out.par_chunks_mut(ctot * hw)
        .enumerate()
        .for_each(|(img, o)| {
            let mut at = 0;
            for (d, &c) in datas.iter().zip(&chans) {
                o[at..at + c * hw].copy_from_slice(&d[img * c * hw..(img + 1) * c * hw]);
                at += c * hw;
            }
        });
    Tensor::from_data(TensorData::new(out, [n, ctot, h, w]), &device)
}

/// `w` with every element of output channel `c` multiplied by `scale[c]`, channel `c` being the
/// index `(i / inner) % scale.len()` of flat element `i` (a convolution's `[out, in, kh, kw]`:
/// `inner = in * kh * kw`; Burn's linear `[in, out]`: `inner = 1`). In place when `w` is a plain
/// Flex tensor that nothing else holds, so that folding never holds two copies of a layer's
/// weights (Burn's broadcast multiply allocates the result: ResNet-18's load peaked 17 MB higher);
/// else by Burn's `mul` with `broadcast` as the scale's shape. The same products either way.
pub fn scale_channels<const D: usize>(
    w: Tensor<D>,
    scale: &[f32],
    inner: usize,
    broadcast: [usize; D],
) -> Tensor<D> {
    use burn::backend::Flex;
    let device = w.device();
    let w = if is_plain_flex(&w) {
        let Ok(mut t) = w.try_into_primitive::<Flex>() else {
            unreachable!("a plain Flex tensor converts to Flex's primitive");
        };
        if t.is_contiguous()
            && t.layout().start_offset() == 0
            && let Some(data) = t.try_storage_mut::<f32>()
        {
            for (i, run) in data.chunks_mut(inner.max(1)).enumerate() {
                let g = scale[i % scale.len()];
                run.iter_mut().for_each(|v| *v *= g);
            }
            return Tensor::from_primitive::<Flex>(t);
        }
        Tensor::from_primitive::<Flex>(t)
    } else {
        w
    };
    let s = Tensor::<1>::from_data(TensorData::new(scale.to_vec(), [scale.len()]), &device);
    w.mul(s.reshape(broadcast))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_util::Rng;
    /// The input normalization equals Burn's `(x - shift) * scale`, bit for bit, per pixel and
    /// per channel, NaN and infinities included.
    #[test]
    fn normalize_equals_burns() {
        let dev = Device::flex();
        let mut rng = Rng::new(4);
        let mut mk = |dims: [usize; 4]| {
            let mut v: Vec<f32> = (0..dims.iter().product::<usize>())
                .map(|_| (rng.uniform() * 20.0 - 10.0) as f32)
                .collect();
            if v.len() > 5 {
                v[3] = f32::NAN;
                v[5] = f32::INFINITY;
            }
            Tensor::<4>::from_data(TensorData::new(v, dims), &dev)
        };
        // Whole planes as tasks, and (one image of 3 planes) pieces of planes, the last short.
        for [n, c, h, w] in [[3, 4, 5, 6], [1, 3, 37, 41]] {
            let x = mk([n, c, h, w]);
            for (shift, scale) in [
                ([1, c, h, w], [1, c, h, w]),
                ([1, c, 1, 1], [1, c, 1, 1]),
                ([1, c, h, w], [1, c, 1, 1]),
                ([1, c, 1, 1], [1, c, h, w]),
            ] {
                let (shift, scale) = (mk(shift), mk(scale));
                let want = (x.clone() - shift.clone()) * scale.clone();
                let got = normalize(x.clone(), shift, scale);
                assert_eq!(got.dims(), want.dims());
                let bits = |t: Tensor<4>| -> Vec<u32> {
                    let v = t.into_data().try_to_vec::<f32>().expect("f32");
                    v.iter()
                        .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
                        .collect()
                };
                assert_eq!(bits(got), bits(want));
            }
        }
    }

    #[test]
    fn concat_equals_burns() {
        let dev = Device::flex();
        let mk = |c: usize, seed: u64| {
            let mut rng = Rng::new(seed);
            let v: Vec<f32> = (0..2 * c * 3 * 4).map(|_| rng.uniform() as f32).collect();
            Tensor::<4>::from_data(TensorData::new(v, [2, c, 3, 4]), &dev)
        };
        let xs = vec![mk(2, 1), mk(5, 2), mk(1, 3)];
        let want = Tensor::cat(xs.clone(), 1);
        let got = concat_channels(xs);
        assert_eq!(got.dims(), want.dims());
        let (got, want) = (got.into_data(), want.into_data());
        assert_eq!(got.try_to_vec::<f32>().ok(), want.try_to_vec::<f32>().ok());
    }
}
