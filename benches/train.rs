//! Training throughput of the built-in MNIST network on the CPU backend: one optimizer step
//! (forward, backward, update) on a batch of MNIST test digits, for each solver.
//!
//! `cargo bench --bench train` (digits from `../shared/fixtures/mw-workshop-mnist`).
//! Criterion reports images/s as "elements/s".

use burn::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matcnn::model::MatNet;
use matcnn::train::{Optimizer, TrainOptions, Trainer};
use std::io::Read;

fn digits(n: usize) -> (Vec<f32>, Vec<usize>) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/mw-workshop-mnist");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(dir.join("t10k-images-idx3-ubyte.gz")).expect("MNIST test images"),
    )
    .read_to_end(&mut raw)
    .expect("MNIST test images");
    let labels = std::fs::read(dir.join("t10k-labels-idx1-ubyte")).expect("MNIST test labels");
    (
        raw[16..16 + n * 784].iter().map(|&b| b as f32).collect(),
        labels[8..8 + n].iter().map(|&l| l as usize).collect(),
    )
}

fn train_step(c: &mut Criterion) {
    let file = matcnn::mat::MatFile::from_bytes(matcnn::source::DEMO_MODEL).expect("demo");
    let net = matcnn::net::import(&file, None).expect("demo");
    let device = Device::flex().autodiff();
    let mut g = c.benchmark_group("train_step_mnist");
    for batch in [32usize, 128] {
        let (x, y) = digits(batch);
        g.throughput(Throughput::Elements(batch as u64));
        for (name, optimizer) in [("sgdm", Optimizer::Sgdm), ("adam", Optimizer::Adam)] {
            let opts = TrainOptions {
                optimizer,
                lr: 1e-4,
                ..TrainOptions::default()
            };
            let model = MatNet::from_network(&net, &device).expect("build");
            let mut trainer = Trainer::new(&net, model, &opts).expect("trainer");
            g.bench_function(format!("{name}/batch{batch}"), |b| {
                b.iter(|| {
                    let xt = Tensor::<4>::from_data(
                        TensorData::new(x.clone(), [batch, 1, 28, 28]),
                        &device,
                    );
                    trainer.step(xt, &y)
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = train_step
}
criterion_main!(benches);
