//! Choosing the device a session runs on: `--device auto|cpu|cuda:N`.

use super::{CpuBackend, Device};
use crate::error::{Error, Result};

/// What the user asked for (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 where one exists, else the CPU with the log line
    /// "no CUDA device, running on CPU".
    #[default]
    Auto,
    /// The CPU backend, whatever GPUs exist.
    Cpu,
    /// CUDA device N; an error if it does not exist.
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;

    /// Parses `auto`, `cpu`, `cuda` (device 0) or `cuda:N`.
    ///
    /// Errors: [`Error::Unsupported`] for anything else.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| {
                    Error::Unsupported(format!(
                        "device {s:?}: expected auto, cpu, cuda or cuda:N (N a device index)"
                    ))
                }),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The backend for `choice`.
///
/// `Auto` never fails: without a usable CUDA device (no driver library, no
/// device, no NVRTC, or a build without the `cuda` feature) it logs "no CUDA
/// device, running on CPU" with the reason as a warning and returns the
/// CPU backend. `Cuda(n)` fails instead.
///
/// Errors: [`Error::Unsupported`] when `cuda:N` is demanded and device N is
/// absent or unusable (the message says why); [`Error::Gpu`] when the device
/// exists but its context cannot be created.
pub fn select_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu(CpuBackend::default())),
        DeviceChoice::Auto => match cuda_device(0) {
            Ok(d) => Ok(d),
            Err(e) => {
                // A warning: shown at the CLI's default log level.
                tracing::warn!("no CUDA device, running on CPU ({e})");
                Ok(Device::Cpu(CpuBackend::default()))
            }
        },
        DeviceChoice::Cuda(n) => cuda_device(n),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Ok(Device::Cuda(super::cuda::CudaBackend::new(ordinal)?))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Err(Error::Unsupported(format!(
        "cuda:{ordinal} requested, but this build has no CUDA support (the `cuda` cargo feature is off)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    #[test]
    fn parses_choices_and_rejects_junk() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        for bad in ["", "cuda:", "cuda:-1", "cuda:x", "tpu", "cuda:1:2"] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad:?} parsed");
        }
        for c in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda(2)] {
            assert_eq!(c.to_string().parse::<DeviceChoice>().unwrap(), c);
        }
    }

    #[test]
    fn auto_and_cpu_always_give_a_backend() {
        assert_eq!(select_device(DeviceChoice::Cpu).unwrap().name(), "cpu");
        // Auto: a CUDA backend where a device exists, else the CPU.
        let auto = select_device(DeviceChoice::Auto).unwrap();
        assert!(auto.name() == "cpu" || auto.name().starts_with("cuda:"));
    }

    #[test]
    fn a_missing_cuda_device_is_an_error() {
        // No machine has 10^6 GPUs: an error, not a panic, with or without CUDA.
        let e = select_device(DeviceChoice::Cuda(1_000_000)).unwrap_err();
        assert!(e.to_string().contains("cuda:1000000"), "{e}");
    }
}
