//! The axes a protocol test runs over (issue 10, item 5): parties N in
//! {2, 3, 4}, ring Z_2^32 and Z_2^64, truncation mode (the dealer's; the
//! SecureML local shift, two parties only, where a test's domain allows
//! it) and device (the CPU, the transfer-audit device, CUDA on a machine
//! with a GPU).
//!
//! A test implements [`RingTest`] (its body generic over the ring) and
//! calls [`over_axes`]; each case prints its label first, so a failure
//! names the point of the axes it failed at. The device axis comes from
//! `SPINDLE_TEST_DEVICES` (a comma list of `cpu`, `audit`, `cuda`;
//! default `cpu,audit`), or `SPINDLE_TEST_DEVICE` (one device, as the
//! other test harnesses read it): `scripts/gpu-check.sh` runs these tests
//! with `cuda`.

use std::future::Future;
use std::sync::Arc;

use spindle::backend::{select_device, AuditBackend, Device, DeviceChoice};
use spindle::ring::Ring;
use spindle::runner::{run_parties_blocking, RunOptions, RunReport};
use spindle::{Session, TruncMode};

use super::PARTY_COUNTS;

/// Where a case's parties compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestDevice {
    /// The CPU backend (the reference).
    Cpu,
    /// The transfer-audit device: the device code paths, on the CPU.
    Audit,
    /// CUDA device 0 (the `cuda` feature and a GPU).
    Cuda,
}

impl TestDevice {
    /// `cpu`, `audit` or `cuda` (panics on another name: a test setup error).
    pub fn parse(name: &str) -> TestDevice {
        match name.trim() {
            "cpu" => TestDevice::Cpu,
            "audit" => TestDevice::Audit,
            "cuda" => TestDevice::Cuda,
            other => panic!("test device {other:?}: use cpu, audit or cuda"),
        }
    }

    /// A fresh backend of this kind.
    pub fn backend(self) -> Device {
        match self {
            TestDevice::Cpu => Device::default(),
            TestDevice::Audit => Device::Audit(AuditBackend::new()),
            TestDevice::Cuda => select_device(DeviceChoice::Cuda(0))
                .expect("the cuda test device needs the cuda feature and a CUDA device"),
        }
    }
}

/// The devices of this run (see the module docs).
pub fn devices() -> Vec<TestDevice> {
    if let Ok(list) = std::env::var("SPINDLE_TEST_DEVICES") {
        return list.split(',').map(TestDevice::parse).collect();
    }
    match std::env::var("SPINDLE_TEST_DEVICE") {
        Ok(one) => vec![TestDevice::parse(&one)],
        Err(_) => vec![TestDevice::Cpu, TestDevice::Audit],
    }
}

/// Which truncation modes a test covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncs {
    /// The dealer's truncation only (the test's domain or its cost
    /// assertions rule the local shift out, or it truncates nothing).
    Dealer,
    /// The dealer's, and SecureML's local shift at N = 2.
    DealerAndLocalShift,
}

/// One point of the axes (the ring is the [`RingTest::run`] type).
#[derive(Clone, Debug)]
pub struct Case {
    /// Parties.
    pub n: usize,
    /// Truncation mode of the session.
    pub trunc: TruncMode,
    /// Device of every party.
    pub device: TestDevice,
}

impl Case {
    /// "N=3 Z_2^64 Dealer Audit": printed before the case runs.
    pub fn label<R: Ring>(&self) -> String {
        format!(
            "N={} Z_2^{} {:?} {:?}",
            self.n,
            R::BITS,
            self.trunc,
            self.device
        )
    }

    /// Run options of this case: dealer preprocessing, its truncation
    /// mode and device.
    pub fn options(&self) -> RunOptions {
        let mut opts = RunOptions::new(self.n);
        opts.session.trunc = self.trunc;
        opts.backend = self.device.backend();
        opts
    }

    /// Runs `program` as each of the case's parties.
    pub fn run<T, F, Fut>(&self, program: F) -> RunReport<T>
    where
        F: Fn(Arc<Session>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = spindle::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        run_parties_blocking(&self.options(), program).expect("run succeeds")
    }

    /// Whether truncations take a round (the dealer's) or none (the
    /// local shift).
    pub fn trunc_rounds(&self) -> u64 {
        match self.trunc {
            TruncMode::Dealer => 1,
            TruncMode::LocalShift => 0,
        }
    }
}

/// A protocol test, generic over the ring.
pub trait RingTest {
    /// Runs the test at one case in ring R (panics on failure).
    fn run<R: Ring>(&self, case: &Case);
}

/// Every case of the axes: N in {2, 3, 4} x truncation modes (`truncs`;
/// the local shift at N = 2 only) x [`devices`].
pub fn cases(truncs: Truncs) -> Vec<Case> {
    let mut out = Vec::new();
    for device in devices() {
        for n in PARTY_COUNTS {
            out.push(Case {
                n,
                trunc: TruncMode::Dealer,
                device,
            });
            if n == 2 && truncs == Truncs::DealerAndLocalShift {
                out.push(Case {
                    n,
                    trunc: TruncMode::LocalShift,
                    device,
                });
            }
        }
    }
    out
}

/// Runs `test` at every case of [`cases`], in Z_2^32 and in Z_2^64.
pub fn over_axes(test: &impl RingTest, truncs: Truncs) {
    for case in cases(truncs) {
        eprintln!("case {}", case.label::<u32>());
        test.run::<u32>(&case);
        eprintln!("case {}", case.label::<u64>());
        test.run::<u64>(&case);
    }
}
