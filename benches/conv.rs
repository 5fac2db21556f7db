//! One convolution layer at a time on the CPU kernels (`matcnn::cpu::conv2d`, what
//! inference runs on the plain flex device): the 3x3, stride-2, 1x1 and 7x7 shapes of
//! ResNet-18, VGG-16 and SqueezeNet, batch 1 (and one batch of 8), random weights, ReLU fused.
//!
//! `cargo bench --bench conv`. Criterion's "elements/s" are floating-point operations per
//! second of a direct convolution (2 per multiply-add, valid outputs only), to compare with the
//! machine's peak and with onnxruntime's per-node profile; layers the Winograd kernel takes
//! (3x3 stride 1 with enough positions, `winograd::applies`) do fewer multiplications, so theirs
//! are effective rates. Threads: `RAYON_NUM_THREADS`.
//!
//! Group `linear`: fully connected layers as Deep Learning Toolbox networks hold them (Burn's
//! `Linear` over MATLAB's `[out, in]` rows seen transposed), Burn's matmul against
//! `cpu::linear`, in weight bytes per second: VGG-16's fc6 at batch 1 and MNIST's classifier at
//! batch 32.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::{Device, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matcnn::cpu::{self, FastConv};

mod common;
use common::noise;

/// Seeded uniform noise in [-1, 1].
fn unit_noise(n: usize, seed: u64) -> Vec<f32> {
    noise(n, seed)
        .into_iter()
        .map(|v| v / 127.5 - 1.0)
        .collect()
}

fn conv(c: &mut Criterion) {
    let dev = Device::flex();
    // (name, n, cin, h, w, cout, k, stride, pad)
    #[rustfmt::skip]
    let shapes = [
        ("resnet 3x3 64@56", 1, 64, 56, 56, 64, 3, 1, 1),
        ("resnet 3x3 128@28", 1, 128, 28, 28, 128, 3, 1, 1),
        ("resnet 3x3 256@14", 1, 256, 14, 14, 256, 3, 1, 1),
        ("resnet 3x3 512@7", 1, 512, 7, 7, 512, 3, 1, 1),
        ("resnet 3x3 s2 64@56->128", 1, 64, 56, 56, 128, 3, 2, 1),
        ("resnet 1x1 s2 64@56->128", 1, 64, 56, 56, 128, 1, 2, 0),
        ("resnet 7x7 s2 conv1", 1, 3, 224, 224, 64, 7, 2, 3),
        ("vgg 3x3 256@56", 1, 256, 56, 56, 256, 3, 1, 1),
        ("squeezenet 1x1 128@56->16", 1, 128, 56, 56, 16, 1, 1, 0),
        ("resnet 3x3 64@56 batch 8", 8, 64, 56, 56, 64, 3, 1, 1),
        ("mnist 3x3 1@28->16 batch 32", 32, 1, 28, 28, 16, 3, 1, 1),
        ("mnist 3x3 16@14->32 batch 32", 32, 16, 14, 14, 32, 3, 1, 1),
        ("mnist 3x3 32@7->64 batch 32", 32, 32, 7, 7, 64, 3, 1, 1),
    ];
    let mut group = c.benchmark_group("conv");
    for (i, (name, n, cin, h, w, cout, k, s, p)) in shapes.into_iter().enumerate() {
        let mut layer = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init(&dev);
        let wd = layer.weight.val().dims();
        layer.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(unit_noise(wd.iter().product(), i as u64 + 1), wd),
            &dev,
        ));
        let mut f = FastConv::new(layer).expect("a supported convolution");
        f.relu = true;
        let x = Tensor::<4>::from_data(
            TensorData::new(unit_noise(n * cin * h * w, 100 + i as u64), [n, cin, h, w]),
            &dev,
        );
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        group.throughput(Throughput::Elements(
            2 * (n * cout * oh * ow * cin * k * k) as u64,
        ));
        group.bench_function(name, |b| {
            b.iter(|| cpu::conv2d(x.clone(), &f));
        });
    }
    group.finish();
}

fn linear(c: &mut Criterion) {
    let dev = Device::flex();
    let mut group = c.benchmark_group("linear");
    for (i, (name, n, inputs, outputs)) in [
        ("vgg fc6 25088->4096", 1, 25088, 4096),
        ("mnist fc 3136->10 batch 32", 32, 3136, 10),
    ]
    .into_iter()
    .enumerate()
    {
        let rows = Tensor::<2>::from_data(
            TensorData::new(
                unit_noise(inputs * outputs, 200 + i as u64),
                [outputs, inputs],
            ),
            &dev,
        );
        let layer = burn::nn::Linear {
            weight: burn::module::Param::from_tensor(rows.transpose()),
            bias: Some(burn::module::Param::from_tensor(Tensor::zeros(
                [outputs],
                &dev,
            ))),
        };
        let x = Tensor::<2>::from_data(
            TensorData::new(unit_noise(n * inputs, 300 + i as u64), [n, inputs]),
            &dev,
        );
        group.throughput(Throughput::Bytes((inputs * outputs * 4) as u64));
        group.bench_function(format!("{name} burn"), |b| {
            b.iter(|| layer.forward(x.clone()).into_data());
        });
        let (w, bias) = (layer.weight.val(), layer.bias.as_ref().map(|b| b.val()));
        group.bench_function(format!("{name} matcnn"), |b| {
            b.iter(|| {
                cpu::linear(&x, &w, bias.as_ref())
                    .expect("rows: matcnn's kernel")
                    .into_data()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, conv, linear);
criterion_main!(benches);
