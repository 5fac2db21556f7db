//! Hand-written inference kernels for the CPU (flex) backend, used where Burn 0.22's own kernel
//! does avoidable work. Only on a plain flex device (no autodiff, no GPU): training and other
//! backends keep Burn's ops.
//!
//! - Max pooling: flex computes every max pooling as a 3-D pooling that also returns the argmax
//!   indices; this kernel computes the maxima only, one output plane per rayon task. SqueezeNet
//!   at batch 32: 203 ms -> see DESIGN.md.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;
use std::sync::Arc;

/// A convolution prepared for [`conv2d`]: weights on the host as `[Cout, Cin/groups * kh * kw]`
/// rows (Burn's `[Cout, Cin/groups, kh, kw]` order, which is im2col's), bias folded in, and an
/// optional ReLU applied on the way out.
#[derive(Debug, Clone)]
pub struct FastConv {
    weight: Arc<Vec<f32>>,
    bias: Option<Arc<Vec<f32>>>,
    cout: usize,
    cin_g: usize,
    k: [usize; 2],
    stride: [usize; 2],
    /// `[top, bottom, left, right]`.
    pad: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    pub relu: bool,
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

impl FastConv {
    /// Whether [`conv2d`] handles `c`'s configuration.
    pub fn supports(c: &Conv2d) -> bool {
        let cout = c.weight.val().dims()[0];
        matches!(
            c.padding,
            PaddingConfig2d::Explicit(..) | PaddingConfig2d::Valid
        ) && c.groups > 0
            && cout.is_multiple_of(c.groups)
    }

    /// Takes `c`'s weights (without a copy where the backend allows it); `None` for
    /// configurations this kernel leaves to Burn (see [`supports`](Self::supports)).
    pub fn new(c: Conv2d) -> Option<FastConv> {
        if !Self::supports(&c) {
            return None;
        }
        let [cout, cin_g, kh, kw] = c.weight.val().dims();
        let pad = match c.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => [t, b, l, r],
            _ => [0; 4],
        };
        Some(FastConv {
            weight: Arc::new(host(c.weight.into_value())),
            bias: c.bias.map(|b| Arc::new(host(b.into_value()))),
            cout,
            cin_g,
            k: [kh, kw],
            stride: c.stride,
            pad,
            dilation: c.dilation,
            groups: c.groups,
            relu: false,
        })
    }
}

/// Convolution (cross-correlation, as Burn and MATLAB) of `[N, Cin, H, W]` by im2col and one
/// `gemm` per image and group: `out[Cout, OH*OW] = W[Cout, K] x col[K, OH*OW] + bias`, ReLU
/// fused when asked. im2col is skipped where the input already is the column matrix (1x1
/// kernels with stride 1 and no padding, and kernels that cover the whole unpadded input, like
/// MatConvNet's fully connected layers stored as convolutions).
pub fn conv2d(x: Tensor<4>, f: &FastConv) -> Tensor<4> {
    let [n, cin, h, w] = x.dims();
    let device = x.device();
    let [t, b, l, r] = f.pad;
    let [kh, kw] = f.k;
    let ekh = f.dilation[0] * (kh - 1) + 1;
    let ekw = f.dilation[1] * (kw - 1) + 1;
    let oh = (h + t + b - ekh) / f.stride[0] + 1;
    let ow = (w + l + r - ekw) / f.stride[1] + 1;
    let (g, cin_g, cout) = (f.groups, f.cin_g, f.cout);
    let cout_g = cout / g;
    let kk = cin_g * kh * kw;
    let npix = oh * ow;
    let data = x.into_data().try_into_vec::<f32>().expect("f32 data");
    let direct = (kh == 1 && kw == 1 && f.stride == [1, 1] && f.pad == [0; 4])
        || (oh == 1 && ow == 1 && f.pad == [0; 4] && ekh == h && ekw == w && f.dilation == [1, 1]);
    let mut out = vec![0f32; n * cout * npix];
    // Parallel over images when there are enough of them, else inside each gemm.
    let threads = rayon::current_num_threads();
    let per_image = n >= 2 * threads;
    let run = |img: usize, o: &mut [f32], col_buf: &mut Vec<f32>| {
        let xi = &data[img * cin * h * w..(img + 1) * cin * h * w];
        for gi in 0..g {
            let xg = &xi[gi * cin_g * h * w..(gi + 1) * cin_g * h * w];
            let col: &[f32] = if direct {
                xg
            } else {
                // im2col writes every entry: grow the buffer, never clear it.
                if col_buf.len() < kk * npix {
                    col_buf.resize(kk * npix, 0.0);
                }
                let col = &mut col_buf[..kk * npix];
                im2col(xg, col, h, w, f, oh, ow);
                col
            };
            let og = &mut o[gi * cout_g * npix..(gi + 1) * cout_g * npix];
            if let Some(bias) = &f.bias {
                for (co, row) in og.chunks_mut(npix).enumerate() {
                    row.fill(bias[gi * cout_g + co]);
                }
            }
            let wg = &f.weight[gi * cout_g * kk..(gi + 1) * cout_g * kk];
            let par = if per_image {
                gemm::Parallelism::None
            } else {
                gemm::Parallelism::Rayon(0)
            };
            // SAFETY: dst is [cout_g, npix], lhs [cout_g, kk], rhs [kk, npix], all row-major
            // and in bounds of their slices; no aliasing between dst and the inputs.
            unsafe {
                gemm::gemm(
                    cout_g,
                    npix,
                    kk,
                    og.as_mut_ptr(),
                    1,
                    npix as isize,
                    f.bias.is_some(),
                    wg.as_ptr(),
                    1,
                    kk as isize,
                    col.as_ptr(),
                    1,
                    npix as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
            if f.relu {
                // A select, not a conditional store, so that it vectorizes; NaN stays NaN.
                for v in og.iter_mut() {
                    *v = if *v < 0.0 { 0.0 } else { *v };
                }
            }
        }
    };
    // im2col buffers are kept per thread between calls: a fresh allocation of this size costs
    // its page faults again on every call.
    thread_local! {
        static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let with_buf = |img: usize, o: &mut [f32]| {
        // A rayon thread waiting inside a nested parallel loop may start another image: it then
        // finds its buffer borrowed and uses a fresh one.
        COL.with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => run(img, o, &mut buf),
            Err(_) => run(img, o, &mut Vec::new()),
        });
    };
    if per_image {
        out.par_chunks_mut(cout * npix)
            .enumerate()
            .for_each(|(img, o)| with_buf(img, o));
    } else {
        for (img, o) in out.chunks_mut(cout * npix).enumerate() {
            with_buf(img, o);
        }
    }
    Tensor::from_data(TensorData::new(out, [n, cout, oh, ow]), &device)
}

/// Column matrix `[cin * kh * kw, oh * ow]` of one image's `[cin, h, w]` planes.
#[allow(clippy::too_many_arguments)]
fn im2col(x: &[f32], col: &mut [f32], h: usize, w: usize, f: &FastConv, oh: usize, ow: usize) {
    let [kh, kw] = f.k;
    let [t, _, l, _] = f.pad;
    let [sh, sw] = f.stride;
    let [dh, dw] = f.dilation;
    let npix = oh * ow;
    col.par_chunks_mut(npix).enumerate().for_each(|(row, dst)| {
        let c = row / (kh * kw);
        let ky = (row / kw) % kh;
        let kx = row % kw;
        let plane = &x[c * h * w..(c + 1) * h * w];
        for oy in 0..oh {
            let d = &mut dst[oy * ow..(oy + 1) * ow];
            let iy = (oy * sh + ky * dh) as isize - t as isize;
            if iy < 0 || iy >= h as isize {
                d.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            let x0 = kx * dw;
            if sw == 1 {
                // Input column of output column ox is ox + x0 - l: copy the part inside the row,
                // zero the padding on either side.
                let lo = l.saturating_sub(x0).min(ow);
                let hi = (w + l).saturating_sub(x0).clamp(lo, ow);
                d[..lo].fill(0.0);
                d[hi..].fill(0.0);
                if lo < hi {
                    let s0 = lo + x0 - l;
                    d[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                }
            } else {
                for (ox, v) in d.iter_mut().enumerate() {
                    let ix = (ox * sw + x0) as isize - l as isize;
                    *v = if ix >= 0 && ix < w as isize {
                        src[ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    });
}

/// True when `x` lives on the plain flex CPU device.
pub fn is_plain_flex(x: &Tensor<4>) -> bool {
    let d = x.device();
    !d.is_autodiff() && d == Device::flex()
}

/// Max pooling of `[N, C, H, W]` with kernel `k`, stride `s` and padding `[top, bottom, left,
/// right]` (padded positions never win), floor rounding as MATLAB. `None` when the shapes do not
/// give an output (the caller then uses Burn's op, which reports the error).
pub fn max_pool2d(x: Tensor<4>, k: [usize; 2], s: [usize; 2], pad: [usize; 4]) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let [t, b, l, r] = pad;
    let (hp, wp) = (h + t + b, w + l + r);
    let oh = (hp - k[0]) / s[0] + 1;
    let ow = (wp - k[1]) / s[1] + 1;
    let data = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("flex float tensors hold f32");
    let mut out = vec![0f32; n * c * oh * ow];
    // `|`, not `||`: no branch, so the loops vectorize. NaN propagates, as in Burn's op.
    let max = |a: f32, b: f32| if (b > a) | b.is_nan() { b } else { a };
    // Separable: the maximum over each window's columns for every input row (`hm`, on a row
    // padded with -inf), then over the window's rows.
    out.par_chunks_mut(oh * ow)
        .zip(data.par_chunks(h * w))
        .for_each_init(
            || (vec![f32::NEG_INFINITY; wp], vec![0f32; h * ow]),
            |(prow, hm), (o, plane)| {
                for y in 0..h {
                    prow[l..l + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
                    let hrow = &mut hm[y * ow..(y + 1) * ow];
                    hrow.fill(f32::NEG_INFINITY);
                    // Window column by window column: simple loops the compiler vectorizes.
                    for kx in 0..k[1] {
                        let src = &prow[kx..];
                        for (ox, v) in hrow.iter_mut().enumerate() {
                            *v = max(*v, src[ox * s[1]]);
                        }
                    }
                }
                for oy in 0..oh {
                    let y0 = (oy * s[0]).saturating_sub(t);
                    let y1 = (oy * s[0] + k[0]).saturating_sub(t).min(h);
                    let orow = &mut o[oy * ow..(oy + 1) * ow];
                    orow.copy_from_slice(&hm[y0 * ow..(y0 + 1) * ow]);
                    for y in y0 + 1..y1 {
                        for (d, &v) in orow.iter_mut().zip(&hm[y * ow..(y + 1) * ow]) {
                            *d = max(*d, v);
                        }
                    }
                }
            },
        );
    Tensor::from_data(TensorData::new(out, [n, c, oh, ow]), &device)
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
    let datas: Vec<Vec<f32>> = xs
        .into_iter()
        .map(|t| t.into_data().try_into_vec::<f32>().expect("f32 data"))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::pool::MaxPool2dConfig;

    #[test]
    fn concat_equals_burns() {
        let dev = Device::flex();
        let mk = |c: usize, seed: u64| {
            let mut rng = crate::train::Rng::new(seed);
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

    /// The convolution kernel equals Burn's, over strides, asymmetric and large paddings,
    /// dilations, groups, 1x1 and whole-input kernels, with and without bias, batch 1 and 5.
    #[test]
    fn conv_equals_burns() {
        use burn::nn::conv::Conv2dConfig;
        let dev = Device::flex();
        let mut rng = crate::train::Rng::new(9);
        let mut rand =
            |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect() };
        // (n, cin, h, w, cout, k, stride, [t, b, l, r], dilation, groups, bias)
        let cases = [
            (1, 3, 9, 8, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
            (
                5,
                4,
                7,
                9,
                6,
                [3, 2],
                [2, 1],
                [0, 1, 1, 0],
                [1, 1],
                2,
                false,
            ),
            (2, 2, 2, 2, 3, [7, 7], [1, 1], [3, 3, 3, 3], [1, 1], 1, true),
            (1, 6, 5, 5, 4, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            (2, 3, 4, 4, 5, [4, 4], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
            (1, 2, 9, 9, 2, [3, 3], [1, 2], [2, 2, 2, 2], [2, 2], 1, true),
            (5, 4, 6, 6, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 4, true),
        ];
        for (n, cin, h, w, cout, k, s, [t, b, l, r], d, g, bias) in cases {
            let mut conv = Conv2dConfig::new([cin, cout], k)
                .with_stride(s)
                .with_dilation(d)
                .with_groups(g)
                .with_bias(bias)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .init(&dev);
            let wd = conv.weight.val().dims();
            conv.weight = burn::module::Param::from_tensor(Tensor::from_data(
                TensorData::new(rand(wd.iter().product()), wd),
                &dev,
            ));
            if bias {
                conv.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
                    TensorData::new(rand(cout), [cout]),
                    &dev,
                )));
            }
            let x = Tensor::<4>::from_data(
                TensorData::new(rand(n * cin * h * w), [n, cin, h, w]),
                &dev,
            );
            let want = conv.forward(x.clone());
            for relu in [false, true] {
                let mut f = FastConv::new(conv.clone()).expect("supported");
                f.relu = relu;
                let got = conv2d(x.clone(), &f);
                assert_eq!(got.dims(), want.dims(), "case {cin} {k:?} {s:?}");
                let want = if relu {
                    burn::tensor::activation::relu(want.clone())
                } else {
                    want.clone()
                };
                let (a, b) = (
                    got.into_data().try_to_vec::<f32>().unwrap_or_default(),
                    want.into_data().try_to_vec::<f32>().unwrap_or_default(),
                );
                let diff = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(diff < 1e-5, "case {cin} {k:?} {s:?} {d:?} g{g}: {diff}");
            }
        }
    }

    /// The kernel equals Burn's max pooling on the same input, over kernels, strides and
    /// asymmetric paddings (including negative inputs, where padding must not win).
    #[test]
    fn max_pool_equals_burns() {
        let dev = Device::flex();
        let (n, c, h, w) = (2, 3, 9, 8);
        let mut rng = crate::train::Rng::new(3);
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|_| (rng.uniform() * 2.0 - 1.5) as f32)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [n, c, h, w]), &dev);
        for (k, s, pad) in [
            ([2, 2], [2, 2], [0, 0, 0, 0]),
            ([3, 3], [2, 2], [0, 0, 0, 0]),
            ([3, 3], [1, 1], [1, 1, 1, 1]),
            ([3, 2], [2, 1], [0, 1, 1, 0]),
            ([2, 3], [1, 2], [1, 0, 0, 2]),
        ] {
            let [t, b, l, r] = pad;
            let want = MaxPool2dConfig::new(k)
                .with_strides(s)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .init()
                .forward(x.clone());
            let got = max_pool2d(x.clone(), k, s, pad);
            assert_eq!(got.dims(), want.dims(), "{k:?} {s:?} {pad:?}");
            assert_eq!(
                got.into_data().try_to_vec::<f32>().ok(),
                want.into_data().try_to_vec::<f32>().ok(),
                "{k:?} {s:?} {pad:?}"
            );
        }
    }
}
