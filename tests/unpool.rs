//! Max unpooling (`MaxUnpooling2DLayer` fed by a max pooling layer's `indices` and `size`
//! outputs): a hand-computed case with a tie, padding and odd sizes; the SegNet fixture through
//! the library and the CLI; its ONNX export against matcnn in onnxruntime.

use burn::prelude::*;
use matcnn::export::{self, ExportOptions};
use matcnn::mat::MatFile;
use matcnn::model::MatNet;
use matcnn::net::layer::{
    Layer, LayerKind, Network, Padding, PaddingMode, Pool2d, Shape, SourceKind, Unpool2d,
};

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

fn forward(m: &MatNet, x: Vec<f32>, shape: [usize; 4]) -> Vec<f32> {
    let dev = Device::flex();
    let t = Tensor::<4>::from_data(TensorData::new(x, shape), &dev);
    m.forward(t)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn unpooling_equals_a_hand_computation() {
    // 3x5 input, 2x2 windows, stride 2, one row of padding below and one column on the right:
    // a 2x3 pooled map. Window (0,0) holds 3 twice ((0,1) and (1,0)): the first in row-major
    // order wins; window (1,1) holds 5 twice in one row; window (1,2) is a single -1.
    let x = vec![
        1.0, 3.0, 3.0, 0.0, 2.0, //
        3.0, 2.0, 1.0, 4.0, 4.0, //
        0.0, 1.0, 5.0, 5.0, -1.0,
    ];
    let window = Pool2d {
        size: [2, 2],
        stride: [2, 2],
        padding: PaddingMode::Manual(Padding {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1,
        }),
        count_include_pad: false,
    };
    let mut net = Network {
        variable: "hand".into(),
        source: SourceKind::DAGNetwork,
        layers: vec![
            layer(
                "input",
                LayerKind::ImageInput {
                    size: Shape::image(3, 5, 1),
                    normalization: matcnn::net::layer::Normalization::None,
                },
                vec![],
            ),
            layer("pool", LayerKind::MaxPool2d(window.clone()), vec![0]),
            layer(
                "unpool",
                LayerKind::MaxUnpool2d(Unpool2d {
                    pool: "pool".into(),
                    window,
                }),
                vec![1, 0],
            ),
        ],
        outputs: vec![2],
        classes: vec![],
        detector: None,
        notes: vec![],
        same_padding: Vec::new(),
    };
    matcnn::net::shape::infer(&mut net, &[]).unwrap();
    assert_eq!(net.layers[2].output, Some(Shape::image(3, 5, 1)));
    let m = MatNet::from_network(&net, &Device::flex()).unwrap();
    let y = forward(&m, x, [1, 1, 3, 5]);
    #[rustfmt::skip]
    let want = vec![
        0.0, 3.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 4.0, 4.0,
        0.0, 1.0, 5.0, 0.0, -1.0,
    ];
    assert_eq!(y, want);
}

fn segnet() -> std::path::PathBuf {
    common::fixture("zstoebs-vae-segnet/segnet.mat")
}

#[test]
fn segnet_imports_with_its_unpooling_connected() {
    let file = MatFile::read(segnet()).unwrap();
    let net = matcnn::net::import(&file, None).unwrap();
    let i = net
        .layers
        .iter()
        .position(|l| l.name == "decoder1_unpool")
        .unwrap();
    let LayerKind::MaxUnpool2d(u) = &net.layers[i].kind else {
        panic!("{:?}", net.layers[i].kind)
    };
    assert_eq!(u.pool, "encoder1_maxpool");
    assert_eq!((u.window.size, u.window.stride), ([2, 2], [2, 2]));
    let names: Vec<&str> = net.layers[i]
        .inputs
        .iter()
        .map(|&j| net.layers[j].name.as_str())
        .collect();
    // 'in' from the pooling layer's output, then the pooling layer's input.
    assert_eq!(names, ["encoder1_maxpool", "encoder1_relu_2"]);
    assert_eq!(net.layers[i].output, Some(Shape::image(28, 28, 64)));
    let out = net.layers[net.outputs[0]].output;
    assert_eq!(out, Some(Shape::image(28, 28, 2)));
    assert!(net.unsupported().is_empty());
}

/// A deterministic 28x28 image in [0, 1].
fn image() -> Vec<f32> {
    (0..28 * 28)
        .map(|i| {
            let (r, c) = ((i / 28) as f32, (i % 28) as f32);
            (0.5 + 0.5 * (r * 0.37).sin() * (c * 0.23 + 1.0).cos()).clamp(0.0, 1.0)
        })
        .collect()
}

#[test]
fn segnet_runs_through_predict_and_its_onnx_export_equals_matcnn() {
    let dir = common::scratch("unpool", "segnet");
    let input = dir.join("x.npy");
    std::fs::write(&input, matcnn::data::npy_bytes(&image(), &[1, 1, 28, 28])).unwrap();
    let output = dir.join("y.npy");
    let model = segnet();
    common::matcnn_ok(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&output).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let y: Vec<f32> = npy.into_vec().unwrap();
    assert_eq!(y.len(), 2 * 28 * 28);
    assert!(y.iter().all(|v| v.is_finite()));
    // The decoder ends in a ReLU after the unpooling: some outputs are positive.
    assert!(y.iter().any(|&v| v > 0.0));

    // The ONNX export (MaxPool's Indices + MaxUnpool) in onnxruntime equals matcnn's output.
    let Some(py) = common::python() else { return };
    let file = MatFile::read(&model).unwrap();
    let net = matcnn::net::import(&file, None).unwrap();
    // The Rust source export (a helper that recomputes the indices and scatters) parses.
    let rs = export::rust_source(&net, &ExportOptions::default()).unwrap();
    let src = String::from_utf8(rs[0].1.clone()).unwrap();
    assert!(src.contains("max_unpool("));
    syn::parse_file(&src).unwrap();
    let onnx = export::onnx(&net, &ExportOptions::default()).unwrap();
    let onnx_path = dir.join("segnet.onnx");
    std::fs::write(&onnx_path, onnx).unwrap();
    let reference = dir.join("reference.npy");
    std::fs::write(&reference, matcnn::data::npy_bytes(&y, &[1, y.len()])).unwrap();
    let manifest = dir.join("manifest.json");
    let job = serde_json::json!([{
        "name": "segnet", "onnx": onnx_path, "input": input, "reference": reference,
        "pytorch": null, "tol": 1e-5, "classes": 0,
    }]);
    std::fs::write(&manifest, job.to_string()).unwrap();
    let out = common::run_py(&py, "conformance.py", &[manifest.to_str().unwrap()]);
    let row = out
        .lines()
        .find_map(|l| l.strip_prefix("ROW "))
        .expect("a ROW line");
    let v: serde_json::Value = serde_json::from_str(row).unwrap();
    assert_eq!(v["onnx"]["status"], "pass", "{row}");
    let _ = std::fs::remove_dir_all(&dir);
}
