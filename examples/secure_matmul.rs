//! Three parties multiply two secret matrices with the public API.
//!
//! Party 0 owns X, party 1 owns W; nobody sees the other's matrix, and all
//! parties learn only X @ W. Run: `cargo run --release --example secure_matmul`.

use spindle::protocol::fixed;
use spindle::runner::{run_parties_blocking, RunOptions};

fn main() -> spindle::Result<()> {
    let x = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3, party 0's
    let w = vec![0.5, -1.0, 0.25, 2.0, -0.75, 0.0]; // 3 x 2, party 1's

    let report = run_parties_blocking(&RunOptions::new(3), move |sess| {
        let (x, w) = (x.clone(), w.clone());
        async move {
            let me = sess.party();
            // Each owner passes its data; the others pass None and the shape.
            let xs = sess.share_input_f64::<u64>(0, (me == 0).then_some(&x[..]), [2, 3])?;
            let ws = sess.share_input_f64::<u64>(1, (me == 1).then_some(&w[..]), [3, 2])?;
            let z = fixed::matmul(&sess, &xs, &ws).await?; // one Beaver round + one truncation round
            sess.reveal_f64(&z).await
        }
    })?;

    for p in &report.parties {
        println!(
            "party {}: X @ W = {:?} ({} bytes sent online in {} rounds)",
            p.party, p.output, p.online.bytes_sent, p.online.rounds
        );
    }
    Ok(())
}
