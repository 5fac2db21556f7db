//! The GPU backend (wgpu) gives the CPU's numbers. Built only with `--features wgpu`; runs where a
//! wgpu adapter exists (a GPU, or Mesa's lavapipe software Vulkan: `apt-get install
//! mesa-vulkan-drivers libvulkan1`).
#![cfg(feature = "wgpu")]

use matcnn::model::{Backend, MatNet, device_for};
use std::io::Read;

#[test]
fn mnist_on_wgpu_matches_cpu() {
    let gpu = match device_for(Some(Backend::Wgpu)) {
        Ok(d) => d,
        Err(e) => {
            // Without an adapter there is nothing to compare; CI with lavapipe sets this.
            assert!(
                std::env::var("MATCNN_REQUIRE_WGPU").is_err(),
                "no wgpu adapter: {e}"
            );
            eprintln!("skipped: {e}");
            return;
        }
    };
    let cpu = device_for(Some(Backend::Cpu)).unwrap();
    let file = matcnn::mat::MatFile::from_bytes(matcnn::source::DEMO_MODEL).unwrap();
    let net = matcnn::net::import(&file, None).unwrap();
    let mut raw = Vec::new();
    let path = format!(
        "{}/../shared/fixtures/mw-workshop-mnist/t10k-images-idx3-ubyte.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let n = 1000;
    let x: Vec<f32> = raw[16..16 + n * 784].iter().map(|&b| b as f32).collect();
    let a = MatNet::from_network(&net, &cpu)
        .unwrap()
        .predict(&x, [n, 1, 28, 28], 250, &cpu, |_| {})
        .0;
    let b = MatNet::from_network(&net, &gpu)
        .unwrap()
        .predict(&x, [n, 1, 28, 28], 250, &gpu, |_| {})
        .0;
    let d = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    eprintln!("max |cpu - wgpu| over {n} digits: {d:e}");
    assert!(d <= 1e-4, "{d}");
}
