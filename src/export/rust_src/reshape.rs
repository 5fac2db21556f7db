//! Flatten and dropout in `model.rs`.

use super::{Cx, Stmt, f64_lit};

pub(super) fn flatten(cx: &mut Cx) -> Stmt {
    if !cx.helpers.contains("fn matlab_flatten") {
        cx.helpers.push_str(
            "\n/// flattenLayer: MATLAB flattens H x W x C column-major (h fastest), i.e. NCWH row-major.\nfn matlab_flatten(x: Tensor<4>) -> Tensor<2> {\n    let [n, c, h, w] = x.dims();\n    x.swap_dims(2, 3).reshape([n, c * h * w])\n}\n",
        );
    }
    Stmt::Let(format!("matlab_flatten({})", cx.arg(0, true)))
}

pub(super) fn dropout(cx: &mut Cx, probability: f64) -> Stmt {
    cx.import("use burn::nn::{Dropout, DropoutConfig};");
    cx.field(
        "Dropout",
        format!("DropoutConfig::new({}).init()", f64_lit(probability)),
    );
    cx.forward(false)
}
