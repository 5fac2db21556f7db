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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// `target/bench-nets/NAME.mat`; the first missing file runs the generator (once, for all the
/// networks); `None`, saying why, when that fails.
fn generated(name: &str) -> Option<PathBuf> {
    static FAILED: OnceLock<Option<String>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench-nets");
    let path = dir.join(format!("{name}.mat"));
    if path.exists() {
        return Some(path);
    }
    let failed = FAILED.get_or_init(|| {
        let python = std::env::var("MATCNN_BENCH_PYTHON").unwrap_or_else(|_| {
            if Path::new("/tmp/benchvenv/bin/python").exists() {
                "/tmp/benchvenv/bin/python".into()
            } else {
                "python3".into()
            }
        });
        eprintln!(
            "{} missing: generating with {python} scripts/gen_matconvnet.py",
            path.display()
        );
        match Command::new(&python)
            .current_dir(root)
            .arg("scripts/gen_matconvnet.py")
            .arg(&dir)
            .arg("--no-verify")
            .status()
        {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!(
                "the generator failed ({s}); set MATCNN_BENCH_PYTHON to a Python with numpy and scipy"
            )),
            Err(e) => Some(format!("cannot run {python}: {e}")),
        }
    });
    match failed {
        None if path.exists() => Some(path),
        None => {
            eprintln!(
                "skipping {name}: the generator did not write {}",
                path.display()
            );
            None
        }
        Some(why) => {
            eprintln!("skipping {name}: {why}");
            None
        }
    }
}

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
