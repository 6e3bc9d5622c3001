//! GeLU: ReLU(x) minus an even correction g(|x|) = |x| Phi(-|x|) that
//! decays like e^(-x^2/2), so one Chebyshev polynomial in |x| on [0, 32]
//! covers every input a model produces (-12 to 17 measured on MiniLM); and
//! the quadratic replacement of MPCFormer/Ditto as an explicit opt-in.
//!
//! GeLU(x) = x Phi(x) = ReLU(x) - |x| Phi(-|x|), since x Phi(x) - ReLU(x)
//! = -|x| Phi(-|x|) for either sign. The tanh form 0.5 x (1 + tanh(
//! sqrt(2/pi) (x + 0.044715 x^3))) has the same structure with
//! g(t) = t (1 - tanh(sqrt(2/pi) (t + 0.044715 t^3))) / 2. ReLU and |x|
//! come from one MSB and one bit injection; g is a degree-31 Chebyshev
//! polynomial (5 levels). CrypTen's erf is a Taylor series that diverges
//! past |x| = 1.5.

use super::batch::{round, Prod};
use super::cheb;
use super::fx::{affine, affine_owned, Fx};
use crate::error::Result;
use crate::pipeline::Lanes;
use crate::protocol::compare;
use crate::ring::Ring;
use crate::session::Session;
use crate::share::Shared;

/// Which GeLU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeluForm {
    /// x Phi(x) with the Gaussian CDF (PyTorch's default, `approximate='none'`).
    #[default]
    Erf,
    /// The tanh approximation (`approximate='tanh'`, GPT-2, BERT's original code).
    Tanh,
}

fn phi_c(t: f64) -> f64 {
    // Phi(-t) = erfc(t / sqrt 2) / 2, by the complementary error function.
    0.5 * erfc(t / std::f64::consts::SQRT_2)
}

/// erfc for t >= 0 (Numerical Recipes' erfc Chebyshev fit, relative
/// error below 1.2e-7, enough for coefficients of a 4e-5 approximation).
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn g_of(form: GeluForm) -> impl Fn(f64) -> f64 {
    move |t: f64| match form {
        GeluForm::Erf => t * phi_c(t),
        GeluForm::Tanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            t * (1.0 - (c * (t + 0.044715 * t * t * t)).tanh()) / 2.0
        }
    }
}

/// [GeLU(x)] in the given form.
///
/// Algorithm: see the module docs. Domain: |x| <= 32 (beyond, the
/// polynomial is extrapolated: still ReLU(x) to within 1e-3 up to about
/// 33). Max error against f64 (tests `tests/nonlinear_gelu.rs`): Z_2^64,
/// f = 20: 6.3e-5 absolute for the erf form, 4.1e-5 for the tanh form (the
/// degree-31 fit on [0, 32]); Z_2^32, f = 8: 4.0e-3 (one unit). Rounds:
/// 3 (an MSB over f + 12 bits 2, exact for |x| < 2048, and injection 1)
/// plus 6 (polynomial): 9 (9 in Z_2^32). Bytes per party per element to
/// each peer: 117.875 in Z_2^64 (2048 elements: MSB and injection 13.875,
/// polynomial 13 elements), 61.125 in Z_2^32 (1024 elements).
///
/// Errors: preprocessing and transport errors.
pub async fn gelu<R: Ring>(sess: &Session, x: &Shared<R>, form: GeluForm) -> Result<Shared<R>> {
    Lanes::new(sess, x)?
        .run(sess, x, |s, x| gelu_piece(s, x, form))
        .await
}

/// [`gelu`] of one piece (a lane of the pipeline, or the whole input).
async fn gelu_piece<R: Ring>(sess: &Session, x: &Shared<R>, form: GeluForm) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    // The sign over f + 12 bits: exact for |x| < 2048, far beyond the
    // polynomial's domain (a bounded MSB: one round fewer in Z_2^64).
    let (relu, _) = compare::relu_with_derivative_bounded(sess, x, f + 12).await?;
    let abs = relu.mul_scalar(sess, R::from_u64(2))?.sub(sess, x)?;
    // t = |x| / 16 - 1 at scale f + 4.
    let ts = f + 4;
    let t = Fx::new(affine_owned(sess, Fx::new(abs, ts), 1.0, -1.0, ts)?, ts);
    let coeffs = cheb::interpolate(g_of(form), 0.0, 32.0, 31);
    let g = cheb::eval(sess, &t, &coeffs, None, f).await?;
    relu.sub(sess, &g)
}

/// The quadratic GeLU replacement 0.125 x^2 + 0.25 x + 0.5 of MPCFormer
/// (Li et al., ICLR 2023) and Ditto (ICML 2024): an explicit opt-in that
/// changes the model (it must be trained or distilled for it); never a
/// stand-in for [`gelu`].
///
/// Domain: |x| < 2^10 (Z_2^64). Error against the f64 quadratic: 1 unit of
/// 2^-f. Rounds: 2. Bytes per party per element to each peer: 2 ring
/// elements.
///
/// Errors: preprocessing and transport errors.
pub async fn gelu_quad<R: Ring>(sess: &Session, x: &Shared<R>) -> Result<Shared<R>> {
    let f = sess.fixed_point::<R>()?.frac_bits();
    let (p, _) = round(sess, &[Prod::Sq(x)], &[]).await?;
    // (x^2 + 2x + 4) / 8 at scale 2f, truncated by f + 3.
    let raw = affine(
        sess,
        &[
            (&Fx::new(p.into_iter().next().expect("square"), 2 * f), 1.0),
            (&Fx::new(x.clone(), f), 2.0),
        ],
        4.0,
        2 * f,
    )?;
    let (_, out) = round(sess, &[], &[(&raw, f + 3)]).await?;
    Ok(out.into_iter().next().expect("one"))
}
