//! Hostile and damaged input: the reader returns a typed error, never panics, and never
//! allocates much beyond the file's size. A counting allocator measures the peak.

use matcnn::mat::{MatError, MatFile};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let now = CURRENT.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Tests share the allocation counter: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses `bytes` and returns the result with the peak extra memory it used.
fn parse_measured(bytes: &[u8]) -> (Result<MatFile, MatError>, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = MatFile::from_bytes(bytes);
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../shared/fixtures/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn header(version: u16) -> Vec<u8> {
    let mut h = b"MATLAB 5.0 MAT-file, Platform: test".to_vec();
    h.resize(116, b' ');
    h.extend_from_slice(&[0u8; 8]);
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(b"IM");
    h
}

fn tag(ty: u32, n: u32) -> Vec<u8> {
    let mut t = ty.to_le_bytes().to_vec();
    t.extend_from_slice(&n.to_le_bytes());
    t
}

/// A 1x1 cell nested `depth` levels deep around an empty double.
fn nested_cells(depth: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = tag(14, 0); // empty miMATRIX
    for _ in 0..depth {
        let mut m = tag(6, 8);
        m.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // class cell
        m.extend(tag(5, 8));
        m.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]); // dims 1x1
        m.extend(tag(1, 0)); // empty name
        m.extend(&inner);
        let mut outer = tag(14, m.len() as u32);
        outer.extend(m);
        inner = outer;
    }
    inner
}

/// Asserts that every damaged version of `bytes` is refused or read without panicking, and that
/// memory stays within a bound derived from the size.
fn assert_survives(name: &str, bytes: &[u8], bound: usize) {
    let (_, peak) = parse_measured(bytes);
    assert!(
        peak <= bound,
        "{name}: {peak} bytes allocated for a {}-byte input (bound {bound})",
        bytes.len()
    );
}

#[test]
fn damaged_and_hostile_files_give_errors_not_panics() {
    let _serial = serial();
    let fixtures = [
        "mw-workshop-mnist/MNIST_Network.mat",
        "gender-audio/trainedNetwork_1.mat",
        "pac48-dlnet/dlnet.mat",
        "matio-v73-mcos/test_user_defined_v7.mat",
        "matio-v73-mcos/test_user_defined_v73.mat",
        "matio-v73-mcos/test_maps_v73.mat",
        "fuma28-speech/classes.mat",
        "mw-fault-lstm/ValidationResults.mat",
    ];
    for f in fixtures {
        let bytes = fixture(f);
        // Memory for the real file, for comparison.
        let (ok, real_peak) = parse_measured(&bytes);
        ok.unwrap_or_else(|e| panic!("{f}: {e}"));
        let bound = real_peak * 4 + (1 << 20);

        // Cuts at many offsets: always an error (the cut file is incomplete).
        let n = bytes.len();
        // Cutting exactly between top-level elements leaves a valid, shorter file.
        let subsystem = u64::from_le_bytes(bytes[116..124].try_into().unwrap()) as usize;
        let boundaries = [128, subsystem];
        let step = (n / 97).max(1);
        for cut in (0..n).step_by(step).chain([1, 127, 128, 129, n - 1]) {
            let r = std::panic::catch_unwind(|| MatFile::from_bytes(&bytes[..cut]));
            let r = r.unwrap_or_else(|_| panic!("{f}: panic when cut at {cut}"));
            if cut < n.saturating_sub(8)
                && r.is_ok()
                && !f.ends_with("v73.mat")
                && !boundaries.contains(&cut)
            {
                panic!("{f}: cut at {cut} of {n} bytes was accepted");
            }
        }
        // Flipped bytes.
        let mut state = 0x9e3779b97f4a7c15u64;
        for _ in 0..150 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut b = bytes.clone();
            let at = 116 + (state as usize % (n - 116));
            b[at] ^= (state >> 32) as u8 | 1;
            let r = std::panic::catch_unwind(|| parse_measured(&b));
            let (_, peak) = r.unwrap_or_else(|_| panic!("{f}: panic with byte {at} flipped"));
            // A flipped byte inside compressed data may make it inflate to more, up to zlib's
            // ratio (the reader's documented bound); header sizes are checked by the tests below.
            let limit = bound.max(matcnn::mat::v5::MAX_INFLATE_RATIO as usize * n);
            assert!(
                peak <= limit,
                "{f}: byte {at} flipped made it allocate {peak} bytes"
            );
        }
    }
}

#[test]
fn broken_magic_and_headers() {
    let _serial = serial();
    let mut b = fixture("mw-workshop-mnist/MNIST_Network.mat");
    b[126] = b'X';
    assert!(matches!(MatFile::from_bytes(&b), Err(MatError::NotMat(_))));
    let mut b = fixture("mw-workshop-mnist/MNIST_Network.mat");
    b[124] = 0x77;
    assert!(matches!(
        MatFile::from_bytes(&b),
        Err(MatError::UnsupportedVersion(_))
    ));
    assert!(matches!(
        MatFile::from_bytes(b"tiny"),
        Err(MatError::NotMat(_))
    ));
    let mut b = fixture("matio-v73-mcos/test_string_v73.mat");
    b[512] ^= 0xff; // HDF5 signature
    let e = MatFile::from_bytes(&b).unwrap_err();
    assert!(e.to_string().contains("HDF5"), "{e}");
}

#[test]
fn element_sizes_beyond_the_file() {
    let _serial = serial();
    // A top-level miMATRIX claiming 1 GB.
    let mut b = header(0x0100);
    b.extend(tag(14, 1 << 30));
    b.extend_from_slice(&[0u8; 64]);
    let (r, peak) = parse_measured(&b);
    let e = r.unwrap_err();
    assert!(matches!(e, MatError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("byte 128"), "{e}");
    assert!(peak < 1 << 20, "{peak}");

    // An array whose dims ask for 2^31 x 2^31 elements.
    let mut m = tag(6, 8);
    m.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]); // double
    m.extend(tag(5, 8));
    m.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    m.extend(tag(1, 1));
    m.extend_from_slice(b"x\0\0\0\0\0\0\0");
    m.extend(tag(9, 8));
    m.extend_from_slice(&[0u8; 8]);
    let mut b = header(0x0100);
    b.extend(tag(14, m.len() as u32));
    b.extend(m);
    let (r, peak) = parse_measured(&b);
    let e = r.unwrap_err();
    assert!(
        e.to_string().contains("(in x)"),
        "the error names the variable: {e}"
    );
    assert!(peak < 1 << 20, "{peak}");

    // A compressed element that is not zlib.
    let mut b = header(0x0100);
    b.extend(tag(15, 16));
    b.extend_from_slice(&[0x55u8; 16]);
    assert!(matches!(
        MatFile::from_bytes(&b),
        Err(MatError::Inflate { .. })
    ));
}

#[test]
fn deeply_nested_cells_are_refused() {
    let _serial = serial();
    let mut b = header(0x0100);
    b.extend(nested_cells(100));
    assert!(MatFile::from_bytes(&b).is_ok(), "100 levels are fine");
    let mut b = header(0x0100);
    b.extend(nested_cells(5000));
    let (r, _) = parse_measured(&b);
    assert!(matches!(r, Err(MatError::TooDeep { .. })), "{r:?}");
    assert_survives("nested", &b, 64 * b.len() + (1 << 20));
}
