//! Transfer learning on a DAG whose classifier is a 1x1 convolution before global pooling
//! (MATLAB's SqueezeNet recipe, `gender-audio/trainedNetwork_1.mat`): new class names from a small
//! image folder, the defaults of `finetune`, and the result run by `infer`.

use std::path::Path;

mod common;
use common::{fixture, matcnn_ok as matcnn};

const SIZE: u32 = 227;

/// 3 classes x 6 RGB images of distinct synthetic patterns (stripes, rings, checks) with noise.
fn write_folder(dir: &Path) -> Vec<&'static str> {
    let classes = ["checks", "rings", "stripes"];
    let mut state = 12345u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 40) as f64
    };
    for (k, class) in classes.iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..6 {
            let phase = i as f64 * 1.1;
            let img = image::RgbImage::from_fn(SIZE, SIZE, |x, y| {
                let (x, y) = (x as f64, y as f64);
                let v = match k {
                    0 => ((y / 10.0 + phase).sin() * (x / 10.0).sin()).signum(),
                    1 => (((y - 113.0).hypot(x - 113.0)) / 5.0 + phase).sin(),
                    _ => (y / 6.0 + phase).sin(),
                };
                let a = (v * 0.5 + 0.5) * 200.0 + noise();
                let a = a.clamp(0.0, 255.0) as u8;
                image::Rgb([a, a / 2 + 60, 255 - a])
            });
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    classes.to_vec()
}

#[test]
fn squeezenet_dag_learns_new_classes_with_the_defaults() {
    let model = fixture("gender-audio/trainedNetwork_1.mat");
    let dir = common::scratch("ftdag", "squeezenet");
    let classes = write_folder(&dir.join("data"));
    let out = dir.join("tuned");
    let o = matcnn(&[
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--data",
        dir.join("data").to_str().unwrap(),
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--output",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("replaced the layer that produces the class scores"),
        "{err}"
    );
    assert!(err.contains("replaced_conv_new"), "{err}");
    // The loss falls over the epochs, and stays finite.
    let (text, rows) = common::training_log(&out);
    let losses: Vec<f64> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(losses.len(), 3, "{text}");
    assert!(losses.iter().all(|l| l.is_finite()), "{text}");
    assert!(losses[2] < losses[0] && losses[1] < losses[0], "{text}");
    assert!(losses[2] < 0.5, "{text}");
    eprintln!("epoch losses: {losses:?}");

    // The result is a 3-class network that infer runs.
    let (net, _) = matcnn::model::saved::load_description(&out).unwrap();
    assert_eq!(net.classes, classes);
    let o = matcnn(&[
        "infer",
        "--model",
        out.to_str().unwrap(),
        dir.join("data")
            .join("rings")
            .join("0.png")
            .to_str()
            .unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        classes.iter().any(|c| text.contains(c)),
        "infer printed no class name: {text}"
    );
}
