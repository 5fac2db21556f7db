//! The Burn module on small hand-computed cases: DAG port order, concatenation, addition, LRN with
//! MATLAB's even-window rule, MATLAB's flatten order, and saving/loading records.

use burn::prelude::Device;
use matcnn::model::{MatNet, saved};
use matcnn::net::layer::*;

fn t(shape: &[usize], data: &[f32]) -> Tensor_ {
    Tensor_::new(shape.to_vec(), data.to_vec())
}
type Tensor_ = matcnn::net::layer::Tensor;

fn p(shape: &[usize], data: &[f32]) -> Option<Param> {
    Some(Param {
        value: t(shape, data),
        lr_factor: 1.0,
        l2_factor: 1.0,
    })
}

fn layer(name: &str, kind: LayerKind, inputs: Vec<usize>) -> Layer {
    Layer {
        name: name.into(),
        class: "test".into(),
        kind,
        inputs,
        output: None,
    }
}

fn conv1x1(cin: usize, cout: usize, w: &[f32], b: &[f32]) -> LayerKind {
    LayerKind::Conv2d(Conv2d {
        filter: [1, 1],
        in_channels: cin,
        filters: cout,
        stride: [1, 1],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingMode::Manual(Padding::default()),
        weights: p(&[cout, cin, 1, 1], w),
        bias: p(&[cout], b),
    })
}

fn net(layers: Vec<Layer>) -> Network {
    let out = layers.len() - 1;
    Network {
        variable: "t".into(),
        source: SourceKind::DAGNetwork,
        layers,
        outputs: vec![out],
        classes: vec![],
        detector: None,
        notes: Vec::new(),
        same_padding: Vec::new(),
    }
}

fn run(n: &Network, x: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let dev = Device::flex();
    let m = MatNet::from_network(n, &dev).unwrap();
    m.predict(x, shape, 8, &dev, |_| {}).0
}

fn input(h: usize, w: usize, c: usize) -> Layer {
    layer(
        "in",
        LayerKind::ImageInput {
            size: Shape::image(h, w, c),
            normalization: Normalization::None,
        },
        vec![],
    )
}

#[test]
fn dag_concatenation_follows_port_order() {
    // in → a (x → [x, -x + 10]) and b (x → 3x); concat(in1 = b, in2 = a) → [3x, x, 10 - x];
    // then add(concat, concat) doubles it.
    let n = net(vec![
        input(1, 2, 1),
        layer("a", conv1x1(1, 2, &[1.0, -1.0], &[0.0, 10.0]), vec![0]),
        layer("b", conv1x1(1, 1, &[3.0], &[0.0]), vec![0]),
        layer("cat", LayerKind::DepthConcat { inputs: 2 }, vec![2, 1]),
        layer("add", LayerKind::Addition { inputs: 2 }, vec![3, 3]),
    ]);
    let x = [1.0, 2.0];
    let y = run(&n, &x, [1, 1, 1, 2]);
    // [N, C, H, W] flattened: channel 0 = 3x, 1 = x, 2 = 10 - x, all doubled.
    assert_eq!(y, vec![6.0, 12.0, 2.0, 4.0, 18.0, 16.0]);
}

#[test]
fn lrn_even_window_takes_one_channel_ahead() {
    // MATLAB: window 2 covers channel c and c+1 (floor((2-1)/2) = 0 before, floor(2/2) = 1 after);
    // y = x / (K + Alpha * sum / n)^Beta with K = 1, Alpha = 1, Beta = 1, n = 2.
    let n = net(vec![
        input(1, 1, 3),
        layer(
            "lrn",
            LayerKind::Lrn(Lrn {
                window: 2,
                alpha: 1.0,
                beta: 1.0,
                k: 1.0,
            }),
            vec![0],
        ),
    ]);
    let y = run(&n, &[1.0, 2.0, 3.0], [1, 3, 1, 1]);
    let expected = [
        1.0 / (1.0 + 5.0 / 2.0),
        2.0 / (1.0 + 13.0 / 2.0),
        3.0 / (1.0 + 9.0 / 2.0),
    ];
    for (a, b) in y.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{y:?} vs {expected:?}");
    }
}

#[test]
fn flatten_uses_matlab_column_major_order() {
    // A 2x2x2 image (H x W x C) flattened by MATLAB gives x(h,w,c) at h + 2w + 4c.
    let n = net(vec![
        input(2, 2, 2),
        layer("flat", LayerKind::Flatten, vec![0]),
    ]);
    // NCHW input: value = 100c + 10h + w.
    let mut x = vec![];
    for c in 0..2 {
        for h in 0..2 {
            for w in 0..2 {
                x.push((100 * c + 10 * h + w) as f32);
            }
        }
    }
    let y = run(&n, &x, [1, 2, 2, 2]);
    let mut expected = vec![0.0; 8];
    for c in 0..2 {
        for h in 0..2 {
            for w in 0..2 {
                expected[h + 2 * w + 4 * c] = (100 * c + 10 * h + w) as f32;
            }
        }
    }
    assert_eq!(y, expected);
}

#[test]
fn asymmetric_padding_and_pooling() {
    // 1x1 conv of weight 1 with pads [top 1, bottom 0, left 0, right 2] on a 2x2 image.
    let mut conv = conv1x1(1, 1, &[1.0], &[0.0]);
    if let LayerKind::Conv2d(c) = &mut conv {
        c.padding = PaddingMode::Manual(Padding {
            top: 1,
            bottom: 0,
            left: 0,
            right: 2,
        });
    }
    let n = net(vec![input(2, 2, 1), layer("c", conv, vec![0])]);
    let y = run(&n, &[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]);
    // 3 x 4 output: a zero row on top, two zero columns on the right.
    assert_eq!(
        y,
        vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]
    );
}

#[test]
fn saved_network_round_trips_exactly() {
    let file = matcnn::mat::MatFile::from_bytes(matcnn::source::DEMO_MODEL).unwrap();
    let network = matcnn::net::import(&file, None).unwrap();
    let dev = Device::flex();
    let model = MatNet::from_network(&network, &dev).unwrap();
    let dir = std::env::temp_dir().join(format!("matcnn-saved-{}", std::process::id()));
    saved::save(&network, &model, &dir, true).unwrap();
    assert!(
        saved::save(&network, &model, &dir, false).is_err(),
        "refuses to replace without force"
    );
    let (desc, record) = saved::load_description(&dir).unwrap();
    assert_eq!(desc.layers.len(), network.layers.len());
    assert_eq!(desc.classes, network.classes);
    let loaded = saved::load_model(&desc, &record, &dev).unwrap();
    let x: Vec<f32> = (0..2 * 784).map(|i| (i % 255) as f32).collect();
    let a = model.predict(&x, [2, 1, 28, 28], 2, &dev, |_| {}).0;
    let b = loaded.predict(&x, [2, 1, 28, 28], 2, &dev, |_| {}).0;
    // Equal up to summation order (a transposed view vs a contiguous copy of the FC weight).
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-6, "max difference {d}");
    // The weights written back from the loaded module equal the imported ones.
    let mut back = desc.clone();
    loaded.write_back(&mut back);
    for (x, y) in back.layers.iter().zip(&network.layers) {
        assert_eq!(x.kind, y.kind, "layer {}", x.name);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn residual_addition_and_relu_fuse_into_one_pass() {
    // in (2x3x2) → a: 1x1 conv (y0 = x0 - 2 x1 + 0.1, y1 = 0.5 x0 + x1 - 0.3) → add(a, in) →
    // relu: relu(y + x) per channel. The inference build fuses the addition and the ReLU into
    // the convolution, which takes the shortcut as a second input.
    use matcnn::model::{ADD_RELU, Op};
    let n = net(vec![
        input(2, 3, 2),
        layer(
            "a",
            conv1x1(2, 2, &[1.0, -2.0, 0.5, 1.0], &[0.1, -0.3]),
            vec![0],
        ),
        layer("add", LayerKind::Addition { inputs: 2 }, vec![1, 0]),
        layer("relu", LayerKind::Activation(Activation::Relu), vec![2]),
    ]);
    // [N, C, H, W] = [2, 2, 2, 3], positive and negative values, and a NaN that must survive
    // the ReLU.
    let mut x: Vec<f32> = (0..24).map(|i| (i as f32 - 11.5) * 0.37).collect();
    x[7] = f32::NAN;
    let mut want = vec![0f32; 24];
    for img in 0..2 {
        for p in 0..6 {
            let (x0, x1) = (x[img * 12 + p], x[img * 12 + 6 + p]);
            let y = [x0 - 2.0 * x1 + 0.1 + x0, 0.5 * x0 + x1 - 0.3 + x1];
            for c in 0..2 {
                let v = y[c];
                want[img * 12 + c * 6 + p] = if v.is_nan() || v > 0.0 { v } else { 0.0 };
            }
        }
    }
    let dev = Device::flex();
    let m = MatNet::from_network(&n, &dev).unwrap();
    let fast = m.clone().fold_batch_norm().0.prepare_cpu();
    assert!(
        fast.nodes
            .iter()
            .any(|n| n.fast.as_ref().is_some_and(|f| f.relu) && n.inputs == [0, 0]),
        "addition and ReLU fused into the convolution"
    );
    assert!(
        !fast
            .nodes
            .iter()
            .any(|n| matches!(&n.op, Op::Func(f) if f.code == ADD_RELU)),
        "no addition pass left"
    );
    for (name, net) in [("plain", m), ("inference build", fast)] {
        let y = net.predict(&x, [2, 2, 2, 3], 8, &dev, |_| {}).0;
        assert_eq!(y.len(), 24);
        for (i, (a, b)) in y.iter().zip(&want).enumerate() {
            assert!(
                (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-5,
                "{name}, element {i}: {a} vs {b}"
            );
        }
        assert!(y.iter().any(|v| v.is_nan()) && y.contains(&0.0));
    }
    // Without the ReLU: the addition alone fused (a NaN input stays NaN through both).
    let plain_add = net(vec![
        input(2, 3, 2),
        layer(
            "a",
            conv1x1(2, 2, &[1.0, -2.0, 0.5, 1.0], &[0.1, -0.3]),
            vec![0],
        ),
        layer("add", LayerKind::Addition { inputs: 2 }, vec![0, 1]),
    ]);
    let m = MatNet::from_network(&plain_add, &dev).unwrap();
    let fast = m.clone().fold_batch_norm().0.prepare_cpu();
    assert!(
        fast.nodes
            .iter()
            .any(|n| n.fast.as_ref().is_some_and(|f| !f.relu) && n.inputs == [0, 0])
    );
    let (a, b) = (
        m.predict(&x, [2, 2, 2, 3], 8, &dev, |_| {}).0,
        fast.predict(&x, [2, 2, 2, 3], 8, &dev, |_| {}).0,
    );
    assert!(a.iter().any(|v| *v < 0.0) && a.iter().any(|v| v.is_nan()));
    for (p, q) in a.iter().zip(&b) {
        assert!(
            (p.is_nan() && q.is_nan()) || (p - q).abs() < 1e-5,
            "{p} vs {q}"
        );
    }
    // Both inputs shared (one activation twice): not fused into the convolution (its output
    // is read twice); the sum goes to a new buffer. The 1x1 convolution is the identity.
    let twice = net(vec![
        input(2, 3, 2),
        layer(
            "id",
            conv1x1(2, 2, &[1.0, 0.0, 0.0, 1.0], &[0.0, 0.0]),
            vec![0],
        ),
        layer("add", LayerKind::Addition { inputs: 2 }, vec![1, 1]),
        layer("relu", LayerKind::Activation(Activation::Relu), vec![2]),
    ]);
    let m = MatNet::from_network(&twice, &dev).unwrap();
    let fast = m.fold_batch_norm().0.prepare_cpu();
    assert!(
        fast.nodes
            .iter()
            .any(|n| matches!(&n.op, Op::Func(f) if f.code == ADD_RELU))
    );
    // (No NaN: the convolution would spread it over the channels.)
    x[7] = 0.3;
    let y = fast.predict(&x, [2, 2, 2, 3], 8, &dev, |_| {}).0;
    for (a, &v) in y.iter().zip(&x) {
        assert_eq!(*a, if v > 0.0 { 2.0 * v } else { 0.0 });
    }
}

/// Many forward passes in a row at batch 1, from one thread and then from two at once, each
/// finish: between passes, rayon's other threads are kept looking for work for the length of
/// a pass, and a pass must not end up waiting on a job held under another pass's spinning task
/// (an earlier version hung within a few hundred passes of SqueezeNet). The results stay
/// identical throughout. A watchdog fails the test instead of letting it hang.
#[test]
fn consecutive_and_concurrent_passes_finish() {
    use std::sync::mpsc;
    let conv = |cin: usize, cout: usize, k: usize, seed: f32| {
        let w: Vec<f32> = (0..cout * cin * k * k)
            .map(|i| ((i as f32 * 0.37 + seed).sin()) * 0.2)
            .collect();
        let b: Vec<f32> = (0..cout)
            .map(|i| (i as f32 * 0.11 + seed).cos() * 0.1)
            .collect();
        LayerKind::Conv2d(Conv2d {
            filter: [k, k],
            in_channels: cin,
            filters: cout,
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
            padding: PaddingMode::Manual(Padding {
                top: k / 2,
                bottom: k / 2,
                left: k / 2,
                right: k / 2,
            }),
            weights: p(&[cout, cin, k, k], &w),
            bias: p(&[cout], &b),
        })
    };
    // A SqueezeNet fire module at 48x48: in (8 channels) → 1x1 squeeze (16) → ReLU → 1x1
    // expand (16) and 3x3 expand (16, padding 1: Winograd's size), both written into their
    // concatenation → 1x1 conv (8). Each layer is a parallel loop of matcnn's kernels.
    let relu = || LayerKind::Activation(Activation::Relu);
    let n = net(vec![
        input(48, 48, 8),
        layer("squeeze", conv(8, 16, 1, 0.5), vec![0]),
        layer("r1", relu(), vec![1]),
        layer("e1", conv(16, 16, 1, 1.5), vec![2]),
        layer("e3", conv(16, 16, 3, 2.5), vec![2]),
        layer("cat", LayerKind::DepthConcat { inputs: 2 }, vec![3, 4]),
        layer("out", conv(32, 8, 1, 3.5), vec![5]),
    ]);
    let dev = Device::flex();
    let m = MatNet::from_network(&n, &dev).unwrap();
    let fast = std::sync::Arc::new(m.fold_batch_norm().0.prepare_cpu());
    let shape = [1, 8, 48, 48];
    let x: Vec<f32> = (0..8 * 48 * 48).map(|i| (i as f32 * 0.013).sin()).collect();
    let want = fast.predict(&x, shape, 1, &dev, |_| {}).0;
    let (tx, rx) = mpsc::channel();
    for (threads, passes) in [(1, 3000), (2, 1500)] {
        for _ in 0..threads {
            let (fast, x, want, tx) = (fast.clone(), x.clone(), want.clone(), tx.clone());
            std::thread::spawn(move || {
                let dev = Device::flex();
                let same = (0..passes).all(|_| fast.predict(&x, shape, 1, &dev, |_| {}).0 == want);
                let _ = tx.send(same);
            });
        }
        for _ in 0..threads {
            let same = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("the passes finish (no thread waits forever)");
            assert!(same, "every pass gives the same result");
        }
    }
}

/// A max pooling after a convolution and its ReLU fuses into the convolution in the inference
/// build (the pooling left as an identity), and the network's output is unchanged, at a batch
/// whose convolution output is large enough to take the fused kernel.
#[test]
fn max_pooling_fuses_into_the_convolution_before_it() {
    use matcnn::model::Op;
    let cin = 3;
    let w: Vec<f32> = (0..16 * cin * 9)
        .map(|i| ((i as f32) * 0.61).sin() * 0.3)
        .collect();
    let b: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).cos() * 0.1).collect();
    let conv = LayerKind::Conv2d(Conv2d {
        filter: [3, 3],
        in_channels: cin,
        filters: 16,
        stride: [2, 2],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingMode::Manual(Padding::default()),
        weights: p(&[16, cin, 3, 3], &w),
        bias: p(&[16], &b),
    });
    let pool = LayerKind::MaxPool2d(Pool2d {
        size: [3, 3],
        stride: [2, 2],
        padding: PaddingMode::Manual(Padding {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1,
        }),
        count_include_pad: false,
    });
    let n = net(vec![
        input(257, 257, cin),
        layer("conv", conv, vec![0]),
        layer("relu", LayerKind::Activation(Activation::Relu), vec![1]),
        layer("pool", pool, vec![2]),
    ]);
    let dev = Device::flex();
    let m = MatNet::from_network(&n, &dev).unwrap();
    let fast = m.clone().fold_batch_norm().0.prepare_cpu();
    assert!(
        fast.nodes
            .iter()
            .any(|n| n.fast.as_ref().is_some_and(|f| f.pool.is_some())),
        "the pooling fused into the convolution"
    );
    assert!(
        !matches!(&fast.nodes[3].op, Op::MaxPool(_)),
        "no pooling left"
    );
    let shape = [8, cin, 257, 257];
    let x: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i as f32) * 0.0173).sin())
        .collect();
    let (a, b) = (
        m.predict(&x, shape, 8, &dev, |_| {}).0,
        fast.predict(&x, shape, 8, &dev, |_| {}).0,
    );
    assert_eq!(a.len(), 8 * 16 * 64 * 64);
    let err = a
        .iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-4, "{err}");
}
