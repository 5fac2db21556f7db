//! Each training kernel against Burn's own op on the same autodiff device (output and every
//! gradient), and against finite differences of its own forward pass.

use super::{batch_norm, batch_norm_relu, conv2d, conv2d_relu, max_pool2d};
use crate::cpu::test_util::{Rng, max_diff};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, PaddingConfig2d};
use burn::prelude::*;

fn device() -> Device {
    Device::flex().autodiff()
}

fn random(rng: &mut Rng, n: usize, scale: f64, offset: f64) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.uniform() - 0.5) * scale + offset) as f32)
        .collect()
}

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), &device()).require_grad()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32")
}

/// `Σ y r` for a fixed random `r`: its gradient with respect to `y` is `r`.
fn weighted_sum(y: Tensor<4>, seed: u64) -> Tensor<1> {
    let mut rng = Rng::new(seed);
    let dims = y.dims();
    let r = Tensor::from_data(
        TensorData::new(random(&mut rng, dims.iter().product(), 2.0, 0.0), dims),
        &y.device(),
    );
    (y * r).sum()
}

/// Largest difference relative to the larger of 1 and the reference's largest magnitude.
fn rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    max_diff(a, b) / scale
}

struct ConvCase {
    n: usize,
    cin: usize,
    hw: [usize; 2],
    cout: usize,
    k: [usize; 2],
    stride: [usize; 2],
    /// `(top, left, bottom, right)`, as Burn's `Explicit`.
    pad: (usize, usize, usize, usize),
    dilation: [usize; 2],
    groups: usize,
}

fn conv_layer(c: &ConvCase, seed: u64) -> Conv2d {
    let mut rng = Rng::new(seed);
    let (t, l, b, r) = c.pad;
    let mut layer = Conv2dConfig::new([c.cin, c.cout], c.k)
        .with_stride(c.stride)
        .with_dilation(c.dilation)
        .with_groups(c.groups)
        .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
        .init(&device());
    let wlen = c.cout * c.cin / c.groups * c.k[0] * c.k[1];
    layer.weight = burn::module::Param::from_tensor(tensor(
        random(&mut rng, wlen, 1.0, 0.0),
        [c.cout, c.cin / c.groups, c.k[0], c.k[1]],
    ));
    layer.bias = Some(burn::module::Param::from_tensor(tensor(
        random(&mut rng, c.cout, 1.0, 0.0),
        [c.cout],
    )));
    layer
}

const CONV_CASES: &[ConvCase] = &[
    // The demo network's layers (3x3, 'same' as explicit 1).
    ConvCase {
        n: 3,
        cin: 4,
        hw: [9, 8],
        cout: 5,
        k: [3, 3],
        stride: [1, 1],
        pad: (1, 1, 1, 1),
        dilation: [1, 1],
        groups: 1,
    },
    // One input channel, no input gradient needed upstream (first layer).
    ConvCase {
        n: 2,
        cin: 1,
        hw: [12, 12],
        cout: 16,
        k: [3, 3],
        stride: [1, 1],
        pad: (1, 1, 1, 1),
        dilation: [1, 1],
        groups: 1,
    },
    // Stride 2 with asymmetric padding (input gradient by col2im).
    ConvCase {
        n: 2,
        cin: 3,
        hw: [11, 10],
        cout: 4,
        k: [3, 3],
        stride: [2, 2],
        pad: (1, 0, 0, 1),
        dilation: [1, 1],
        groups: 1,
    },
    // A 7x7 stride-2 first layer (ResNet style).
    ConvCase {
        n: 2,
        cin: 3,
        hw: [15, 15],
        cout: 6,
        k: [7, 7],
        stride: [2, 2],
        pad: (3, 3, 3, 3),
        dilation: [1, 1],
        groups: 1,
    },
    // Dilation, valid padding, non-square kernel.
    ConvCase {
        n: 2,
        cin: 2,
        hw: [10, 11],
        cout: 3,
        k: [3, 2],
        stride: [1, 1],
        pad: (0, 0, 0, 0),
        dilation: [2, 3],
        groups: 1,
    },
    // Groups (and the flipped-weight input gradient with groups), asymmetric 'same'.
    ConvCase {
        n: 2,
        cin: 6,
        hw: [8, 8],
        cout: 4,
        k: [2, 2],
        stride: [1, 1],
        pad: (0, 0, 1, 1),
        dilation: [1, 1],
        groups: 2,
    },
    // Pointwise (the input is its own column matrix): SqueezeNet's squeeze layers.
    ConvCase {
        n: 3,
        cin: 8,
        hw: [5, 6],
        cout: 4,
        k: [1, 1],
        stride: [1, 1],
        pad: (0, 0, 0, 0),
        dilation: [1, 1],
        groups: 1,
    },
    // Depthwise.
    ConvCase {
        n: 2,
        cin: 4,
        hw: [7, 7],
        cout: 4,
        k: [3, 3],
        stride: [1, 1],
        pad: (1, 1, 1, 1),
        dilation: [1, 1],
        groups: 4,
    },
];

#[test]
fn convolution_matches_burn_output_and_gradients() {
    for (i, c) in CONV_CASES
        .iter()
        .enumerate()
        .flat_map(|(i, c)| [(i, c, false), (i, c, true)])
        .map(|(i, c, relu)| ((i, relu), c))
    {
        let (i, relu) = i;
        let layer = conv_layer(c, 10 + i as u64);
        let mut rng = Rng::new(100 + i as u64);
        let xv = random(&mut rng, c.n * c.cin * c.hw[0] * c.hw[1], 4.0, 0.5);
        let shape = [c.n, c.cin, c.hw[0], c.hw[1]];
        let run = |ours: bool| {
            let x = tensor(xv.clone(), shape);
            let y = match (ours, relu) {
                (true, false) => conv2d(&layer, &x).expect("the kernel takes this case"),
                (true, true) => conv2d_relu(&layer, &x).expect("the kernel takes this case"),
                (false, false) => layer.forward(x.clone()),
                (false, true) => burn::tensor::activation::relu(layer.forward(x.clone())),
            };
            let grads = weighted_sum(y.clone(), 7).backward();
            (
                host(y),
                host(x.grad(&grads).expect("x grad")),
                host(layer.weight.val().grad(&grads).expect("w grad")),
                host(
                    layer
                        .bias
                        .as_ref()
                        .expect("bias")
                        .val()
                        .grad(&grads)
                        .expect("b grad"),
                ),
            )
        };
        let (ours, burn) = (run(true), run(false));
        for (what, a, b) in [
            ("output", &ours.0, &burn.0),
            ("input gradient", &ours.1, &burn.1),
            ("weight gradient", &ours.2, &burn.2),
            ("bias gradient", &ours.3, &burn.3),
        ] {
            let d = rel(a, b);
            assert!(
                d < 1e-5,
                "case {i}, relu {relu}: {what} differs from Burn's by {d}"
            );
        }
    }
}

#[test]
fn convolution_gradients_match_finite_differences() {
    // The weighted sum is linear in x and in w, so a difference quotient is exact up to
    // rounding: checked at a few positions of each, in f64 sums of the f32 outputs.
    for (i, c) in CONV_CASES.iter().enumerate() {
        let layer = conv_layer(c, 20 + i as u64);
        let mut rng = Rng::new(200 + i as u64);
        let shape = [c.n, c.cin, c.hw[0], c.hw[1]];
        let xv = random(&mut rng, shape.iter().product(), 2.0, 0.0);
        let loss = |xv: &[f32], layer: &Conv2d| -> f64 {
            let y = conv2d(layer, &tensor(xv.to_vec(), shape)).expect("kernel");
            let mut r = Rng::new(7);
            let dims = y.dims();
            let rv = random(&mut r, dims.iter().product(), 2.0, 0.0);
            host(y)
                .iter()
                .zip(&rv)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        let x = tensor(xv.clone(), shape);
        let grads = weighted_sum(conv2d(&layer, &x).expect("kernel"), 7).backward();
        let gx = host(x.grad(&grads).expect("x grad"));
        let gw = host(layer.weight.val().grad(&grads).expect("w grad"));
        let h = 0.5f32;
        for at in [0, xv.len() / 3, xv.len() - 1] {
            let (mut up, mut down) = (xv.clone(), xv.clone());
            up[at] += h;
            down[at] -= h;
            let fd = (loss(&up, &layer) - loss(&down, &layer)) / (2.0 * h as f64);
            assert!(
                (fd - gx[at] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "case {i}: d/dx[{at}] {} against finite difference {fd}",
                gx[at]
            );
        }
        let wv = host(layer.weight.val());
        let wshape = layer.weight.val().dims();
        for at in [0, wv.len() / 2, wv.len() - 1] {
            let with = |delta: f32| {
                let mut v = wv.clone();
                v[at] += delta;
                let mut l2 = layer.clone();
                l2.weight = burn::module::Param::from_tensor(tensor(v, wshape));
                loss(&xv, &l2)
            };
            let fd = (with(h) - with(-h)) / (2.0 * h as f64);
            assert!(
                (fd - gw[at] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "case {i}: d/dw[{at}] {} against finite difference {fd}",
                gw[at]
            );
        }
    }
}

fn bn_layer(c: usize, training: bool, seed: u64) -> BatchNorm {
    let mut rng = Rng::new(seed);
    let mut bn = BatchNormConfig::new(c).with_momentum(0.1).init(&device());
    bn.gamma = burn::module::Param::from_tensor(tensor(random(&mut rng, c, 1.0, 1.0), [c]));
    bn.beta = burn::module::Param::from_tensor(tensor(random(&mut rng, c, 1.0, 0.0), [c]));
    bn.running_mean = burn::module::RunningState::new(Tensor::from_data(
        TensorData::new(random(&mut rng, c, 2.0, 30.0), [c]),
        &device(),
    ));
    bn.running_var = burn::module::RunningState::new(Tensor::from_data(
        TensorData::new(random(&mut rng, c, 1.0, 4.0), [c]),
        &device(),
    ));
    bn.training = burn::module::Param::from_bool(training);
    bn
}

#[test]
fn batch_norm_matches_burn_in_both_modes() {
    for (training, relu) in [(true, false), (false, false), (true, true), (false, true)] {
        for (i, shape) in [[4, 3, 5, 6], [2, 16, 7, 7], [3, 2, 1, 1]]
            .into_iter()
            .enumerate()
        {
            let mut rng = Rng::new(300 + i as u64);
            // A large mean, as after a convolution of raw 0-255 pixels.
            let xv = random(&mut rng, shape.iter().product(), 20.0, 30.0);
            let run = |ours: bool| {
                let bn = bn_layer(shape[1], training, 40 + i as u64);
                let x = tensor(xv.clone(), shape);
                let y = match (ours, relu) {
                    (true, false) => batch_norm(&bn, &x).expect("the kernel takes this case"),
                    (true, true) => batch_norm_relu(&bn, &x).expect("the kernel takes this case"),
                    (false, false) => bn.forward(x.clone()),
                    (false, true) => burn::tensor::activation::relu(bn.forward(x.clone())),
                };
                let grads = weighted_sum(y.clone(), 9).backward();
                (
                    host(y),
                    host(x.grad(&grads).expect("x grad")),
                    host(bn.gamma.val().grad(&grads).expect("gamma grad")),
                    host(bn.beta.val().grad(&grads).expect("beta grad")),
                    host(bn.running_mean.value()),
                    host(bn.running_var.value()),
                )
            };
            let (ours, burn) = (run(true), run(false));
            for (what, a, b) in [
                ("output", &ours.0, &burn.0),
                ("input gradient", &ours.1, &burn.1),
                ("scale gradient", &ours.2, &burn.2),
                ("offset gradient", &ours.3, &burn.3),
                ("running mean", &ours.4, &burn.4),
                ("running variance", &ours.5, &burn.5),
            ] {
                let d = rel(a, b);
                assert!(
                    d < 2e-5,
                    "training {training}, relu {relu}, shape {shape:?}: {what} differs from Burn's by {d}"
                );
            }
        }
    }
}

#[test]
fn batch_norm_input_gradient_matches_finite_differences() {
    // Training mode: the statistics depend on every input, so this checks the two terms Burn's
    // comparison could share a mistake in. Central differences in f32 of a smooth function.
    let shape = [3, 2, 3, 4];
    let mut rng = Rng::new(77);
    let xv = random(&mut rng, shape.iter().product(), 4.0, 1.0);
    let bn = bn_layer(2, true, 78);
    let loss = |v: &[f32]| -> f64 {
        let y = batch_norm(&bn, &tensor(v.to_vec(), shape)).expect("kernel");
        let (y, _) = (host(weighted_sum(y, 9)), ());
        y[0] as f64
    };
    let x = tensor(xv.clone(), shape);
    let grads = weighted_sum(batch_norm(&bn, &x).expect("kernel"), 9).backward();
    let gx = host(x.grad(&grads).expect("x grad"));
    let h = 1e-2f32;
    for at in 0..xv.len() {
        let (mut up, mut down) = (xv.clone(), xv.clone());
        up[at] += h;
        down[at] -= h;
        let fd = (loss(&up) - loss(&down)) / (2.0 * h as f64);
        assert!(
            (fd - gx[at] as f64).abs() < 2e-2 * (1.0 + fd.abs()),
            "d/dx[{at}] {} against finite difference {fd}",
            gx[at]
        );
    }
}

/// A pooling test case: kernel, stride, padding (top, left, bottom, right), input shape.
type PoolCase = (
    [usize; 2],
    [usize; 2],
    (usize, usize, usize, usize),
    [usize; 4],
);

const POOL_CASES: [PoolCase; 6] = [
    // The demo network's 2x2 windows (their own kernel), even and odd sizes.
    ([2, 2], [2, 2], (0, 0, 0, 0), [2, 3, 8, 6]),
    ([2, 2], [2, 2], (0, 0, 0, 0), [1, 2, 7, 9]),
    // Overlapping windows: SqueezeNet's 3x3 at stride 2, padded, and at stride 1.
    ([3, 3], [2, 2], (0, 0, 0, 0), [2, 2, 11, 9]),
    ([3, 3], [2, 2], (1, 1, 1, 1), [2, 2, 9, 8]),
    ([3, 3], [1, 1], (1, 1, 1, 1), [1, 2, 6, 5]),
    ([3, 2], [1, 2], (0, 1, 2, 0), [2, 2, 6, 7]),
];

fn pool_layer((k, s, (t, l, b, r), _): PoolCase) -> MaxPool2d {
    MaxPool2dConfig::new(k)
        .with_strides(s)
        .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
        .init()
}

#[test]
fn max_pooling_gradient_matches_finite_differences() {
    // Piecewise linear: away from ties a difference quotient is exact up to rounding.
    for (i, case) in POOL_CASES.into_iter().enumerate() {
        let p = pool_layer(case);
        let shape = case.3;
        let mut rng = Rng::new(450 + i as u64);
        let xv = random(&mut rng, shape.iter().product(), 10.0, 0.0);
        // In f64 from the pooled values (copies of inputs), so that a step far below the
        // smallest gap between two values of a window still shows.
        let loss = |v: &[f32]| -> f64 {
            let y = max_pool2d(&p, &tensor(v.to_vec(), shape)).expect("kernel");
            let mut r = Rng::new(5);
            let rv = random(&mut r, y.dims().iter().product(), 2.0, 0.0);
            host(y)
                .iter()
                .zip(&rv)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        let x = tensor(xv.clone(), shape);
        let grads = weighted_sum(max_pool2d(&p, &x).expect("kernel"), 5).backward();
        let gx = host(x.grad(&grads).expect("x grad"));
        let h = 1e-5f32;
        for at in 0..xv.len() {
            let (mut up, mut down) = (xv.clone(), xv.clone());
            up[at] += h;
            down[at] -= h;
            // The step actually taken in f32.
            let step = (up[at] - down[at]) as f64;
            let fd = (loss(&up) - loss(&down)) / step;
            assert!(
                (fd - gx[at] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "case {i}: d/dx[{at}] {} against finite difference {fd}",
                gx[at]
            );
        }
    }
}

#[test]
fn max_pooling_matches_burn_output_and_gradient() {
    for (i, case) in POOL_CASES.into_iter().enumerate() {
        let (p, shape) = (pool_layer(case), case.3);
        let mut rng = Rng::new(400 + i as u64);
        // Distinct values: ties would let the two pick different (equally valid) positions.
        let xv = random(&mut rng, shape.iter().product(), 10.0, 0.0);
        let run = |ours: bool| {
            let x = tensor(xv.clone(), shape);
            let y = if ours {
                max_pool2d(&p, &x).expect("the kernel takes this case")
            } else {
                p.forward(x.clone())
            };
            let grads = weighted_sum(y.clone(), 5).backward();
            (host(y), host(x.grad(&grads).expect("x grad")))
        };
        let (ours, burn) = (run(true), run(false));
        assert_eq!(ours.0, burn.0, "case {i}: output");
        assert!(rel(&ours.1, &burn.1) < 1e-6, "case {i}: input gradient");
    }
}

#[test]
fn kernels_leave_other_devices_to_burn() {
    let d = Device::flex();
    let x = Tensor::<4>::zeros([1, 1, 4, 4], &d);
    let conv = Conv2dConfig::new([1, 1], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&d);
    assert!(conv2d(&conv, &x).is_none());
    assert!(batch_norm(&BatchNormConfig::new(1).init(&d), &x).is_none());
    assert!(max_pool2d(&MaxPool2dConfig::new([2, 2]).init(), &x).is_none());
    // 'same' padding stays with Burn (it is resolved per input there).
    let same = Conv2dConfig::new([1, 1], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(&device());
    assert!(conv2d(&same, &tensor(vec![0.0; 16], [1, 1, 4, 4])).is_none());
}

#[test]
fn dropout_keeps_its_share_scales_and_passes_gradients_through_the_kept_values() {
    use burn::nn::DropoutConfig;
    let d = DropoutConfig::new(0.3).init();
    let shape = [4, 8, 30, 30];
    let mut rng = Rng::new(500);
    // Away from zero, so that y / x recovers the mask's factor.
    let xv: Vec<f32> = random(&mut rng, shape.iter().product(), 2.0, 0.0)
        .into_iter()
        .map(|v| if v.abs() < 0.01 { 0.5 } else { v })
        .collect();
    let run = |seed: u64| {
        let dev = device();
        dev.seed(seed);
        let x = tensor(xv.clone(), shape);
        let y = super::dropout(&d, &x).expect("the kernel takes a layer in training");
        let grads = weighted_sum(y.clone(), 3).backward();
        (host(y), host(x.grad(&grads).expect("x grad")))
    };
    let (y, dx) = run(1);
    let mut r = Rng::new(3);
    let rv = random(&mut r, xv.len(), 2.0, 0.0);
    let scale = 1.0 / 0.7f32;
    let mut kept = 0usize;
    for i in 0..xv.len() {
        let f = y[i] / xv[i];
        assert!(
            f == 0.0 || (f - scale).abs() < 1e-5,
            "value {i}: factor {f}, neither 0 nor 1 / (1 - p)"
        );
        kept += (f != 0.0) as usize;
        assert!((dx[i] - rv[i] * f).abs() < 1e-5, "value {i}: gradient");
    }
    let share = kept as f64 / xv.len() as f64;
    assert!((share - 0.7).abs() < 0.01, "kept {share}, not 1 - p = 0.7");
    assert_eq!(run(1).0, y, "the same seed gives the same mask");
    assert_ne!(run(2).0, y, "another seed gives another mask");
    // A frozen layer passes its input through (Burn's op does the same).
    let frozen = Dropout {
        training: burn::module::Param::from_bool(false),
        ..d
    };
    assert!(super::dropout(&frozen, &tensor(xv.clone(), shape)).is_none());
}

#[test]
fn channel_concatenation_matches_burn_output_and_gradients() {
    for (k, channels) in [vec![2, 3], vec![1, 4, 2], vec![3, 1, 2, 5]]
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng::new(600 + k as u64);
        let inputs: Vec<Vec<f32>> = channels
            .iter()
            .map(|c| random(&mut rng, 2 * c * 5 * 4, 2.0, 0.0))
            .collect();
        let run = |ours: bool| {
            let xs: Vec<Tensor<4>> = inputs
                .iter()
                .zip(&channels)
                .map(|(v, c)| tensor(v.clone(), [2, *c, 5, 4]))
                .collect();
            let y = if ours {
                super::concat_channels(&xs).expect("the kernel takes 2 to 4 inputs")
            } else {
                Tensor::cat(xs.clone(), 1)
            };
            let grads = weighted_sum(y.clone(), 11).backward();
            let gx: Vec<Vec<f32>> = xs
                .iter()
                .map(|x| host(x.grad(&grads).expect("x grad")))
                .collect();
            (host(y), gx)
        };
        let (ours, burn) = (run(true), run(false));
        assert_eq!(ours.0, burn.0, "{channels:?}: output");
        assert_eq!(ours.1, burn.1, "{channels:?}: input gradients");
    }
    // Five inputs, or different sizes, stay with Burn.
    let x = tensor(vec![0.0; 8], [1, 2, 2, 2]);
    assert!(super::concat_channels(&vec![x.clone(); 5]).is_none());
    let y = tensor(vec![0.0; 12], [1, 1, 3, 4]);
    assert!(super::concat_channels(&[x, y]).is_none());
}

#[test]
fn first_layer_gradients_match_burn_when_the_input_needs_none() {
    // An input without a gradient (a network's first layer): the weight gradient then reads
    // the ReLU's mask itself instead of a masked copy of the output gradient.
    for (i, c) in CONV_CASES.iter().enumerate() {
        let layer = conv_layer(c, 30 + i as u64);
        let mut rng = Rng::new(700 + i as u64);
        let shape = [c.n, c.cin, c.hw[0], c.hw[1]];
        let xv = random(&mut rng, shape.iter().product(), 4.0, 0.5);
        let run = |ours: bool| {
            let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), shape), &device());
            let y = if ours {
                conv2d_relu(&layer, &x).expect("the kernel takes this case")
            } else {
                burn::tensor::activation::relu(layer.forward(x))
            };
            let grads = weighted_sum(y, 13).backward();
            let b = layer.bias.as_ref().expect("bias").val();
            (
                host(layer.weight.val().grad(&grads).expect("w grad")),
                host(b.grad(&grads).expect("b grad")),
            )
        };
        let (ours, burn) = (run(true), run(false));
        assert!(rel(&ours.0, &burn.0) < 1e-5, "case {i}: weight gradient");
        assert!(rel(&ours.1, &burn.1) < 1e-5, "case {i}: bias gradient");
    }
}

#[test]
fn max_pooling_ties_and_nan_follow_burn() {
    // Few distinct values: most windows hold ties, and the gradient must go where Burn's goes
    // (the first maximum in row-major order). Then a NaN, which must come through.
    for (i, case) in POOL_CASES.into_iter().enumerate() {
        let (p, shape) = (pool_layer(case), case.3);
        let mut rng = Rng::new(480 + i as u64);
        let ties: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| (rng.uniform() * 3.0).floor() as f32)
            .collect();
        let mut nan = random(&mut rng, ties.len(), 10.0, 0.0);
        // Not first in their windows (a NaN that starts a window survives a plain `>`).
        for at in [shape[3] + 1, ties.len() / 2 + 1, ties.len() - 1] {
            nan[at] = f32::NAN;
        }
        for (what, xv) in [("ties", ties), ("NaN", nan)] {
            let run = |ours: bool| {
                let x = tensor(xv.clone(), shape);
                let y = if ours {
                    max_pool2d(&p, &x).expect("kernel")
                } else {
                    p.forward(x.clone())
                };
                let grads = weighted_sum(y.clone(), 5).backward();
                let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                (bits(host(y)), host(x.grad(&grads).expect("x grad")))
            };
            let (ours, burn) = (run(true), run(false));
            assert_eq!(ours.0, burn.0, "case {i}, {what}: output");
            let same = ours
                .1
                .iter()
                .zip(&burn.1)
                .all(|(a, b)| (a - b).abs() < 1e-6 || (a.is_nan() && b.is_nan()));
            assert!(
                same,
                "case {i}, {what}: gradient positions differ from Burn's"
            );
        }
    }
}
