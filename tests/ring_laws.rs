//! Property tests: ring laws in Z_2^32 and Z_2^64, and fixed-point round trips.

use proptest::prelude::*;
use spindle::ring::{FixedPoint, Ring, RingTensor};

fn laws<R: Ring>(a: R, b: R, c: R) {
    // Commutative ring with identity, wrapping mod 2^k.
    assert_eq!(a.wrapping_add(b), b.wrapping_add(a));
    assert_eq!(a.wrapping_mul(b), b.wrapping_mul(a));
    assert_eq!(
        a.wrapping_add(b).wrapping_add(c),
        a.wrapping_add(b.wrapping_add(c))
    );
    assert_eq!(
        a.wrapping_mul(b).wrapping_mul(c),
        a.wrapping_mul(b.wrapping_mul(c))
    );
    assert_eq!(
        a.wrapping_mul(b.wrapping_add(c)),
        a.wrapping_mul(b).wrapping_add(a.wrapping_mul(c))
    );
    assert_eq!(a.wrapping_add(R::ZERO), a);
    assert_eq!(a.wrapping_mul(R::ONE), a);
    assert_eq!(a.wrapping_add(a.wrapping_neg()), R::ZERO);
    assert_eq!(a.wrapping_sub(b), a.wrapping_add(b.wrapping_neg()));
    // Shifts and the signed view.
    assert_eq!(a.shl(1), a.wrapping_add(a));
    assert_eq!(R::from_i64(a.to_signed()), a);
    assert_eq!(a.msb(), a.to_signed() < 0);
    assert_eq!(a.ashr(3).to_signed(), a.to_signed() >> 3);
    assert_eq!(a.shr(R::BITS - 1).to_u64(), a.msb() as u64);
}

proptest! {
    #[test]
    fn ring_laws_z64(a: u64, b: u64, c: u64) {
        laws::<u64>(a, b, c);
    }

    #[test]
    fn ring_laws_z32(a: u32, b: u32, c: u32) {
        laws::<u32>(a, b, c);
    }

    #[test]
    fn fixed_point_round_trip_z64(x in -1.0e9f64..1.0e9, f in 0u32..=31) {
        let fp = FixedPoint::new::<u64>(f).unwrap();
        prop_assume!(x.abs() < fp.max_abs());
        let back = fp.decode(fp.encode::<u64>(x).unwrap());
        prop_assert!((back - x).abs() <= 0.5 / fp.scale(), "{x} -> {back}");
    }

    #[test]
    fn fixed_point_round_trip_z32(x in -1000.0f64..1000.0, f in 0u32..=15) {
        let fp = FixedPoint::new::<u32>(f).unwrap();
        prop_assume!(x.abs() < fp.max_abs());
        let back = fp.decode(fp.encode::<u32>(x).unwrap());
        prop_assert!((back - x).abs() <= 0.5 / fp.scale(), "{x} -> {back}");
    }

    #[test]
    fn encoding_is_additively_homomorphic(x in -1.0e5f64..1.0e5, y in -1.0e5f64..1.0e5) {
        let fp = FixedPoint::default_for::<u64>();
        let sum = fp.encode::<u64>(x).unwrap().wrapping_add(fp.encode::<u64>(y).unwrap());
        prop_assert!((fp.decode(sum) - (x + y)).abs() <= 1.0 / fp.scale());
    }

    #[test]
    fn tensor_bytes_round_trip(data in proptest::collection::vec(any::<u64>(), 0..64)) {
        let t = RingTensor::new([data.len()], data).unwrap();
        prop_assert_eq!(RingTensor::<u64>::from_le_bytes([t.numel()], &t.to_le_bytes()).unwrap(), t);
    }
}

#[test]
fn out_of_range_values_are_refused() {
    let fp = FixedPoint::new::<u32>(8).unwrap();
    assert!(fp.encode::<u32>(fp.max_abs()).is_err());
    assert!(fp.encode::<u32>(fp.max_abs() - 1.0).is_ok());
    assert!(
        fp.encode::<u32>(-fp.max_abs()).is_ok(),
        "-2^(k-1) is representable"
    );
}
