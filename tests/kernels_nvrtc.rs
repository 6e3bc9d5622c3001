//! Every kernel source in `kernels/` compiles with NVRTC for compute_80 and
//! compute_90, and defines exactly the kernels the registry lists.
//!
//! No GPU needed: NVRTC only emits PTX. libnvrtc must be on the dynamic
//! loader's path (`.ci/run` installs the PyPI wheel `nvidia-cuda-nvrtc-cu12`
//! and exports its lib directory in LD_LIBRARY_PATH). Without it the tests
//! print why they skip, unless SPINDLE_REQUIRE_NVRTC=1 (set by CI), which
//! turns a missing libnvrtc into a failure.
#![cfg(feature = "cuda")]

use std::collections::BTreeSet;
use std::time::Instant;

use spindle::backend::cuda::nvrtc::{nvrtc_version, ptx_entries};
use spindle::backend::cuda::{compile_ptx, nvrtc_available, PtxCache, MODULES};

/// The architectures CI compiles for: A100 (sm_80) and H100/H200 (sm_90).
const ARCHS: [&str; 2] = ["compute_80", "compute_90"];

fn nvrtc_or_skip(test: &str) -> bool {
    if nvrtc_available() {
        return true;
    }
    let why = "libnvrtc not found on the loader path (pip install nvidia-cuda-nvrtc-cu12 and add \
               site-packages/nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH)";
    if std::env::var("SPINDLE_REQUIRE_NVRTC").as_deref() == Ok("1") {
        panic!("{test}: SPINDLE_REQUIRE_NVRTC=1 but {why}");
    }
    eprintln!("{test}: skipped: {why}");
    false
}

#[test]
fn every_kernel_module_compiles_for_compute_80_and_90() {
    if !nvrtc_or_skip("every_kernel_module_compiles_for_compute_80_and_90") {
        return;
    }
    let (major, minor) = nvrtc_version().expect("nvrtc version");
    eprintln!("NVRTC {major}.{minor}");
    let mut failures = Vec::new();
    for arch in ARCHS {
        for m in MODULES {
            let t0 = Instant::now();
            match compile_ptx(m, arch) {
                Ok(ptx) => {
                    let got: BTreeSet<String> = ptx_entries(&ptx).into_iter().collect();
                    let want: BTreeSet<String> = m.kernels.iter().map(|k| k.to_string()).collect();
                    eprintln!(
                        "{arch} {:<12} {:>3} kernels {:>7} bytes of PTX in {:>5} ms",
                        m.name,
                        got.len(),
                        ptx.len(),
                        t0.elapsed().as_millis()
                    );
                    if got != want {
                        failures.push(format!(
                            "{arch} kernels/{}: PTX defines {:?}, registry lists {:?}",
                            m.file,
                            got.difference(&want).collect::<Vec<_>>(),
                            want.difference(&got).collect::<Vec<_>>()
                        ));
                    }
                    if !ptx.contains(&format!(".target sm_{}", &arch["compute_".len()..])) {
                        failures.push(format!("{arch} kernels/{}: PTX for another target", m.file));
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ptx_cache_writes_then_reads_the_disk_cache() {
    if !nvrtc_or_skip("ptx_cache_writes_then_reads_the_disk_cache") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("spindle-ptx-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let module = &spindle::backend::cuda::kernels::TRUNC;
    let first = PtxCache::new(Some(dir.clone()))
        .ptx(module, "compute_80")
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "one PTX file written");
    // A fresh cache (a new process, in effect) reads the same text back.
    let second = PtxCache::new(Some(dir.clone()))
        .ptx(module, "compute_80")
        .unwrap();
    assert_eq!(first, second);
    // A corrupted file is ignored and recompiled, not loaded.
    let path = files[0].as_ref().unwrap().path();
    std::fs::write(&path, "garbage").unwrap();
    let third = PtxCache::new(Some(dir.clone()))
        .ptx(module, "compute_80")
        .unwrap();
    assert_eq!(first, third);
    assert!(
        PtxCache::new(None).ptx(module, "sm_80").is_err(),
        "malformed arch is an error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_compile_error_is_reported_with_the_nvrtc_log() {
    if !nvrtc_or_skip("a_compile_error_is_reported_with_the_nvrtc_log") {
        return;
    }
    let bad = spindle::backend::cuda::KernelModule {
        name: "bad",
        file: "bad.cu",
        body: "extern \"C\" __global__ void f(u64* p) { *p = not_declared; }",
        kernels: &["f"],
    };
    let e = compile_ptx(&bad, "compute_90").unwrap_err().to_string();
    assert!(e.contains("bad.cu") && e.contains("not_declared"), "{e}");
}
