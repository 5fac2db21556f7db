//! Choosing the backend at run time: `cpu` (Burn's flex backend, the fastest pure-Rust CPU
//! backend in 0.22) or `wgpu` (GPU through wgpu, compiled in with the `wgpu` cargo feature).

use super::ModelError;
use burn::prelude::Device;

/// A backend the user can pick with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Burn's flex CPU backend (default).
    Cpu,
    /// GPU through wgpu (Vulkan, Metal, DX12); needs the `wgpu` cargo feature.
    Wgpu,
    /// Burn's older ndarray CPU backend, for comparisons; needs the `ndarray` cargo feature.
    Ndarray,
}

/// The device for `backend`; without one, `BURN_DEVICE` (`flex`/`cpu` or `wgpu`) decides, and
/// the CPU otherwise.
pub fn device_for(backend: Option<Backend>) -> Result<Device, ModelError> {
    let backend = match backend {
        Some(b) => b,
        None => match std::env::var("BURN_DEVICE")
            .ok()
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("flex") | Some("cpu") => Backend::Cpu,
            Some("ndarray") => Backend::Ndarray,
            Some("wgpu") | Some("vulkan") | Some("gpu") => Backend::Wgpu,
            Some(other) => {
                return Err(ModelError::Backend(format!(
                    "BURN_DEVICE={other} is not a backend matcnn offers (cpu, wgpu, ndarray)"
                )));
            }
        },
    };
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        Backend::Wgpu => wgpu_device(),
        Backend::Ndarray => ndarray_device(),
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
fn ndarray_device() -> Result<Device, ModelError> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device, ModelError> {
    Err(ModelError::Backend(
        "this matcnn was built without the ndarray backend (kept only for comparisons): rebuild with `--features ndarray`".into(),
    ))
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, ModelError> {
    use burn::prelude::DeviceKind;
    // wgpu panics when no adapter exists; turn that into an error.
    std::panic::catch_unwind(|| {
        let d = Device::wgpu(DeviceKind::DefaultDevice);
        // Touch the device so that adapter selection happens now.
        let _ = burn::prelude::Tensor::<1>::zeros([1], &d).into_data();
        d
    })
    .map_err(|_| {
        ModelError::Backend(
            "no wgpu adapter found (no GPU driver, or no Vulkan/Metal/DX12 loader)".into(),
        )
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, ModelError> {
    Err(ModelError::Backend(
        "this matcnn was built without GPU support: rebuild with `--features wgpu` (cargo run --features wgpu -- ...)".into(),
    ))
}
