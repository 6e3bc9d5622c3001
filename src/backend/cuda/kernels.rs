//! The registry of CUDA kernel sources: which file defines which kernels.
//!
//! Every `.cu` file of `kernels/` is embedded with `include_str!` and listed
//! here once, with the exact `extern "C"` names it defines (candle's
//! `candle-kernels/src/lib.rs` pattern). [`KernelModule::source`] prepends the
//! shared header `kernels/common.cuh`, so NVRTC needs no include path. The
//! test `tests/kernels_nvrtc.rs` compiles every module and checks that the
//! PTX defines exactly the names listed here.

/// The shared header prepended to every module (`kernels/common.cuh`).
pub const COMMON_HEADER: &str = include_str!("../../../kernels/common.cuh");

/// One CUDA C source file and the kernels it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelModule {
    /// Module name, also the cache key prefix ("elementwise").
    pub name: &'static str,
    /// File under `kernels/` ("elementwise.cu").
    pub file: &'static str,
    /// The file's text, without the common header.
    pub body: &'static str,
    /// Every `extern "C" __global__` name the file defines.
    pub kernels: &'static [&'static str],
}

impl KernelModule {
    /// The full NVRTC input: [`COMMON_HEADER`] followed by the file.
    pub fn source(&self) -> String {
        format!(
            "{COMMON_HEADER}\n// ---- kernels/{} ----\n{}",
            self.file, self.body
        )
    }

    /// Whether this module defines `kernel`.
    pub fn defines(&self, kernel: &str) -> bool {
        self.kernels.contains(&kernel)
    }
}

/// Elementwise ring ops and the Beaver combination (`kernels/elementwise.cu`).
pub const ELEMENTWISE: KernelModule = KernelModule {
    name: "elementwise",
    file: "elementwise.cu",
    body: include_str!("../../../kernels/elementwise.cu"),
    kernels: &[
        "add_u32",
        "sub_u32",
        "mul_u32",
        "add_assign_u32",
        "neg_u32",
        "mul_scalar_u32",
        "add_scalar_u32",
        "ashr_u32",
        "beaver_combine_u32",
        "add_u64",
        "sub_u64",
        "mul_u64",
        "add_assign_u64",
        "neg_u64",
        "mul_scalar_u64",
        "add_scalar_u64",
        "ashr_u64",
        "beaver_combine_u64",
        "cast_u32_u32",
        "cast_u32_u64",
    ],
};

/// The truncation combine step (`kernels/trunc.cu`).
pub const TRUNC: KernelModule = KernelModule {
    name: "trunc",
    file: "trunc.cu",
    body: include_str!("../../../kernels/trunc.cu"),
    kernels: &["trunc_combine_u32", "trunc_combine_u64"],
};

/// Bit-sliced binary ops and bit-slicing (`kernels/binary.cu`).
pub const BINARY: KernelModule = KernelModule {
    name: "binary",
    file: "binary.cu",
    body: include_str!("../../../kernels/binary.cu"),
    kernels: &[
        "xor_words",
        "and_words",
        "not_words",
        "and_combine_words",
        "bitslice_u32",
        "unbitslice_u32",
        "bitslice_u64",
        "unbitslice_u64",
    ],
};

/// The carry circuit of MSB / DReLU, bit-sliced (`kernels/carry.cu`).
pub const CARRY: KernelModule = KernelModule {
    name: "carry",
    file: "carry.cu",
    body: include_str!("../../../kernels/carry.cu"),
    kernels: &["carry_leaves", "carry_level_mask", "carry_level_combine"],
};

/// A2B's parallel-prefix adder, bit-sliced (`kernels/adder.cu`).
pub const ADDER: KernelModule = KernelModule {
    name: "adder",
    file: "adder.cu",
    body: include_str!("../../../kernels/adder.cu"),
    kernels: &["adder_leaves", "adder_level", "adder_sum"],
};

/// AES-128-CTR PRG expansion (`kernels/prg.cu`).
pub const PRG: KernelModule = KernelModule {
    name: "prg",
    file: "prg.cu",
    body: include_str!("../../../kernels/prg.cu"),
    kernels: &["prg_fill_u64", "prg_fill_u32"],
};

/// im2col / col2im (`kernels/conv.cu`).
pub const CONV: KernelModule = KernelModule {
    name: "conv",
    file: "conv.cu",
    body: include_str!("../../../kernels/conv.cu"),
    kernels: &["im2col_u32", "col2im_u32", "im2col_u64", "col2im_u64"],
};

/// Sums, broadcasts, slices, concatenations and permutations of axes
/// (`kernels/layout.cu`).
pub const LAYOUT: KernelModule = KernelModule {
    name: "layout",
    file: "layout.cu",
    body: include_str!("../../../kernels/layout.cu"),
    kernels: &[
        "axis_sum_u32",
        "axis_broadcast_u32",
        "axis_copy_u32",
        "permute_u32",
        "axis_sum_u64",
        "axis_broadcast_u64",
        "axis_copy_u64",
        "permute_u64",
    ],
};

/// Pooling window gather and gradient routing (`kernels/pool.cu`).
pub const POOL: KernelModule = KernelModule {
    name: "pool",
    file: "pool.cu",
    body: include_str!("../../../kernels/pool.cu"),
    kernels: &[
        "pool_gather_u32",
        "pool_scatter_u32",
        "pool_gather_u64",
        "pool_scatter_u64",
    ],
};

/// Ring GEMM, transpose, limb split and recombination (`kernels/gemm.cu`).
pub const GEMM: KernelModule = KernelModule {
    name: "gemm",
    file: "gemm.cu",
    body: include_str!("../../../kernels/gemm.cu"),
    kernels: &[
        "gemm_u32",
        "transpose_u32",
        "limb_split_i8_u32",
        "limb_split_f64_u32",
        "limb_accum_i32_u32",
        "limb_accum_f64_u32",
        "gemm_u64",
        "transpose_u64",
        "limb_split_i8_u64",
        "limb_split_f64_u64",
        "limb_accum_i32_u64",
        "limb_accum_f64_u64",
    ],
};

/// Every kernel module, in the order of `kernels/README.md`.
pub const MODULES: &[KernelModule] = &[
    ELEMENTWISE,
    TRUNC,
    BINARY,
    CARRY,
    ADDER,
    PRG,
    CONV,
    POOL,
    LAYOUT,
    GEMM,
];

/// The module that defines `kernel`, if any.
pub fn module_of(kernel: &str) -> Option<&'static KernelModule> {
    MODULES.iter().find(|m| m.defines(kernel))
}

/// The kernel name for ring width `bits` (32 or 64): `op_u32` or `op_u64`
/// (candle's `kernel_name::<T>`).
pub fn ring_kernel(op: &str, bits: u32) -> String {
    format!("{op}_u{bits}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kernel_appears_in_its_source_once_per_stamp() {
        for m in MODULES {
            for k in m.kernels {
                // Stamped names are `op_##SUF`: check the op stem and the suffix stamp.
                let (stem, suffix) = match k.rsplit_once('_') {
                    Some((s, t)) if t == "u32" || t == "u64" => (s, Some(t)),
                    _ => (*k, None),
                };
                let direct = m.body.contains(&format!(" {k}("));
                let stamped = suffix.is_some() && m.body.contains(&format!(" {stem}_##SUF("));
                assert!(direct || stamped, "{k} not found in kernels/{}", m.file);
            }
        }
    }

    #[test]
    fn names_are_unique_and_resolvable() {
        let mut all: Vec<&str> = MODULES
            .iter()
            .flat_map(|m| m.kernels.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a kernel name is listed twice");
        assert_eq!(
            module_of("trunc_combine_u64").map(|m| m.name),
            Some("trunc")
        );
        assert_eq!(
            module_of(&ring_kernel("add", 32)).map(|m| m.name),
            Some("elementwise")
        );
        assert!(module_of("nonexistent").is_none());
    }
}
