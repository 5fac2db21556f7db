//! LSTM, BiLSTM, GRU.

use super::graph::{Ctx, Graph, a_int, a_ints, a_str, attr};
use crate::export::{ExportError, RecurrentWeights, multiplied_out};
use crate::net::layer::{LayerKind, Projected, Recurrent};
use onnx_ir::AttributeType;

/// ONNX's name of a MATLAB gate or state activation. ONNX's HardSigmoid defaults
/// (alpha 0.2, beta 0.5) are MATLAB's hard sigmoid, `max(0, min(1, 0.2 x + 0.5))`.
fn rnn_activation(name: &str) -> &'static str {
    match name {
        "hard-sigmoid" => "HardSigmoid",
        "softsign" => "Softsign",
        "tanh" => "Tanh",
        _ => "Sigmoid",
    }
}

/// An LSTM/BiLSTM/GRU layer on `[N, C, T]` → `[N, H*D, T]` ('sequence') or `[N, H*D]` ('last').
pub(super) fn recurrent(g: &mut Graph, cx: &Ctx, r: &Recurrent) -> Result<(), ExportError> {
    let x = cx.arg(g, 0, false);
    let (l, x, out) = (cx.l, x.as_str(), cx.out.as_str());
    let name = l.name.as_str();
    let lstm = matches!(l.kind, LayerKind::Lstm(_) | LayerKind::LstmProjected(_));
    let gates = if lstm { 4 } else { 3 };
    let rw = RecurrentWeights::new(l, r, gates)?;
    let (h, c, dirs) = (rw.hidden, rw.input_size, rw.directions());
    // ONNX gate orders: LSTM (i, o, f, c) from MATLAB's (i, f, g, o); GRU (z, r, h) from
    // MATLAB's (r, z, h).
    let order: &[usize] = if lstm { &[0, 3, 1, 2] } else { &[1, 0, 2] };
    let mut w = Vec::new();
    let mut rr = Vec::new();
    let mut b = Vec::new();
    for d in 0..dirs {
        w.extend(rw.reorder(&rw.w[d], c, order));
        rr.extend(rw.reorder(&rw.r[d], h, order));
        b.extend(rw.reorder(&rw.wb[d], 1, order));
        b.extend(rw.reorder(&rw.rb[d], 1, order));
    }
    let gh = gates * h;
    let t = |s: &str| format!("{name}/{s}");
    let w = g.f32_init(&format!("{name}.W"), &[dirs, gh, c], &w);
    let rr = g.f32_init(&format!("{name}.R"), &[dirs, gh, h], &rr);
    let b = g.f32_init(&format!("{name}.B"), &[dirs, 2 * gh], &b);
    g.node(
        "Transpose",
        &t("to_tnc"),
        &[x],
        &t("tnc"),
        vec![a_ints("perm", &[2, 0, 1])],
    );
    let mut ins: Vec<String> = vec![t("tnc"), w, rr, b];
    // Stored initial states, broadcast over the batch: [D, 1, H] expanded to [D, N, H].
    let h0: Vec<f32> = rw.h0.concat();
    let c0: Vec<f32> = rw.c0.concat();
    let nonzero = h0.iter().any(|&v| v != 0.0) || (lstm && c0.iter().any(|&v| v != 0.0));
    if nonzero {
        g.node("Shape", &t("shape"), &[&t("tnc")], &t("shape"), vec![]);
        let idx = g.i64_init(&format!("{name}.batch_index"), &[1], &[1]);
        g.node(
            "Gather",
            &t("batch"),
            &[&t("shape"), &idx],
            &t("batch"),
            vec![a_int("axis", 0)],
        );
        let dd = g.i64_init(&format!("{name}.directions"), &[1], &[dirs as i64]);
        let hh = g.i64_init(&format!("{name}.hidden"), &[1], &[h as i64]);
        g.node(
            "Concat",
            &t("state_shape"),
            &[&dd, &t("batch"), &hh],
            &t("state_shape"),
            vec![a_int("axis", 0)],
        );
        let h0 = g.f32_init(&format!("{name}.initial_h"), &[dirs, 1, h], &h0);
        g.node(
            "Expand",
            &t("expand_h"),
            &[&h0, &t("state_shape")],
            &t("initial_h"),
            vec![],
        );
        ins.push(String::new()); // sequence_lens
        ins.push(t("initial_h"));
        if lstm {
            let c0 = g.f32_init(&format!("{name}.initial_c"), &[dirs, 1, h], &c0);
            g.node(
                "Expand",
                &t("expand_c"),
                &[&c0, &t("state_shape")],
                &t("initial_c"),
                vec![],
            );
            ins.push(t("initial_c"));
        }
    }
    let state = rnn_activation(&r.state_activation);
    let gate = rnn_activation(&r.gate_activation);
    let per_dir: Vec<&str> = if lstm {
        vec![gate, state, state]
    } else {
        vec![gate, state]
    };
    let mut acts = per_dir.clone();
    if dirs == 2 {
        acts.extend(per_dir);
    }
    let mut a_acts = attr("activations", AttributeType::STRINGS);
    a_acts.strings = acts.iter().map(|s| s.as_bytes().to_vec().into()).collect();
    let mut attrs = vec![
        a_int("hidden_size", h as i64),
        a_str(
            "direction",
            if dirs == 2 {
                "bidirectional"
            } else {
                "forward"
            },
        ),
        a_acts,
    ];
    if !lstm {
        let before = r.reset_gate_mode == "before-multiplication";
        attrs.push(a_int("linear_before_reset", if before { 0 } else { 1 }));
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    g.node(
        if lstm { "LSTM" } else { "GRU" },
        name,
        &ins,
        &t("Y"),
        attrs,
    );
    // Y [T, D, N, H] → [N, D, H, T] → [N, D*H, T] (forward units first, as MATLAB).
    g.node(
        "Transpose",
        &t("to_ndht"),
        &[&t("Y")],
        &t("ndht"),
        vec![a_ints("perm", &[2, 1, 3, 0])],
    );
    let shape = g.i64_init(
        &format!("{name}.out_shape"),
        &[3],
        &[0, (dirs * h) as i64, -1],
    );
    if r.return_sequence {
        g.node("Reshape", &t("reshape"), &[&t("ndht"), &shape], out, vec![]);
    } else {
        // MATLAB's 'last': the last time step of the output sequence.
        g.node(
            "Reshape",
            &t("reshape"),
            &[&t("ndht"), &shape],
            &t("sequence"),
            vec![],
        );
        let last = g.i64_init(&format!("{name}.last"), &[], &[-1]);
        g.node(
            "Gather",
            &t("last"),
            &[&t("sequence"), &last],
            out,
            vec![a_int("axis", 2)],
        );
    }
    Ok(())
}

/// A projected LSTM/GRU: ONNX's LSTM/GRU operator on the factors multiplied out
/// (`export::recurrent::multiplied_out` says why).
pub(super) fn projected(g: &mut Graph, cx: &Ctx, p: &Projected) -> Result<(), ExportError> {
    recurrent(g, cx, &multiplied_out(cx.l, p)?)
}
