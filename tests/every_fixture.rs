//! Every network a MATLAB user handed us, through the binary as a new user runs it: each
//! fixture network without a user-defined computing layer runs `matcnn predict` end to end on
//! an input of the size it declares (read from `inspect --json`, as a user would); the networks
//! with user-defined layers are refused with every such layer named; the 2017 Faster R-CNN
//! detector inspects.

mod common;

use common::{fixture, matcnn, scratch};

/// Fixture networks that must run. The input size comes from the network itself.
const RUNS: &[&str] = &[
    "adamhrvth-conv1d/CONVnet_sys1_minmax_c1_0_5_c3_0_5_1_5_IC_0_7_2_1600samples.mat",
    "adamhrvth-conv1d/conv_autoencoder_system1_after.mat",
    "basheer-digit-bn/net.mat",
    "chandrachapa-mnist-bn/net.mat",
    "dncnn-matconvnet/DnCNN-epoch-50.mat",
    "dncnn-matconvnet/sigma=25.mat",
    "fuma28-speech/trainedNet.mat",
    "gender-audio/trainedNetwork_1.mat",
    "kantika-soc-lstm/DLmodel_ref_stackedLSTM_Projected.mat",
    "kantika-soc-lstm/TF_model.mat",
    "kwr-trafficlight-onnx/net.mat",
    "mw-fault-lstm/TrainedModel.mat",
    "mw-transformer-ts/transformer_demo.mat",
    "mw-workshop-mnist/MNIST_Network.mat",
    "pavan-drone-yolov2/Yolov2_lgraph.mat",
    "pavan-drone-yolov2/detector.mat",
    "saurabh-mlp/trainedNet.mat",
    "tomerroditi-eegnet/EEGNet_001/bci_model.mat",
    "tomerroditi-eegnet/EEGNet_lstm_001/bci_model.mat",
    "vikas-fruit-tf/net.mat",
    "zstoebs-vae-segnet/decoder.mat",
    "zstoebs-vae-segnet/encoder.mat",
    "zstoebs-vae-segnet/segnet.mat",
];

/// Networks with user-defined layers that compute: each must be refused, naming every one.
const USER_LAYERS: &[(&str, &[&str])] = &[
    ("mimo-detect/trainedNet_test.mat", &["sigmoidLayer"]),
    ("mw-eegnet/eegNet.mat", &["identityLayer"]),
    (
        "tomerroditi-eegnet/EEG_stft_001/bci_model.mat",
        &["PermuteStftLayer", "stftLayer", "flat_cat"],
    ),
];

fn npy(data: &[f32], shape: &[usize]) -> Vec<u8> {
    matcnn::data::npy_bytes(data, shape)
}

/// Deterministic values in 0..255 (a LCG), so inputs are the same on every run.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 256) as f32
        })
        .collect()
}

/// An input of the declared size for `inspect --json`'s `input`: two observations.
fn input_for(input: &serde_json::Value, seed: u64) -> (Vec<u8>, String) {
    let kind = input["kind"].as_str().unwrap_or_default();
    let size: Vec<Option<usize>> = input["size"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().map(|x| x as usize)).collect())
        .unwrap_or_default();
    let n = 2;
    let (shape, what): (Vec<usize>, String) = match (kind, size.as_slice()) {
        ("ImageInput", [h, w, c]) => {
            // Open sizes (MatConvNet declares 0x0): any size runs; take 40x48.
            let h = h.filter(|&x| x > 0).unwrap_or(40);
            let w = w.filter(|&x| x > 0).unwrap_or(48);
            (vec![n, c.unwrap_or(1), h, w], format!("image {h}x{w}"))
        }
        ("FeatureInput", [c]) => (vec![n, c.unwrap_or(1)], "features".into()),
        ("SequenceInput", [c]) => (vec![n, c.unwrap_or(1), 30], "sequence, 30 steps".into()),
        ("SequenceInput", [h, w, c]) => (
            vec![n, 4, c.unwrap_or(1), h.unwrap_or(1), w.unwrap_or(1)],
            "image sequence, 4 frames".into(),
        ),
        other => panic!("unexpected input {other:?}"),
    };
    let data = values(shape.iter().product(), seed);
    (npy(&data, &shape), what)
}

#[test]
fn every_fixture_network_without_user_layers_predicts() {
    let dir = scratch("every", "predict");
    let mut failures = Vec::new();
    for (k, rel) in RUNS.iter().enumerate() {
        let model = fixture(rel);
        let model = model.to_str().unwrap();
        let o = matcnn(&["inspect", model, "--json"]);
        assert!(
            o.status.success(),
            "{rel}: inspect failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            info["unsupported"].as_array().is_some_and(|a| a.is_empty()),
            "{rel}: unsupported layers {}",
            info["unsupported"]
        );
        let (bytes, what) = input_for(&info["input"], k as u64 + 1);
        let input = dir.join(format!("in{k}.npy"));
        std::fs::write(&input, bytes).unwrap();
        let out = dir.join(format!("out{k}.npy"));
        let o = matcnn(&[
            "predict",
            "--model",
            model,
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        if !o.status.success() {
            failures.push(format!(
                "{rel} ({what}): {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            continue;
        }
        let bytes = std::fs::read(&out).unwrap();
        let f = npyz::NpyFile::new(&bytes[..]).unwrap();
        let shape = f.shape().to_vec();
        let v: Vec<f32> = f.into_vec().unwrap();
        assert_eq!(shape[0], 2, "{rel}: output shape {shape:?}");
        assert!(
            !v.is_empty() && v.iter().all(|x| x.is_finite()),
            "{rel}: non-finite output"
        );
    }
    assert!(
        failures.is_empty(),
        "predict failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn user_defined_layers_are_named() {
    for (rel, names) in USER_LAYERS {
        let model = fixture(rel);
        let o = matcnn(&["inspect", model.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        for n in *names {
            assert!(
                text.contains(n),
                "{rel}: inspect does not name {n}:\n{text}"
            );
        }
        let dir = scratch("every", rel);
        let out = dir.join("out.npy");
        let input = dir.join("in.npy");
        std::fs::write(&input, npy(&[0.0; 4], &[1, 4])).unwrap();
        let o = matcnn(&[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success(), "{rel}: predict should refuse");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("user-defined"), "{rel}: {err}");
        assert!(!out.exists(), "{rel}: an output was written");
    }
}

#[test]
fn faster_rcnn_detector_inspects_and_names_its_region_layers() {
    let model = fixture("getyourlocation-fasterrcnn/detector.mat");
    let o = matcnn(&["inspect", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["detector"]["class"], "fasterRCNNObjectDetector");
    let unsupported = info["unsupported"].to_string();
    assert!(
        unsupported.contains("ROIMaxPooling2DLayer"),
        "{unsupported}"
    );
}
