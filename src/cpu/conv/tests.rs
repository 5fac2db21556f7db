//! The convolution kernels against Burn's convolution (and Burn's max pooling, for the fused
//! poolings).

use super::*;
use crate::cpu::test_util::{Rng, max_diff};
use burn::nn::pool::MaxPool2dConfig;

/// Turns off the Winograd kernel's forcing when a test that set it ends, panicking or not
/// (a harness with one thread runs the next test on the same thread).
#[cfg(target_arch = "x86_64")]
struct Unforce;

#[cfg(target_arch = "x86_64")]
impl Drop for Unforce {
    fn drop(&mut self) {
        crate::cpu::winograd::FORCE.set(false);
    }
}

/// Uniform noise in [-1, 1) from `rng`.
fn noise(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}

/// `conv` with noise for weights (and bias, when `bias`), and a noise input of `dims`.
fn randomized(
    mut conv: burn::nn::conv::Conv2d,
    bias: bool,
    dims: [usize; 4],
    rng: &mut Rng,
    dev: &Device,
) -> (burn::nn::conv::Conv2d, Tensor<4>) {
    let wd = conv.weight.val().dims();
    conv.weight = burn::module::Param::from_tensor(Tensor::from_data(
        TensorData::new(noise(rng, wd.iter().product()), wd),
        dev,
    ));
    if bias {
        conv.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(noise(rng, wd[0]), [wd[0]]),
            dev,
        )));
    }
    let x = Tensor::<4>::from_data(
        TensorData::new(noise(rng, dims.iter().product()), dims),
        dev,
    );
    (conv, x)
}

/// A max pooling fused into the convolution before it equals the convolution, its ReLU and
/// Burn's max pooling one after the other: strides 1 and 2, 1x1 (read in place), 3x3 and
/// 7x7 kernels, symmetric and asymmetric pooling padding, partial sums over 300 input
/// channels, batch 1 (runs of bands, rows carried from band to band) and 3, bands of a
/// few rows and of whole images; and where Winograd computes the convolution, the
/// pooling after it.
#[test]
#[cfg(target_arch = "x86_64")]
fn fused_max_pool_equals_conv_then_pool() {
    use burn::nn::conv::Conv2dConfig;
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            FUSE_ALWAYS.set(false);
            crate::cpu::direct::BAND_BYTES.set(None);
            crate::cpu::winograd::FORCE.set(false);
        }
    }
    let _reset = Reset;
    let dev = Device::flex();
    let mut rng = Rng::new(33);
    // (n, cin, h, w, cout, k, stride, conv padding, groups, pool k, pool s, pool [t, b, l,
    // r])
    #[rustfmt::skip]
    let cases = [
        (1, 3, 47, 45, 8, 3, 2, [0, 0, 0, 0], 1, 3, 2, [0, 0, 0, 0]),
        (3, 3, 31, 29, 13, 7, 2, [3, 3, 3, 3], 1, 3, 2, [1, 1, 1, 1]),
        (1, 5, 30, 26, 7, 1, 1, [0, 0, 0, 0], 1, 2, 2, [0, 0, 0, 0]),
        (2, 6, 27, 28, 9, 3, 1, [1, 1, 1, 1], 1, 3, 2, [0, 1, 0, 1]),
        (1, 300, 13, 11, 4, 3, 1, [1, 1, 1, 1], 1, 3, 1, [1, 1, 1, 1]),
        (1, 4, 40, 9, 6, 3, 2, [1, 0, 1, 0], 1, 2, 3, [1, 0, 0, 1]),
        // Two groups of 3 input and 7 output channels each.
        (2, 6, 23, 21, 14, 3, 2, [1, 1, 1, 1], 2, 3, 2, [0, 1, 0, 1]),
    ];
    for (n, cin, h, w, cout, k, st, [t, b, l, r], groups, pk, ps, [pt, pb, pl, pr]) in cases {
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_groups(groups)
            .with_stride([st, st])
            .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
            .init(&dev);
        let (conv, x) = randomized(conv, true, [n, cin, h, w], &mut rng, &dev);
        let pool = MaxPool2dConfig::new([pk, pk])
            .with_strides([ps, ps])
            .with_padding(PaddingConfig2d::Explicit(pt, pl, pb, pr))
            .init();
        for (relu, band, wino) in [
            (true, Some(1), false),
            (false, Some(3000), false),
            (true, None, false),
            (true, None, true),
        ] {
            let y = conv.forward(x.clone());
            let y = if relu {
                burn::tensor::activation::relu(y)
            } else {
                y
            };
            let want: Vec<f32> = pool.forward(y).into_data().try_to_vec().expect("f32");
            let mut f = FastConv::new(conv.clone()).expect("supported");
            f.relu = relu;
            f.pool = Some((
                Pool {
                    k: [pk, pk],
                    s: [ps, ps],
                    pad: [pt, pb, pl, pr],
                },
                pool.clone(),
            ));
            FUSE_ALWAYS.set(true);
            crate::cpu::direct::BAND_BYTES.set(band);
            crate::cpu::winograd::FORCE.set(wino);
            let got = conv2d(x.clone(), &f);
            let got: Vec<f32> = got.into_data().try_to_vec().expect("f32");
            assert_eq!(got.len(), want.len(), "case {cin} {k} {st}");
            let err = max_diff(&got, &want);
            assert!(
                err < 1e-4,
                "case n {n} cin {cin} k {k} stride {st} pool {pk}/{ps} relu {relu} band {band:?}: {err}"
            );
        }
    }
}

/// An unpadded stride-1 input is read in place, the last image's last blocks under the
/// valid lanes' masks: with the input ending right before an inaccessible page, a full
/// vector read past its end would fault. The results equal Burn's.
#[test]
#[cfg(target_arch = "x86_64")]
fn in_place_reads_stay_inside_the_input() {
    use burn::nn::conv::Conv2dConfig;
    if !crate::cpu::direct::available() {
        return;
    }
    let dev = Device::flex();
    let mut rng = Rng::new(21);
    // (n, cin, h, w, cout, k): a 1x1 kernel over 3025 positions (a last block of one
    // vector); 3x3 over 8 x 13 positions (the last block's vectors pass the end); 3x3
    // over 5 x 13 = 65 positions, where the first block's last vector, of invalid
    // positions only, would also read one float past the end.
    let cases = [
        (1, 3, 55, 55, 7, 1),
        (2, 4, 10, 13, 5, 3),
        (1, 2, 7, 13, 3, 3),
        (3, 130, 7, 13, 4, 3),
    ];
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    for (n, cin, h, w, cout, k) in cases {
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_padding(PaddingConfig2d::Explicit(0, 0, 0, 0))
            .init(&dev);
        let (conv, x) = randomized(conv, true, [n, cin, h, w], &mut rng, &dev);
        let want: Vec<f32> = conv
            .forward(x.clone())
            .into_data()
            .try_to_vec()
            .expect("f32");
        let xv: Vec<f32> = x.into_data().try_to_vec().expect("f32");
        // The input at the very end of readable pages, an inaccessible page after them.
        let bytes = xv.len() * 4;
        let len = bytes.next_multiple_of(page) + page;
        // SAFETY: an anonymous private mapping of `len` bytes, checked below; its last
        // page made inaccessible; the slice lies inside the readable pages; unmapped at
        // the end.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            let guard = base.cast::<u8>().add(len - page);
            assert_eq!(libc::mprotect(guard.cast(), page, libc::PROT_NONE), 0);
            let at = guard.sub(bytes).cast::<f32>();
            std::ptr::copy_nonoverlapping(xv.as_ptr(), at, xv.len());
            let xs = std::slice::from_raw_parts(at, xv.len());
            let f = FastConv::new(conv.clone()).expect("supported");
            let geo = f.geometry([n, cin, h, w]);
            let [oh, ow] = geo.output();
            let packed = crate::cpu::direct::Packed::new(
                &conv
                    .weight
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32"),
                cout,
                cin,
                k * k,
                1,
            );
            let bias: Vec<f32> = conv
                .bias
                .as_ref()
                .expect("bias")
                .val()
                .into_data()
                .try_to_vec()
                .expect("f32");
            let mut got = vec![0f32; n * cout * oh * ow];
            crate::cpu::direct::conv2d_into(
                xs,
                &geo,
                &packed,
                Some(&bias),
                false,
                None,
                None,
                crate::cpu::direct::Out {
                    ptr: got.as_mut_ptr(),
                    channels: cout,
                    offset: 0,
                },
            );
            libc::munmap(base, len);
            let err = max_diff(&got, &want);
            assert!(err < 1e-4, "case {n} {cin} {h} {w} {k}: {err}");
        }
    }
}

/// The convolution kernel equals Burn's, over strides, asymmetric and large paddings,
/// dilations, groups, 1x1 and whole-input kernels, with and without bias, batch 1 to 5, and
/// tile sizes.
#[test]
fn conv_equals_burns() {
    use burn::nn::conv::Conv2dConfig;
    let dev = Device::flex();
    let mut rng = Rng::new(9);
    // (n, cin, h, w, cout, k, stride, [t, b, l, r], dilation, groups, bias)
    #[rustfmt::skip]
    let cases = [
        // Several position blocks and channel blocks with a remainder (13 = 6 + 6 + 1).
        (2, 5, 20, 23, 13, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
        (1, 16, 9, 14, 7, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
        // Stride 2 and 3 with dilation, asymmetric padding and groups (stride phases).
        (3, 6, 17, 15, 8, [5, 3], [2, 3], [2, 1, 0, 3], [2, 1], 2, true),
        (2, 4, 31, 29, 70, [7, 7], [2, 2], [3, 3, 3, 3], [1, 1], 1, true),
        // Unpadded stride 1: the input read in place, but for the last images.
        (6, 40, 9, 11, 7, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
        (5, 8, 7, 9, 6, [3, 2], [1, 1], [0, 0, 0, 0], [1, 1], 2, false),
        // Rows wide enough for the vectorised stride-2 split (32 columns at a time plus
        // a tail), with even and odd left padding.
        (2, 3, 9, 71, 8, [3, 3], [2, 2], [0, 0, 0, 0], [1, 1], 1, true),
        (1, 3, 7, 66, 5, [3, 3], [2, 2], [1, 2, 1, 0], [1, 1], 1, true),
        // 1x1 with stride 2: one stride phase stored, the row's even columns (no left
        // padding) or odd ones (left padding 1), 32 at a time plus tails of 6, 2 and 0.
        (2, 3, 5, 70, 4, [1, 1], [2, 2], [0, 0, 0, 0], [1, 1], 1, true),
        (1, 2, 6, 66, 3, [1, 1], [2, 2], [1, 0, 1, 0], [1, 1], 1, true),
        (1, 2, 4, 64, 3, [1, 1], [2, 2], [0, 1, 1, 0], [1, 1], 1, false),
        // 1x1 over exactly 64 positions: every image, the last included, read in place.
        (3, 5, 8, 8, 7, [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
        // More input channels than one pass of the direct kernel takes (partial sums).
        (2, 300, 6, 7, 9, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
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
        // Whole-input kernels at batch 1 (the AVX-512 gemv): 105 and 50 inputs (tails of
        // 9 and 18 after the 32-float steps), 10 and 6 outputs (a last group of 2).
        (1, 3, 5, 7, 10, [5, 7], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
        (1, 2, 5, 5, 6, [5, 5], [1, 1], [0, 0, 0, 0], [1, 1], 1, false),
        (1, 2, 9, 9, 2, [3, 3], [1, 2], [2, 2, 2, 2], [2, 2], 1, true),
        (5, 4, 6, 6, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 4, true),
        (
            3,
            5,
            11,
            13,
            7,
            [3, 3],
            [2, 2],
            [1, 1, 1, 1],
            [1, 1],
            1,
            true,
        ),
        (
            1,
            3,
            12,
            10,
            5,
            [1, 1],
            [2, 2],
            [0, 0, 0, 0],
            [1, 1],
            1,
            false,
        ),
        (
            4,
            3,
            3,
            3,
            9,
            [3, 3],
            [1, 1],
            [0, 0, 0, 0],
            [1, 1],
            1,
            false,
        ),
    ];
    for (n, cin, h, w, cout, k, s, [t, b, l, r], d, g, bias) in cases {
        let conv = Conv2dConfig::new([cin, cout], k)
            .with_stride(s)
            .with_dilation(d)
            .with_groups(g)
            .with_bias(bias)
            .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
            .init(&dev);
        let (conv, x) = randomized(conv, bias, [n, cin, h, w], &mut rng, &dev);
        let want = conv.forward(x.clone());
        // Tiles of the chosen size, of one pixel, and of sizes that cut output rows; one
        // kernel for all, so that its weights change form (packed, rows) between calls.
        let mut f = FastConv::new(conv.clone()).expect("supported");
        // Also tiles of whole output rows (im2col's copy of whole shifted planes where the
        // output is as wide as the input).
        let [_, _, oh, ow] = want.dims();
        for (relu, tile) in [
            (false, None),
            (true, None),
            (true, Some(1)),
            (false, None),
            (false, Some(7)),
            (false, Some(oh * ow)),
            (true, Some(2 * ow)),
        ] {
            f.relu = relu;
            let got = conv2d_tiled(x.clone(), &f, tile, None);
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
            // Relative to the largest output: sums of up to 200 terms differ in rounding.
            let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
            assert!(!a.is_empty() && a.len() == b.len());
            assert!(
                diff < 1e-6 * scale * 10.0,
                "case {cin} {k:?} {s:?} {d:?} g{g} tile {tile:?}: {diff}"
            );
        }
    }
}

/// The Winograd kernel equals Burn's convolution: odd and even output sizes (tiles half
/// outside), asymmetric and no padding, blocks of tiles across rows and images, input
/// channels over one chunk, output channels over one run (and a remainder block), with and
/// without bias and ReLU, into a concatenation at a channel offset.
#[test]
#[cfg(target_arch = "x86_64")]
fn winograd_equals_burns() {
    use burn::nn::conv::Conv2dConfig;
    if !crate::cpu::direct::available() {
        return;
    }
    let dev = Device::flex();
    // Small shapes: the kernel is forced on them (the rule measured for speed would leave
    // most of them to the direct kernel).
    crate::cpu::winograd::FORCE.set(true);
    let _unforce = Unforce;
    let mut rng = Rng::new(17);
    // (n, cin, h, w, cout, [t, b, l, r], bias)
    let cases = [
        // Enough blocks for every thread: each task transforms its block's inputs.
        (4, 8, 20, 23, 13, [1, 1, 1, 1], true),
        // Few blocks: the inputs transformed once, shared by the tasks of a block (one
        // with two chunks of input channels and two runs of output channels).
        (3, 16, 7, 7, 8, [1, 1, 1, 1], false),
        (1, 9, 11, 38, 7, [0, 2, 1, 0], true),
        (3, 12, 14, 11, 20, [0, 0, 0, 0], true),
        (3, 150, 9, 10, 140, [1, 1, 1, 1], true),
        (4, 32, 14, 14, 64, [1, 1, 1, 1], false),
        (1, 8, 5, 40, 6, [2, 0, 0, 2], true),
        // Rows of more than 16 tiles: the first vector's 32 columns are all stored.
        (2, 16, 6, 56, 9, [1, 1, 1, 1], true),
        (1, 8, 5, 67, 7, [1, 1, 0, 0], false),
    ];
    for (n, cin, h, w, cout, [t, b, l, r], bias) in cases {
        let conv = Conv2dConfig::new([cin, cout], [3, 3])
            .with_bias(bias)
            .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
            .init(&dev);
        let (conv, x) = randomized(conv, bias, [n, cin, h, w], &mut rng, &dev);
        let mut f = FastConv::new(conv.clone()).expect("supported");
        let geo = f.geometry([n, cin, h, w]);
        assert!(
            crate::cpu::winograd::applies(&geo),
            "case {n} {cin} {h}x{w}"
        );
        let case = format!("case {n} {cin} {h}x{w} {cout} pad {t} {b} {l} {r}");
        for relu in [false, true] {
            f.relu = relu;
            let want = conv.forward(x.clone());
            let want = if relu {
                burn::tensor::activation::relu(want)
            } else {
                want
            };
            let want = want.into_data().try_to_vec::<f32>().unwrap_or_default();
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let close = |got: &[f32], what: &str| {
                assert_eq!(got.len(), want.len(), "{case} {what}");
                let diff = got
                    .iter()
                    .zip(&want)
                    .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(diff < 1e-5 * scale, "{case} relu {relu} {what}: {diff}");
            };
            let got = conv2d(x.clone(), &f);
            close(
                &got.into_data().try_to_vec::<f32>().unwrap_or_default(),
                "alone",
            );
            // Into channels 3.. of a concatenation with 3 + cout + 2 channels, between two
            // other parts (the direct kernel's, an unpadded 1x1 of the same output size
            // where the padding allows).
            let mut buf = None;
            let [oh, ow] = geo.output();
            let filler = |c: usize, v: f32| {
                Tensor::<4>::from_data(
                    TensorData::new(vec![v; n * c * oh * ow], [n, c, oh, ow]),
                    &dev,
                )
            };
            let one = |c: usize| {
                let mut k = Conv2dConfig::new([c, c], [1, 1])
                    .with_bias(false)
                    .init(&dev);
                let mut eye = vec![0f32; c * c];
                (0..c).for_each(|i| eye[i * c + i] = 1.0);
                k.weight = burn::module::Param::from_tensor(Tensor::from_data(
                    TensorData::new(eye, [c, c, 1, 1]),
                    &dev,
                ));
                FastConv::new(k).expect("supported")
            };
            conv2d_part(filler(3, 7.0), &one(3), &mut buf, 0, 3 + cout + 2);
            conv2d_part(x.clone(), &f, &mut buf, 3, 3 + cout + 2);
            conv2d_part(filler(2, -4.0), &one(2), &mut buf, 3 + cout, 3 + cout + 2);
            let all = buf
                .expect("filled")
                .into_tensor(&dev)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            let plane = oh * ow;
            let mut mid = Vec::new();
            for img in all.chunks_exact((3 + cout + 2) * plane) {
                assert!(img[..3 * plane].iter().all(|&v| v == 7.0), "{case}");
                assert!(
                    img[(3 + cout) * plane..].iter().all(|&v| v == -4.0),
                    "{case}"
                );
                mid.extend_from_slice(&img[3 * plane..(3 + cout) * plane]);
            }
            close(&mid, "concatenated");
        }
    }
}

/// A convolution plus a residual (added by the kernels as they store) equals the
/// convolution, then the addition, then the ReLU: on the Winograd kernel, the direct one
/// (3x3 stride 2; more input channels than one chunk, where the residual must enter once;
/// 1x1 read in place), and the fallbacks (a whole-input kernel; a residual of another
/// shape, broadcast by Burn).
#[test]
fn conv_add_equals_conv_then_add() {
    use burn::nn::conv::Conv2dConfig;
    let dev = Device::flex();
    let mut rng = Rng::new(23);
    // (n, cin, h, w, cout, k, stride, pad)
    let cases = [
        (4, 16, 18, 17, 20, 3, 1, 1),
        (2, 6, 11, 13, 9, 3, 2, 1),
        (2, 300, 5, 6, 8, 3, 1, 1),
        (3, 8, 8, 8, 7, 1, 1, 0),
        (2, 3, 4, 5, 6, 0, 1, 0),
    ];
    #[cfg(target_arch = "x86_64")]
    let _unforce = Unforce;
    for (i, (n, cin, h, w, cout, k, s, p)) in cases.into_iter().enumerate() {
        // The first on the Winograd kernel, the others on the direct one.
        #[cfg(target_arch = "x86_64")]
        crate::cpu::winograd::FORCE.set(i == 0);
        // k == 0: a kernel over the whole input.
        let kk = if k == 0 { [h, w] } else { [k, k] };
        let conv = Conv2dConfig::new([cin, cout], kk)
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init(&dev);
        let (conv, x) = randomized(conv, true, [n, cin, h, w], &mut rng, &dev);
        let [_, _, oh, ow] = conv.forward(x.clone()).dims();
        let mut res = noise(&mut rng, n * cout * oh * ow);
        res[3] = f32::NAN;
        let r = Tensor::<4>::from_data(TensorData::new(res, [n, cout, oh, ow]), &dev);
        // The same residual, one value per channel, broadcast over the planes.
        let rc = Tensor::<4>::from_data(
            TensorData::new(noise(&mut rng, cout), [1, cout, 1, 1]),
            &dev,
        );
        for (relu, r) in [(true, r.clone()), (false, r), (true, rc)] {
            let mut f = FastConv::new(conv.clone()).expect("supported");
            f.relu = relu;
            let sum = conv.forward(x.clone()) + r.clone();
            let want = if relu {
                burn::tensor::activation::relu(sum)
            } else {
                sum
            };
            let want = want.into_data().try_to_vec::<f32>().unwrap_or_default();
            let got = conv2d_add(x.clone(), r, &f)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            assert_eq!(got.len(), want.len());
            let scale = want
                .iter()
                .fold(1f32, |m, v| if v.is_nan() { m } else { m.max(v.abs()) });
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-5 * scale,
                    "case {cin} {kk:?} s{s} relu {relu}, element {i}: {a} vs {b}"
                );
            }
        }
    }
}
