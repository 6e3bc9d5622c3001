//! Statistical and accounting checks of the security model: shares of a
//! fixed secret look uniform to any N-1 parties, sharings are fresh, and the
//! dealer sends parties 1..N-1 only their seed.

mod common;

use common::*;
use spindle::protocol::{beaver, fixed};
use spindle::ring::RingTensor;

/// Pearson chi-square statistic of byte frequencies against uniform.
fn chi_square_bytes(words: &[u64]) -> f64 {
    let mut counts = [0u64; 256];
    for w in words {
        for b in w.to_le_bytes() {
            counts[b as usize] += 1;
        }
    }
    let expected = (words.len() * 8) as f64 / 256.0;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// 255 degrees of freedom: P(chi2 > 415) is below 1e-9 for uniform bytes, so
/// the 29 checks of a run fail by chance with probability below 3e-8 (375,
/// p = 1.4e-6, failed once by chance in CI-like runs), while a sharing that
/// leaked even a little structure exceeds it by far (the fixed secret alone
/// gives millions).
const CHI2_CRITICAL: f64 = 415.0;

#[test]
fn shares_of_a_fixed_secret_look_uniform_to_any_n_minus_1_parties() {
    const SHARINGS: usize = 1000;
    const WIDTH: usize = 32;
    for n in PARTY_COUNTS {
        let report = run(n, |sess| async move {
            // A fixed, very non-uniform secret: 42 everywhere.
            let secret = RingTensor::<u64>::full([WIDTH], 42);
            let owner = 0;
            let mut mine = Vec::with_capacity(SHARINGS * WIDTH);
            for _ in 0..SHARINGS {
                let s =
                    sess.share_input(owner, (sess.party() == owner).then_some(&secret), [WIDTH])?;
                mine.extend_from_slice(s.share().data());
            }
            Ok(mine)
        });
        let shares: Vec<&Vec<u64>> = report.parties.iter().map(|p| &p.output).collect();
        // Sanity: all shares together reconstruct the secret.
        for i in 0..SHARINGS * WIDTH {
            let sum = shares.iter().fold(0u64, |a, s| a.wrapping_add(s[i]));
            assert_eq!(sum, 42);
        }
        for missing in 0..n {
            let coalition: Vec<usize> = (0..n).filter(|&p| p != missing).collect();
            // Each member's shares, and the coalition's combined view (their sum).
            for &p in &coalition {
                let chi = chi_square_bytes(shares[p]);
                assert!(
                    chi < CHI2_CRITICAL,
                    "N={n}: party {p}'s shares are not uniform (chi2 {chi:.1})"
                );
            }
            let sum: Vec<u64> = (0..SHARINGS * WIDTH)
                .map(|i| {
                    coalition
                        .iter()
                        .fold(0u64, |a, &p| a.wrapping_add(shares[p][i]))
                })
                .collect();
            let chi = chi_square_bytes(&sum);
            assert!(
                chi < CHI2_CRITICAL,
                "N={n}: coalition without {missing} sees non-uniform sums (chi2 {chi:.1})"
            );
        }
        // The test can fail: the secret itself is far from uniform.
        assert!(chi_square_bytes(&vec![42u64; SHARINGS * WIDTH]) > CHI2_CRITICAL);
    }
}

#[test]
fn two_sharings_of_the_same_secret_differ() {
    for n in PARTY_COUNTS {
        let report = run(n, |sess| async move {
            let secret = RingTensor::<u64>::full([64], 7);
            let a = sess.share_input(1, (sess.party() == 1).then_some(&secret), [64])?;
            let b = sess.share_input(1, (sess.party() == 1).then_some(&secret), [64])?;
            Ok((a.into_share(), b.into_share()))
        });
        for p in &report.parties {
            assert_ne!(
                p.output.0, p.output.1,
                "N={n} party {}: sharings repeat",
                p.party
            );
        }
        // A second run draws fresh seeds: its shares differ from the first's.
        let again = run(n, |sess| async move {
            let secret = RingTensor::<u64>::full([64], 7);
            Ok(sess
                .share_input(1, (sess.party() == 1).then_some(&secret), [64])?
                .into_share())
        });
        assert_ne!(again.parties[0].output, report.parties[0].output.0);
    }
}

#[test]
fn dealer_sends_parties_1_to_n_minus_1_only_their_seed() {
    for n in PARTY_COUNTS {
        let report = run(n, |sess| async move {
            let me = sess.party();
            let x = sess.share_input_f64::<u64>(0, (me == 0).then_some(&[1.0; 64][..]), [8, 8])?;
            let y = sess.share_input_f64::<u64>(1, (me == 1).then_some(&[2.0; 64][..]), [8, 8])?;
            let z = fixed::matmul(&sess, &x, &y).await?;
            let w = beaver::square(&sess, &z).await?;
            sess.reveal(&w).await
        });
        let plan = report.plan.as_ref().expect("dealer mode records a plan");
        assert_eq!(
            plan.requests.len(),
            3,
            "triple, truncation pair, square pair"
        );
        // Store header: magic 8 + party 4 + n 4 + seed 16 + count 8 + corrections 8.
        for p in &report.parties[1..] {
            assert_eq!(
                p.dealer_bytes, 48,
                "party {} receives its seed and the plan length only",
                p.party
            );
        }
        // Party 0 receives the correlated parts: c (64), r' and r_msb (2 x 64), a^2 (64).
        let corrections = (64 + 2 * 64 + 64) * 8;
        assert!(report.parties[0].dealer_bytes > 48 + corrections);
        assert!(
            report.parties[0].dealer_bytes < 48 + corrections + 1024,
            "only corrections and request records"
        );
    }
}
