/// MATLAB's yolov2TransformLayer: channel `k * anchors + a` holds prediction k of anchor a (IoU,
/// x, y, w, h, then the class scores): sigmoid on IoU, x, y; exp on w, h; softmax over classes.
fn yolov2_transform(x: Tensor<4>, anchors: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let k = c / anchors;
    let t = x.reshape([n, k, anchors, h, w]);
    let iou_xy = activation::sigmoid(t.clone().narrow(1, 0, 3));
    let wh = t.clone().narrow(1, 3, 2).exp();
    let classes = activation::softmax(t.narrow(1, 5, k - 5), 1);
    Tensor::cat(vec![iou_xy, wh, classes], 1).reshape([n, c, h, w])
}
