//! Multi-process tests: real `spindle party` and `spindle dealer` processes
//! on 127.0.0.1 with mutual TLS. Every wait is bounded (hang detection
//! only; no timing assertions).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spindle::jobs::{AnyJob as Job, MatmulJob};
use spindle_transport::tls::generate_self_signed;

const BIN: &str = env!("CARGO_BIN_EXE_spindle");
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A cluster directory: certificates, cluster.toml, logs.
struct Cluster {
    dir: PathBuf,
    n: usize,
}

/// Children killed on drop, so a failing test leaves no processes behind.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_ports(k: usize) -> Vec<u16> {
    let ls: Vec<std::net::TcpListener> = (0..k)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl Cluster {
    fn new(n: usize, options: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "spindle-mp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        let ports = free_ports(n + 1);
        let mut toml = format!(
            "session = \"mp-test-{}\"\n[options]\n{options}\n[dealer]\nhost = \"127.0.0.1\"\nport = {}\ncert = \"certs/dealer.pem\"\n",
            dir.file_name().unwrap().to_string_lossy(),
            ports[0]
        );
        let mut names = vec!["dealer".to_string()];
        for i in 0..n {
            names.push(format!("party{i}"));
            toml += &format!(
                "[[party]]\nid = {i}\nhost = \"127.0.0.1\"\nport = {}\ncert = \"certs/party{i}.pem\"\n",
                ports[1 + i]
            );
        }
        for name in &names {
            let g = generate_self_signed(name, &["127.0.0.1".into()]).unwrap();
            std::fs::write(dir.join(format!("certs/{name}.pem")), g.cert_pem).unwrap();
            std::fs::write(dir.join(format!("certs/{name}.key")), g.key_pem).unwrap();
        }
        std::fs::write(dir.join("cluster.toml"), toml).unwrap();
        Cluster { dir, n }
    }

    fn spawn(&self, name: &str, args: &[String]) -> (String, Child) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        (name.to_string(), child)
    }

    fn config(&self) -> String {
        self.dir.join("cluster.toml").display().to_string()
    }

    fn key(&self, name: &str) -> String {
        self.dir
            .join(format!("certs/{name}.key"))
            .display()
            .to_string()
    }

    /// Starts the dealer and all parties with `job` args; `party_extra` are
    /// added to party command lines only.
    fn start(&self, job: &[&str], party_extra: &[&str]) -> Procs {
        self.start_with(job, party_extra, &[])
    }

    /// As [`Cluster::start`], with `dealer_extra` added to the dealer's command line.
    fn start_with(&self, job: &[&str], party_extra: &[&str], dealer_extra: &[&str]) -> Procs {
        let job: Vec<String> = job.iter().map(|s| s.to_string()).collect();
        let mut procs = Vec::new();
        let mut args = vec![
            "dealer".to_string(),
            "--config".into(),
            self.config(),
            "--key".into(),
            self.key("dealer"),
        ];
        args.extend(job.iter().cloned());
        args.extend(dealer_extra.iter().map(|s| s.to_string()));
        procs.push(self.spawn("dealer", &args));
        for i in 0..self.n {
            let mut args = vec![
                "party".to_string(),
                "--config".into(),
                self.config(),
                "--party".into(),
                i.to_string(),
                "--key".into(),
                self.key(&format!("party{i}")),
                "--output".into(),
                self.dir
                    .join(format!("party{i}.json"))
                    .display()
                    .to_string(),
            ];
            args.extend(job.iter().cloned());
            args.extend(party_extra.iter().map(|s| s.to_string()));
            procs.push(self.spawn(&format!("party{i}"), &args));
        }
        Procs(procs)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// Waits for every process, at most `limit` in total; panics on a hang.
fn wait_all(procs: &mut Procs, limit: Duration) -> Vec<(String, ExitStatus)> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    for (name, child) in &mut procs.0 {
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                out.push((name.clone(), st));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} still running after {limit:?}: hang"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    out
}

#[test]
fn three_parties_and_dealer_run_secure_matmul_over_mutual_tls() {
    let c = Cluster::new(3, "timeout_ms = 20000\nconnect_timeout_ms = 20000");
    let (m, k, n, seed) = (24, 40, 12, 7);
    let job_args = ["--m", "24", "--k", "40", "--n", "12", "--input-seed", "7"];
    let mut procs = c.start(&job_args, &["--check"]);
    let st = wait_all(&mut procs, Duration::from_secs(60));
    for (name, s) in &st {
        assert!(s.success(), "{name} failed:\n{}", c.log(name));
    }
    let job = Job::Matmul(MatmulJob {
        m,
        k,
        n,
        input_seed: seed,
        repeat: 1,
    });
    let expected = job.expected();
    let mut first: Option<Vec<f64>> = None;
    for i in 0..3 {
        let text = std::fs::read_to_string(c.dir.join(format!("party{i}.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let result: Vec<f64> = serde_json::from_value(v["result"].clone()).unwrap();
        assert_eq!(result.len(), m * n);
        let err = result
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        // k products of 1-ulp encoded values plus one truncation, f = 20.
        assert!(
            err < (k as f64 + 4.0) * 2f64.powi(-20) * 2.0,
            "party {i}: {err}"
        );
        // Every party revealed the same value.
        match &first {
            None => first = Some(result),
            Some(f) => assert_eq!(f, &result),
        }
        // Traffic: setup and online phases, 3 online rounds (Beaver,
        // truncation, reveal) and the store from the dealer.
        let phases = v["stats"]["phases"].as_array().unwrap();
        let online = phases.iter().find(|p| p["label"] == "online").unwrap();
        assert_eq!(online["rounds"], 3, "party {i}");
        assert!(v["dealer_bytes"].as_u64().unwrap() >= 48);
    }
    let _ = std::fs::remove_dir_all(&c.dir);
}

/// The `result` array of a party's JSON output.
fn party_result(c: &Cluster, party: usize) -> Vec<f64> {
    let text = std::fs::read_to_string(c.dir.join(format!("party{party}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn training_as_separate_processes_reproduces_the_in_process_run_and_resumes() {
    use spindle::train::{train, Data, Evaluation, TrainOptions};
    let mut opts = TrainOptions {
        model: "secureml".into(),
        data: Data::EmbeddedSample,
        parties: 3,
        epochs: 2,
        batch: 16,
        train_limit: Some(64),
        test_limit: Some(32),
        seed: 5,
        evaluation: Evaluation::RevealToOwner,
        dealer_seed: Some(spindle::prg::Seed([0xd5; 16])),
        ..Default::default()
    };
    opts.sgd.lr = 0.05;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reference = rt.block_on(train(&opts)).unwrap();
    assert_eq!(reference.epochs.len(), 2);

    let c = Cluster::new(3, "timeout_ms = 30000\nconnect_timeout_ms = 20000");
    let ck = c.dir.join("checkpoints").display().to_string();
    let master = ["--master-seed", "d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5"];
    let job = |epochs: &'static str| {
        vec![
            "--job",
            "train",
            "--model",
            "secureml",
            "--batch",
            "16",
            "--train-limit",
            "64",
            "--test-limit",
            "32",
            "--seed",
            "5",
            "--lr",
            "0.05",
            "--eval",
            "reveal",
            "--epochs",
            epochs,
        ]
    };
    // Epoch 1, then epoch 2 resumed from each party's own checkpoint.
    let mut results = Vec::new();
    for (epochs, resume) in [("1", false), ("2", true)] {
        let party = ["--checkpoint-dir", ck.as_str()];
        let mut job = job(epochs);
        if resume {
            job.push("--resume");
        }
        let mut procs = c.start_with(&job, &party, &master);
        for (name, s) in wait_all(&mut procs, Duration::from_secs(120)) {
            assert!(s.success(), "{name} failed:\n{}", c.log(&name));
        }
        assert!(
            c.log("party1").contains("32 B from the dealer"),
            "parties 1..N-1 receive only seeds:\n{}",
            c.log("party1")
        );
        results.push(party_result(&c, 0));
        assert!(
            party_result(&c, 1).is_empty(),
            "only the data owner learns the loss"
        );
    }
    for (e, r) in results.iter().enumerate() {
        let want = &reference.epochs[e];
        assert_eq!(
            r,
            &vec![want.loss, want.accuracy],
            "epoch {} over processes equals the in-process run",
            e + 1
        );
    }
    for p in 0..3 {
        for e in 1..=2 {
            assert!(c
                .dir
                .join(format!(
                    "checkpoints/secureml-party{p}-epoch{e}.safetensors"
                ))
                .exists());
        }
    }

    // A party whose checkpoints end at another epoch is refused.
    std::fs::remove_file(c.dir.join("checkpoints/secureml-party2-epoch2.safetensors")).unwrap();
    let mut job = job("3");
    job.push("--resume");
    let mut procs = c.start_with(&job, &["--checkpoint-dir", ck.as_str()], &master);
    for (name, s) in wait_all(&mut procs, Duration::from_secs(60)) {
        assert!(!s.success(), "{name} should fail");
    }
    assert!(
        c.log("party0").contains("different epochs"),
        "{}",
        c.log("party0")
    );
    let _ = std::fs::remove_dir_all(&c.dir);
}

#[test]
fn op_job_runs_non_linear_functions_over_processes_with_material_expanded_ahead() {
    // Absolute tolerances: exp's is its 1.3e-6 relative error at e^10.
    for (op, m, n, tol) in [
        ("softmax", "8", "32", 3e-5),
        ("exp", "4", "64", 0.03),
        ("relu", "3", "50", 1e-6),
    ] {
        let c = Cluster::new(2, "timeout_ms = 20000\nconnect_timeout_ms = 20000");
        let job = [
            "--job", "op", "--op", op, "--m", m, "--n", n, "--repeat", "2",
        ];
        let mut procs = c.start(&job, &["--expand-ahead"]);
        for (name, s) in wait_all(&mut procs, Duration::from_secs(60)) {
            assert!(s.success(), "{op}: {name} failed:\n{}", c.log(&name));
        }
        let text = std::fs::read_to_string(c.dir.join("party0.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let err = v["max_abs_error"].as_f64().unwrap();
        assert!(err <= tol, "{op}: error {err} against f64");
        assert_eq!(party_result(&c, 0).len(), 1, "party 0 learns its error");
        assert!(party_result(&c, 1).is_empty());
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

/// A dealer store many times the frame limit (set low here) arrives in
/// chunks, where one frame would exceed the limit.
#[test]
fn a_store_larger_than_the_frame_limit_arrives_in_chunks() {
    let limit = 16384;
    let c = Cluster::new(
        2,
        &format!("timeout_ms = 20000\nconnect_timeout_ms = 20000\nmax_frame_bytes = {limit}"),
    );
    let job = [
        "--job", "op", "--op", "relu", "--m", "3", "--n", "50", "--repeat", "20",
    ];
    let mut procs = c.start(&job, &[]);
    for (name, s) in wait_all(&mut procs, Duration::from_secs(60)) {
        assert!(s.success(), "{name} failed:\n{}", c.log(&name));
    }
    let text = std::fs::read_to_string(c.dir.join("party0.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let store = v["dealer_bytes"].as_u64().unwrap();
    assert!(
        store > 4 * limit,
        "store of {store} bytes: not several frames"
    );
    assert!(v["max_abs_error"].as_f64().unwrap() <= 1e-6);
    let _ = std::fs::remove_dir_all(&c.dir);
}

#[test]
fn train_job_without_the_online_dealer_is_a_clear_error() {
    let c = Cluster::new(2, "timeout_ms = 5000\nconnect_timeout_ms = 3000");
    let args: Vec<String> = [
        "party",
        "--config",
        &c.config(),
        "--party",
        "0",
        "--key",
        &c.key("party0"),
        "--job",
        "train",
        "--preprocessing",
        "dealer",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut procs = Procs(vec![c.spawn("party0", &args)]);
    let st = wait_all(&mut procs, Duration::from_secs(30));
    assert!(!st[0].1.success());
    assert!(
        c.log("party0").contains("needs the online dealer"),
        "{}",
        c.log("party0")
    );
    let _ = std::fs::remove_dir_all(&c.dir);
}

#[test]
fn dealer_refuses_a_party_running_another_job() {
    let c = Cluster::new(2, "timeout_ms = 5000\nconnect_timeout_ms = 3000");
    let mut procs = Procs(Vec::new());
    let mut dealer = vec![
        "dealer".to_string(),
        "--config".into(),
        c.config(),
        "--key".into(),
        c.key("dealer"),
    ];
    dealer.extend(["--m", "8"].iter().map(|s| s.to_string()));
    procs.0.push(c.spawn("dealer", &dealer));
    for i in 0..2 {
        let args = vec![
            "party".to_string(),
            "--config".into(),
            c.config(),
            "--party".into(),
            i.to_string(),
            "--key".into(),
            c.key(&format!("party{i}")),
            "--m".into(),
            "9".into(),
        ];
        procs.0.push(c.spawn(&format!("party{i}"), &args));
    }
    let st = wait_all(&mut procs, Duration::from_secs(60));
    for (name, s) in &st {
        assert!(!s.success(), "{name} should fail");
    }
    assert!(
        c.log("party0").contains("job mismatch"),
        "{}",
        c.log("party0")
    );
    let _ = std::fs::remove_dir_all(&c.dir);
}

#[test]
fn party_with_a_certificate_not_in_the_config_is_refused() {
    let c = Cluster::new(2, "timeout_ms = 5000\nconnect_timeout_ms = 3000");
    // Party 1 runs with a fresh key whose certificate nobody knows: its own
    // config lists the rogue certificate, the others' configs do not.
    let rogue = generate_self_signed("rogue", &[]).unwrap();
    std::fs::write(c.dir.join("certs/rogue.pem"), &rogue.cert_pem).unwrap();
    std::fs::write(c.dir.join("certs/rogue.key"), &rogue.key_pem).unwrap();
    let cfg = std::fs::read_to_string(c.dir.join("cluster.toml")).unwrap();
    std::fs::write(
        c.dir.join("rogue.toml"),
        cfg.replace("certs/party1.pem", "certs/rogue.pem"),
    )
    .unwrap();
    let mut procs = c.start_custom(&[
        (
            "party0",
            vec![
                "--config".into(),
                c.config(),
                "--party".into(),
                "0".into(),
                "--key".into(),
                c.key("party0"),
            ],
        ),
        (
            "party1",
            vec![
                "--config".into(),
                c.dir.join("rogue.toml").display().to_string(),
                "--party".into(),
                "1".into(),
                "--key".into(),
                c.key("rogue"),
            ],
        ),
    ]);
    let st = wait_all(&mut procs, Duration::from_secs(60));
    for (name, s) in &st {
        assert!(!s.success(), "{name} should fail:\n{}", c.log(name));
    }
    let p1 = c.log("party1");
    assert!(p1.contains("handshake") || p1.contains("TLS"), "{p1}");
    let _ = std::fs::remove_dir_all(&c.dir);
}

impl Cluster {
    fn start_custom(&self, parties: &[(&str, Vec<String>)]) -> Procs {
        let mut procs = vec![self.spawn(
            "dealer",
            &[
                "dealer".to_string(),
                "--config".into(),
                self.config(),
                "--key".into(),
                self.key("dealer"),
            ],
        )];
        for (name, args) in parties {
            let mut a = vec!["party".to_string()];
            a.extend(args.iter().cloned());
            procs.push(self.spawn(name, &a));
        }
        Procs(procs)
    }
}

fn random_u64() -> u64 {
    let s = spindle::prg::Seed::random().unwrap();
    u64::from_le_bytes(s.0[..8].try_into().unwrap())
}

#[test]
fn killing_a_party_at_a_random_point_fails_the_others_promptly() {
    // A job of about 0.85 s of emulated network time (40 products x 2 rounds
    // x 10 ms latency), killed 30..700 ms after the start.
    let trials = 20;
    let (mut mid_run, mut late, mut failed_others, mut named_victim) = (0, 0, 0, 0);
    let t_all = Instant::now();
    for trial in 0..trials {
        let c = Cluster::new(
            3,
            "timeout_ms = 4000\nconnect_timeout_ms = 3000\nhandshake_timeout_ms = 2000",
        );
        let job = ["--m", "8", "--k", "8", "--n", "8", "--repeat", "40"];
        let mut procs = c.start(&job, &["--link", "1gbit:10ms", "--check"]);
        let victim = (random_u64() % 3) as usize;
        let delay = Duration::from_millis(30 + random_u64() % 670);
        std::thread::sleep(delay);
        let child = &mut procs.0[1 + victim].1;
        let was_running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        // The others: non-zero exit with a message naming the victim, well
        // within the receive/connect timeouts (plus slack for a busy host).
        let deadline = Instant::now() + Duration::from_secs(15);
        for p in (0..3).filter(|&p| p != victim) {
            let (_, child) = &mut procs.0[1 + p];
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                assert!(
                    Instant::now() < deadline,
                    "trial {trial}: party {p} hangs after party {victim} was killed at {delay:?}"
                );
                std::thread::sleep(Duration::from_millis(5));
            };
            let log = c.log(&format!("party{p}"));
            if status.success() {
                // Legitimate only if the victim had already delivered all its
                // messages (killed while shutting down or printing): then the
                // result was checked against f64 (--check) and is right.
                late += 1;
                assert!(log.contains("done"), "trial {trial}: party {p}:\n{log}");
            } else {
                failed_others += 1;
                assert!(
                    log.contains("error"),
                    "trial {trial}: party {p} exited non-zero without an error message (killed {victim} at {delay:?}):\n{log}"
                );
                // Usually the error names the victim; a survivor may instead
                // report the other survivor's abort when that one noticed first.
                if log.contains(&format!("party {victim}")) {
                    named_victim += 1;
                } else {
                    eprintln!(
                        "trial {trial}: party {p}'s error does not name party {victim}:\n{log}"
                    );
                }
            }
        }
        mid_run += was_running as usize;
        drop(procs); // kills the dealer if it still waits for the victim
        let _ = std::fs::remove_dir_all(&c.dir);
    }
    eprintln!(
        "{mid_run}/{trials} victims still running when killed; {failed_others} surviving parties \
         failed naming the victim, {late} finished correctly (kill after the victim's last \
         message); {:?} in all",
        t_all.elapsed()
    );
    assert!(
        named_victim * 10 >= failed_others * 8,
        "most failing survivors name the killed party: {named_victim} of {failed_others}"
    );
    assert!(
        failed_others >= trials,
        "too few kills landed mid-run: {failed_others} failures of {} surviving parties",
        2 * trials
    );
}

/// A training job of a few seconds over processes (SecureML, 2 epochs of
/// 6 steps, online dealer).
const SHORT_TRAINING: [&str; 12] = [
    "--job",
    "train",
    "--model",
    "secureml",
    "--batch",
    "16",
    "--train-limit",
    "96",
    "--test-limit",
    "16",
    "--epochs",
    "2",
];

/// What a port scanner or a stranger does to the dealer's port: a TCP
/// connect and close, garbage bytes, and a TLS client whose certificate
/// is not in the cluster config (claiming to be party 0).
fn probe_dealer(c: &Cluster, addr: &str, rt: &tokio::runtime::Runtime) {
    use std::io::Write;
    if let Ok(s) = std::net::TcpStream::connect(addr) {
        drop(s);
    }
    if let Ok(mut s) = std::net::TcpStream::connect(addr) {
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: dealer\r\n\r\n\x00\xff\x16\x03\x01garbage");
    }
    let rogue = generate_self_signed("stranger", &[]).unwrap();
    let (cert, key) = (c.dir.join("stranger.pem"), c.dir.join("stranger.key"));
    std::fs::write(&cert, &rogue.cert_pem).unwrap();
    std::fs::write(&key, &rogue.key_pem).unwrap();
    let dealer_cert = c.dir.join("certs/dealer.pem");
    let id = spindle_transport::TlsIdentity::from_files(
        0,
        &key,
        &cert,
        &[(spindle_transport::DEALER, dealer_cert.as_path())],
    )
    .unwrap();
    let mut lo = spindle_transport::link::LinkOptions::new(
        format!("mp-test-{}", c.dir.file_name().unwrap().to_string_lossy()),
        c.n,
    );
    lo.handshake_timeout = Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let r = rt.block_on(spindle_transport::link::dial(
        0,
        spindle_transport::DEALER,
        addr,
        &spindle_transport::Security::Tls(std::sync::Arc::new(id)),
        &lo,
        deadline,
    ));
    assert!(r.is_err(), "a stranger's certificate is refused");
}

#[test]
fn training_outlives_the_connect_timeout_and_survives_a_port_scan_of_the_dealer() {
    // The connect timeout (2 s) bounds start-up only: the job runs longer,
    // and strangers connect to the online dealer all along.
    let c = Cluster::new(
        3,
        "timeout_ms = 20000\nconnect_timeout_ms = 2000\nhandshake_timeout_ms = 2000",
    );
    let toml = std::fs::read_to_string(c.dir.join("cluster.toml")).unwrap();
    let port: u16 = toml
        .lines()
        .find_map(|l| l.strip_prefix("port = "))
        .unwrap()
        .parse()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let job = SHORT_TRAINING;
    let t0 = Instant::now();
    let mut procs = c.start(&job, &["--link", "1gbit:4ms"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut probes = 0;
    std::thread::sleep(Duration::from_millis(300));
    while procs.0[0].1.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(90) {
        probe_dealer(&c, &addr, &rt);
        probes += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = wait_all(&mut procs, Duration::from_secs(90));
    let took = t0.elapsed();
    for (name, s) in &st {
        assert!(
            s.success(),
            "{name} failed after {took:?}:\n{}",
            c.log(name)
        );
    }
    assert!(
        took > Duration::from_secs(3),
        "the job must outlast the 2 s connect timeout to test it: {took:?}"
    );
    assert!(probes >= 3, "{probes} probes");
    assert!(
        c.log("dealer").contains("refused a connection"),
        "{}",
        c.log("dealer")
    );
    eprintln!("training over processes took {took:?} with {probes} rounds of probes");
    let _ = std::fs::remove_dir_all(&c.dir);
}

/// How a member is made to fail.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGKILL: the process dies, its sockets close.
    Kill,
    /// SIGSTOP: the process hangs with its sockets open (a silent member).
    Stop,
}

/// Sends `sig` (e.g. "-STOP") to `child` with the shell's built-in `kill`
/// (no procps needed).
fn signal(child: &Child, sig: &str) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill {sig} {}", child.id())])
        .status();
}

/// What one fault trial saw.
#[derive(Default)]
struct TrialOutcome {
    /// Survivors that exited non-zero naming the victim.
    named: usize,
    /// Survivors that exited non-zero without naming it (printed).
    unnamed: usize,
    /// Survivors that finished correctly (the victim had done its part).
    finished: usize,
}

/// Starts `job` on a fresh 3-party cluster, makes member `victim` (0: the
/// dealer, 1 + p: party p) fail with `fault` after `delay`, and checks that
/// every survivor exits within `limit` of the fault: non-zero with an error,
/// or zero with a result checked against f64 (`--check`) when the victim
/// had already done its part.
fn fault_trial(
    job: &[&str],
    dealer_extra: &[&str],
    victim: usize,
    fault: Fault,
    delay: Duration,
) -> TrialOutcome {
    let c = Cluster::new(
        3,
        "timeout_ms = 3000\nconnect_timeout_ms = 4000\nhandshake_timeout_ms = 2000",
    );
    let mut procs = c.start_with(job, &["--link", "1gbit:3ms", "--check"], dealer_extra);
    std::thread::sleep(delay);
    let name = procs.0[victim].0.clone();
    match fault {
        Fault::Kill => {
            let _ = procs.0[victim].1.kill();
        }
        Fault::Stop => signal(&procs.0[victim].1, "-STOP"),
    }
    let victim_words = if victim == 0 {
        "the dealer".to_string()
    } else {
        format!("party {}", victim - 1)
    };
    // The receive timeout (3 s) or the connect timeout (4 s) bounds every
    // wait; the rest is slack for a busy 2-core host.
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut out = TrialOutcome::default();
    for m in (0..procs.0.len()).filter(|&m| m != victim) {
        let (who, child) = &mut procs.0[m];
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{who} still runs 25 s after {name} was {fault:?}ed at {delay:?}: a hang\n{}",
                c.log(who)
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let log = c.log(who);
        assert!(
            !log.contains("panicked"),
            "{who} panicked ({name} {fault:?}ed at {delay:?}):\n{log}"
        );
        // The process's own error line (not its earlier log lines).
        let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error")).collect();
        if status.success() {
            out.finished += 1;
        } else if errors.iter().any(|l| l.contains(&victim_words)) {
            out.named += 1;
        } else {
            out.unnamed += 1;
            eprintln!(
                "{who}'s error does not name {victim_words} ({name} {fault:?}ed at {delay:?}):\n{log}"
            );
        }
    }
    signal(&procs.0[victim].1, "-CONT");
    drop(procs);
    let _ = std::fs::remove_dir_all(&c.dir);
    out
}

#[test]
fn fault_injection_every_survivor_fails_promptly_naming_the_member_that_died() {
    // Trials (default 8; SPINDLE_FAULT_TRIALS=20 for the figures in
    // docs/transport.md): a random member (dealer or party) of a training
    // job (online dealer) or an inference job (dealer stores; the MiniLM
    // folder in ../shared/data, when present) is killed or stopped at a
    // random point.
    let trials: usize = std::env::var("SPINDLE_FAULT_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let minilm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/minilm");
    let minilm = minilm.display().to_string();
    let have_minilm = std::path::Path::new(&minilm).join("config.json").exists();
    let train: Vec<&str> = SHORT_TRAINING.to_vec();
    let infer: Vec<&str> = vec![
        "--job",
        "infer",
        "--model",
        &minilm,
        "--text",
        "a fault in the middle",
        "--layers",
        "2",
    ];
    let (mut total, t_all) = (TrialOutcome::default(), Instant::now());
    for trial in 0..trials {
        let use_infer = have_minilm && trial % 2 == 1;
        let job = if use_infer { &infer } else { &train };
        let victim = (random_u64() % 4) as usize;
        let fault = if random_u64().is_multiple_of(2) {
            Fault::Kill
        } else {
            Fault::Stop
        };
        let delay = Duration::from_millis(100 + random_u64() % 1500);
        let o = fault_trial(job, &[], victim, fault, delay);
        eprintln!(
            "trial {trial}: {} job, member {victim} {fault:?}ed at {delay:?}: {} named it, {} did not, {} finished",
            if use_infer { "infer" } else { "train" },
            o.named,
            o.unnamed,
            o.finished
        );
        total.named += o.named;
        total.unnamed += o.unnamed;
        total.finished += o.finished;
    }
    eprintln!(
        "{trials} trials in {:?}: {} survivors failed naming the victim, {} failed without \
         naming it, {} finished correctly",
        t_all.elapsed(),
        total.named,
        total.unnamed,
        total.finished
    );
    assert_eq!(
        total.unnamed, 0,
        "every failing survivor names the member that died"
    );
    assert!(
        total.named >= trials,
        "too few faults landed mid-run: {} failing survivors in {trials} trials",
        total.named
    );
}

/// The inter-batch pipeline across processes: an infer job in
/// micro-batches on forks, two in flight, with the online dealer process
/// serving every fork (opened by party 0 over its dealer link): the client
/// gets each sentence's embedding, in order, matching the plaintext twin.
#[test]
fn infer_job_in_micro_batches_is_served_by_the_online_dealer_process() {
    let minilm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/minilm");
    if !minilm.join("config.json").exists() {
        eprintln!("skipped: no MiniLM folder at {}", minilm.display());
        return;
    }
    let minilm = minilm.display().to_string();
    let c = Cluster::new(2, "timeout_ms = 30000\nconnect_timeout_ms = 20000");
    let job = [
        "--job",
        "infer",
        "--model",
        &minilm,
        "--text",
        "Forks in flight.",
        "--text",
        "The dealer serves every micro-batch.",
        "--text",
        "A third sentence, longer than the others by a few words.",
        "--layers",
        "1",
        "--micro-batch",
        "2",
        "--in-flight",
        "2",
    ];
    let mut procs = c.start(&job, &["--check"]);
    let st = wait_all(&mut procs, Duration::from_secs(120));
    for (name, s) in &st {
        assert!(s.success(), "{name} failed:\n{}", c.log(name));
    }
    let client = c.log("party1");
    let cosines: Vec<f64> = client
        .lines()
        .filter_map(|l| l.split("cosine with the plaintext twin ").nth(1))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(cosines.len(), 3, "{client}");
    assert!(cosines.iter().all(|&c| c >= 0.9999), "{cosines:?}");
    assert!(
        c.log("dealer").contains("online dealer"),
        "{}",
        c.log("dealer")
    );
    let _ = std::fs::remove_dir_all(&c.dir);
}

/// The inter-batch pipeline across processes on a CNN: a classify job
/// (LeNet from a plaintext state dict at party 1, the shipped MNIST
/// sample at party 0) in micro-batches, two in flight, served by the
/// online dealer process: the data owner gets every label and its
/// accuracy against the sample's labels.
#[test]
fn classify_job_in_micro_batches_runs_across_processes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = Cluster::new(2, "timeout_ms = 30000\nconnect_timeout_ms = 20000");
    let spec = spindle::models::lenet();
    let weights = c.dir.join("lenet.safetensors");
    spindle::nn::ModelWeights::init(&spec, spindle::nn::Init::PyTorchDefault, 3)
        .write_state_dict(&spec, &weights)
        .unwrap();
    let sample = root.join("data/mnist-sample");
    let (images, labels) = (
        sample.join("t10k-images-512-idx3-ubyte.gz"),
        sample.join("t10k-labels-512-idx1-ubyte.gz"),
    );
    let (weights, images, labels) = (
        weights.display().to_string(),
        images.display().to_string(),
        labels.display().to_string(),
    );
    let job = [
        "--job",
        "classify",
        "--weights",
        &weights,
        "--images",
        &images,
        "--labels",
        &labels,
        "--count",
        "40",
        "--micro-batch",
        "16",
        "--in-flight",
        "2",
    ];
    let mut procs = c.start(&job, &[]);
    let st = wait_all(&mut procs, Duration::from_secs(120));
    for (name, s) in &st {
        assert!(s.success(), "{name} failed:\n{}", c.log(name));
    }
    let owner = c.log("party0");
    assert!(
        owner.contains("40 label(s) received, secure accuracy"),
        "{owner}"
    );
    assert!(
        c.log("dealer").contains("online dealer"),
        "{}",
        c.log("dealer")
    );
    let _ = std::fs::remove_dir_all(&c.dir);
}
