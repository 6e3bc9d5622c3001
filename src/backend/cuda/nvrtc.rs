//! NVRTC compilation of the kernel modules, with a per-process and an
//! on-disk PTX cache.
//!
//! NVRTC only produces PTX, so this works without a GPU (the CI compiles
//! every module for `compute_80` and `compute_90`, `tests/kernels_nvrtc.rs`).
//! libnvrtc is loaded at run time by cudarc from the dynamic loader's search
//! path (`LD_LIBRARY_PATH`): for example the PyPI wheel
//! `nvidia-cuda-nvrtc-cu12` puts `libnvrtc.so.12` (CUDA 13: `libnvrtc.so.13`,
//! found as well) in
//! `site-packages/nvidia/cuda_nvrtc/lib` (`.ci/run` exports that directory).
//!
//! Disk cache: `$SPINDLE_KERNEL_CACHE`, else `$XDG_CACHE_HOME/spindle/kernels`,
//! else `$HOME/.cache/spindle/kernels`; one file per (module, architecture),
//! named by a 64-bit FNV-1a hash of the full source, the architecture and the
//! NVRTC version, so an edited kernel or another compiler never reuses stale
//! PTX. A cache that cannot be read or written only costs a recompile (logged).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

use super::kernels::KernelModule;
use crate::error::{Error, Result};

/// Whether libnvrtc can be loaded. Must be checked before any other NVRTC
/// call: cudarc panics when the library is absent.
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The loaded NVRTC's (major, minor) version.
///
/// Errors: [`Error::Unsupported`] when libnvrtc cannot be loaded;
/// [`Error::Gpu`] when the call fails.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_available() {
        return Err(no_nvrtc());
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); both pointers are valid.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(Error::Gpu {
            op: "nvrtcVersion".into(),
            detail: format!("{r:?}"),
        });
    }
    Ok((major, minor))
}

fn no_nvrtc() -> Error {
    Error::Unsupported(
        "libnvrtc not found on the dynamic loader's path: install the CUDA toolkit or \
         `pip install nvidia-cuda-nvrtc-cu12` and add its nvidia/cuda_nvrtc/lib directory \
         to LD_LIBRARY_PATH"
            .into(),
    )
}

/// The virtual architecture for compute capability (major, minor), e.g.
/// (9, 0) -> "compute_90".
pub fn arch_for(major: i32, minor: i32) -> String {
    format!("compute_{major}{minor}")
}

fn check_arch(arch: &str) -> Result<()> {
    let digits = arch.strip_prefix("compute_").unwrap_or("");
    if digits.len() < 2 || !digits.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::Unsupported(format!(
            "architecture {arch:?} is not of the form compute_XY"
        )));
    }
    Ok(())
}

/// Compiles one module to PTX for `arch` ("compute_80"), without caching.
///
/// Errors: [`Error::Unsupported`] when libnvrtc is absent or `arch` is
/// malformed; [`Error::Gpu`] with the NVRTC log on a compile error.
pub fn compile_ptx(module: &KernelModule, arch: &str) -> Result<String> {
    check_arch(arch)?;
    if !nvrtc_available() {
        return Err(no_nvrtc());
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "-std=c++14".into()],
        name: Some(module.file.to_string()),
        ..Default::default()
    };
    match compile_ptx_with_opts(module.source(), opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(e) => Err(Error::Gpu {
            op: format!("nvrtc compile kernels/{} for {arch}", module.file),
            detail: match e {
                cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. } => {
                    format!("{nvrtc:?}:\n{}", log.to_string_lossy())
                }
                other => format!("{other:?}"),
            },
        }),
    }
}

/// The `.entry` names a PTX text defines (the kernels NVRTC emitted).
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix(".visible .entry ")?;
            let end = rest.find('(').unwrap_or(rest.len());
            Some(rest[..end].trim().to_string())
        })
        .collect()
}

/// 64-bit FNV-1a (Fowler, Noll, Vo): a cache key, not a security boundary.
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(&[0xffu8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The on-disk cache directory (see the module docs), if one can be named.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("SPINDLE_KERNEL_CACHE") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("spindle").join("kernels"));
    }
    env("HOME").map(|h| {
        PathBuf::from(h)
            .join(".cache")
            .join("spindle")
            .join("kernels")
    })
}

/// Compiled PTX per (module, architecture): in memory for the process, and
/// on disk across processes.
#[derive(Debug)]
pub struct PtxCache {
    dir: Option<PathBuf>,
    mem: Mutex<HashMap<(&'static str, String), Arc<str>>>,
}

impl PtxCache {
    /// A cache writing under `dir` (`None`: memory only).
    pub fn new(dir: Option<PathBuf>) -> Self {
        PtxCache {
            dir,
            mem: Mutex::new(HashMap::new()),
        }
    }

    /// The process-wide cache over [`cache_dir`].
    pub fn global() -> &'static PtxCache {
        static CACHE: OnceLock<PtxCache> = OnceLock::new();
        CACHE.get_or_init(|| PtxCache::new(cache_dir()))
    }

    /// The PTX of `module` for `arch`: from memory, else from disk, else
    /// compiled by NVRTC (and then stored in both).
    ///
    /// Errors: as [`compile_ptx`].
    pub fn ptx(&self, module: &'static KernelModule, arch: &str) -> Result<Arc<str>> {
        let key = (module.name, arch.to_string());
        if let Some(p) = self.lock().get(&key) {
            return Ok(p.clone());
        }
        check_arch(arch)?;
        let (major, minor) = nvrtc_version()?;
        let version = format!("{major}.{minor}");
        let src = module.source();
        let hash = fnv1a64(&[src.as_bytes(), arch.as_bytes(), version.as_bytes()]);
        let stamp = format!(
            "// spindle ptx {} {arch} nvrtc {version} {hash:016x}\n",
            module.name
        );
        let file = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{}-{arch}-{hash:016x}.ptx", module.name)));
        let from_disk = file.as_ref().and_then(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            text.starts_with(&stamp).then_some(text)
        });
        let ptx: Arc<str> = match from_disk {
            Some(text) => {
                tracing::debug!(module = module.name, arch, "PTX from the disk cache");
                text.into()
            }
            None => {
                let t0 = std::time::Instant::now();
                let text = format!("{stamp}{}", compile_ptx(module, arch)?);
                tracing::debug!(
                    module = module.name,
                    arch,
                    ms = t0.elapsed().as_millis() as u64,
                    "NVRTC compiled"
                );
                if let Some(f) = &file {
                    if let Err(e) = write_atomically(f, &text) {
                        tracing::warn!("kernel cache {} not written: {e}", f.display());
                    }
                }
                text.into()
            }
        };
        self.lock().insert(key, ptx.clone());
        Ok(ptx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, String), Arc<str>>> {
        // A poisoned map is still a valid cache: every entry is complete.
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("ptx"),
        std::process::id()
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_and_entries() {
        assert_eq!(arch_for(9, 0), "compute_90");
        assert!(check_arch("compute_80").is_ok());
        assert!(check_arch("sm_80").is_err());
        assert!(check_arch("compute_").is_err());
        let ptx = ".visible .entry add_u64(\n\t.param .u64 a\n)\n.visible .entry neg_u32(";
        assert_eq!(ptx_entries(ptx), ["add_u64", "neg_u32"]);
    }

    #[test]
    fn hash_separates_parts() {
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
        assert_eq!(fnv1a64(&[b"x"]), fnv1a64(&[b"x"]));
    }
}
