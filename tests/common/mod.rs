//! Helpers shared by the integration tests (each test binary uses a subset).
#![allow(dead_code)]

pub mod mat_writer;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A file under `../shared/fixtures` (or under `$MATCNN_FIXTURES`, for runs on another machine).
pub fn fixture(rel: &str) -> PathBuf {
    match std::env::var_os("MATCNN_FIXTURES") {
        Some(d) => PathBuf::from(d).join(rel),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures")).join(rel),
    }
}

/// A fresh scratch folder named after the test binary and `name`.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let name = name.replace(['/', '='], "_");
    let d = std::env::temp_dir().join(format!("matcnn-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the `matcnn` binary in the project root.
pub fn matcnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matcnn"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// Runs the `matcnn` binary and panics with its stderr when it fails.
pub fn matcnn_ok(args: &[&str]) -> Output {
    let o = matcnn(args);
    if !o.status.success() {
        panic!(
            "matcnn {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    o
}

/// The MNIST test set shipped with mw-workshop-mnist: 10 000 row-major 28x28 images and labels.
pub fn mnist_t10k() -> (Vec<u8>, Vec<u8>) {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixture("mw-workshop-mnist/t10k-images-idx3-ubyte.gz")).unwrap(),
    )
    .read_to_end(&mut raw)
    .unwrap();
    let labels = std::fs::read(fixture("mw-workshop-mnist/t10k-labels-idx1-ubyte")).unwrap();
    assert_eq!(raw.len(), 16 + 10000 * 784);
    (raw[16..].to_vec(), labels[8..].to_vec())
}

/// The Python interpreter with onnx, onnxruntime, numpy and safetensors, if any:
/// `$MATCNN_PYTHON`, else `.venv/bin/python` in the project root (`.ci/run` creates it). Under
/// CI (`$CI` set) a missing interpreter is a failure, elsewhere the check is skipped.
pub fn python() -> Option<PathBuf> {
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"));
    let found = match std::env::var_os("MATCNN_PYTHON") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.exists()),
        None => Some(venv).filter(|p| p.exists()),
    };
    if found.is_none() {
        let msg = "no Python for the export checks: set MATCNN_PYTHON or create .venv \
                   (python3 -m venv .venv && .venv/bin/pip install onnx onnxruntime numpy safetensors)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("skipped: {msg}");
    }
    found
}

/// A script in `scripts/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts")).join(name)
}

/// Runs a check script; panics with its output when it fails. Returns its stdout.
pub fn run_py(py: &Path, name: &str, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// `finetune`'s `training_log.csv` in folder `out`: its text (for messages) and its rows after the
/// header, every column parsed (NaN where a cell is not a number). Columns: epoch, training loss,
/// training accuracy, validation loss, validation accuracy.
pub fn training_log(out: &Path) -> (String, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(out.join("training_log.csv")).unwrap();
    let rows = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    (text, rows)
}

/// The `RESULT {json}` line a check script prints.
pub fn result_line(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or("")
        .to_string()
}
