//! Inputs that broke the reader, found by the fuzzer (`fuzz/fuzz_targets/mat_reader.rs`) or made by
//! hand while auditing what it reaches, kept as regressions, plus a few small seeds. Every file in
//! `tests/fuzz_regressions/` goes through the same steps as the fuzz target (read, then dump and
//! network import when the read succeeds) and must not panic (nor abort on a huge allocation).

use matcnn::mat::MatFile;
use std::path::Path;

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no inputs in {}", dir.display());
    let mut failed = Vec::new();
    for path in &paths {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = std::panic::catch_unwind(|| {
            if let Ok(file) = MatFile::from_bytes(&bytes) {
                let _ = matcnn::dump::text(&file, 6);
                let _ = matcnn::net::import(&file, None);
            }
        });
        if r.is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "panicked on: {failed:?}");
}
