//! GeLU (erf and tanh forms) and the opt-in quadratic GeLU for N = 2, 3, 4:
//! error against f64 over the domain real models need (-12 to 17, and the
//! documented [-32, 32]), rounds and bytes.

mod common;
mod nonlinear_helpers;

use nonlinear_helpers::*;
use spindle::protocol::nonlinear::{self, GeluForm};

/// x Phi(x) with Phi from erfc computed by a continued fraction-free
/// series/asymptotic mix accurate to 1e-12 (f64 reference).
fn gelu_erf(x: f64) -> f64 {
    x * 0.5 * erfc_ref(-x / std::f64::consts::SQRT_2)
}

fn erfc_ref(x: f64) -> f64 {
    // erfc via the Taylor series of erf for |x| < 3, continued fraction beyond.
    if x.abs() < 3.0 {
        let mut sum = x;
        let mut term = x;
        let mut k = 0.0;
        while term.abs() > 1e-17 {
            k += 1.0;
            term *= -x * x / k;
            sum += term / (2.0 * k + 1.0);
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // Lentz continued fraction for erfc(|x|).
        let z = x.abs();
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (z + f);
        }
        let r = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f);
        if x > 0.0 {
            r
        } else {
            2.0 - r
        }
    }
}

fn gelu_tanh(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

fn edges() -> Vec<f64> {
    vec![
        0.0, -12.0, 17.0, -32.0, 32.0, 1.5, -1.5, 1e-6, -1e-6, 3.0, -3.0,
    ]
}

#[test]
fn gelu_erf_z64_covers_model_inputs() {
    let u = Unary {
        name: "gelu-erf",
        lo: -12.0,
        hi: 17.0,
        edges: edges(),
        tol: 7e-5,
        rounds: 9,
        bytes: Some(241_408),
        len: 2048,
    };
    check_unary::<u64, _, _>(u, gelu_erf, |s, x| async move {
        nonlinear::gelu(&s, &x, GeluForm::Erf).await
    });
}

#[test]
fn gelu_erf_z64_whole_domain() {
    let u = Unary {
        name: "gelu-erf",
        lo: -32.0,
        hi: 32.0,
        edges: edges(),
        tol: 7e-5,
        rounds: 9,
        bytes: Some(241_408),
        len: 2048,
    };
    check_unary::<u64, _, _>(u, gelu_erf, |s, x| async move {
        nonlinear::gelu(&s, &x, GeluForm::Erf).await
    });
}

#[test]
fn gelu_tanh_z64() {
    let u = Unary {
        name: "gelu-tanh",
        lo: -32.0,
        hi: 32.0,
        edges: edges(),
        tol: 7e-5,
        rounds: 9,
        bytes: Some(241_408),
        len: 2048,
    };
    check_unary::<u64, _, _>(u, gelu_tanh, |s, x| async move {
        nonlinear::gelu(&s, &x, GeluForm::Tanh).await
    });
}

#[test]
fn gelu_z32() {
    let u = Unary {
        name: "gelu-erf",
        lo: -12.0,
        hi: 17.0,
        edges: vec![0.0, -12.0, 17.0, 1.5, -1.5],
        tol: 0.0045,
        rounds: 9,
        bytes: Some(62_592),
        len: 1024,
    };
    check_unary::<u32, _, _>(u, gelu_erf, |s, x| async move {
        nonlinear::gelu(&s, &x, GeluForm::Erf).await
    });
}

#[test]
fn gelu_quad_is_the_published_quadratic() {
    let u = Unary {
        name: "gelu-quad",
        lo: -20.0,
        hi: 20.0,
        edges: vec![0.0, -20.0, 20.0],
        tol: 2e-6,
        rounds: 2,
        bytes: Some(2 * 8 * 512),
        len: 512,
    };
    check_unary::<u64, _, _>(
        u,
        |x| 0.125 * x * x + 0.25 * x + 0.5,
        |s, x| async move { nonlinear::gelu_quad(&s, &x).await },
    );
}
