#!/usr/bin/env bash
# GPU check of the CUDA backend (issue 7), in two steps:
#
#   1. On an x86-64 machine with cargo (no GPU needed):
#        scripts/gpu-check.sh --build-only DIR
#      builds the test and bench binaries (cargo test --release --no-run,
#      cargo bench --no-run) and copies the GPU-relevant executables into DIR
#      with a manifest (commit, date, toolchain).
#
#   2. On the GPU machine (no cargo, no network; CUDA driver and libnvrtc):
#        scripts/gpu-check.sh DIR [OUT]      (or SPINDLE_GPU_CHECK_OUT=OUT)
#      runs every binary from DIR: the NVRTC compile test, the CPU/GPU parity
#      tests (incl. the ring GEMM paths direct/f64/int8 of issue 8), the
#      protocol tests on CUDA (SPINDLE_TEST_DEVICE=cuda, 60 s each), the GPU
#      benchmarks (elementwise ops, truncation, PRG, DReLU on 10^7 at 2
#      parties, ring GEMM by path next to cuBLAS f32/bf16), then one 3-party
#      LeNet training iteration (batch 64) on the CPU and on the GPU; prints
#      a summary table and writes each log and the table (summary.md) into
#      OUT (default DIR/results-<time>). Per-step time limits (120 + 240 +
#      420 + 2 x 180 s) bound the whole run; on a machine with a 10-minute
#      limit per command, run a subset per command with
#      SPINDLE_GPU_CHECK_STEPS (default "nvrtc parity protocols kernels training"),
#      each into its own OUT.
#
# CUDA libraries: cudarc (CUDA 13.0 bindings) looks for libX.so, libX.so.13,
# libX.so.12 (and older) on the loader path. This script adds the usual CUDA library directories and the
# lib folders of NVIDIA's Python wheels (where PyTorch's CUDA 13 libraries
# live) to LD_LIBRARY_PATH, and where no name cudarc knows exists (a soname
# newer than its bindings) links the newest as libX.so in OUT/lib. cudarc's
# CUDA 13.0 bindings on a CUDA 13 driver, NVRTC and cuBLAS are unverified.
set -euo pipefail

# The protocol tests run on CUDA by the "protocols" step (tests/common::test_device).
protocol_tests="beaver fixed_point compare nonlinear_exp nonlinear_reciprocal nonlinear_softmax nonlinear_gelu nonlinear_layernorm nonlinear_sigmoid pipeline fork"

usage() {
  echo "usage: $0 --build-only DIR | $0 DIR [OUT]" >&2
  exit 2
}

if [[ "${1:-}" == "--build-only" ]]; then
  [[ $# -eq 2 ]] || usage
  dir=$2
  root="$(cd "$(dirname "$0")/.." && pwd)"
  command -v cargo >/dev/null || { echo "--build-only needs cargo" >&2; exit 1; }
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  cd "$root"
  log="$dir/build.jsonl"
  : >"$log"
  echo "== cargo test --release --no-run"
  cargo test --release --no-run --message-format=json --test gpu_parity --test kernels_nvrtc \
    $(for t in $protocol_tests; do printf -- '--test %s ' "$t"; done) >>"$log"
  echo "== cargo bench --no-run --bench gpu_kernels --bench training"
  cargo bench --no-run --message-format=json --bench gpu_kernels --bench training >>"$log"
  pick() { # target name -> its executable path from cargo's JSON messages
    grep '"executable":"' "$log" | grep "\"name\":\"$1\"" |
      sed 's/.*"executable":"\([^"]*\)".*/\1/' | tail -n 1
  }
  for t in kernels_nvrtc gpu_parity $protocol_tests; do
    exe=$(pick "$t"); [[ -n "$exe" ]] || { echo "no executable for $t" >&2; exit 1; }
    cp "$exe" "$dir/test_$t"
  done
  for b in gpu_kernels training; do
    exe=$(pick "$b"); [[ -n "$exe" ]] || { echo "no executable for $b" >&2; exit 1; }
    cp "$exe" "$dir/bench_$b"
  done
  rm -f "$log"
  {
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m)"
    echo "toolchain: $(rustc --version)"
  } >"$dir/MANIFEST"
  cp "$0" "$dir/gpu-check.sh"
  ls -l "$dir"
  echo "copy $dir to the GPU machine and run: $dir/gpu-check.sh $dir [OUT]"
  exit 0
fi

[[ $# -ge 1 && $# -le 2 ]] || usage
dir="$(cd "$1" && pwd)"
out="${2:-${SPINDLE_GPU_CHECK_OUT:-$dir/results-$(date -u +%Y%m%dT%H%M%SZ)}}"
mkdir -p "$out/lib"
out="$(cd "$out" && pwd)"

# Loader path for libcuda, libnvrtc and libcublas(Lt): the usual CUDA
# directories, and the lib folders of NVIDIA's Python wheels (PyTorch's
# CUDA libraries live there: nvidia/cu13/lib, nvidia/cublas/lib, ...).
lib_dirs=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu)
for d in /usr/local/cuda-*/lib64; do lib_dirs+=("$d"); done
if command -v python3 >/dev/null; then
  while IFS= read -r d; do lib_dirs+=("$d"); done < <(python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = [p for p in sys.path if p.endswith("-packages")]
try:
    roots += site.getsitepackages()
except Exception:
    pass
for r in sorted(set(roots)):
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "**", "lib"), recursive=True)):
        print(d)
PY
)
fi
for d in "${lib_dirs[@]}"; do
  [[ -d "$d" ]] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
# Where only a soname newer than cudarc's bindings exists, link it as
# libX.so in OUT/lib.
link_newer() { # library name, e.g. nvrtc
  local lib=$1 d n newer=""
  for d in ${LD_LIBRARY_PATH//:/ }; do
    for n in "lib$lib.so" "lib$lib.so.13" "lib$lib.so.12"; do [[ -e "$d/$n" ]] && return 0; done
  done
  for d in ${LD_LIBRARY_PATH//:/ }; do
    newer=$(ls "$d/lib$lib.so".1[4-9]* 2>/dev/null | head -n 1 || true)
    [[ -n "$newer" ]] && break
  done
  if [[ -n "$newer" ]]; then
    ln -sf "$newer" "$out/lib/lib$lib.so"
    echo "linked $newer as $out/lib/lib$lib.so"
  else
    echo "no lib$lib.so found on $LD_LIBRARY_PATH"
  fi
}
for lib in nvrtc cublas cublasLt; do link_newer "$lib"; done
export LD_LIBRARY_PATH="$out/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SPINDLE_KERNEL_CACHE="$out/kernel-cache"
export SPINDLE_REQUIRE_NVRTC=1
export RUST_LOG="${RUST_LOG:-info}"

{
  echo "# GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- host: $(hostname)"
  sed 's/^/- /' "$dir/MANIFEST" 2>/dev/null || true
  if command -v nvidia-smi >/dev/null; then
    echo "- gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
  else
    echo "- gpu: nvidia-smi not found"
  fi
  echo
  echo "| step | status | passed | failed | skipped | seconds |"
  echo "|------|--------|--------|--------|---------|---------|"
} >"$out/summary.md"

overall=0
run_tests() { # name binary limit_s
  local name=$1 bin=$2 limit=$3 log="$out/$1.log" t0 rc status passed failed skipped
  t0=$(date +%s)
  set +e
  timeout "$limit" "$bin" --nocapture --test-threads=1 >"$log" 2>&1
  rc=$?
  set -e
  passed=$(grep -o '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}')
  failed=$(grep -o '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
  skipped=$(grep -c 'skipped' "$log" || true)
  if [[ $rc == 124 ]]; then status="TIMEOUT (${limit}s)"
  elif [[ $rc != 0 ]]; then status="FAIL (rc $rc)"
  elif [[ $skipped != 0 ]]; then status="SKIPPED"
  else status="ok"; fi
  [[ $status == ok ]] || overall=1
  echo "| $name | $status | $passed | $failed | $skipped | $(( $(date +%s) - t0 )) |" >>"$out/summary.md"
}

# A criterion benchmark binary, short runs, results under OUT/criterion.
run_bench() { # name limit_s binary args...
  local name=$1 limit=$2 log="$out/bench_$1.log" t0 rc status
  shift 2
  t0=$(date +%s)
  set +e
  CRITERION_HOME="$out/criterion" timeout "$limit" "$@" --bench \
    --warm-up-time 1 --measurement-time 3 --noplot >"$log" 2>&1
  rc=$?
  set -e
  if [[ $rc == 124 ]]; then status="TIMEOUT (${limit}s)"; elif [[ $rc != 0 ]]; then status="FAIL (rc $rc)"
  elif grep -q skipped "$log"; then status="SKIPPED"; else status="ok"; fi
  [[ $status == ok ]] || overall=1
  echo "| bench $name | $status | | | | $(( $(date +%s) - t0 )) |" >>"$out/summary.md"
}

steps=" ${SPINDLE_GPU_CHECK_STEPS:-nvrtc parity protocols kernels training} "
[[ $steps == *" nvrtc "* ]] && run_tests kernels_nvrtc "$dir/test_kernels_nvrtc" 120
[[ $steps == *" parity "* ]] && run_tests gpu_parity "$dir/test_gpu_parity" 240
# The protocol tests themselves on CUDA (tests/common::test_device).
if [[ $steps == *" protocols "* ]]; then
  for t in $protocol_tests; do
    [[ -x "$dir/test_$t" ]] && SPINDLE_TEST_DEVICE=cuda run_tests "cuda_$t" "$dir/test_$t" 60
  done
fi
[[ $steps == *" kernels "* ]] && run_bench gpu_kernels 420 "$dir/bench_gpu_kernels"
if [[ $steps == *" training "* ]]; then
  for d in cpu cuda:0; do
    SPINDLE_BENCH_DEVICE=$d run_bench "training_lenet_${d/:/}" 180 "$dir/bench_training" lenet_batch64
  done
fi
{
  echo
  echo "## Benchmarks (10^7 u64 elements, DReLU on 10^7 at 2 parties, ring GEMM by path, LeNet iteration at 3 parties; *_incl_copies include the host copies, *_resident keep operands and results on the device)"
  echo
  echo '```'
  cat "$out"/bench_*.log 2>/dev/null | grep -E '^[a-z_0-9]+/.*|time:|first iteration' || echo "(no timings)"
  echo '```'
} >>"$out/summary.md"

cat "$out/summary.md"
echo
echo "logs and summary in $out"
exit $overall
