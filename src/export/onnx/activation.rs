//! Activations and softmax.

use super::graph::{Ctx, Graph, a_float, a_int, a_str};
use crate::export::ExportError;
use crate::net::layer::Activation;

pub(super) fn activation(g: &mut Graph, cx: &Ctx, a: Activation) -> Result<(), ExportError> {
    let x = cx.arg(g, 0, false);
    let (opset, name, x, out) = (cx.plan.opts.opset, cx.name, x.as_str(), cx.out.as_str());
    match a {
        Activation::Relu => g.node("Relu", name, &[x], out, vec![]),
        Activation::LeakyRelu { scale } => {
            g.node("LeakyRelu", name, &[x], out, vec![a_float("alpha", scale)])
        }
        Activation::ClippedRelu { ceiling } => {
            let lo = g.scalar(0.0);
            let hi = g.scalar(ceiling as f32);
            g.node("Clip", name, &[x, &lo, &hi], out, vec![])
        }
        Activation::Elu { alpha } => g.node("Elu", name, &[x], out, vec![a_float("alpha", alpha)]),
        Activation::Tanh => g.node("Tanh", name, &[x], out, vec![]),
        Activation::Sigmoid => g.node("Sigmoid", name, &[x], out, vec![]),
        Activation::Swish => {
            let s = format!("{name}/sigmoid");
            g.node("Sigmoid", &s, &[x], &s, vec![]);
            g.node("Mul", name, &[x, &s], out, vec![]);
        }
        Activation::Gelu { tanh } if opset >= 20 => g.node(
            "Gelu",
            name,
            &[x],
            out,
            vec![a_str("approximate", if tanh { "tanh" } else { "none" })],
        ),
        Activation::Gelu { tanh: false } => {
            // 0.5 x (1 + erf(x / sqrt(2)))
            let sqrt2 = g.scalar(std::f32::consts::SQRT_2);
            let one = g.scalar(1.0);
            let half = g.scalar(0.5);
            let t = |s: &str| format!("{name}/{s}");
            g.node("Div", &t("div"), &[x, &sqrt2], &t("div"), vec![]);
            g.node("Erf", &t("erf"), &[&t("div")], &t("erf"), vec![]);
            g.node("Add", &t("add"), &[&t("erf"), &one], &t("add"), vec![]);
            g.node("Mul", &t("mul"), &[x, &t("add")], &t("mul"), vec![]);
            g.node("Mul", name, &[&t("mul"), &half], out, vec![]);
        }
        Activation::Gelu { tanh: true } => {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            let c = g.scalar((2.0 / std::f64::consts::PI).sqrt() as f32);
            let k = g.scalar(0.044715);
            let one = g.scalar(1.0);
            let half = g.scalar(0.5);
            let t = |s: &str| format!("{name}/{s}");
            g.node("Mul", &t("x2"), &[x, x], &t("x2"), vec![]);
            g.node("Mul", &t("x3"), &[&t("x2"), x], &t("x3"), vec![]);
            g.node("Mul", &t("kx3"), &[&t("x3"), &k], &t("kx3"), vec![]);
            g.node("Add", &t("inner"), &[x, &t("kx3")], &t("inner"), vec![]);
            g.node(
                "Mul",
                &t("scaled"),
                &[&t("inner"), &c],
                &t("scaled"),
                vec![],
            );
            g.node("Tanh", &t("tanh"), &[&t("scaled")], &t("tanh"), vec![]);
            g.node("Add", &t("add"), &[&t("tanh"), &one], &t("add"), vec![]);
            g.node("Mul", &t("mul"), &[x, &t("add")], &t("mul"), vec![]);
            g.node("Mul", name, &[&t("mul"), &half], out, vec![]);
        }
    }
    Ok(())
}

pub(super) fn softmax(g: &mut Graph, cx: &Ctx) -> Result<(), ExportError> {
    let (name, out) = (cx.name, cx.out.as_str());
    let x = cx.arg(g, 0, false);
    g.node("Softmax", name, &[&x], out, vec![a_int("axis", 1)]);
    Ok(())
}
