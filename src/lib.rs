//! matcnn: MATLAB-trained networks made native.
//!
//! The flow: `.mat` bytes → [`mat`] (MATLAB values) → network description → Burn module →
//! inference, fine-tuning, export.

pub mod dump;
pub mod mat;
pub mod model;
pub mod net;
