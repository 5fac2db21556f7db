//! Loading large networks: reading the `.mat` (`MatFile::read`), importing the network
//! (`net::import`) and building the Burn module on the CPU backend (`MatNet::from_network`), for
//! VGG-16 (MatConvNet SimpleNN, 138 M float32 parameters, ~550 MB) and ResNet-18 (MatConvNet
//! DagNN, 11.7 M), each written compressed (zlib, as MATLAB's `save` does) and uncompressed.
//!
//! `cargo bench --bench load`. The files are generated with random weights by
//! `scripts/gen_matconvnet.py` into `target/bench-nets/` (never committed); when missing, the bench
//! runs the generator with `$MATCNN_BENCH_PYTHON` (else `/tmp/benchvenv/bin/python`, else
//! `python3`; it needs numpy and scipy, see `scripts/requirements-bench.txt`) and skips the
//! networks, saying why, if that fails. Criterion's throughput is the file size.
//! Peak memory and a comparison with `scipy.io.loadmat`: `scripts/compare.py`.

use burn::prelude::Device;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use matcnn::mat::MatFile;
use matcnn::model::MatNet;
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::generated;

fn load(c: &mut Criterion) {
    let device = Device::flex();
    for (name, measure) in [
        ("resnet18", 5),
        ("resnet18_uncompressed", 5),
        ("vgg16", 35),
        ("vgg16_uncompressed", 20),
    ] {
        let Some(path) = generated(name) else {
            continue;
        };
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut g = c.benchmark_group("load");
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(measure))
            .sampling_mode(SamplingMode::Flat)
            .throughput(Throughput::Bytes(size));
        g.bench_function(name, |b| {
            // The module's drop is not part of loading.
            b.iter_with_large_drop(|| {
                let file = MatFile::read(black_box(&path)).expect("read");
                let net = matcnn::net::import(&file, None).expect("import");
                MatNet::from_network(&net, &device).expect("build")
            })
        });
        g.finish();
    }
}

criterion_group!(benches, load);
criterion_main!(benches);
