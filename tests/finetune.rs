//! Fine-tuning imported networks on real data, through the command line.

use std::path::{Path, PathBuf};

mod common;
use common::{fixture, matcnn_ok as matcnn, mnist_t10k as mnist_test, python, result_line, run_py};

fn tmpdir(name: &str) -> PathBuf {
    common::scratch("ft", name)
}

/// Writes MNIST digits `range` as PNGs into `dir/lt5` and `dir/ge5`.
fn write_two_class_folders(
    dir: &Path,
    images: &[u8],
    labels: &[u8],
    range: std::ops::Range<usize>,
) {
    for c in ["ge5", "lt5"] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
    }
    for i in range {
        let class = if labels[i] < 5 { "lt5" } else { "ge5" };
        let img =
            image::GrayImage::from_raw(28, 28, images[i * 784..(i + 1) * 784].to_vec()).unwrap();
        img.save(dir.join(class).join(format!("{i:05}.png")))
            .unwrap();
    }
}

fn saved_weights(dir: &Path) -> matcnn::net::Network {
    let (net, record) = matcnn::model::saved::load_description(dir).unwrap();
    let dev = burn::prelude::Device::flex();
    let model = matcnn::model::saved::load_model(&net, &record, &dev).unwrap();
    let mut out = net.clone();
    model.write_back(&mut out);
    out
}

#[test]
fn new_two_class_task_from_mnist_digits() {
    let dir = tmpdir("two-class");
    let (images, labels) = mnist_test();
    write_two_class_folders(&dir.join("train"), &images, &labels, 0..2000);
    write_two_class_folders(&dir.join("heldout"), &images, &labels, 2000..3000);
    let out = dir.join("tuned");
    matcnn(&[
        "finetune",
        "--data",
        dir.join("train").to_str().unwrap(),
        "--val",
        dir.join("heldout").to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.0001",
        "--freeze-until",
        "relu_1",
        "--seed",
        "1",
        "--output",
        out.to_str().unwrap(),
    ]);
    // Log: the loss falls and the held-out accuracy is high.
    let (log, rows) = common::training_log(&out);
    assert_eq!(rows.len(), 2, "{log}");
    assert!(rows[1][1] < rows[0][1], "training loss did not fall: {log}");
    // 2 epochs reach 95.1 % held out (seed 1). The issue asked for 97 %: MATLAB's recipe (a new,
    // randomly initialized last layer) does not get there in 2 epochs on 2000 images, in matcnn
    // or in PyTorch (88-93 % there with the same recipe); a linear classifier on the frozen
    // features tops out at 96 %. See DESIGN.md, "Fine-tuning".
    assert!(rows[1][4] >= 0.94, "held-out accuracy {}", rows[1][4]);
    assert!(out.join("training_curve.png").is_file());
    assert!(out.join("checkpoints/epoch-001/weights.bpk").is_file());
    assert!(out.join("checkpoints/epoch-002/network.json").is_file());

    // The result classifies the held-out PNGs through `infer` with the new class names.
    let o = matcnn(&[
        "infer",
        "--model",
        out.to_str().unwrap(),
        "--json",
        "--top",
        "1",
        dir.join("heldout/lt5").to_str().unwrap(),
        dir.join("heldout/ge5").to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    let correct = results
        .iter()
        .filter(|r| {
            let image = r["image"].as_str().unwrap();
            let truth = if image.contains("/lt5/") {
                "lt5"
            } else {
                "ge5"
            };
            r["top"][0]["class"] == truth
        })
        .count();
    assert!(correct >= 940, "{correct}/1000 held-out digits right");
    assert_eq!(
        correct,
        (rows[1][4] * 1000.0).round() as usize,
        "infer disagrees with the validation accuracy in the log"
    );

    // The fine-tuned network exports to ONNX, and onnxruntime gives matcnn's outputs.
    let held: Vec<f32> = images[2000 * 784..3000 * 784]
        .iter()
        .map(|&v| v as f32)
        .collect();
    let x = dir.join("heldout.npy");
    std::fs::write(&x, matcnn::data::npy_bytes(&held, &[1000, 1, 28, 28])).unwrap();
    let expected = dir.join("expected.npy");
    let onnx = dir.join("tuned.onnx");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    matcnn(&[
        "predict",
        "--model",
        &s(&out),
        "--input",
        &s(&x),
        "--output",
        &s(&expected),
    ]);
    matcnn(&[
        "export",
        "--model",
        &s(&out),
        "--format",
        "onnx",
        "--output",
        &s(&onnx),
    ]);
    if let Some(py) = python() {
        let r = run_py(
            &py,
            "onnx_check.py",
            &[
                &s(&onnx),
                &s(&x),
                &s(&expected),
                "--max-abs",
                "1e-4",
                "--classes",
                "2",
            ],
        );
        eprintln!("fine-tuned network, ONNX: {}", result_line(&r));
    }

    // Frozen layers are bit-identical; trained ones moved.
    let original = matcnn::net::import(
        &matcnn::mat::MatFile::from_bytes(matcnn::source::DEMO_MODEL).unwrap(),
        None,
    )
    .unwrap();
    let tuned = saved_weights(&out);
    let kind = |n: &matcnn::net::Network, name: &str| {
        n.layers
            .iter()
            .find(|l| l.name == name)
            .unwrap()
            .kind
            .clone()
    };
    assert_eq!(kind(&original, "conv_1"), kind(&tuned, "conv_1"));
    assert_eq!(kind(&original, "batchnorm_1"), kind(&tuned, "batchnorm_1"));
    assert_ne!(kind(&original, "conv_2"), kind(&tuned, "conv_2"));
    assert_eq!(tuned.classes, ["ge5", "lt5"]);

    // Resume continues to a third epoch from the last checkpoint.
    matcnn(&[
        "finetune",
        "--data",
        dir.join("train").to_str().unwrap(),
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.0001",
        "--freeze-until",
        "relu_1",
        "--resume",
        "--output",
        out.to_str().unwrap(),
    ]);
    let log = std::fs::read_to_string(out.join("training_log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4, "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn same_class_finetuning_keeps_accuracy_and_zero_learn_rate_freezes() {
    // chandrachapa's network takes [0, 1] images: give it its own 2000 MNIST images as X/Y in a .mat.
    let dir = tmpdir("same-class");
    let m =
        matcnn::mat::MatFile::read(fixture("chandrachapa-mnist-bn/MNIST_Validation.mat")).unwrap();
    let x = m.get("img_V").unwrap().as_numeric().unwrap();
    let labels = std::fs::read(fixture("chandrachapa-mnist-bn/train-labels-idx1-ubyte")).unwrap()
        [8..2008]
        .to_vec();
    let y: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let bytes = matcnn::data::mat_file_bytes(&[
        ("X", &x.dims, &x.real.to_f32_vec()),
        ("Y", &[2000, 1], &y),
    ]);
    let data = dir.join("data.mat");
    std::fs::write(&data, bytes).unwrap();
    // The network with conv_2's weights at LearnRateFactor 0, saved in matcnn's own format.
    let mut net = matcnn::net::import(
        &matcnn::mat::MatFile::read(fixture("chandrachapa-mnist-bn/net.mat")).unwrap(),
        None,
    )
    .unwrap();
    for l in net.layers.iter_mut() {
        if let matcnn::net::LayerKind::Conv2d(c) = &mut l.kind
            && l.name == "conv_2"
        {
            c.weights.as_mut().unwrap().lr_factor = 0.0;
        }
    }
    let dev = burn::prelude::Device::flex();
    let model = matcnn::model::MatNet::from_network(&net, &dev).unwrap();
    let start = dir.join("start");
    matcnn::model::saved::save(&net, &model, &start, false).unwrap();
    let out = dir.join("tuned");
    matcnn(&[
        "finetune",
        "--model",
        start.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--val-split",
        "0.25",
        "--epochs",
        "1",
        "--lr",
        "0.001",
        "--batch-size",
        "100",
        "--output",
        out.to_str().unwrap(),
    ]);
    let (log, rows) = common::training_log(&out);
    let last = rows.last().unwrap_or_else(|| panic!("empty log: {log}"));
    assert!(
        last[4] >= 0.975,
        "validation accuracy {} after fine-tuning: {log}",
        last[4]
    );
    // Parameters with LearnRateFactor 0 are unchanged, the others trained.
    let original = net;
    let tuned = saved_weights(&out);
    assert_eq!(tuned.classes, original.classes);
    let mut frozen = 0;
    for (a, b) in original.layers.iter().zip(&tuned.layers) {
        if let (matcnn::net::LayerKind::Conv2d(x), matcnn::net::LayerKind::Conv2d(y)) =
            (&a.kind, &b.kind)
        {
            for (p, q) in [(&x.weights, &y.weights), (&x.bias, &y.bias)] {
                let (p, q) = (p.as_ref().unwrap(), q.as_ref().unwrap());
                if p.lr_factor == 0.0 {
                    frozen += 1;
                    assert_eq!(p.value, q.value, "layer {}", a.name);
                } else {
                    assert_ne!(p.value.data, q.value.data, "layer {} did not train", a.name);
                }
            }
        }
    }
    assert_eq!(frozen, 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// The gradients the training step uses are right: for the largest-gradient weights of every
/// convolution of the MNIST network (batch normalization in training mode), autodiff equals
/// central finite differences of the loss.
#[test]
fn gradients_equal_finite_differences() {
    use burn::prelude::*;
    use burn::tensor::activation::log_softmax;
    use matcnn::model::{MatNet, Op};
    let (raw, labels) = mnist_test();
    let net = matcnn::net::import(
        &matcnn::mat::MatFile::from_bytes(matcnn::source::DEMO_MODEL).unwrap(),
        None,
    )
    .unwrap();
    let dev = Device::flex().autodiff();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let n = 16;
    let x: Vec<f32> = raw[..n * 784].iter().map(|&v| v as f32).collect();
    let x = Tensor::<4>::from_data(TensorData::new(x, [n, 1, 28, 28]), &dev);
    // Cross-entropy against the true digits, from the logits.
    let onehot: Vec<f32> = labels[..n]
        .iter()
        .flat_map(|&t| (0..10).map(move |j| if j == t as usize { 1.0 } else { 0.0 }))
        .collect();
    let target = Tensor::<2>::from_data(TensorData::new(onehot, [n, 10]), &dev);
    let loss = |m: &MatNet| -> Tensor<1> {
        let o = m.forward_node(x.clone(), m.logits_node()).reshape([n, 10]);
        (log_softmax(o, 1) * target.clone())
            .sum()
            .neg()
            .div_scalar(n as f64)
    };
    let grads = loss(&model).backward();
    let mut checked = 0;
    for (i, node) in model.nodes.iter().enumerate() {
        let Op::Conv(c) = &node.op else { continue };
        let dims = c.weight.val().dims();
        let g: Vec<f32> = c
            .weight
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|a, b| g[*b].abs().total_cmp(&g[*a].abs()));
        for &j in &idx[..3] {
            let h = 1e-2f32;
            let mut fd = [0f32; 2];
            for (s, sign) in [1f32, -1.0].into_iter().enumerate() {
                let mut m = model.clone();
                if let Op::Conv(c) = &mut m.nodes[i].op {
                    let mut d = vec![0f32; g.len()];
                    d[j] = sign * h;
                    let d = Tensor::<4>::from_data(TensorData::new(d, dims), &dev);
                    c.weight = c.weight.clone().map(|t| t + d);
                }
                fd[s] = loss(&m).into_scalar::<f32>();
            }
            let fd = (fd[0] - fd[1]) / (2.0 * h);
            assert!(
                (fd - g[j]).abs() <= 0.1 * g[j].abs(),
                "{} weight {j}: autodiff {} finite differences {fd}",
                node.name,
                g[j]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

/// `--resume` continues exactly: 1 epoch + resume to 2 gives the weights of 2 epochs in one run
/// (the optimizer's state comes back with the checkpoint); without the saved optimizer state
/// it does not.
#[test]
fn resume_restores_the_optimizer_state() {
    let dir = tmpdir("resume");
    let (images, labels) = mnist_test();
    write_two_class_folders(&dir.join("train"), &images, &labels, 0..300);
    let data = dir.join("train");
    let run = |out: &Path, epochs: &str, resume: bool| {
        let mut args = vec![
            "finetune",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            epochs,
            "--batch-size",
            "32",
            "--optimizer",
            "adam",
            "--lr",
            "0.001",
            "--seed",
            "5",
            "--output",
            out.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        matcnn(&args);
    };
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    run(&a, "2", false);
    run(&b, "1", false);
    // c: a copy of b's first epoch without the optimizer's state.
    std::fs::create_dir_all(c.join("checkpoints/epoch-001")).unwrap();
    std::fs::copy(b.join("training_log.csv"), c.join("training_log.csv")).unwrap();
    for f in ["network.json", "weights.bpk"] {
        std::fs::copy(
            b.join("checkpoints/epoch-001").join(f),
            c.join("checkpoints/epoch-001").join(f),
        )
        .unwrap();
    }
    assert!(b.join("checkpoints/epoch-001/optimizer.bpk").is_file());
    run(&b, "2", true);
    run(&c, "2", true);
    let weights = |d: &Path| {
        saved_weights(&d.join("checkpoints/epoch-002"))
            .layers
            .into_iter()
            .map(|l| l.kind)
            .collect::<Vec<_>>()
    };
    assert!(
        weights(&a) == weights(&b),
        "1 epoch + resume differs from 2 epochs"
    );
    assert!(
        weights(&a) != weights(&c),
        "resuming without the optimizer state should differ"
    );
    let _ = std::fs::remove_dir_all(dir);
}
