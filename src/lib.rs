//! matcnn: MATLAB-trained networks made native.
//!
//! The flow: `.mat` bytes → [`mat`] (MATLAB values) → network description → Burn module →
//! inference, fine-tuning, export.

pub mod bench;
pub mod cpu;
pub mod data;
pub mod detect;
pub mod dump;
pub mod export;
pub mod inspect;
pub mod mat;
pub mod model;
pub mod net;
pub mod source;
pub mod train;
