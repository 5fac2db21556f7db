//! Input and output layers in `model.rs`.

use super::{Cx, Stmt};

/// imageInputLayer / featureInputLayer: the normalization field, or nothing (the value is `x`).
pub(super) fn input(cx: &mut Cx) -> Stmt {
    let Some(nc) = &cx.plan.norm else {
        return Stmt::Note(format!(
            "'{}': input (normalization not included: apply it to x first)",
            cx.l.name
        ));
    };
    let r = nc.shape.len();
    let shape = format!(
        "[{}]",
        nc.shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    cx.import("use burn::module::Param;");
    cx.field(
        &format!("InputNormalization<{r}>"),
        format!(
            "InputNormalization {{ shift: Param::from_tensor(Tensor::zeros({shape}, device)), scale: Param::from_tensor(Tensor::ones({shape}, device)) }}"
        ),
    );
    let x = cx.take_x();
    Stmt::Let(format!("self.{}.forward({x})", cx.id))
}

/// classificationLayer / regressionLayer: nothing to compute.
pub(super) fn output(cx: &Cx, cls: &str) -> Stmt {
    Stmt::Note(format!(
        "'{}' ({cls}): training loss only, nothing to compute",
        cx.l.name
    ))
}
