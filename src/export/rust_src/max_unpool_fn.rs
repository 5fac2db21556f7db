/// MATLAB's max unpooling: each value of `x` goes where the maximum of its window was in the max
/// pooling layer's input `pooled_input` (the pooling recomputed with indices), zeros elsewhere.
/// `pads`: `[(top, bottom), (left, right)]`.
fn max_unpool(
    x: Tensor<4>,
    pooled_input: Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [(usize, usize); 2],
) -> Tensor<4> {
    let [_, _, h, w] = pooled_input.dims();
    let [n, c, ph, pw] = x.dims();
    let (_, indices) = burn::tensor::module::max_pool2d_with_indices(
        pooled_input,
        burn::tensor::ops::MaxPoolOptions::new(kernel)
            .with_stride(stride)
            .with_padding_pairs(pads),
    );
    Tensor::<3>::zeros([n, c, h * w], &x.device())
        .scatter(
            2,
            indices.reshape([n, c, ph * pw]),
            x.reshape([n, c, ph * pw]),
            burn::tensor::IndexingUpdateOp::Add,
        )
        .reshape([n, c, h, w])
}
