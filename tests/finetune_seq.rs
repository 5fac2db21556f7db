//! `matcnn finetune` on a sequence classification network: mw-fault-lstm (LSTM-LSTM-FC-softmax,
//! 8 classes) retrained on some of its stored validation sequences relabelled into 2 classes
//! (healthy / faulty). The classifier is replaced for the new class count, the logged loss goes
//! down, and the result loads in `predict`.

use matcnn::data;
use matcnn::mat::{MatFile, Value};
use std::path::Path;

mod common;
use common::mat_writer::{M, write_mat};
use common::{fixture, matcnn as run_cli, matcnn_ok, scratch};

const FAULT: &str = "mw-fault-lstm";

/// A row-major `[C, T]` sequence as MATLAB's column-major `C x T` matrix.
fn matrix(seq: &[f32], c: usize) -> M {
    let t = seq.len() / c;
    let (col, _) = matcnn::mat::permute_col_major(seq, &[t, c], &[0, 1]).unwrap();
    M::Single(vec![c, t], col)
}

/// 24 stored validation sequences (12 that MATLAB labels Healthy, 12 with a fault) with their
/// 2-class labels.
fn relabelled() -> (Vec<Vec<f32>>, Vec<&'static str>) {
    let spec = format!(
        "{}:validationFeatures",
        fixture(&format!("{FAULT}/ValidationFeatures.mat")).display()
    );
    let seqs = data::load_sequences(&spec, 10).unwrap();
    let f = MatFile::read(fixture(&format!("{FAULT}/ValidationResults.mat"))).unwrap();
    let Value::Categorical(cat) = f.get("validationResults").unwrap() else {
        panic!("validationResults is not categorical");
    };
    let healthy = |i: usize| cat.categories[cat.codes[i] as usize - 1] == "Healthy";
    let pick = |want: bool| {
        (0..seqs.len())
            .filter(move |&i| healthy(i) == want)
            .take(12)
    };
    let mut x = vec![];
    let mut y = vec![];
    for i in pick(true).chain(pick(false)) {
        x.push(seqs[i].data.clone());
        y.push(if healthy(i) { "healthy" } else { "faulty" });
    }
    assert_eq!(y.len(), 24);
    (x, y)
}

/// Every epoch's training loss, from `finetune`'s log in `out`.
fn losses(out: &Path) -> Vec<f64> {
    common::training_log(out).1.iter().map(|r| r[1]).collect()
}

#[test]
fn finetune_lstm_classifier_on_two_classes() {
    let dir = scratch("finetune_seq", "two-classes");
    let (x, y) = relabelled();
    let n = x.len();
    let train = dir.join("train.mat");
    write_mat(
        &train,
        &[
            (
                "X",
                M::Cell(vec![1, n], x.iter().map(|s| matrix(s, 10)).collect()),
            ),
            (
                "Y",
                M::Cell(
                    vec![n, 1],
                    y.iter().map(|s| M::Char(s.to_string())).collect(),
                ),
            ),
        ],
    );
    let out = dir.join("tuned");
    let model = fixture(&format!("{FAULT}/TrainedModel.mat"))
        .display()
        .to_string();
    let o = matcnn_ok(&[
        "finetune",
        "--model",
        &model,
        "--data",
        &train.display().to_string(),
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--optimizer",
        "adam",
        "--lr",
        "0.001",
        "--val-split",
        "0.25",
        "--output",
        &out.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprintln!("{stderr}");
    assert!(stderr.contains("new classes (faulty, healthy)"), "{stderr}");
    let l = losses(&out);
    eprintln!("training losses per epoch: {l:?}");
    assert_eq!(l.len(), 4);
    assert!(l.iter().all(|v| v.is_finite()));
    assert!(l[3] < l[0] * 0.8, "the loss did not go down: {l:?}");
    // Validation on the held-out quarter (6 sequences) was logged each epoch.
    let val: Vec<f64> = common::training_log(&out).1.iter().map(|r| r[3]).collect();
    eprintln!("validation losses per epoch: {val:?}");
    assert!(val[3] < val[0], "{val:?}");
    // --resume continues from the last checkpoint: one more epoch, five rows in the log.
    let o = matcnn_ok(&[
        "finetune",
        "--model",
        &model,
        "--data",
        &train.display().to_string(),
        "--epochs",
        "5",
        "--batch-size",
        "8",
        "--optimizer",
        "adam",
        "--lr",
        "0.001",
        "--val-split",
        "0.25",
        "--resume",
        "--output",
        &out.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("resuming from") && stderr.contains("epoch 5"),
        "{stderr}"
    );
    assert_eq!(losses(&out).len(), 5);
    // The result loads in `inspect` (2 classes) and `predict`.
    let o = matcnn_ok(&["inspect", "--model", &out.display().to_string()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Classes (2): faulty, healthy"), "{text}");
    let probs = dir.join("probs.npy");
    matcnn_ok(&[
        "predict",
        "--model",
        &out.display().to_string(),
        "--input",
        &format!("{}:X", train.display()),
        "--output",
        &probs.display().to_string(),
    ]);
    let bytes = std::fs::read(&probs).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[n as u64, 2]);
    let p: Vec<f32> = npy.into_vec().unwrap();
    let classes = ["faulty", "healthy"];
    let right = p
        .chunks(2)
        .zip(&y)
        .filter(|(r, want)| classes[if r[1] > r[0] { 1 } else { 0 }] == **want)
        .count();
    eprintln!("after fine-tuning: {right}/{n} training sequences classified right");
    assert!(right * 4 >= n * 3, "{right}/{n}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn finetune_refuses_bad_sequences_clearly() {
    let dir = scratch("finetune_seq", "bad");
    let (x, _) = relabelled();
    let bad = dir.join("bad.mat");
    // Element {2} has 9 channels.
    write_mat(
        &bad,
        &[
            (
                "X",
                M::Cell(
                    vec![1, 2],
                    vec![matrix(&x[0], 10), matrix(&x[1][..9 * 97], 9)],
                ),
            ),
            (
                "Y",
                M::Cell(vec![2, 1], vec![M::Char("a".into()), M::Char("b".into())]),
            ),
        ],
    );
    let out = dir.join("tuned");
    let o = run_cli(&[
        "finetune",
        "--model",
        &fixture(&format!("{FAULT}/TrainedModel.mat"))
            .display()
            .to_string(),
        "--data",
        &bad.display().to_string(),
        "--output",
        &out.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in ["bad.mat", ":X", "element {2}", "9x97"] {
        assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
    }
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// MATLAB's L2Regularization reaches the recurrent weights: one plain SGD step with `l2 = λ`
/// moves each LSTM weight by exactly `-lr * λ * L2Factor * w` more than the same step with
/// `l2 = 0` (the loss gradient is the same in both).
#[test]
fn l2_applies_to_lstm_weights() {
    use burn::prelude::*;
    use matcnn::net::layer::LayerKind;
    let f = MatFile::read(fixture(&format!("{FAULT}/TrainedModel.mat"))).unwrap();
    let net = matcnn::net::import(&f, None).unwrap();
    let (x, _) = relabelled();
    let dev = Device::flex().autodiff();
    let batch: Vec<f32> = x[..2].iter().flatten().copied().collect();
    let (lr, l2) = (0.01, 0.5);
    let step = |l2: f64| {
        let opts = matcnn::train::TrainOptions {
            lr,
            l2,
            momentum: 0.0,
            ..Default::default()
        };
        // The same dropout masks in both runs.
        dev.seed(7);
        let model = matcnn::model::MatNet::from_network(&net, &dev).unwrap();
        let mut t = matcnn::train::Trainer::new(&net, model, &opts).unwrap();
        let xt = Tensor::<4>::from_data(TensorData::new(batch.clone(), [2, 10, 1, 97]), &dev);
        t.step(xt, &[2, 2]);
        let mut out = net.clone();
        t.into_model().valid().write_back(&mut out);
        out
    };
    let (a, b) = (step(0.0), step(l2));
    let weights = |n: &matcnn::net::Network, k: usize| match &n.layers[k].kind {
        LayerKind::Lstm(r) => (
            r.input_weights.as_ref().unwrap().value.data.clone(),
            r.input_weights.as_ref().unwrap().l2_factor as f64,
        ),
        _ => panic!("layer {k} is not an LSTM"),
    };
    for k in [1, 3] {
        let (w0, factor) = weights(&net, k);
        let (wa, _) = weights(&a, k);
        let (wb, _) = weights(&b, k);
        let worst = w0
            .iter()
            .zip(wa.iter().zip(&wb))
            .map(|(w, (a, b))| ((*b as f64 - *a as f64) + lr * l2 * factor * *w as f64).abs())
            .fold(0.0, f64::max);
        assert!(factor > 0.0);
        assert!(worst < 1e-6, "layer {k}: {worst}");
    }
}
