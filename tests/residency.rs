//! Residency on the transfer-audit device ([`spindle::backend::AuditBackend`]):
//! every protocol is run with each party's shares kept in a simulated device
//! memory that counts each copy to and from the host. A copy to the host is
//! legitimate only where a value goes on the wire (each opening's own
//! shares, once per distinct message: `LinkStats::payload_bytes`); anything
//! above that is a host round trip in the protocol's arithmetic, which a GPU
//! would pay as a device-to-host copy and a host loop. Every op of issue 10's
//! list is checked exactly (docs/residency.md).

mod common;

use std::sync::Arc;

use common::{fresh_seed, reals};
use spindle::backend::{AuditBackend, Device, TransferCounts};
use spindle::nn::{loss, Init, ModelWeights, SecureModel, Sgd};
use spindle::preprocess::Dealer;
use spindle::prg::Prg;
use spindle::protocol::pool::{maxpool2d, Pool2d};
use spindle::protocol::{compare, fixed, nonlinear};
use spindle::session::{ProviderSpec, SessionConfig};
use spindle::{Session, Shared};
use spindle_transport::{InMemoryNetwork, LinkStats, Transport};

/// What one party copied and sent during a program.
#[derive(Debug, Clone, Copy)]
struct Audit {
    copies: TransferCounts,
    link: LinkStats,
}

impl Audit {
    /// Bytes copied to the host beyond the wire payloads (each distinct
    /// payload once: [`LinkStats::payload_bytes`]).
    fn excess_to_host_bytes(&self) -> i64 {
        self.copies.to_host_bytes as i64 - self.link.payload_bytes as i64
    }
}

type Program = Arc<
    dyn Fn(
            Arc<Session>,
            Shared<u64>,
        ) -> futures_util::future::BoxFuture<'static, spindle::Result<()>>
        + Send
        + Sync,
>;

/// Runs `program` on x (party 0's input `xs`, shape `shape`) at N parties,
/// each on its own audit device, with the dealer's store made on the CPU;
/// the counts cover the program only (input sharing excluded).
fn audit(n: usize, xs: &[f64], shape: &[usize], program: Program) -> Vec<Audit> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = SessionConfig::default();
        let (dry, plan) = Session::dry_run(0, n, config.clone()).unwrap();
        let dry = Arc::new(dry);
        let x: Shared<u64> = dry.share_input_f64(0, Some(xs), shape.to_vec()).unwrap();
        program(dry, x).await.unwrap();
        let stores = Dealer::new(n, Device::default())
            .unwrap()
            .generate(&plan.plan())
            .unwrap();
        let mut handles = Vec::new();
        for (transport, store) in InMemoryNetwork::new(n).into_iter().zip(stores) {
            let (program, config) = (program.clone(), config.clone());
            let (xs, shape) = (xs.to_vec(), shape.to_vec());
            handles.push(tokio::spawn(async move {
                let be = AuditBackend::new();
                let t: Arc<dyn Transport> = Arc::new(transport);
                let sess = Session::connect(
                    t,
                    Device::Audit(be.clone()),
                    ProviderSpec::Store(store),
                    config,
                )
                .await
                .unwrap();
                let sess = Arc::new(sess);
                let own = (sess.party() == 0).then_some(&xs[..]);
                let x: Shared<u64> = sess.share_input_f64(0, own, shape).unwrap();
                let (c0, l0) = (be.counts(), sess.link_stats());
                program(sess.clone(), x).await.unwrap();
                Audit {
                    copies: be.counts() - c0,
                    link: sess.link_stats() - l0,
                }
            }));
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    })
}

fn program<F, Fut>(f: F) -> Program
where
    F: Fn(Arc<Session>, Shared<u64>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = spindle::Result<()>> + Send + 'static,
{
    Arc::new(move |s, x| Box::pin(f(s, x)))
}

/// The ops of issue 10's list (and the products), with inputs in their
/// domains: (name, shape, program).
fn ops() -> Vec<(&'static str, Vec<usize>, f64, Program)> {
    vec![
        (
            "mul (fixed point)",
            vec![256],
            4.0,
            program(|s, x| async move { fixed::mul(&s, &x, &x).await.map(drop) }),
        ),
        (
            "matmul (fixed point)",
            vec![16, 16],
            4.0,
            program(|s, x| async move { fixed::matmul(&s, &x, &x).await.map(drop) }),
        ),
        (
            "relu",
            vec![256],
            4.0,
            program(|s, x| async move { compare::relu(&s, &x).await.map(drop) }),
        ),
        (
            "maxpool 2x2",
            vec![1, 2, 8, 8],
            4.0,
            program(|s, x| async move { maxpool2d(&s, &x, &Pool2d::square(2)).await.map(drop) }),
        ),
        (
            "exp",
            vec![256],
            4.0,
            program(|s, x| async move { nonlinear::exp(&s, &x).await.map(drop) }),
        ),
        (
            "reciprocal",
            vec![256],
            0.0,
            program(|s, x| async move {
                let y = x.add_scalar(&s, 8 << 20)?; // in (4, 12): the domain
                nonlinear::reciprocal(&s, &y).await.map(drop)
            }),
        ),
        (
            "softmax 8x32",
            vec![8, 32],
            4.0,
            program(|s, x| async move { nonlinear::softmax(&s, &x, 1, None).await.map(drop) }),
        ),
        (
            "gelu",
            vec![256],
            4.0,
            program(|s, x| async move {
                nonlinear::gelu(&s, &x, nonlinear::GeluForm::Erf)
                    .await
                    .map(drop)
            }),
        ),
        (
            "layernorm 8x32",
            vec![8, 32],
            4.0,
            program(|s, x| async move {
                nonlinear::layer_norm(&s, &x, 1e-5, None, None)
                    .await
                    .map(drop)
            }),
        ),
        (
            "LeNet training step (batch 2)",
            vec![2, 1, 28, 28],
            1.0,
            program(lenet_step),
        ),
        (
            "MiniLM encoder layer (8 tokens)",
            vec![1],
            1.0,
            program(minilm_layer),
        ),
    ]
}

/// One all-MiniLM-L6-v2 encoder layer (the model cut after layer 1):
/// sharing the weights (party 0's), then the forward of one 8-token
/// sentence (party N - 1's) with pooling and normalisation. Nothing where
/// the model folder is absent (the row then reads 0).
async fn minilm_layer(s: Arc<Session>, _x: Shared<u64>) -> spindle::Result<()> {
    use spindle::io::tokenizer::TokenBatch;
    use spindle::models::bert::secure::{SecureBert, TokenLayout};
    use spindle::models::bert::BertWeights;
    use spindle::protocol::attention::AttentionOptions;
    let Some(dir) = common::minilm_dir() else {
        return Ok(());
    };
    let w = BertWeights::from_dir(&dir)?.truncated(1)?;
    // [CLS] the quick brown fox jumps [SEP], padded to 8.
    let batch = TokenBatch::new(vec![vec![101, 1996, 4248, 2829, 4419, 14523, 102]], Some(8))?;
    let layout = TokenLayout {
        seq_len: batch.seq_len,
        lengths: batch.lengths.clone(),
    };
    let client = s.n_parties() - 1;
    let owner = (s.party() == 0).then_some(&w);
    let model =
        SecureBert::<u64>::share(&s, 0, owner, &w.config, AttentionOptions::default()).await?;
    let ids = (s.party() == client).then_some(&batch);
    model.forward(&s, client, ids, &layout).await.map(drop)
}

/// One LeNet training step on a batch of 2 images (party 0's), weights
/// from party 1: forward, softmax cross-entropy gradient, backward, SGD.
async fn lenet_step(s: Arc<Session>, x: Shared<u64>) -> spindle::Result<()> {
    let spec = spindle::models::lenet();
    let weights = ModelWeights::init(&spec, Init::KaimingUniform, 5);
    let mut model = SecureModel::<u64>::share(&s, &spec, 1, (s.party() == 1).then_some(&weights))?;
    let labels = [[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]; 2].concat();
    let y = s.share_input_f64::<u64>(0, (s.party() == 0).then_some(&labels[..]), [2, 10])?;
    let logits = model.forward(&s, &x, true).await?;
    let (grad, _) = loss::softmax_cross_entropy_grad(&s, &logits, &y).await?;
    model.backward(&s, &grad, false).await?;
    let sgd = Sgd {
        lr: 0.03,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    sgd.step(&s, model.params_mut()).await
}

/// Every op of the list, 2 and 3 parties, printed as docs/residency.md's
/// table: the only copies to the host are the payloads that go on the
/// wire (each opening's own shares, once per distinct message).
#[test]
fn every_op_copies_only_what_goes_on_the_wire() {
    let mut prg = Prg::new(&fresh_seed("residency"), 1);
    let minilm = common::minilm_dir().is_some();
    for n in [2, 3] {
        for (name, shape, bound, p) in ops() {
            let numel: usize = shape.iter().product();
            let xs = reals(&mut prg, numel, bound);
            let a = audit(n, &xs, &shape, p);
            let excess: Vec<i64> = a.iter().map(|x| x.excess_to_host_bytes()).collect();
            eprintln!(
                "| {name} | {n} | {numel} | {} | {} | {excess:?} | {} |",
                a[0].link.bytes_sent, a[0].copies.to_host_bytes, a[0].copies.to_device_bytes,
            );
            for (party, x) in a.iter().enumerate() {
                if minilm || !name.starts_with("MiniLM") {
                    assert!(x.link.bytes_sent > 0, "{name}: nothing sent");
                }
                assert_eq!(
                    x.excess_to_host_bytes(),
                    0,
                    "{name}, N = {n}, party {party}: bytes copied to the host beyond the wire \
                     (a host round trip; SPINDLE_AUDIT_TRACE=1 prints where): {x:?}"
                );
            }
        }
    }
}
