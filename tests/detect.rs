//! YOLO v2 detection: the transform layer against a hand computation, decoding and
//! non-maximum suppression against hand-computed boxes on a synthetic network output, and
//! `matcnn detect` on the `pavan-drone-yolov2` detector through the CLI (JSON, annotated PNG,
//! bad input), with its ONNX export against matcnn in onnxruntime.

use burn::prelude::*;
use matcnn::detect::{Decoder, Detection, overlap_ratio, select_strongest};
use matcnn::model::MatNet;
use matcnn::net::layer::{Layer, LayerKind, Network, Normalization, Shape, SourceKind};
use std::path::{Path, PathBuf};

mod common;

fn layer(name: &str, kind: LayerKind, inputs: Vec<usize>) -> Layer {
    Layer {
        name: name.into(),
        class: format!("test.{name}"),
        kind,
        inputs,
        output: None,
    }
}

#[test]
fn transform_equals_a_hand_computation() {
    // 2 anchors x (5 + 2 classes) at one position: channel k*2 + a holds prediction k of anchor a.
    let ln = f32::ln;
    let anchor0 = [0.0, 1.0, -1.0, ln(2.0), 0.0, ln(3.0), 0.0];
    let anchor1 = [2.0, 0.0, 0.0, 0.0, ln(4.0), 0.0, ln(3.0)];
    let mut x = vec![0.0f32; 14];
    for k in 0..7 {
        x[k * 2] = anchor0[k];
        x[k * 2 + 1] = anchor1[k];
    }
    // sigmoid(0) = 0.5, sigmoid(1) = 0.7310586, sigmoid(-1) = 0.2689414, sigmoid(2) = 0.8807971;
    // exp(ln 2) = 2; softmax(ln 3, 0) = (0.75, 0.25).
    let want0 = [0.5, 0.7310586, 0.2689414, 2.0, 1.0, 0.75, 0.25];
    let want1 = [0.8807971, 0.5, 0.5, 1.0, 4.0, 0.25, 0.75];
    let mut net = Network {
        variable: "hand".into(),
        source: SourceKind::DAGNetwork,
        layers: vec![
            layer(
                "input",
                LayerKind::ImageInput {
                    size: Shape::image(1, 1, 14),
                    normalization: Normalization::None,
                },
                vec![],
            ),
            layer("t", LayerKind::Yolov2Transform { anchors: 2 }, vec![0]),
            layer(
                "out",
                LayerKind::Yolov2Output {
                    anchor_boxes: vec![[1.0, 1.0], [2.0, 2.0]],
                    classes: vec!["a".into(), "b".into()],
                },
                vec![1],
            ),
        ],
        outputs: vec![2],
        classes: vec![],
        detector: None,
        notes: vec![],
        same_padding: Vec::new(),
    };
    matcnn::net::shape::infer(&mut net, &[]).unwrap();
    let dev = Device::flex();
    let m = MatNet::from_network(&net, &dev).unwrap();
    let t = Tensor::<4>::from_data(TensorData::new(x, [1, 14, 1, 1]), &dev);
    let y: Vec<f32> = m
        .forward(t)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    for k in 0..7 {
        assert!((y[k * 2] - want0[k]).abs() < 1e-6, "anchor 0, {k}: {y:?}");
        assert!(
            (y[k * 2 + 1] - want1[k]).abs() < 1e-6,
            "anchor 1, {k}: {y:?}"
        );
    }
    // 13 channels cannot hold 2 anchors: shape inference names the layer.
    net.layers[0].kind = LayerKind::ImageInput {
        size: Shape::image(1, 1, 13),
        normalization: Normalization::None,
    };
    let e = matcnn::net::shape::infer(&mut net, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("'t'") && e.contains("13 channels"), "{e}");
}

/// A synthetic transform output `[7, 2, 2]` (1 anchor, 2 classes) and the boxes worked out by
/// hand with MATLAB's formulas (see `matcnn::detect`).
#[test]
fn decoding_and_suppression_equal_hand_computed_boxes() {
    // Training size 64x64, grid 2x2 (32 pixels a cell), original image 128 rows x 96 columns
    // (sx = 1.5, sy = 2), anchor [h w] = [20 40].
    let decoder = Decoder {
        anchors: vec![[20.0, 40.0]],
        classes: vec!["car".into(), "bird".into()],
        input_size: [64, 64],
        threshold: 0.5,
    };
    let mut t = vec![0.0f32; 7 * 4];
    let mut set = |r: usize, c: usize, v: [f32; 7]| {
        for (k, x) in v.into_iter().enumerate() {
            t[(k * 2 + r) * 2 + c] = x;
        }
    };
    // (0,0): centre (16, 16), 40 x 20: corners (-4, 6, 36, 26), x1 clipped to 1; scaled:
    // x1 = floor(0.5*1.5 - 0.25 + 0.5) = 1, x2 = floor(36.5*1.5 - 0.75) = 54, y1 = floor(5.5*2
    // - 0.5 + 0.5) = 11, y2 = floor(26.5*2 - 1) = 52: [1 11 54 42]; score 0.9 x 0.8 = 0.72.
    set(0, 0, [0.9, 0.5, 0.5, 1.0, 1.0, 0.8, 0.2]);
    // (0,1): centre (32, 16), 48 x 20: corners (8, 6, 56, 26) → [11 11 74 42]; score 0.56;
    // IoU with the first: 44*42 / (2268 + 3108 - 1848) = 0.524 > 0.5: suppressed.
    set(0, 1, [0.8, 0.0, 0.5, 1.2, 1.0, 0.7, 0.3]);
    // (1,0): score exactly 0.5 (kept: >= threshold), the class tie goes to the first class;
    // centre (16, 48), 20 x 10: corners (6, 43, 26, 53) → [8 85 32 22].
    set(1, 0, [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    // (1,1): class 2 ("bird"), score 0.81; centre (48, 48), 40 x 20: corners (28, 38, 68 → 64,
    // 58) → x1 = floor(27.5*1.5 + 0.25) = 41, x2 = floor(64.5*1.5 - 0.75) = 96, y1 = 75,
    // y2 = floor(58.5*2 - 1) = 116: [41 75 56 42].
    set(1, 1, [0.9, 0.5, 0.5, 1.0, 1.0, 0.1, 0.9]);
    let all = decoder.decode(&t, [7, 2, 2], [128, 96]).unwrap();
    let boxes: Vec<[f64; 4]> = all.iter().map(|d| d.bbox).collect();
    assert_eq!(
        boxes,
        vec![
            [1.0, 11.0, 54.0, 42.0],
            [11.0, 11.0, 74.0, 42.0],
            [8.0, 85.0, 32.0, 22.0],
            [41.0, 75.0, 56.0, 42.0]
        ]
    );
    assert!((overlap_ratio(&boxes[0], &boxes[1]) - 1848.0 / 3528.0).abs() < 1e-12);
    let kept = decoder.detect(&t, [7, 2, 2], [128, 96]).unwrap();
    let got: Vec<(usize, [f64; 4])> = kept.iter().map(|d| (d.class, d.bbox)).collect();
    assert_eq!(
        got,
        vec![
            (1, [41.0, 75.0, 56.0, 42.0]),
            (0, [1.0, 11.0, 54.0, 42.0]),
            (0, [8.0, 85.0, 32.0, 22.0])
        ]
    );
    let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
    for (s, want) in scores.iter().zip([0.81f32, 0.72, 0.5]) {
        assert!((s - want).abs() < 1e-6, "{scores:?}");
    }
    // A wrong channel count is an error, not a panic.
    assert!(decoder.decode(&t[..24], [7, 2, 2], [128, 96]).is_err());
    assert!(decoder.decode(&t[..20], [5, 2, 2], [128, 96]).is_err());
}

#[test]
fn suppression_is_per_class_and_greedy() {
    let d = |class, score, bbox| Detection { class, score, bbox };
    let a = [10.0, 10.0, 20.0, 20.0];
    // Same box, two classes: both kept. A chain a > b > c where b overlaps a and c, but c
    // does not overlap a: b goes, c stays (greedy, strongest first).
    let b = [14.0, 10.0, 20.0, 20.0]; // IoU with a: 320 / 480 = 0.667
    let c = [20.0, 10.0, 20.0, 20.0]; // IoU with b: 280 / 520 = 0.538, with a: 200 / 600 = 0.333
    let kept = select_strongest(
        vec![d(0, 0.6, c), d(0, 0.9, a), d(1, 0.8, a), d(0, 0.7, b)],
        0.5,
    );
    let got: Vec<(usize, f32)> = kept.iter().map(|k| (k.class, k.score)).collect();
    assert_eq!(got, vec![(0, 0.9), (1, 0.8), (0, 0.6)]);
}

fn detector() -> PathBuf {
    common::fixture("pavan-drone-yolov2/detector.mat")
}

/// A 150 x 200 RGB test image (a bright square on a gradient).
fn test_image(path: &Path) {
    let img = image::RgbImage::from_fn(200, 150, |x, y| {
        if (60..120).contains(&x) && (40..90).contains(&y) {
            image::Rgb([230, 230, 240])
        } else {
            image::Rgb([(x / 2) as u8, (y / 2) as u8, 90])
        }
    });
    img.save(path).unwrap();
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn detect_runs_on_the_drone_detector_through_the_cli() {
    let dir = common::scratch("detect", "cli");
    let img = dir.join("scene.png");
    test_image(&img);
    let out = dir.join("annotated");
    let model = detector();
    let (m, i, o) = (
        model.to_str().unwrap(),
        img.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    // A low threshold, so that boxes come back to check.
    let r = common::matcnn_ok(&[
        "detect",
        "--model",
        m,
        "--threshold",
        "0.01",
        "--json",
        "--output",
        o,
        i,
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&r)).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["image"], i);
    let dets = results[0]["detections"].as_array().unwrap();
    assert!(!dets.is_empty(), "{v}");
    for d in dets {
        assert_eq!(d["class"], "data_drone");
        let s = d["score"].as_f64().unwrap();
        assert!((0.01..=1.0).contains(&s), "{d}");
        let b: Vec<f64> = d["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(
            b[0] >= 1.0 && b[1] >= 1.0 && b[2] >= 1.0 && b[3] >= 1.0,
            "{d}"
        );
        assert!(
            b[0] + b[2] - 1.0 <= 200.0 && b[1] + b[3] - 1.0 <= 150.0,
            "{d}"
        );
    }
    let png = out.join("scene_detections.png");
    let annotated = image::open(&png).unwrap().to_rgb8();
    assert_eq!(annotated.dimensions(), (200, 150));
    let original = image::open(&img).unwrap().to_rgb8();
    assert_ne!(annotated, original, "no box was drawn");
    // Again without --force: the PNG exists, so it is refused and left as it was.
    let before = std::fs::read(&png).unwrap();
    let r = common::matcnn(&["detect", "--model", m, "--output", o, i]);
    assert!(!r.status.success());
    assert_eq!(std::fs::read(&png).unwrap(), before);
    // Text output at the default threshold; a directory of images.
    common::matcnn_ok(&["detect", "--model", m, i]);
    let r = common::matcnn_ok(&["detect", "--model", m, "--json", dir.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&r)).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn detect_refuses_a_non_image_and_writes_nothing() {
    let dir = common::scratch("detect", "bad");
    let fake = dir.join("notes.png");
    std::fs::write(&fake, b"this is not an image").unwrap();
    let out = dir.join("out");
    let model = detector();
    let r = common::matcnn(&[
        "detect",
        "--model",
        model.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        fake.to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("notes.png") && err.contains("not a readable image"),
        "{err}"
    );
    assert!(!out.exists(), "an output folder was made");
    assert_eq!(std::fs::read(&fake).unwrap(), b"this is not an image");
    // A network that is not a detector.
    let r = common::matcnn(&["detect", fake.to_str().unwrap()]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("YOLO v2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn detector_network_onnx_export_equals_matcnn() {
    let file = matcnn::mat::MatFile::read(detector()).unwrap();
    let net = matcnn::net::import(&file, None).unwrap();
    let [h, w] = matcnn::detect::training_size(&net).unwrap();
    let c = match &net.input().unwrap().kind {
        LayerKind::ImageInput { size, .. } => size.c,
        k => panic!("{k:?}"),
    };
    let x: Vec<f32> = (0..c * h * w)
        .map(|i| ((i * 7919 % 1000) as f32) / 1000.0)
        .collect();
    let dev = Device::flex();
    let m = MatNet::from_network(&net, &dev).unwrap();
    let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, c, h, w]), &dev);
    let y: Vec<f32> = m
        .forward(t)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let Some(py) = common::python() else { return };
    let dir = common::scratch("detect", "onnx");
    let onnx = matcnn::export::onnx(&net, &Default::default()).unwrap();
    let onnx_path = dir.join("yolo.onnx");
    std::fs::write(&onnx_path, onnx).unwrap();
    let input = dir.join("x.npy");
    std::fs::write(&input, matcnn::data::npy_bytes(&x, &[1, c, h, w])).unwrap();
    let reference = dir.join("y.npy");
    std::fs::write(&reference, matcnn::data::npy_bytes(&y, &[1, y.len()])).unwrap();
    let manifest = dir.join("manifest.json");
    let job = serde_json::json!([{
        "name": "yolo", "onnx": onnx_path, "input": input, "reference": reference,
        "pytorch": null, "tol": 1e-5, "classes": 0,
    }]);
    std::fs::write(&manifest, job.to_string()).unwrap();
    let out = common::run_py(&py, "conformance.py", &[manifest.to_str().unwrap()]);
    let row = out.lines().find_map(|l| l.strip_prefix("ROW ")).unwrap();
    let v: serde_json::Value = serde_json::from_str(row).unwrap();
    assert_eq!(v["onnx"]["status"], "pass", "{row}");
    // The PyTorch export comes with detect.py, whose numpy decoding and suppression give the
    // library's detections on this output (threshold 0: every box goes through the suppression;
    // original image 150 x 200).
    let rs = matcnn::export::rust_source(&net, &Default::default()).unwrap();
    let src = String::from_utf8(rs[0].1.clone()).unwrap();
    assert!(src.contains("yolov2_transform("));
    syn::parse_file(&src).unwrap();
    let files = matcnn::export::pytorch(&net, &Default::default()).unwrap();
    let (_, py_src) = files.iter().find(|(n, _)| n == "detect.py").unwrap();
    std::fs::write(dir.join("detect.py"), py_src).unwrap();
    let decoder = Decoder::for_network(&net, 0.0).unwrap();
    let grid = [y.len() / (16 * 16), 16, 16];
    let want = decoder.detect(&y, grid, [150, 200]).unwrap();
    assert!(!want.is_empty());
    let script = format!(
        "import sys, json, numpy as np; sys.path.insert(0, {dir:?}); import detect\n\
         t = np.load({y:?}).reshape({grid:?})\n\
         print(json.dumps([[list(b), s, l] for b, s, l in detect.decode(t, (150, 200), 0.0)]))",
        dir = dir.display().to_string(),
        y = reference.display().to_string(),
        grid = (grid[0], grid[1], grid[2]),
    );
    let o = std::process::Command::new(&py)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<(Vec<f64>, f64, usize)> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got.len(), want.len());
    for ((b, s, l), d) in got.iter().zip(&want) {
        assert_eq!((b.as_slice(), *l), (&d.bbox[..], d.class));
        assert!((s - d.score as f64).abs() < 1e-5);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
