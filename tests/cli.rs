//! The `matcnn` command line as a user runs it: outputs, JSON, exit codes, error messages.

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("matcnn-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn infer_with_the_built_in_demo_network() {
    for d in 0..10 {
        let o = matcnn(&["infer", &format!("data/digit{d}.png")]);
        assert!(o.status.success(), "{}", stderr(&o));
        let best = stdout(&o)
            .split('\t')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        assert!(
            best.starts_with(&format!("Digit_{d} ")),
            "digit {d}: {}",
            stdout(&o)
        );
    }
    // A directory, as JSON, top 2.
    let o = matcnn(&["infer", "data", "--json", "--top", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    assert_eq!(results[0]["top"].as_array().unwrap().len(), 2);
    assert_eq!(results[7]["top"][0]["class"], "Digit_7");
}

#[test]
fn infer_converts_colour_and_size() {
    // basheer's 28x28 gray network on colour photos of other sizes.
    let o = matcnn(&[
        "infer",
        "--model",
        &fixture("basheer-digit-bn/net.mat"),
        &fixture("basheer-digit-bn/pic1.JPG"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The fruit network (320x320x3) on a JPEG of another size.
    let o = matcnn(&[
        "infer",
        "--model",
        &fixture("vikas-fruit-tf/net.mat"),
        "--var",
        "net",
        &fixture("vikas-fruit-tf/Test_image.jpg"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("apple_"), "{}", stdout(&o));
}

#[test]
fn predict_writes_npy_and_mat() {
    let dir = tmpdir("predict");
    let input = format!(
        "{}:img_V",
        fixture("chandrachapa-mnist-bn/MNIST_Validation.mat")
    );
    let npy = dir.join("out.npy");
    let o = matcnn(&[
        "predict",
        "--model",
        &fixture("chandrachapa-mnist-bn/net.mat"),
        "--input",
        &input,
        "--output",
        npy.to_str().unwrap(),
        "--batch-size",
        "500",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&npy).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(f.shape(), &[2000, 10]);
    // Refuses to overwrite without --force, replaces with it.
    let o = matcnn(&[
        "predict",
        "--model",
        &fixture("chandrachapa-mnist-bn/net.mat"),
        "--input",
        &input,
        "--output",
        npy.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    // .mat output reads back as a 2000 x 10 single array.
    let mat = dir.join("out.mat");
    let o = matcnn(&[
        "predict",
        "--model",
        &fixture("chandrachapa-mnist-bn/net.mat"),
        "--input",
        &input,
        "--output",
        mat.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = matcnn::mat::MatFile::read(&mat).unwrap();
    let y = m.get("Y").unwrap().as_numeric().unwrap();
    assert_eq!(
        (y.class_name(), y.dims.as_slice()),
        ("single", &[2000usize, 10][..])
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    // Unsupported layers are named.
    let o = matcnn(&[
        "infer",
        "--model",
        &fixture("mimo-detect/trainedNet_test.mat"),
        "data/digit1.png",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sigmoidLayer"), "{}", stderr(&o));
    // A missing variable names the file's variables.
    let o = matcnn(&[
        "inspect",
        &fixture("vikas-fruit-tf/net.mat"),
        "--var",
        "nope",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    // Not an image.
    let o = matcnn(&["infer", "Cargo.toml"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Cargo.toml"), "{}", stderr(&o));
    // A wrong input array names the expected size.
    let input = format!(
        "{}:img_V",
        fixture("chandrachapa-mnist-bn/MNIST_Validation.mat")
    );
    let o = matcnn(&[
        "predict",
        "--model",
        &fixture("vikas-fruit-tf/net.mat"),
        "--input",
        &input,
        "--output",
        "/tmp/never.npy",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("320x320x3"), "{}", stderr(&o));
    assert!(!Path::new("/tmp/never.npy").exists());
    // A bad flag.
    let o = matcnn(&["infer", "--backend", "tpu", "data/digit1.png"]);
    assert!(!o.status.success());
    // Not a MAT file.
    let o = matcnn(&["dump", "Cargo.toml"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Cargo.toml") && stderr(&o).contains("not a MAT file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn wgpu_without_the_feature_says_how_to_get_it() {
    if cfg!(feature = "wgpu") {
        return;
    }
    let o = matcnn(&["infer", "--backend", "wgpu", "data/digit1.png"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--features wgpu"), "{}", stderr(&o));
}

#[test]
fn dump_and_inspect_json() {
    let o = matcnn(&[
        "dump",
        &fixture("mw-workshop-mnist/MNIST_Network.mat"),
        "--json",
        "--depth",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let var = &v["variables"][0];
    assert_eq!(var["name"], "MNISTnetwork");
    assert_eq!(var["class"], "SeriesNetwork");
    assert_eq!(var["size"], serde_json::json!([1, 1]));

    let o = matcnn(&[
        "inspect",
        "--model",
        &fixture("gender-audio/trainedNetwork_1.mat"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 68);
    assert!(v["learnables_total"].as_u64().unwrap() > 0);
    assert_eq!(v["unsupported"].as_array().unwrap().len(), 0);

    let o = matcnn(&["inspect", &fixture("pac48-dlnet/dlnet.mat")]);
    assert!(
        o.status.success(),
        "inspect shows unsupported layers and succeeds: {}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("FunctionLayer"));
}

/// `bench` on the built-in network: a timing per repetition and batch size, and with
/// `--profile` one entry per layer of the network, in its order, each a time >= 0 whose sum
/// fits in the pass; `--load-only` times loading alone; a zero batch is refused.
#[test]
fn bench_times_passes_and_layers() {
    let o = matcnn(&[
        "bench",
        "--batch",
        "1,3",
        "--repeat",
        "2",
        "--warmup",
        "1",
        "--profile",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let inspect = matcnn(&["inspect", "--json"]);
    let net: serde_json::Value = serde_json::from_str(&stdout(&inspect)).unwrap();
    let names: Vec<&str> = net["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    let forward = v["forward"].as_array().unwrap();
    assert_eq!(forward.len(), 2);
    for (f, batch) in forward.iter().zip([1, 3]) {
        assert_eq!(f["batch"], batch);
        let times = f["times_ms"].as_array().unwrap();
        assert_eq!(times.len(), 2);
        let layers = f["layers"].as_array().unwrap();
        let got: Vec<&str> = layers
            .iter()
            .map(|l| l["layer"].as_str().unwrap())
            .collect();
        assert_eq!(got, names);
        let sum: f64 = layers.iter().map(|l| l["ms"].as_f64().unwrap()).sum();
        assert!(layers.iter().all(|l| l["ms"].as_f64().unwrap() >= 0.0));
        let slowest = times
            .iter()
            .map(|t| t.as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            sum > 0.0 && sum <= slowest,
            "layers {sum} ms, passes up to {slowest} ms"
        );
    }
    let o = matcnn(&["bench", "--load-only", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["load_ms"].as_f64().unwrap() > 0.0);
    assert!(v["forward"].as_array().unwrap().is_empty());
    let o = matcnn(&["bench", "--batch", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--batch"), "{}", stderr(&o));
}
