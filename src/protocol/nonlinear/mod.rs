//! Arithmetic non-linear functions on fixed-point shares (being written).
