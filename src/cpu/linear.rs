//! Fully connected layers (Burn's `Linear`) on plain Flex tensors, reading the weights in place.

use super::matmul::{Matrix, matmul_t};
use super::{Values, is_plain_flex};
use burn::prelude::*;

/// A fully connected layer (Burn's `Linear`: `y[N, out] = x[N, in] W + bias`, `W` `[in,
/// out]`) on plain Flex tensors by [`matmul_t`], reading the weights in place where each
/// output's weights are contiguous: the import keeps MATLAB's `[out, in]` rows and gives Burn a
/// transposed view of them. Measured on this layout (2 threads): VGG-16's fc6 (25088 -> 4096)
/// at batch 1 27-36 ms with Burn's matmul, 13.5-14 here; MNIST's 3136 -> 10 at batch 32 0.054
/// -> 0.020 ms. `None` elsewhere (other backends, autodiff, weights stored `[in, out]` as
/// training leaves them, where gemm on this layout was slower than Burn's op at batch 1, and
/// batches over fewer than 256 inputs): Burn's op then runs.
pub fn linear(x: &Tensor<2>, weight: &Tensor<2>, bias: Option<&Tensor<1>>) -> Option<Tensor<2>> {
    let [n, kk] = x.dims();
    let [wk, cout] = weight.dims();
    // (Batches over few inputs, the size of a sequence network's layers, stay with Burn: 176
    // rows of 100 -> 4 took 8 µs there and 26-36 here, 1000 rows of 100 -> 5 0.04 ms and 0.08.)
    if wk != kk
        || (n > 1 && kk < 256)
        || !is_plain_flex(x)
        || !is_plain_flex(weight)
        || bias.is_some_and(|b| b.dims() != [cout])
    {
        return None;
    }
    let w = weight
        .clone()
        .try_into_primitive::<burn::backend::Flex>()
        .ok()
        .filter(|t| t.dtype() == burn::tensor::DType::F32)?;
    let layout = w.layout();
    // Element (i, o) of W, i.e. (o, i) of the matrix W^T that `matmul_t` takes, lies at
    // start + i + o * s1: rows of W^T, `s1` apart.
    let s1 = match layout.strides() {
        &[1, s1] => match usize::try_from(s1) {
            Ok(s1) if s1 >= kk => s1,
            _ => return None,
        },
        _ => return None,
    };
    let storage = w.storage::<f32>().get(layout.start_offset()..)?;
    if cout > 0 && kk > 0 && (cout - 1) * s1 + kk > storage.len() {
        return None;
    }
    let wt = Matrix {
        data: storage,
        rows: cout,
        cols: kk,
        row_stride: s1,
        col_stride: 1,
    };
    let bias = bias.map(|b| Values::of(b.clone()));
    let device = x.device();
    let data = Values::of(x.clone());
    let mut out = vec![0f32; n * cout];
    matmul_t(&data, &mut out, wt, bias.as_deref(), false, n);
    Some(Tensor::from_data(TensorData::new(out, [n, cout]), &device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_util::{Rng, max_diff};
    /// A fully connected layer stored as the import stores it (`[out, in]` rows seen through a
    /// transposed view) equals Burn's matmul plus bias: batch 1 (the AVX-512 gemv, with 105 and
    /// 50 inputs for its tails), runs of images (10 outputs at batch 32: fewer output runs than
    /// threads), many outputs, one input, one output; weights stored `[in, out]`, mismatched
    /// shapes and batches over few inputs are left to Burn (`None`).
    #[test]
    fn linear_equals_burns() {
        let dev = Device::flex();
        let mut rng = Rng::new(8);
        let mut mk = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
                .collect()
        };
        for (n, kk, cout) in [
            (1, 105, 37),
            (1, 50, 10),
            (3, 260, 17),
            (32, 3136, 10),
            (1, 1, 5),
            (5, 300, 1),
            (2, 300, 200),
        ] {
            let rows = Tensor::<2>::from_data(TensorData::new(mk(cout * kk), [cout, kk]), &dev);
            let w = rows.transpose();
            let x = Tensor::<2>::from_data(TensorData::new(mk(n * kk), [n, kk]), &dev);
            let b = Tensor::<1>::from_data(TensorData::new(mk(cout), [cout]), &dev);
            for bias in [None, Some(&b)] {
                let mut want = x.clone().matmul(w.clone());
                if let Some(b) = bias {
                    want = want + b.clone().unsqueeze_dim(0);
                }
                let want: Vec<f32> = want.into_data().try_to_vec().expect("f32");
                let got = linear(&x, &w, bias).expect("rows: our kernel");
                assert_eq!(got.dims(), [n, cout]);
                let got: Vec<f32> = got.into_data().try_to_vec().expect("f32");
                let err = max_diff(&got, &want);
                assert!(err < 1e-4, "{n} {kk} {cout}: {err}");
            }
            // Stored [in, out] (contiguous): Burn's op.
            let contiguous = Tensor::<2>::from_data(w.clone().into_data(), &dev);
            if kk > 1 && cout > 1 {
                assert!(linear(&x, &contiguous, Some(&b)).is_none());
            }
            // Shapes that disagree: Burn's op (which reports them).
            let wider =
                Tensor::<2>::from_data(TensorData::new(mk(cout * (kk + 1)), [cout, kk + 1]), &dev);
            assert!(linear(&x, &wider.transpose(), Some(&b)).is_none());
        }
        // A batch over few inputs (a sequence network's per-step layer): Burn's op.
        let w = Tensor::<2>::from_data(TensorData::new(mk(5 * 100), [5, 100]), &dev).transpose();
        let x = Tensor::<2>::from_data(TensorData::new(mk(7 * 100), [7, 100]), &dev);
        assert!(linear(&x, &w, None).is_none());
    }
}
