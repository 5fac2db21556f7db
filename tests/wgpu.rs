//! The GPU backend (wgpu) gives the CPU's numbers, for inference and for training. Built only
//! with `--features wgpu`; runs where a wgpu adapter exists (a GPU, or Mesa's lavapipe software
//! Vulkan: `apt-get install mesa-vulkan-drivers libvulkan1`). `MATCNN_REQUIRE_WGPU=1` turns a
//! missing adapter into a failure.
#![cfg(feature = "wgpu")]

use burn::prelude::Device;
use matcnn::model::{Backend, MatNet, device_for};
use matcnn::train::{Dataset, Optimizer, TrainOptions};

mod common;

fn gpu() -> Option<Device> {
    match device_for(Some(Backend::Wgpu)) {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(
                std::env::var("MATCNN_REQUIRE_WGPU").is_err(),
                "no wgpu adapter: {e}"
            );
            eprintln!("skipped: {e}");
            None
        }
    }
}

fn demo() -> matcnn::net::Network {
    let file = matcnn::mat::MatFile::from_bytes(matcnn::source::DEMO_MODEL).unwrap();
    matcnn::net::import(&file, None).unwrap()
}

#[test]
fn mnist_on_wgpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = device_for(Some(Backend::Cpu)).unwrap();
    let net = demo();
    let (raw, labels) = common::mnist_t10k();
    let n = 1000;
    let x: Vec<f32> = raw[..n * 784].iter().map(|&b| b as f32).collect();
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
    let argmax = |p: &[f32]| (0..p.len()).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap();
    let correct = b
        .chunks(10)
        .zip(&labels)
        .filter(|(p, l)| argmax(p) == **l as usize)
        .count();
    eprintln!("wgpu: max |cpu - wgpu| over {n} digits: {d:e}; {correct}/{n} right on wgpu");
    assert!(d <= 1e-4, "{d}");
}

/// One epoch of fine-tuning with the same seed on CPU and on wgpu: the losses agree within 1 %.
#[test]
fn training_on_wgpu_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = device_for(Some(Backend::Cpu)).unwrap();
    let (raw, labels) = common::mnist_t10k();
    let (train, val) = (0..1000, 1000..1500);
    let set = |r: std::ops::Range<usize>| Dataset {
        x: raw[r.start * 784..r.end * 784]
            .iter()
            .map(|&b| b as f32)
            .collect(),
        y: labels[r].iter().map(|&l| (l >= 5) as usize).collect(),
        classes: vec!["lt5".into(), "ge5".into()],
        shape: [1, 28, 28],
    };
    let (train, val) = (set(train), set(val));
    let opts = TrainOptions {
        epochs: 1,
        batch_size: 32,
        lr: 1e-4,
        optimizer: Optimizer::Adam,
        seed: 7,
        ..TrainOptions::default()
    };
    let run = |device: &Device, name: &str| {
        let mut net = demo();
        matcnn::train::adapt_classes(&mut net, &train.classes, opts.seed).unwrap();
        let ad = device.clone().autodiff();
        let model = MatNet::from_network(&net, &ad).unwrap();
        let out = common::scratch("wgpu-train", name);
        let t0 = std::time::Instant::now();
        let (_, log) = matcnn::train::finetune(
            &net,
            model,
            &train,
            Some(&val),
            &opts,
            &ad,
            &out,
            1,
            vec![],
            &mut (),
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(out);
        eprintln!("{name}: {:?} in {:.2?}", log[0], t0.elapsed());
        log[0].clone()
    };
    let a = run(&cpu, "cpu");
    let b = run(&gpu, "wgpu");
    let rel = (a.train_loss - b.train_loss).abs() / a.train_loss;
    eprintln!(
        "training loss after one epoch: cpu {} wgpu {} (relative difference {rel:e})",
        a.train_loss, b.train_loss
    );
    assert!(rel <= 0.01, "cpu {} vs wgpu {}", a.train_loss, b.train_loss);
    let vrel = (a.val_loss.unwrap() - b.val_loss.unwrap()).abs() / a.val_loss.unwrap();
    assert!(vrel <= 0.01, "validation loss: {a:?} vs {b:?}");
}
