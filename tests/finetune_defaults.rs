//! `matcnn finetune` with its defaults on a new task: the built-in MNIST demo network fine-tuned
//! to "digit < 5" / "digit >= 5" from a folder of 1,500 digits, 2 epochs, scored on 500 others.
//! The digits are the first 2,000 images of `chandrachapa-mnist-bn/MNIST_Validation.mat` (the
//! first 2,000 MNIST training images; labels from `train-labels-idx1-ubyte`), written as PNGs into a
//! scratch folder. `scripts/finetune_pytorch.py` runs the same task in PyTorch.

use std::path::Path;

mod common;
use common::{fixture, matcnn_ok as matcnn};

/// The digits as 8-bit images (round(255 x), as MATLAB's `im2uint8`) and their labels.
fn digits() -> (Vec<Vec<u8>>, Vec<u8>) {
    let dir = fixture("chandrachapa-mnist-bn");
    let file = matcnn::mat::MatFile::read(dir.join("MNIST_Validation.mat")).unwrap();
    let x = file.get("img_V").unwrap().as_numeric().unwrap();
    assert_eq!(x.dims, vec![28, 28, 1, 2000]);
    let v = x.real.to_f64_vec();
    // Column-major [28, 28, 1, N]: element (r, c, n) at r + 28 c + 784 n.
    let images = (0..2000)
        .map(|n| {
            let mut img = vec![0u8; 784];
            for r in 0..28 {
                for c in 0..28 {
                    img[r * 28 + c] =
                        (v[r + 28 * c + 784 * n].clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
            img
        })
        .collect();
    let labels = std::fs::read(dir.join("train-labels-idx1-ubyte")).unwrap();
    (images, labels[8..8 + 2000].to_vec())
}

fn write_folder(dir: &Path, images: &[Vec<u8>], labels: &[u8], range: std::ops::Range<usize>) {
    for c in ["ge5", "lt5"] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
    }
    for i in range {
        let class = if labels[i] < 5 { "lt5" } else { "ge5" };
        image::GrayImage::from_raw(28, 28, images[i].clone())
            .unwrap()
            .save(dir.join(class).join(format!("{i:05}.png")))
            .unwrap();
    }
}

/// The last epoch's held-out accuracy and every epoch's training loss, from training_log.csv.
fn log(out: &Path) -> (f64, Vec<f64>) {
    let (text, rows) = common::training_log(out);
    let last = rows.last().unwrap_or_else(|| panic!("empty log: {text}"));
    (last[4], rows.iter().map(|r| r[1]).collect())
}

#[test]
fn defaults_reach_95_percent_on_a_new_two_class_task() {
    let dir = common::scratch("ftdef", "mnist");
    let (images, labels) = digits();
    write_folder(&dir.join("train"), &images, &labels, 0..1500);
    write_folder(&dir.join("heldout"), &images, &labels, 1500..2000);
    let mut accs = Vec::new();
    for seed in ["1", "2", "3"] {
        let out = dir.join(format!("tuned-{seed}"));
        let o = matcnn(&[
            "finetune",
            "--data",
            dir.join("train").to_str().unwrap(),
            "--val",
            dir.join("heldout").to_str().unwrap(),
            "--epochs",
            "2",
            "--seed",
            seed,
            "--output",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        // The effective recipe comes first.
        assert!(err.contains("recipe: solver sgdm"), "{err}");
        assert!(err.contains("learning rate"), "{err}");
        assert!(err.contains("frozen: batchnorm_1, batchnorm_2"), "{err}");
        let (acc, losses) = log(&out);
        // The start does not overshoot: the first epoch's loss stays near ln 2.
        assert!(
            losses[0] < 1.0,
            "seed {seed}: first-epoch loss {losses:?}\n{err}"
        );
        eprintln!("seed {seed}: held-out accuracy {acc:.4}, losses {losses:?}");
        accs.push(acc);
    }
    let mean = accs.iter().sum::<f64>() / accs.len() as f64;
    assert!(mean >= 0.95, "mean held-out accuracy {mean:.4} ({accs:?})");
}

/// `bench --train`: the median time of a full training step per batch size, as JSON.
#[test]
fn bench_train_reports_step_times() {
    let o = matcnn(&[
        "bench",
        "--train",
        "--batch",
        "4,8",
        "--repeat",
        "3",
        "--warmup",
        "1",
        "--profile",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["train"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for (row, batch) in rows.iter().zip([4.0, 8.0]) {
        assert_eq!(row["batch"].as_f64(), Some(batch));
        let ms = row["median_ms"].as_f64().unwrap();
        let times: Vec<f64> = row["times_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect();
        assert_eq!(times.len(), 3);
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(ms, sorted[1], "the median of {times:?}");
        let tp = row["throughput"].as_f64().unwrap();
        assert!((tp - batch / (ms / 1e3)).abs() < 1e-6 * tp, "{row}");
        let p = &row["phases_ms"];
        let sum: f64 = ["forward_loss", "backward", "update"]
            .iter()
            .map(|k| p[k].as_f64().unwrap())
            .sum();
        assert!(
            sum > 0.0 && sum <= times.iter().cloned().fold(0.0, f64::max) * 1.01,
            "{row}"
        );
    }
    // Without --train, bench still times the forward pass at its default batch sizes.
    let o = matcnn(&["bench", "--repeat", "1", "--warmup", "0", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let batches: Vec<u64> = v["forward"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [1, 32]);
}
