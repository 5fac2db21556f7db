//! Helpers shared by the benches (each bench uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A file under `../shared/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel)
}

/// `target/bench-nets/NAME.mat`; the first missing file runs the generator (once, for all the
/// networks); `None`, saying why, when that fails.
pub fn generated(name: &str) -> Option<PathBuf> {
    static FAILED: OnceLock<Option<String>> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench-nets");
    let path = dir.join(format!("{name}.mat"));
    if path.exists() {
        return Some(path);
    }
    let failed = FAILED.get_or_init(|| {
        let python = std::env::var("MATCNN_BENCH_PYTHON").unwrap_or_else(|_| {
            if Path::new("/tmp/benchvenv/bin/python").exists() {
                "/tmp/benchvenv/bin/python".into()
            } else {
                "python3".into()
            }
        });
        eprintln!(
            "{} missing: generating with {python} scripts/gen_matconvnet.py",
            path.display()
        );
        match Command::new(&python)
            .current_dir(root)
            .arg("scripts/gen_matconvnet.py")
            .arg(&dir)
            .arg("--no-verify")
            .status()
        {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!(
                "the generator failed ({s}); set MATCNN_BENCH_PYTHON to a Python with numpy and scipy"
            )),
            Err(e) => Some(format!("cannot run {python}: {e}")),
        }
    });
    match failed {
        None if path.exists() => Some(path),
        None => {
            eprintln!(
                "skipping {name}: the generator did not write {}",
                path.display()
            );
            None
        }
        Some(why) => {
            eprintln!("skipping {name}: {why}");
            None
        }
    }
}

/// Seeded uniform noise in [0, 255] (xorshift), like `matcnn bench`'s default input.
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 255.0
        })
        .collect()
}
