//! Every weight layout rule in one place: MATLAB's column-major arrays → the canonical row-major
//! `f32` tensors described in [`super::layer`].
//!
//! MATLAB drops trailing singleton dimensions when it stores an array (a convolution with one
//! filter stores `Weights` as `[kh, kw, Cin]`, a single-channel mean image as `[H, W]`), so each
//! rule takes the sizes the layer declares and accepts any stored dims equal to them once padded
//! with trailing ones. Every element is converted to `f32` (MATLAB `single(x)`): hand-built
//! networks may store `double` weights.

use crate::mat::MatFile;
use crate::mat::value::{
    F32Buf, NumData, NumericArray, permute_col_major, permute_col_major_owned, permuted_shape,
};
use std::cell::Cell;
use std::collections::HashMap;

use super::layer::{Network, Pending, Tensor};

/// What a stored array should have looked like, and what it was.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutError {
    pub expected: String,
    pub found: String,
}

/// MATLAB's way of writing a size: `3x3x1x16`.
pub fn dims_str(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

fn found(a: &NumericArray) -> String {
    format!("{} {}", a.class_name(), dims_str(&a.dims))
}

/// True when `stored` equals `expected` once both are padded with trailing singleton dimensions.
pub fn dims_match(stored: &[usize], expected: &[usize]) -> bool {
    let n = stored.len().max(expected.len());
    (0..n).all(|i| stored.get(i).copied().unwrap_or(1) == expected.get(i).copied().unwrap_or(1))
}

/// True when an array stored with dims `stored` holds the elements of an `expected` array in the
/// same column-major order, in any form MATLAB writes: equal once padded with trailing singletons
/// (MATLAB drops them), or with runs of consecutive dims merged into one (a grouped convolution's
/// `[kh, kw, C/G, F/G, G]` weights stored `[kh, kw, C/G, F]`; `11x1x1x16` for `11x1x1x2x8`).
/// Singleton dims anywhere do not change the order, so both sides are compared without them:
/// every stored dim must be the product of the next run of expected dims. A different element
/// count never matches.
pub fn layout_matches(stored: &[usize], expected: &[usize]) -> bool {
    if dims_match(stored, expected) {
        return true;
    }
    let count = |d: &[usize]| d.iter().try_fold(1usize, |p, &x| p.checked_mul(x));
    match (count(stored), count(expected)) {
        (Some(a), Some(b)) if a == b && a > 0 => {}
        _ => return false,
    }
    let mut want = expected.iter().copied().filter(|&d| d != 1);
    for s in stored.iter().copied().filter(|&d| d != 1) {
        let mut run = 1usize;
        while run < s {
            match want.next() {
                Some(d) => run *= d,
                None => return false,
            }
        }
        if run != s {
            return false;
        }
    }
    want.next().is_none()
}

/// Stored dims without trailing singletons beyond the second (MATLAB's `size`).
pub fn trimmed(dims: &[usize]) -> Vec<usize> {
    let mut d = dims.to_vec();
    while d.len() > 2 && d.last() == Some(&1) {
        d.pop();
    }
    d
}

/// Reorders `a`, whose dims must match `expected`, into a row-major tensor whose axis `k` is
/// MATLAB dimension `axes[k]` of `expected`.
fn permute(a: &NumericArray, expected: &[usize], axes: &[usize]) -> Result<Tensor, LayoutError> {
    let err = || LayoutError {
        expected: dims_str(expected),
        found: found(a),
    };
    if !layout_matches(&a.dims, expected) {
        return Err(err());
    }
    if let NumData::F32(v) = &a.real
        && v.len() >= DEFER_MIN
        && DEFER.get()
    {
        // Checked here as the copy would be (same errors), moved later by `materialize`.
        let shape = permuted_shape(expected, axes).map_err(|_| err())?;
        return Ok(Tensor::pending(
            shape,
            Pending {
                key: v.as_ptr() as usize,
                dims: expected.to_vec(),
                axes: axes.to_vec(),
            },
        ));
    }
    let (data, shape) = match &a.real {
        NumData::F32(v) => permute_col_major(v, expected, axes),
        other => permute_col_major(&other.to_f32_vec(), expected, axes),
    }
    .map_err(|_| err())?;
    Ok(Tensor::new(shape, data))
}

/// Arrays at least this long are moved out of the decoded file rather than copied, when
/// importing with [`import_owned`](super::import_owned).
const DEFER_MIN: usize = 1 << 14;

thread_local! {
    /// Set during [`import_owned`](super::import_owned): large arrays become pending tensors.
    static DEFER: Cell<bool> = const { Cell::new(false) };
}

/// Makes [`permute`] leave large `single` arrays pending while it lives.
pub(crate) struct DeferGuard;

impl DeferGuard {
    pub(crate) fn new() -> DeferGuard {
        DEFER.set(true);
        DeferGuard
    }
}

impl Drop for DeferGuard {
    fn drop(&mut self) {
        DEFER.set(false);
    }
}

/// Moves the values of `net`'s pending tensors out of `file` (consumed), reordering each in its
/// own buffer where the order allows (see [`permute_col_major_owned`]): the decoded file and
/// the network never hold the same weights twice. An array two tensors need is copied once.
pub(crate) fn materialize(net: &mut Network, file: MatFile) -> Result<(), String> {
    let mut want: HashMap<usize, Vec<&mut Tensor>> = HashMap::new();
    for t in net.tensors_mut() {
        if let Some(p) = &t.pending {
            want.entry(p.key).or_default().push(t);
        }
    }
    if want.is_empty() {
        return Ok(());
    }
    let mut failed = None;
    let mut fill = |buf: F32Buf| {
        let Some(mut ts) = want.remove(&(buf.as_slice().as_ptr() as usize)) else {
            return;
        };
        let last = ts.pop();
        let mut set = |t: &mut Tensor, r: Result<(Vec<f32>, Vec<usize>), String>| match r {
            Ok((data, _)) => {
                t.data = data;
                t.pending = None;
            }
            Err(e) => failed = Some(e),
        };
        for t in ts {
            if let Some(p) = t.pending.clone() {
                set(t, permute_col_major(buf.as_slice(), &p.dims, &p.axes));
            }
        }
        if let Some(t) = last
            && let Some(p) = t.pending.clone()
        {
            let r = match buf {
                F32Buf::Owned(v) => permute_col_major_owned(v, &p.dims, &p.axes),
                F32Buf::Shared(s) => permute_col_major(s, &p.dims, &p.axes),
            };
            set(t, r);
        }
    };
    for v in file.variables {
        v.value.drain_f32(&mut fill);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if !want.is_empty() {
        return Err(format!(
            "{} weight arrays not found again in the file",
            want.len()
        ));
    }
    Ok(())
}

/// `convolution2dLayer` / MatConvNet `conv` weights: `[kh, kw, Cin, Cout]` → `[Cout, Cin, kh, kw]`
/// (PyTorch's `W.permute(3, 2, 0, 1)`; both apply cross-correlation).
pub fn conv2d_weights(
    a: &NumericArray,
    kh: usize,
    kw: usize,
    cin: usize,
    cout: usize,
) -> Result<Tensor, LayoutError> {
    permute(a, &[kh, kw, cin, cout], &[3, 2, 0, 1])
}

/// `groupedConvolution2dLayer` weights: `[kh, kw, Cin/G, F/G, G]` → `[G * F/G, Cin/G, kh, kw]`,
/// output channel `g * F/G + f` (groups are concatenated group-major, as MATLAB does).
pub fn grouped_conv2d_weights(
    a: &NumericArray,
    kh: usize,
    kw: usize,
    channels_per_group: usize,
    filters_per_group: usize,
    groups: usize,
) -> Result<Tensor, LayoutError> {
    let t = permute(
        a,
        &[kh, kw, channels_per_group, filters_per_group, groups],
        &[4, 3, 2, 0, 1],
    )?;
    Ok(t.reshape(vec![groups * filters_per_group, channels_per_group, kh, kw]))
}

/// `transposedConv2dLayer` weights: `[kh, kw, F, C]` (filters before channels) →
/// `[C, F, kh, kw]`, PyTorch's `ConvTranspose2d` layout `[Cin, Cout, kh, kw]`.
pub fn transposed_conv2d_weights(
    a: &NumericArray,
    kh: usize,
    kw: usize,
    filters: usize,
    channels: usize,
) -> Result<Tensor, LayoutError> {
    permute(a, &[kh, kw, filters, channels], &[3, 2, 0, 1])
}

/// Fully connected weights in canonical form, and the input they were stored for.
#[derive(Debug, Clone, PartialEq)]
pub struct FcWeights {
    /// `[K, C*H*W]`, columns in NCHW flatten order `c*H*W + h*W + w`.
    pub weights: Tensor,
    /// `[H, W, C]` when MATLAB stored a 4-D `[H, W, C, K]` array (the layer follows image data).
    pub input_hwc: Option<[usize; 3]>,
}

/// `fullyConnectedLayer` weights with `outputs` = K.
///
/// * 4-D `[H, W, C, K]` (after image data; also `[1, 1, C, K]` and `[N, 1, 1, K]`): MATLAB computes
///   `y_k = sum W[h,w,c,k] x[h,w,c]`; the columns are reordered so that a plain NCHW flatten of the
///   input lines up: `Wt[k, c*H*W + h*W + w] = W[h, w, c, k]`.
/// * 2-D `[K, N]` (after feature or sequence data): already `[K, N]`.
///
/// With K = 1 MATLAB stores `[H, W, C]`, and with C = K = 1 `[H, W]`; a 2-D array whose first
/// dimension is K is read as `[K, N]` (for K = 1 both readings give the same tensor).
pub fn fc_weights(a: &NumericArray, outputs: usize) -> Result<FcWeights, LayoutError> {
    let d = trimmed(&a.dims);
    let err = |expected: String| LayoutError {
        expected,
        found: found(a),
    };
    if d.len() == 2 && d[0] == outputs {
        let w = permute(a, &[d[0], d[1]], &[0, 1])?;
        return Ok(FcWeights {
            weights: w,
            input_hwc: None,
        });
    }
    let hwck = match d.len() {
        2 if outputs == 1 => [d[0], d[1], 1, 1],
        3 if outputs == 1 => [d[0], d[1], d[2], 1],
        4 if d[3] == outputs => [d[0], d[1], d[2], d[3]],
        _ => {
            return Err(err(format!(
                "{outputs}xN (after feature input) or HxWxCx{outputs} (after image input)"
            )));
        }
    };
    let [h, w, c, k] = hwck;
    let t = permute(a, &hwck, &[3, 2, 0, 1])?;
    Ok(FcWeights {
        weights: t.reshape(vec![k, c * h * w]),
        input_hwc: Some([h, w, c]),
    })
}

/// A per-channel or per-unit vector (biases `1x1xC`/`Cx1`, batch-norm statistics, scale, offset)
/// → `[n]`. Any stored shape with `n` elements and at most one non-singleton dimension.
pub fn vector(a: &NumericArray, n: usize) -> Result<Tensor, LayoutError> {
    let non_singleton = a.dims.iter().filter(|&&d| d != 1).count();
    if a.numel() != n || non_singleton > 1 {
        return Err(LayoutError {
            expected: format!("{n} elements (1x1x{n} or {n}x1)"),
            found: found(a),
        });
    }
    Ok(Tensor::new(vec![n], a.real.to_f32_vec()))
}

/// A 2-D matrix `[rows, cols]` (recurrent `InputWeights` `[G*H, C]`, `RecurrentWeights` `[G*H, H]`)
/// → the same matrix row-major.
pub fn matrix(a: &NumericArray, rows: usize, cols: usize) -> Result<Tensor, LayoutError> {
    permute(a, &[rows, cols], &[0, 1])
}

/// MatConvNet batch-norm moments `[C, 2]` = `[mean, sigma]` → `(mean [C], variance [C])`.
///
/// `vl_nnbnorm` computes `sigma = sqrt(var + epsilon)` while training and, given moments at test
/// time, applies `y = g (x - mu) / sigma + b` with no further epsilon
/// (`nnbnorm_forward_given_moments` takes none). So `variance = sigma^2` goes with `epsilon = 0`
/// in the converted layer: exactly MatConvNet's output, and no `sigma^2 - epsilon` that could turn
/// negative.
pub fn matconvnet_moments(
    a: &NumericArray,
    channels: usize,
) -> Result<(Tensor, Tensor), LayoutError> {
    if !layout_matches(&a.dims, &[channels, 2]) {
        return Err(LayoutError {
            expected: format!("{channels}x2 ([mean, sigma])"),
            found: found(a),
        });
    }
    let v = a.real.to_f32_vec();
    let mean = v[..channels].to_vec();
    let var = v[channels..].iter().map(|s| s * s).collect();
    Ok((
        Tensor::new(vec![channels], mean),
        Tensor::new(vec![channels], var),
    ))
}

/// An input normalization statistic (`AverageImage`/`Mean`, `StandardDeviation`, `Min`, `Max`)
/// for input data `[H, W, C]` → `[C, H, W]` (per element; MATLAB stores `[H, W]` for one channel),
/// `[C, 1, 1]` (per channel, stored `[1, 1, C]`) or `[1, 1, 1]` (a scalar). Feature and sequence
/// inputs pass `[1, 1, C]` and store `[C, 1]` or `[1, C]`, which give `[C, 1, 1]`.
///
/// An empty array (statistics of an untrained input layer) gives an empty tensor of shape `[0]`.
pub fn input_statistic(a: &NumericArray, hwc: [usize; 3]) -> Result<Tensor, LayoutError> {
    let [h, w, c] = hwc;
    if a.is_empty() {
        return Ok(Tensor::new(vec![0], vec![]));
    }
    if a.numel() == 1 {
        return Ok(Tensor::new(vec![1, 1, 1], a.real.to_f32_vec()));
    }
    if layout_matches(&a.dims, &[h, w, c]) {
        return permute(a, &[h, w, c], &[2, 0, 1]);
    }
    if layout_matches(&a.dims, &[1, 1, c]) {
        return Ok(Tensor::new(vec![c, 1, 1], a.real.to_f32_vec()));
    }
    if h == 1 && w == 1 && (dims_match(&a.dims, &[c, 1]) || dims_match(&a.dims, &[1, c])) {
        return Ok(Tensor::new(vec![c, 1, 1], a.real.to_f32_vec()));
    }
    Err(LayoutError {
        expected: format!("{h}x{w}x{c}, 1x1x{c} or a scalar"),
        found: found(a),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mat::value::NumData;

    /// A single-precision array whose column-major element `i` is `i`.
    fn iota(dims: &[usize]) -> NumericArray {
        let n = dims.iter().product::<usize>();
        NumericArray::new(
            dims.to_vec(),
            NumData::F32((0..n).map(|x| x as f32).collect()),
        )
    }

    /// Column-major linear index of a MATLAB subscript (0-based).
    fn cm(dims: &[usize], sub: &[usize]) -> f32 {
        let mut idx = 0;
        let mut stride = 1;
        for (d, s) in dims.iter().zip(sub) {
            idx += s * stride;
            stride *= d;
        }
        idx as f32
    }

    #[test]
    fn conv_weights_are_permuted_to_cout_cin_kh_kw() {
        let dims = [3, 2, 4, 5]; // kh=3, kw=2, Cin=4, Cout=5
        let t = conv2d_weights(&iota(&dims), 3, 2, 4, 5).unwrap();
        assert_eq!(t.shape, vec![5, 4, 3, 2]);
        for o in 0..5 {
            for i in 0..4 {
                for y in 0..3 {
                    for x in 0..2 {
                        assert_eq!(
                            t.data[((o * 4 + i) * 3 + y) * 2 + x],
                            cm(&dims, &[y, x, i, o])
                        );
                    }
                }
            }
        }
        // Wrong declared sizes are reported with both shapes.
        let e = conv2d_weights(&iota(&dims), 3, 3, 4, 5).unwrap_err();
        assert_eq!(e.expected, "3x3x4x5");
        assert_eq!(e.found, "single 3x2x4x5");
    }

    #[test]
    fn conv_weights_restore_dropped_trailing_singletons() {
        // DnCNN's last conv: one filter, stored [3,3,64].
        let t = conv2d_weights(&iota(&[3, 3, 64]), 3, 3, 64, 1).unwrap();
        assert_eq!(t.shape, vec![1, 64, 3, 3]);
        assert_eq!(t.data[5 * 9 + 2 * 3 + 1], cm(&[3, 3, 64], &[2, 1, 5]));
        // A 1x1 conv with one input channel and one filter: stored [1,1].
        let t = conv2d_weights(&iota(&[1, 1]), 1, 1, 1, 1).unwrap();
        assert_eq!(t.shape, vec![1, 1, 1, 1]);
    }

    #[test]
    fn grouped_conv_weights_are_group_major() {
        let dims = [2, 2, 3, 4, 2]; // kh, kw, Cin/G=3, F/G=4, G=2
        let t = grouped_conv2d_weights(&iota(&dims), 2, 2, 3, 4, 2).unwrap();
        assert_eq!(t.shape, vec![8, 3, 2, 2]);
        for g in 0..2 {
            for f in 0..4 {
                for c in 0..3 {
                    for y in 0..2 {
                        for x in 0..2 {
                            let out = g * 4 + f;
                            assert_eq!(
                                t.data[((out * 3 + c) * 2 + y) * 2 + x],
                                cm(&dims, &[y, x, c, f, g])
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transposed_conv_weights_put_channels_first() {
        let dims = [3, 3, 5, 2]; // kh, kw, F=5 (outputs), C=2 (inputs)
        let t = transposed_conv2d_weights(&iota(&dims), 3, 3, 5, 2).unwrap();
        assert_eq!(t.shape, vec![2, 5, 3, 3]);
        assert_eq!(t.data[((5 + 3) * 3 + 2) * 3 + 1], cm(&dims, &[2, 1, 3, 1]));
    }

    #[test]
    fn fc_4d_weights_follow_nchw_flatten_order() {
        let dims = [3, 2, 4, 5]; // H=3, W=2, C=4, K=5
        let fc = fc_weights(&iota(&dims), 5).unwrap();
        assert_eq!(fc.input_hwc, Some([3, 2, 4]));
        assert_eq!(fc.weights.shape, vec![5, 24]);
        for k in 0..5 {
            for c in 0..4 {
                for h in 0..3 {
                    for w in 0..2 {
                        let col = c * 3 * 2 + h * 2 + w;
                        assert_eq!(fc.weights.data[k * 24 + col], cm(&dims, &[h, w, c, k]));
                    }
                }
            }
        }
    }

    #[test]
    fn fc_2d_weights_are_kept() {
        let fc = fc_weights(&iota(&[4, 6]), 4).unwrap();
        assert_eq!(fc.input_hwc, None);
        assert_eq!(fc.weights.shape, vec![4, 6]);
        assert_eq!(fc.weights.data[6 + 2], cm(&[4, 6], &[1, 2]));
        // Double weights (hand-built nets) become single.
        let a = NumericArray::new(vec![2, 1], NumData::F64(vec![0.5, -1.25]));
        assert_eq!(fc_weights(&a, 2).unwrap().weights.data, vec![0.5f32, -1.25]);
        assert!(fc_weights(&iota(&[4, 6]), 3).is_err());
    }

    #[test]
    fn fc_weights_after_1x1xc_and_nx1x1_inputs() {
        // [1,1,C,K]: after a 1x1xC activation.
        let fc = fc_weights(&iota(&[1, 1, 6, 3]), 3).unwrap();
        assert_eq!(fc.input_hwc, Some([1, 1, 6]));
        assert_eq!(fc.weights.shape, vec![3, 6]);
        assert_eq!(fc.weights.data[6 + 4], cm(&[1, 1, 6, 3], &[0, 0, 4, 1]));
        // [N,1,1,K]: after an [N 1 1] image input (mimo-detect).
        let fc = fc_weights(&iota(&[40, 1, 1, 8]), 8).unwrap();
        assert_eq!(fc.input_hwc, Some([40, 1, 1]));
        assert_eq!(
            fc.weights.data[2 * 40 + 7],
            cm(&[40, 1, 1, 8], &[7, 0, 0, 2])
        );
        // K = 1 drops the last dimension.
        let fc = fc_weights(&iota(&[2, 3, 4]), 1).unwrap();
        assert_eq!(fc.input_hwc, Some([2, 3, 4]));
        assert_eq!(
            fc.weights.data[3 * 6 + 1], /* c*H*W + h*W + w, h = 0 */
            cm(&[2, 3, 4], &[0, 1, 3])
        );
    }

    #[test]
    fn vectors_accept_any_orientation() {
        assert_eq!(vector(&iota(&[1, 1, 4]), 4).unwrap().shape, vec![4]);
        assert_eq!(
            vector(&iota(&[4, 1]), 4).unwrap().data,
            vec![0.0, 1.0, 2.0, 3.0]
        );
        assert!(vector(&iota(&[2, 2]), 4).is_err());
        assert!(vector(&iota(&[1, 1, 5]), 4).is_err());
    }

    #[test]
    fn recurrent_matrices_are_row_major() {
        let t = matrix(&iota(&[8, 3]), 8, 3).unwrap();
        assert_eq!(t.shape, vec![8, 3]);
        assert_eq!(t.data[5 * 3 + 2], cm(&[8, 3], &[5, 2]));
    }

    #[test]
    fn matconvnet_moments_give_variance() {
        // [mean; sigma] columns for 3 channels.
        let a = NumericArray::new(vec![3, 2], NumData::F32(vec![1.0, 2.0, 3.0, 0.5, 2.0, 3.0]));
        let (m, v) = matconvnet_moments(&a, 3).unwrap();
        assert_eq!(m.data, vec![1.0, 2.0, 3.0]);
        assert_eq!(v.data, vec![0.25, 4.0, 9.0]);
        assert!(matconvnet_moments(&a, 2).is_err());
    }

    #[test]
    fn layout_matches_squeezed_and_merged_forms() {
        assert!(layout_matches(&[11, 1, 1, 16], &[11, 1, 1, 2, 8]));
        assert!(layout_matches(&[11, 1, 1, 2, 8], &[11, 1, 1, 2, 8]));
        assert!(layout_matches(&[11, 16], &[11, 1, 1, 2, 8]));
        assert!(layout_matches(&[3, 3, 64], &[3, 3, 64, 1]));
        assert!(layout_matches(&[3, 3, 64, 1, 1], &[3, 3, 64]));
        // Singletons anywhere do not change the order.
        assert!(layout_matches(&[1, 11, 1, 16], &[11, 1, 1, 2, 8]));
        // Same count, but not the same order: a transposition is not a merge.
        assert!(!layout_matches(&[16, 11], &[11, 1, 1, 2, 8]));
        assert!(!layout_matches(&[2, 3, 4], &[3, 2, 4]));
        assert!(!layout_matches(&[4, 6], &[2, 12]));
        // A different element count never matches.
        assert!(!layout_matches(&[11, 1, 1, 15], &[11, 1, 1, 2, 8]));
        assert!(!layout_matches(&[0, 4], &[4]));
        assert!(layout_matches(&[0, 0], &[0, 0]));
    }

    /// Every rule with a fixed expected shape gives the same tensor for the full form and for
    /// each squeezed or merged form MATLAB can write, and a typed error for a wrong count.
    #[test]
    fn every_rule_accepts_squeezed_and_merged_forms() {
        let same = |a: Tensor, b: Tensor| {
            assert_eq!(a.shape, b.shape);
            assert_eq!(a.data, b.data);
        };
        // Convolution: one filter drops the last dim; a 1xk filter over one channel merges.
        let full = conv2d_weights(&iota(&[3, 3, 64, 1]), 3, 3, 64, 1).unwrap();
        same(
            full.clone(),
            conv2d_weights(&iota(&[3, 3, 64]), 3, 3, 64, 1).unwrap(),
        );
        same(
            full,
            conv2d_weights(&iota(&[3, 3 * 64]), 3, 3, 64, 1).unwrap(),
        );
        let full = conv2d_weights(&iota(&[1, 5, 1, 4]), 1, 5, 1, 4).unwrap();
        same(
            full.clone(),
            conv2d_weights(&iota(&[1, 5, 4]), 1, 5, 1, 4).unwrap(),
        );
        same(full, conv2d_weights(&iota(&[1, 20]), 1, 5, 1, 4).unwrap());
        let e = conv2d_weights(&iota(&[3, 3, 63]), 3, 3, 64, 1).unwrap_err();
        assert_eq!(
            (e.expected.as_str(), e.found.as_str()),
            ("3x3x64x1", "single 3x3x63")
        );
        // Grouped convolution: tomerroditi-eegnet's channel-wise conv, [11,1,1,2,8] stored
        // [11,1,1,16]; also squeezed to [11,16], and one group ([3,3,2,4,1] stored [3,3,2,4]).
        let full = grouped_conv2d_weights(&iota(&[11, 1, 1, 2, 8]), 11, 1, 1, 2, 8).unwrap();
        same(
            full.clone(),
            grouped_conv2d_weights(&iota(&[11, 1, 1, 16]), 11, 1, 1, 2, 8).unwrap(),
        );
        same(
            full,
            grouped_conv2d_weights(&iota(&[11, 16]), 11, 1, 1, 2, 8).unwrap(),
        );
        let full = grouped_conv2d_weights(&iota(&[3, 3, 2, 4, 1]), 3, 3, 2, 4, 1).unwrap();
        same(
            full,
            grouped_conv2d_weights(&iota(&[3, 3, 2, 4]), 3, 3, 2, 4, 1).unwrap(),
        );
        let e = grouped_conv2d_weights(&iota(&[11, 1, 1, 15]), 11, 1, 1, 2, 8).unwrap_err();
        assert_eq!(e.expected, "11x1x1x2x8");
        // Transposed convolution: one input channel drops the last dim.
        let full = transposed_conv2d_weights(&iota(&[3, 3, 5, 1]), 3, 3, 5, 1).unwrap();
        same(
            full.clone(),
            transposed_conv2d_weights(&iota(&[3, 3, 5]), 3, 3, 5, 1).unwrap(),
        );
        same(
            full,
            transposed_conv2d_weights(&iota(&[9, 5]), 3, 3, 5, 1).unwrap(),
        );
        assert!(transposed_conv2d_weights(&iota(&[3, 3, 4]), 3, 3, 5, 1).is_err());
        // Matrices: one column, one row.
        same(
            matrix(&iota(&[8, 1]), 8, 1).unwrap(),
            matrix(&iota(&[8]), 8, 1).unwrap(),
        );
        same(
            matrix(&iota(&[1, 8]), 1, 8).unwrap(),
            matrix(&iota(&[1, 1, 8]), 1, 8).unwrap(),
        );
        assert!(matrix(&iota(&[8, 2]), 8, 3).is_err());
        // Vectors: any orientation.
        same(
            vector(&iota(&[1, 1, 4]), 4).unwrap(),
            vector(&iota(&[1, 4]), 4).unwrap(),
        );
        same(
            vector(&iota(&[4]), 4).unwrap(),
            vector(&iota(&[4, 1, 1, 1]), 4).unwrap(),
        );
        // MatConvNet moments of one channel: [1, 2].
        let a = NumericArray::new(vec![1, 2], NumData::F32(vec![1.0, 2.0]));
        let b = NumericArray::new(vec![1, 1, 2], NumData::F32(vec![1.0, 2.0]));
        assert_eq!(matconvnet_moments(&a, 1), matconvnet_moments(&b, 1));
        // Input statistics: one channel [H, W], a merged [H, W*C] and a [1, 1, C] per channel.
        let full = input_statistic(&iota(&[4, 5, 1]), [4, 5, 1]).unwrap();
        same(full, input_statistic(&iota(&[4, 5]), [4, 5, 1]).unwrap());
        let full = input_statistic(&iota(&[4, 5, 3]), [4, 5, 3]).unwrap();
        same(full, input_statistic(&iota(&[4, 15]), [4, 5, 3]).unwrap());
        same(
            input_statistic(&iota(&[1, 1, 3]), [4, 5, 3]).unwrap(),
            input_statistic(&iota(&[1, 3]), [4, 5, 3]).unwrap(),
        );
        assert!(input_statistic(&iota(&[4, 14]), [4, 5, 3]).is_err());
        // Fully connected: 4-D with K = 1 squeezed, and C = K = 1.
        let full = fc_weights(&iota(&[2, 3, 4, 1]), 1).unwrap();
        assert_eq!(full, fc_weights(&iota(&[2, 3, 4]), 1).unwrap());
        let full = fc_weights(&iota(&[2, 3, 1, 1]), 1).unwrap();
        assert_eq!(full.weights.shape, vec![1, 6]);
    }

    #[test]
    fn input_statistics_full_per_channel_scalar() {
        // Full [H, W, C] → [C, H, W].
        let dims = [2, 3, 3];
        let t = input_statistic(&iota(&dims), [2, 3, 3]).unwrap();
        assert_eq!(t.shape, vec![3, 2, 3]);
        assert_eq!(t.data[(2 * 2 + 1) * 3 + 2], cm(&dims, &[1, 2, 2]));
        // One channel stored [H, W].
        let t = input_statistic(&iota(&[28, 28]), [28, 28, 1]).unwrap();
        assert_eq!(t.shape, vec![1, 28, 28]);
        assert_eq!(t.data[28 + 3], cm(&[28, 28], &[1, 3]));
        // [N, 1] for an [N 1 1] image input (mimo-detect).
        let t = input_statistic(&iota(&[40, 1]), [40, 1, 1]).unwrap();
        assert_eq!(t.shape, vec![1, 40, 1]);
        // Per channel [1, 1, C] → [C, 1, 1].
        let t = input_statistic(&iota(&[1, 1, 3]), [227, 227, 3]).unwrap();
        assert_eq!(t.shape, vec![3, 1, 1]);
        // Scalar → [1, 1, 1].
        let t = input_statistic(&iota(&[1, 1]), [28, 28, 1]).unwrap();
        assert_eq!(t.shape, vec![1, 1, 1]);
        // Features [C, 1] → [C, 1, 1].
        let t = input_statistic(&iota(&[10, 1]), [1, 1, 10]).unwrap();
        assert_eq!(t.shape, vec![10, 1, 1]);
        // Untrained: empty.
        let t = input_statistic(&iota(&[0, 0]), [28, 28, 1]).unwrap();
        assert_eq!(t.numel(), 0);
        assert!(input_statistic(&iota(&[5, 5]), [28, 28, 1]).is_err());
    }
}

// 1-D layers (convolution1dLayer, transposedConv1dLayer).

/// `convolution1dLayer` weights: `[K, Cin, Cout]` → `[Cout, Cin, K]` (PyTorch's `Conv1d`
/// layout; MATLAB and PyTorch both apply cross-correlation along time).
pub fn conv1d_weights(
    a: &NumericArray,
    k: usize,
    cin: usize,
    cout: usize,
) -> Result<Tensor, LayoutError> {
    permute(a, &[k, cin, cout], &[2, 1, 0])
}

/// `transposedConv1dLayer` weights: `[K, F, C]` (filters before channels, as in 2-D) →
/// `[C, F, K]` (PyTorch's `ConvTranspose1d` layout `[Cin, Cout, K]`).
pub fn transposed_conv1d_weights(
    a: &NumericArray,
    k: usize,
    filters: usize,
    channels: usize,
) -> Result<Tensor, LayoutError> {
    permute(a, &[k, filters, channels], &[2, 1, 0])
}

#[cfg(test)]
mod seq1d_tests {
    use super::*;
    use crate::mat::value::NumData;

    /// Values 0, 1, 2, ... in column-major order (the value is the linear MATLAB index).
    fn iota(dims: &[usize]) -> NumericArray {
        let n = dims.iter().product::<usize>();
        NumericArray::new(
            dims.to_vec(),
            NumData::F32((0..n).map(|i| i as f32).collect()),
        )
    }

    fn cm(dims: &[usize], idx: &[usize]) -> f32 {
        let mut k = 0;
        let mut stride = 1;
        for (d, i) in dims.iter().zip(idx) {
            k += i * stride;
            stride *= d;
        }
        k as f32
    }

    #[test]
    fn conv1d_weights_are_cout_cin_k() {
        let dims = [5, 3, 4]; // K, Cin, Cout
        let t = conv1d_weights(&iota(&dims), 5, 3, 4).unwrap();
        assert_eq!(t.shape, vec![4, 3, 5]);
        for o in 0..4 {
            for c in 0..3 {
                for k in 0..5 {
                    assert_eq!(t.data[(o * 3 + c) * 5 + k], cm(&dims, &[k, c, o]));
                }
            }
        }
        // One filter: MATLAB stores [K, Cin] (trailing singleton dropped).
        let t = conv1d_weights(&iota(&[5, 3]), 5, 3, 1).unwrap();
        assert_eq!(t.shape, vec![1, 3, 5]);
        assert!(conv1d_weights(&iota(&[5, 3, 4]), 5, 4, 3).is_err());
    }

    #[test]
    fn transposed_conv1d_weights_put_channels_first() {
        let dims = [4, 2, 3]; // K, F (outputs), C (inputs)
        let t = transposed_conv1d_weights(&iota(&dims), 4, 2, 3).unwrap();
        assert_eq!(t.shape, vec![3, 2, 4]);
        for c in 0..3 {
            for f in 0..2 {
                for k in 0..4 {
                    assert_eq!(t.data[(c * 2 + f) * 4 + k], cm(&dims, &[k, f, c]));
                }
            }
        }
    }
}

/// A projector of a projected recurrent layer (`InputProjector` `[InputSize, InputProjectorSize]`,
/// `OutputProjector` `[NumHiddenUnits, OutputProjectorSize]`) → row-major `[rows, cols]`, so
/// `Q[i][k]` is MATLAB's `Q(i+1, k+1)`.
pub fn projector(a: &NumericArray, rows: usize, cols: usize) -> Result<Tensor, LayoutError> {
    if !dims_match(&a.dims, &[rows, cols]) {
        return Err(LayoutError {
            expected: format!("{rows}x{cols} (rows x projector size)"),
            found: found(a),
        });
    }
    matrix(a, rows, cols)
}

#[cfg(test)]
mod projector_tests {
    use super::*;
    use crate::mat::value::NumData;

    #[test]
    fn projector_is_row_major_of_column_major() {
        // MATLAB [3x2] column-major: Q(1,1)=0, Q(2,1)=1, Q(3,1)=2, Q(1,2)=3, ...
        let a = NumericArray::new(vec![3, 2], NumData::F32(vec![0., 1., 2., 3., 4., 5.]));
        let t = projector(&a, 3, 2).unwrap();
        assert_eq!(t.shape, vec![3, 2]);
        assert_eq!(t.data, vec![0., 3., 1., 4., 2., 5.]);
        assert!(projector(&a, 2, 3).is_err());
    }
}
