//! Forward pass on the CPU backend (Burn's flex), batch 1 and batch 32: the MNIST demo network
//! (mw-workshop-mnist), SqueezeNet (gender-audio, 227x227x3 DAGNetwork) and two large MatConvNet
//! networks with random weights written by `scripts/gen_matconvnet.py`: VGG-16 (SimpleNN,
//! 138 M parameters) and ResNet-18 (DagNN, 11.7 M).
//!
//! `cargo bench --bench forward`. The generated files live in `target/bench-nets/` (never
//! committed); when they are missing the bench runs the generator with `$MATCNN_BENCH_PYTHON`
//! (else `/tmp/benchvenv/bin/python`, else `python3`; it needs numpy and scipy, see
//! `scripts/requirements-bench.txt`) and skips those networks, saying why, if that fails.
//! Threads: `RAYON_NUM_THREADS`. Criterion reports images/s as "elements/s".
//!
//! VGG-16 at batch 32 takes tens of seconds per pass on a 2-core machine, so it is left out
//! unless `MATCNN_BENCH_VGG_BATCH32=1`.
//!
//! The timed step is what `matcnn bench` times: making the input tensor, the forward pass (with
//! batch normalization folded, as for inference) and reading the output back.

use burn::prelude::{Device, Tensor, TensorData};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use matcnn::model::MatNet;
use matcnn::net::LayerKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::{fixture, generated, noise};

/// Reads, imports and builds the network for inference, with its input as `[C, H, W]`.
fn load(path: &Path, device: &Device) -> (MatNet, [usize; 3]) {
    let mut loaded = matcnn::source::load(Some(path), None)
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let shape = match loaded.net.input().map(|l| &l.kind) {
        Some(LayerKind::ImageInput { size, .. }) => [size.c, size.h, size.w],
        _ => panic!("{}: not an image network", path.display()),
    };
    let model = loaded
        .build_for_inference(device)
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    (model, shape)
}

struct Net {
    name: &'static str,
    path: Option<PathBuf>,
    batches: Vec<usize>,
    /// Criterion's measurement time in seconds at batch 1 and batch 32 (about 10 passes at
    /// 32 on a 2-core machine; criterion takes at least 10 anyway).
    measure: [u64; 2],
}

fn nets() -> Vec<Net> {
    let vgg_batches = if std::env::var("MATCNN_BENCH_VGG_BATCH32").is_ok_and(|v| v == "1") {
        vec![1, 32]
    } else {
        vec![1]
    };
    vec![
        Net {
            name: "mnist",
            path: Some(fixture("mw-workshop-mnist/MNIST_Network.mat")),
            batches: vec![1, 32],
            measure: [3, 3],
        },
        Net {
            name: "squeezenet",
            path: Some(fixture("gender-audio/trainedNetwork_1.mat")),
            batches: vec![1, 32],
            measure: [3, 12],
        },
        Net {
            name: "resnet18",
            path: generated("resnet18"),
            batches: vec![1, 32],
            measure: [3, 25],
        },
        Net {
            name: "vgg16",
            path: generated("vgg16"),
            batches: vgg_batches,
            measure: [12, 400],
        },
    ]
}

fn forward(c: &mut Criterion) {
    let device = Device::flex();
    for net in nets() {
        let Some(path) = net.path else { continue };
        let (model, [ch, h, w]) = load(&path, &device);
        let mut g = c.benchmark_group(format!("forward/{}", net.name));
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .sampling_mode(SamplingMode::Flat);
        for batch in net.batches {
            g.measurement_time(Duration::from_secs(net.measure[usize::from(batch > 1)]));
            let x = noise(batch * ch * h * w, batch as u64);
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(format!("batch{batch}"), |b| {
                b.iter(|| {
                    let input = Tensor::<4>::from_data(
                        TensorData::new(x.clone(), [batch, ch, h, w]),
                        &device,
                    );
                    // Reading the output back waits for the backend to finish.
                    model.forward(input).into_data()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);
