//! The `spindle` command line (being written).
fn main() {}
