//! Networks of any input size, image outputs and `infer`'s tasks, MATLAB's `imresize`:
//! DnCNN (MatConvNet) denoising through `predict` and `infer`, a small segmentation network
//! saved with the library and run through the CLI, a fixed-size network given another size,
//! 'same' padding resolved again for a new size, and the resize kernel against a direct
//! formula and hand-computed MATLAB results.

use burn::prelude::Device;
use image::{ImageBuffer, Luma};
use matcnn::data::resize::{cubic, imresize, imresize_weights};
use matcnn::model::{MatNet, saved};
use matcnn::net::layer::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(rel: &str) -> String {
    format!("{}/../shared/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn matcnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matcnn"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("matcnn-spatial-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

/// Seeded standard normal values (xorshift64* and Box-Muller).
fn gaussian(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.max(1);
    let mut uniform = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

/// `dncnn-matconvnet/01.png` on [0, 1] and the same with seeded sigma = 25 (of 255) noise.
fn clean_and_noisy() -> (usize, usize, Vec<f64>, Vec<f64>) {
    let img = image::open(fixture("dncnn-matconvnet/01.png"))
        .unwrap()
        .to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let clean: Vec<f64> = img.as_raw().iter().map(|&v| v as f64 / 255.0).collect();
    let noise = gaussian(clean.len(), 2026);
    let noisy = clean
        .iter()
        .zip(&noise)
        .map(|(x, n)| x + 25.0 / 255.0 * n)
        .collect();
    (h, w, clean, noisy)
}

fn psnr(clean: &[f64], x: &[f64]) -> f64 {
    let mse = clean
        .iter()
        .zip(x)
        .map(|(a, b)| (a - b.clamp(0.0, 1.0)).powi(2))
        .sum::<f64>()
        / clean.len() as f64;
    10.0 * (1.0 / mse).log10()
}

/// (file, whether its output is the residual): the SimpleNN outputs the noise, the DagNN's
/// final Sum adds the input back (MANIFEST.md).
const DNCNN: [(&str, bool); 2] = [("sigma=25.mat", true), ("DnCNN-epoch-50.mat", false)];

#[test]
fn dncnn_denoises_through_predict() {
    let (h, w, clean, noisy) = clean_and_noisy();
    let dir = tmpdir("dncnn-predict");
    let input = dir.join("noisy.npy");
    let x32: Vec<f32> = noisy.iter().map(|&v| v as f32).collect();
    std::fs::write(&input, matcnn::data::npy_bytes(&x32, &[1, 1, h, w])).unwrap();
    let noisy_psnr = psnr(&clean, &noisy);
    for (file, residual) in DNCNN {
        let out = dir.join(format!("{file}.npy"));
        let o = matcnn(&[
            "predict",
            "--model",
            &fixture(&format!("dncnn-matconvnet/{file}")),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let (shape, y) = read_npy(&out);
        assert_eq!(shape, [1, 1, h as u64, w as u64], "{file}");
        let denoised: Vec<f64> = if residual {
            noisy.iter().zip(&y).map(|(x, r)| x - *r as f64).collect()
        } else {
            y.iter().map(|&v| v as f64).collect()
        };
        let p = psnr(&clean, &denoised);
        eprintln!("{file}: noisy {noisy_psnr:.2} dB, denoised {p:.2} dB");
        assert!(p >= 29.5, "{file}: PSNR {p:.2} dB");
    }
}

#[test]
fn dncnn_denoises_through_infer() {
    let (h, w, clean, noisy) = clean_and_noisy();
    let dir = tmpdir("dncnn-infer");
    // The noisy image as a 16-bit PNG (clipped to [0, 1], as any image file is).
    let png = dir.join("noisy.png");
    let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_fn(w as u32, h as u32, |x, y| {
        let v = noisy[y as usize * w + x as usize].clamp(0.0, 1.0);
        Luma([(v * 65535.0).round() as u16])
    });
    img.save(&png).unwrap();
    for (file, residual) in DNCNN {
        let out = dir.join(file.replace(['=', '.'], "_"));
        let o = matcnn(&[
            "infer",
            "--model",
            &fixture(&format!("dncnn-matconvnet/{file}")),
            "--output",
            out.to_str().unwrap(),
            "--json",
            png.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let r = &v["results"][0];
        assert_eq!(r["task"], "image", "{file}");
        assert_eq!(r["residual"], residual, "{file}: residual form detected");
        let written = image::open(out.join("noisy_output.png")).unwrap();
        assert!(
            matches!(written, image::DynamicImage::ImageLuma16(_)),
            "{file}: 16 bits in, 16 out"
        );
        let written = written.to_luma16();
        assert_eq!((written.width(), written.height()), (w as u32, h as u32));
        let denoised: Vec<f64> = written
            .as_raw()
            .iter()
            .map(|&v| v as f64 / 65535.0)
            .collect();
        let p = psnr(&clean, &denoised);
        eprintln!("{file}: infer PNG {p:.2} dB");
        assert!(p >= 29.5, "{file}: PSNR {p:.2} dB");
        let (shape, _) = read_npy(&out.join("noisy_output.npy"));
        assert_eq!(shape, [1, h as u64, w as u64]);
        // A second run does not replace the outputs without --force.
        let o = matcnn(&[
            "infer",
            "--model",
            &fixture(&format!("dncnn-matconvnet/{file}")),
            "--output",
            out.to_str().unwrap(),
            png.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    }
    // An 8-bit image gives an 8-bit PNG.
    let out = dir.join("eight");
    let o = matcnn(&[
        "infer",
        "--model",
        &fixture("dncnn-matconvnet/sigma=25.mat"),
        "--output",
        out.to_str().unwrap(),
        &fixture("dncnn-matconvnet/01.png"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = image::open(out.join("01_output.png")).unwrap();
    assert!(matches!(written, image::DynamicImage::ImageLuma8(_)));
    assert_eq!((written.width(), written.height()), (w as u32, h as u32));
}

#[test]
fn image_outputs_keep_their_shape_in_mat_files() {
    // Two 9x7 noise images through the SimpleNN, to .npy and .mat.
    let dir = tmpdir("mat-layout");
    let (n, h, w) = (2, 9, 7);
    let x: Vec<f32> = gaussian(n * h * w, 7)
        .iter()
        .map(|v| 0.5 + 0.1 * *v as f32)
        .collect();
    let input = dir.join("x.npy");
    std::fs::write(&input, matcnn::data::npy_bytes(&x, &[n, 1, h, w])).unwrap();
    let model = fixture("dncnn-matconvnet/sigma=25.mat");
    for ext in ["npy", "mat"] {
        let out = dir.join(format!("y.{ext}"));
        let o = matcnn(&[
            "predict",
            "--model",
            &model,
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (shape, y) = read_npy(&dir.join("y.npy"));
    assert_eq!(shape, [n as u64, 1, h as u64, w as u64]);
    let m = matcnn::mat::MatFile::read(dir.join("y.mat")).unwrap();
    let a = m.get("Y").unwrap().as_numeric().unwrap();
    assert_eq!(a.dims, [h, w, 1, n], "H x W x C x N");
    let col = a.real.to_f32_vec();
    // MATLAB's Y(i, j, 1, k) (column-major) is the .npy's [k, 0, i, j].
    for k in 0..n {
        for i in 0..h {
            for j in 0..w {
                assert_eq!(col[i + h * (j + w * k)], y[(k * h + i) * w + j]);
            }
        }
    }
}

#[test]
fn a_fixed_size_network_refuses_another_size() {
    // The built-in MNIST network (28x28, fully connected layers) given 32x32 images.
    let dir = tmpdir("fixed");
    let input = dir.join("x.npy");
    std::fs::write(
        &input,
        matcnn::data::npy_bytes(&vec![0.0; 32 * 32], &[1, 1, 32, 32]),
    )
    .unwrap();
    let out = dir.join("y.npy");
    let o = matcnn(&[
        "predict",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("28x28") && e.contains("32x32"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(!out.exists());
    // bench --size too.
    let o = matcnn(&["bench", "--size", "32x32", "--batch", "1", "--repeat", "1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("28x28"), "{}", stderr(&o));
}

#[test]
fn bench_times_open_size_networks_at_a_given_size() {
    let model = fixture("dncnn-matconvnet/sigma=25.mat");
    let o = matcnn(&[
        "bench", "--model", &model, "--size", "24x20", "--batch", "1", "--repeat", "1", "--warmup",
        "0", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["forward"][0]["batch"], 1);
}

fn param(shape: &[usize], data: Vec<f32>) -> Option<Param> {
    Some(Param {
        value: Tensor::new(shape.to_vec(), data),
        lr_factor: 1.0,
        l2_factor: 1.0,
    })
}

fn layer(name: &str, kind: LayerKind, inputs: Vec<usize>) -> Layer {
    Layer {
        name: name.into(),
        class: format!("test.{name}"),
        kind,
        inputs,
        output: None,
    }
}

fn network(layers: Vec<Layer>, classes: Vec<String>) -> Network {
    let mut net = Network {
        variable: "net".into(),
        source: SourceKind::DAGNetwork,
        outputs: vec![layers.len() - 1],
        layers,
        classes,
        detector: None,
        notes: Vec::new(),
        same_padding: Vec::new(),
    };
    matcnn::net::shape::infer(&mut net, &[]).unwrap();
    net
}

const CLASSES: [&str; 3] = ["sky", "grass", "road"];

/// A segmentation network declared 8x8x1: a 3x3 'same' identity convolution, then a 1x1
/// convolution scoring sky = x - 170, grass = 85 - x, road = 0, softmax and a pixel
/// classification output: pixels above 170 are sky, below 85 grass, the rest road.
fn segmentation_net() -> Network {
    let mut identity = vec![0.0; 9];
    identity[4] = 1.0;
    let conv = |filter: usize, filters: usize, padding, w: Vec<f32>, b: Vec<f32>| {
        LayerKind::Conv2d(Conv2d {
            filter: [filter, filter],
            in_channels: 1,
            filters,
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
            padding,
            weights: param(&[filters, 1, filter, filter], w),
            bias: param(&[filters], b),
        })
    };
    let classes: Vec<String> = CLASSES.iter().map(|s| s.to_string()).collect();
    network(
        vec![
            layer(
                "input",
                LayerKind::ImageInput {
                    size: Shape::image(8, 8, 1),
                    normalization: Normalization::None,
                },
                vec![],
            ),
            layer(
                "same",
                conv(3, 1, PaddingMode::Same, identity, vec![0.0]),
                vec![0],
            ),
            layer(
                "score",
                conv(
                    1,
                    3,
                    PaddingMode::Manual(Padding::default()),
                    vec![1.0, -1.0, 0.0],
                    vec![-170.0, 85.0, 0.0],
                ),
                vec![1],
            ),
            layer("softmax", LayerKind::Softmax, vec![2]),
            layer(
                "labels",
                LayerKind::ClassificationOutput {
                    classes: classes.clone(),
                },
                vec![3],
            ),
        ],
        classes,
    )
}

#[test]
fn segmentation_through_the_cli() {
    let dir = tmpdir("segmentation");
    let net = segmentation_net();
    let dev = Device::flex();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let saved_dir = dir.join("segnet");
    saved::save(&net, &model, &saved_dir, false).unwrap();
    // A 12x20 image (not the declared 8x8: the network has no size-fixing layer), with
    // values 0..255 in a pattern.
    let (h, w) = (12usize, 20usize);
    let value = |x: usize, y: usize| ((x * 37 + y * 11) % 256) as u8;
    let img: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(w as u32, h as u32, |x, y| {
        Luma([value(x as usize, y as usize)])
    });
    let png = dir.join("scene.png");
    img.save(&png).unwrap();
    let class_of = |v: u8| {
        let v = v as f32;
        let s = [v - 170.0, 85.0 - v, 0.0];
        // The first of equal scores, as MATLAB's max (170 is a tie of sky and road).
        let mut best = 0;
        for k in 1..3 {
            if s[k] > s[best] {
                best = k;
            }
        }
        best
    };
    let mut want = [0u64; 3];
    for y in 0..h {
        for x in 0..w {
            want[class_of(value(x, y))] += 1;
        }
    }
    let out = dir.join("out");
    let model_arg = saved_dir.to_str().unwrap();
    let o = matcnn(&[
        "infer",
        "--model",
        model_arg,
        "--json",
        "--output",
        out.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["task"], "segmentation");
    assert_eq!(r["size"], serde_json::json!([h, w]));
    for (k, name) in CLASSES.iter().enumerate() {
        assert_eq!(r["classes"][k]["class"], *name);
        assert_eq!(r["classes"][k]["pixels"], want[k], "{name}");
    }
    let labels = image::open(out.join("scene_labels.png"))
        .unwrap()
        .to_luma8();
    assert_eq!((labels.width(), labels.height()), (w as u32, h as u32));
    for y in 0..h {
        for x in 0..w {
            let got = labels.get_pixel(x as u32, y as u32).0[0];
            assert_eq!(
                got as usize,
                class_of(value(x, y)) + 1,
                "label codes 1..K at ({x}, {y})"
            );
        }
    }
    let overlay = image::open(out.join("scene_overlay.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!((overlay.width(), overlay.height()), (w as u32, h as u32));
    // Overlay: half the gray value, half the class colour (VOC: sky (128,0,0), grass (0,128,0),
    // road (128,128,0)).
    let colours = [[128.0, 0.0, 0.0], [0.0, 128.0, 0.0], [128.0, 128.0, 0.0]];
    let (x, y) = (3, 5);
    let g = value(x, y) as f32;
    let c = colours[class_of(value(x, y))];
    let px = overlay.get_pixel(x as u32, y as u32).0;
    for ch in 0..3 {
        assert_eq!(px[ch], (0.5 * g + 0.5 * c[ch]).round() as u8);
    }

    // --top on a segmentation network: a clear error, nothing written over.
    let before = std::fs::read(out.join("scene_labels.png")).unwrap();
    let o = matcnn(&[
        "infer",
        "--model",
        model_arg,
        "--top",
        "2",
        "--output",
        out.to_str().unwrap(),
        "--force",
        png.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--top") && e.contains("segmentation"), "{e}");
    assert_eq!(std::fs::read(out.join("scene_labels.png")).unwrap(), before);
    // --output over the input folder's image itself is refused.
    let o = matcnn(&[
        "infer",
        "--model",
        model_arg,
        "--output",
        png.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    assert!(!o.status.success());

    // predict: scores [N, K, H, W].
    let x: Vec<f32> = (0..h * w).map(|i| value(i % w, i / w) as f32).collect();
    let input = dir.join("x.npy");
    std::fs::write(&input, matcnn::data::npy_bytes(&x, &[1, 1, h, w])).unwrap();
    let y = dir.join("y.npy");
    let o = matcnn(&[
        "predict",
        "--model",
        model_arg,
        "--input",
        input.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, scores) = read_npy(&y);
    assert_eq!(shape, [1, 3, h as u64, w as u64]);
    let (yy, xx) = (4, 7);
    let v = value(xx, yy) as f64;
    let s = [v - 170.0, 85.0 - v, 0.0];
    let m = s.iter().cloned().fold(f64::MIN, f64::max);
    let z: f64 = s.iter().map(|t| (t - m).exp()).sum();
    for k in 0..3 {
        let want = (s[k] - m).exp() / z;
        let got = scores[(k * h + yy) * w + xx] as f64;
        assert!((got - want).abs() < 1e-5, "class {k}: {got} vs {want}");
    }
}

/// A 3x3 stride-2 'same' convolution declared for 8x8 inputs (pads [0 1 0 1]) run on a 5x5
/// input: the pads are resolved again ([1 1 1 1]) and the result equals a direct sum.
#[test]
fn same_padding_is_resolved_for_each_input_size() {
    let wts: Vec<f32> = (0..9).map(|i| (i as f32 - 4.0) * 0.25).collect();
    let mut net = network(
        vec![
            layer(
                "input",
                LayerKind::ImageInput {
                    size: Shape::image(8, 8, 1),
                    normalization: Normalization::None,
                },
                vec![],
            ),
            layer(
                "conv",
                LayerKind::Conv2d(Conv2d {
                    filter: [3, 3],
                    in_channels: 1,
                    filters: 1,
                    stride: [2, 2],
                    dilation: [1, 1],
                    groups: 1,
                    padding: PaddingMode::Same,
                    weights: param(&[1, 1, 3, 3], wts.clone()),
                    bias: param(&[1], vec![0.5]),
                }),
                vec![0],
            ),
        ],
        vec![],
    );
    let pads = |net: &Network| match &net.layers[1].kind {
        LayerKind::Conv2d(c) => c.padding,
        _ => unreachable!(),
    };
    let p = |t, b, l, r| {
        PaddingMode::Manual(Padding {
            top: t,
            bottom: b,
            left: l,
            right: r,
        })
    };
    assert_eq!(pads(&net), p(0, 1, 0, 1));
    assert!(net.open_size());
    net.set_input_size(5, 5).unwrap();
    assert_eq!(pads(&net), p(1, 1, 1, 1));
    assert_eq!(net.layers[1].output, Some(Shape::image(3, 3, 1)));
    // Survives a save and reload (the 'same' layers are part of the description).
    let text = serde_json::to_string(&net).unwrap();
    let mut back: Network = serde_json::from_str(&text).unwrap();
    back.set_input_size(8, 8).unwrap();
    assert_eq!(pads(&back), p(0, 1, 0, 1));

    let dev = Device::flex();
    let model = MatNet::from_network(&net, &dev).unwrap();
    let x: Vec<f32> = (0..25).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let (y, chw) = model.predict_spatial(&x, [1, 1, 5, 5], 1, &dev, |_| {});
    assert_eq!(chw, [1, 3, 3]);
    for oy in 0..3 {
        for ox in 0..3 {
            let mut want = 0.5f32;
            for ky in 0..3 {
                for kx in 0..3 {
                    let (iy, ix) = (2 * oy + ky, 2 * ox + kx);
                    // padded coordinates: top/left pad 1
                    if (1..6).contains(&iy) && (1..6).contains(&ix) {
                        want += wts[ky * 3 + kx] * x[(iy - 1) * 5 + ix - 1];
                    }
                }
            }
            assert!((y[oy * 3 + ox] - want).abs() < 1e-5, "({oy}, {ox})");
        }
    }
}

/// MATLAB's weights written directly: output pixel x (1-based) at u = x/s + (1 - 1/s)/2, weight
/// of input pixel j = the sum of h(u - k) over every integer k that mirrors onto j
/// (symmetric padding: ..., 2, 1, 1, 2, ..., n, n, n-1, ...), divided by the sum over all k;
/// h(t) = c * cubic(c * t) with c = min(s, 1). O(out x range) without any window logic.
fn direct_weights(n: usize, m: usize) -> Vec<Vec<f64>> {
    let s = m as f64 / n as f64;
    let c = s.min(1.0);
    let keys = |t: f64| {
        let a = t.abs();
        if a <= 1.0 {
            1.5 * a.powi(3) - 2.5 * a * a + 1.0
        } else if a < 2.0 {
            -0.5 * a.powi(3) + 2.5 * a * a - 4.0 * a + 2.0
        } else {
            0.0
        }
    };
    let mirror = |k: i64| -> usize {
        // 1-based k → 0-based index in [1..n, n..1] repeated.
        let mut k = k;
        let n = n as i64;
        loop {
            if k < 1 {
                k = 1 - k; // 0 → 1, -1 → 2
            } else if k > n {
                k = 2 * n + 1 - k; // n+1 → n
            } else {
                return (k - 1) as usize;
            }
        }
    };
    (1..=m)
        .map(|x| {
            let u = x as f64 / s + 0.5 * (1.0 - 1.0 / s);
            let mut w = vec![0.0; n];
            let mut total = 0.0;
            for k in -(4 * n as i64 + 8)..(5 * n as i64 + 8) {
                let v = c * keys(c * (u - k as f64));
                if v != 0.0 {
                    w[mirror(k)] += v;
                    total += v;
                }
            }
            w.iter().map(|v| v / total).collect()
        })
        .collect()
}

#[test]
fn resize_weights_equal_the_direct_formula() {
    for (n, m) in [
        (10, 4),
        (4, 10),
        (7, 3),
        (3, 7),
        (5, 5),
        (2, 4),
        (13, 6),
        (6, 13),
        (1, 3),
        (3, 1),
    ] {
        let direct = direct_weights(n, m);
        let ours = imresize_weights(n, m);
        for (x, (d, o)) in direct.iter().zip(&ours).enumerate() {
            let mut dense = vec![0.0; n];
            for &(j, v) in o {
                dense[j] += v;
            }
            for j in 0..n {
                assert!(
                    (dense[j] - d[j]).abs() < 1e-12,
                    "{n}->{m} output {x} input {j}: {} vs {}",
                    dense[j],
                    d[j]
                );
            }
        }
    }
    // The kernel itself: Keys a = -0.5 at a few points.
    assert_eq!(cubic(0.0), 1.0);
    assert_eq!(cubic(1.0), 0.0);
    assert_eq!(cubic(0.5), 0.5625);
    assert_eq!(cubic(-1.5), -0.0625);
    assert_eq!(cubic(2.5), 0.0);
}

#[test]
fn resize_matches_hand_computed_matlab_results() {
    // imresize(uint8([0 255]), [1 4]): weights (1.09375, -0.09375), (0.796875, 0.203125) and
    // mirrored: 0 - 23.9 → 0, 51.80 → 52, 203.20 → 203, 278.9 → 255.
    let up = imresize(&[0.0, 255.0], 1, [1, 2], [1, 4], true);
    assert_eq!(up, [0.0, 52.0, 203.0, 255.0]);
    // Without rounding (single): the exact values.
    let up = imresize(&[0.0, 255.0], 1, [1, 2], [1, 4], false);
    for (a, b) in up
        .iter()
        .zip([-23.90625f64, 51.796875, 203.203125, 278.90625])
    {
        assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
    }
    // imresize(uint8([10 20 30 40]), [1 2]) (shrinking: kernel widened twice): weights
    // (0.546875, 0.3984375, 0.1015625, -0.046875) → 14.609375 → 15, and 35.390625 → 35.
    let down = imresize(&[10.0, 20.0, 30.0, 40.0], 1, [1, 4], [1, 2], true);
    assert_eq!(down, [15.0, 35.0]);
    // The same along columns (a 4x1 image).
    let down = imresize(&[10.0, 20.0, 30.0, 40.0], 1, [4, 1], [2, 1], true);
    assert_eq!(down, [15.0, 35.0]);
    // Two dimensions: separable, each pass rounded; a constant image stays constant.
    let flat = imresize(&vec![77.0; 6 * 9], 1, [6, 9], [4, 5], true);
    assert!(flat.iter().all(|&v| v == 77.0));
}

#[test]
fn infer_resizes_as_matlab_imresize() {
    // A 7x10 8-bit gray image resized to 4x13: MATLAB shrinks the rows first (scale 4/7 <
    // 13/10), rounding each pass to uint8. Reference: the direct weights above.
    let dir = tmpdir("imresize");
    let (h, w, oh, ow) = (7usize, 10usize, 4usize, 13usize);
    let px = |x: usize, y: usize| ((x * 53 + y * 97 + x * y * 13) % 256) as u8;
    let img: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(w as u32, h as u32, |x, y| {
        Luma([px(x as usize, y as usize)])
    });
    let png = dir.join("a.png");
    img.save(&png).unwrap();
    let ours =
        matcnn::data::load_image_with(&png, oh, ow, 1, matcnn::data::ResizeMethod::Matlab).unwrap();
    let q = |v: f64| v.round().clamp(0.0, 255.0);
    let rows = direct_weights(h, oh);
    let cols = direct_weights(w, ow);
    let mut mid = vec![0.0; oh * w];
    for y in 0..oh {
        for x in 0..w {
            mid[y * w + x] = q((0..h).map(|j| rows[y][j] * px(x, j) as f64).sum());
        }
    }
    for y in 0..oh {
        for x in 0..ow {
            let want = q((0..w).map(|j| cols[x][j] * mid[y * w + j]).sum());
            assert_eq!(ours[y * ow + x] as f64, want, "({y}, {x})");
        }
    }
    // --resize bilinear is kept: both run on the demo network.
    let big: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(60, 45, |x, y| {
        Luma([if (x / 6 + y / 6) % 2 == 0 { 255 } else { 0 }])
    });
    let big_png = dir.join("big.png");
    big.save(&big_png).unwrap();
    for method in ["matlab", "bilinear"] {
        let o = matcnn(&[
            "infer",
            "--resize",
            method,
            "--json",
            big_png.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
    }
}

#[test]
fn which_fixture_networks_take_any_size() {
    let load =
        |rel: &str| matcnn::source::load_network(Some(Path::new(&fixture(rel))), None).unwrap();
    for rel in [
        "dncnn-matconvnet/sigma=25.mat",
        "dncnn-matconvnet/DnCNN-epoch-50.mat",
        "zstoebs-vae-segnet/decoder.mat",
    ] {
        assert!(load(rel).open_size(), "{rel}");
    }
    for (rel, why) in [
        ("mw-workshop-mnist/MNIST_Network.mat", "fc"),
        ("mimo-detect/trainedNet_test.mat", "per pixel"),
        ("pac48-dlnet/dlnet.mat", "flatten"),
    ] {
        let mut net = load(rel);
        assert!(!net.open_size(), "{rel}");
        let (h, w) = net.declared_input_size().unwrap();
        let e = net.set_input_size(h + 2, w + 3).unwrap_err().to_string();
        assert!(
            e.to_lowercase().contains(why) && e.contains(&format!("{h}x{w}")),
            "{rel}: {e}"
        );
        assert!(e.contains(&format!("{}x{}", h + 2, w + 3)), "{rel}: {e}");
        // The declared size itself is fine.
        net.set_input_size(h, w).unwrap();
    }
}
