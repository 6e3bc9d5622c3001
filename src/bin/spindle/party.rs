//! `spindle party`: one party of a job as this process.

use crate::args::{human_bytes, runtime, ClusterArgs, JobArgs, PreprocessingArg, TransportArg};
use spindle::jobs::{AnyJob as Job, AnyOutput, MatmulJob};
use spindle::net::config::TransportKind;
use spindle::net::party::{run_party, PartyOptions};
use spindle::runner::Preprocessing;
use spindle_transport::LinkProfile;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct PartyArgs {
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// This party's id (default: RANK or SLURM_PROCID).
    #[arg(long)]
    pub(crate) party: Option<usize>,
    /// Source of correlated randomness (default: dealer; online-dealer for the train job).
    #[arg(long, value_enum)]
    pub(crate) preprocessing: Option<PreprocessingArg>,
    /// Transport (overrides the config).
    #[arg(long, value_enum)]
    pub(crate) transport: Option<TransportArg>,
    /// Emulate every outgoing link: lan (10 Gbit/s, 0.1 ms), wan (400 Mbit/s, 20 ms) or RATE:LATENCY.
    #[arg(long)]
    pub(crate) link: Option<String>,
    /// Write the revealed result, its error against f64 and the traffic per phase as JSON.
    #[arg(long)]
    pub(crate) output: Option<PathBuf>,
    /// Fail unless the revealed result matches the f64 reference within the fixed-point bound.
    #[arg(long)]
    pub(crate) check: bool,
    /// With a dealer store: expand all of this party's material before the
    /// online phase (a dry run of the job gives the plan), so the online
    /// time excludes the PRG expansion.
    #[arg(long)]
    pub(crate) expand_ahead: bool,
    /// Write this party's timeline (compute, protocol, send and receive
    /// tracks) to FILE as Chrome trace-event JSON, and print each stage's
    /// busy time. `{party}` in FILE becomes the party id (one file per
    /// process when every process gets the same arguments).
    #[arg(long)]
    pub(crate) trace: Option<PathBuf>,
    /// Where share arithmetic runs: cpu, cuda, cuda:N, or auto (CUDA device
    /// 0 if present, else the CPU). Default cpu: the CUDA backend has not yet
    /// passed its parity tests on a GPU (README, "State").
    #[arg(long, default_value = "cpu")]
    pub(crate) device: spindle::backend::DeviceChoice,
}

pub(crate) fn run_party_cmd(args: PartyArgs) -> spindle::Result<()> {
    let (cluster, rank) = args.cluster.load()?;
    let me = args.party.or(rank).ok_or_else(|| {
        spindle::Error::InvalidParty("pass --party ID (or set RANK / SLURM_PROCID)".into())
    })?;
    let security = spindle::net::security(
        &cluster,
        me,
        args.cluster.key_for(&format!("party{me}.key")).as_deref(),
        args.cluster.insecure_plaintext,
    )?;
    let link = args
        .link
        .as_deref()
        .map(str::parse::<LinkProfile>)
        .transpose()?;
    let job = args.job.job()?;
    let session = args.job.session(cluster.options.link.as_deref())?;
    let opts = PartyOptions {
        cluster,
        me,
        security,
        job: job.clone(),
        session: session.clone(),
        preprocessing: match (args.preprocessing, job.needs_online_dealer()) {
            (Some(p), _) => Preprocessing::from(p),
            (None, true) => Preprocessing::OnlineDealer,
            (None, false) => Preprocessing::Dealer,
        },
        transport: args.transport.map(|t| match t {
            TransportArg::Tcp => TransportKind::Tcp,
            TransportArg::Rdma => TransportKind::Rdma,
            TransportArg::Auto => TransportKind::Auto,
        }),
        link,
        bind: args.cluster.bind.clone(),
        backend: spindle::backend::select_device(args.device)?,
        expand_ahead: args.expand_ahead,
        trace: args.trace.is_some(),
    };
    let out = match runtime()?.block_on(run_party(opts)) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("error: party {me}: {e}");
            std::process::exit(1);
        }
    };
    let online = out
        .stats
        .phases
        .iter()
        .find(|p| p.label == "online")
        .map(|p| p.stats)
        .unwrap_or_default();
    println!(
        "party {me}: {} done; startup {:.1} ms, online {:.1} ms; max |secure - f64| = {:.3e}; \
         online sent {} in {} rounds; {} from the dealer",
        job.fingerprint(out.stats.n_parties, &session),
        out.startup_time.as_secs_f64() * 1e3,
        out.online_time.as_secs_f64() * 1e3,
        out.max_abs_error,
        human_bytes(online.bytes_sent),
        online.rounds,
        human_bytes(out.dealer_bytes as u64)
    );
    for p in &out.phases {
        println!(
            "party {me}: {} {:.1} ms, sent {} in {} rounds",
            p.label,
            p.time.as_secs_f64() * 1e3,
            human_bytes(p.link.bytes_sent),
            p.link.rounds
        );
    }
    if let AnyOutput::Train(epochs) = &out.output {
        for e in epochs {
            println!(
                "party {me}: epoch {}: loss {:.4}, test accuracy {:.2}%",
                e.epoch,
                e.loss,
                100.0 * e.accuracy
            );
        }
    }
    if let (Job::Classify(j), false) = (&job, out.result.is_empty()) {
        report_classify_result(me, j, &out.result, args.job.classify_job()?.1.as_deref())?;
    }
    if let (Job::Infer(j), false) = (&job, out.result.is_empty()) {
        report_infer_result(me, j, &out.result, args.check)?;
    }
    if let (Some(path), Some(trace)) = (&args.trace, &out.trace) {
        let path = PathBuf::from(path.to_string_lossy().replace("{party}", &me.to_string()));
        crate::args::write_trace(&path, trace)?;
    }
    if let Some(p) = &args.output {
        let text = serde_json::to_string_pretty(&out.to_json()).unwrap_or_default();
        std::fs::write(p, text).map_err(|e| spindle::Error::io(p, e))?;
    }
    if let (true, Job::Matmul(MatmulJob { k, .. })) = (args.check, &job) {
        let k = *k;
        let f = args.job.frac_bits.unwrap_or(20);
        // Each of the k products is off by at most 1 ulp after encoding, plus truncation.
        let tol = (k as f64 + 4.0) * 2f64.powi(-(f as i32)) * 2.0;
        if out.max_abs_error > tol {
            eprintln!(
                "error: party {me}: result check failed: max error {:.3e} > bound {tol:.3e}",
                out.max_abs_error
            );
            std::process::exit(1);
        }
    }
    Ok(())
}

/// The data owner's view of a classify job: how many labels, and the
/// accuracy where the true labels are at hand.
fn report_classify_result(
    me: usize,
    job: &spindle::classify::ClassifyJob,
    result: &[f64],
    labels: Option<&std::path::Path>,
) -> spindle::Result<()> {
    let classes = job.classes()?;
    let predicted = spindle::classify::predicted_labels(result, job.reveal, classes);
    let mut line = format!("party {me}: {} label(s) received", predicted.len());
    if let Some(path) = labels {
        let truth = spindle::io::mnist::read_labels(path)?;
        let correct = predicted
            .iter()
            .zip(&truth)
            .filter(|(p, &y)| **p == y as usize)
            .count();
        line.push_str(&format!(
            ", secure accuracy {:.2}% ({correct}/{})",
            100.0 * correct as f64 / predicted.len().max(1) as f64,
            predicted.len()
        ));
    }
    println!("{line}");
    Ok(())
}

/// The client's view of an infer job: the embeddings' first values and,
/// with `check`, the cosine similarity with the plaintext twin.
pub(crate) fn report_infer_result(
    me: usize,
    job: &spindle::infer::InferJob,
    flat: &[f64],
    check: bool,
) -> spindle::Result<()> {
    use spindle::models::bert::plain::{cosine, sentence_embedding, DomainTrace};
    let h = flat.len() / job.lengths.len().max(1);
    let twin = if check {
        let w = spindle::models::bert::BertWeights::from_dir(&job.model)?;
        Some(
            w.truncated(
                job.layers
                    .unwrap_or(w.config.num_layers)
                    .min(w.config.num_layers),
            )?,
        )
    } else {
        None
    };
    let tk = spindle::io::tokenizer::Tokenizer::from_dir(&job.model)?;
    for (i, e) in flat.chunks(h.max(1)).enumerate() {
        let e: Vec<f32> = e.iter().map(|&v| v as f32).collect();
        let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:+.5}")).collect();
        let mut line = format!("party {me}: embedding {i}: [{}, ...]", head.join(", "));
        if let Some(w) = &twin {
            let ids = tk.encode(&job.text[i])?;
            let t = sentence_embedding(w, &ids, &mut DomainTrace::default())?;
            line.push_str(&format!(
                ", cosine with the plaintext twin {:.7}",
                cosine(&e, &t)
            ));
        }
        println!("{line}");
    }
    Ok(())
}
