//! Cluster configuration: a TOML file, or the environment of an existing
//! launcher (torchrun, Slurm) so that no hand-written file is needed there.
//!
//! ```toml
//! session = "mnist-2025-01"          # session id; parties of another session are refused
//!
//! [options]                          # all optional
//! transport = "tcp"                  # tcp | rdma | auto
//! insecure_plaintext = false         # true: plain TCP (also needs --insecure-plaintext)
//! timeout_ms = 60000                 # receive timeout
//! connect_timeout_ms = 30000         # start-up budget (retries, waiting for peers, dealer)
//! handshake_timeout_ms = 10000
//! max_frame_bytes = 1073741824
//! link = "wan"                       # emulated link: lan, wan or RATE:LATENCY (e.g. 1gbit:5ms);
//!                                    # also where the inner-layer lanes start (InnerPipeline::for_link)
//!
//! [dealer]
//! host = "10.0.0.9"
//! port = 7100
//! cert = "certs/dealer.pem"          # relative paths: relative to this file
//!
//! [[party]]
//! id = 0
//! host = "10.0.0.1"
//! port = 7000
//! cert = "certs/party0.pem"
//! # ... one [[party]] per party, ids 0..N-1
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use spindle_transport::{LinkOptions, LinkProfile, PartyId};

use crate::error::{Error, Result};

/// Which transport carries the parties' messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// TCP (with mutual TLS unless plaintext is asked for).
    #[default]
    Tcp,
    /// RDMA verbs over RC queue pairs, bootstrapped over the TCP/TLS mesh
    /// ([`spindle_transport::rdma`]; the `rdma` cargo feature). Without the
    /// feature or without a device: a clear error. Never yet run on RDMA
    /// hardware.
    Rdma,
    /// RDMA where this build has it and a device exists, else TCP (with a
    /// log line). Every party must resolve to the same kind.
    Auto,
}

impl std::str::FromStr for TransportKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tcp" => Ok(TransportKind::Tcp),
            "rdma" => Ok(TransportKind::Rdma),
            "auto" => Ok(TransportKind::Auto),
            other => Err(Error::InvalidParty(format!(
                "unknown transport {other:?} (tcp, rdma or auto)"
            ))),
        }
    }
}

/// `[options]` of the cluster file. Durations in milliseconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterOptions {
    /// Transport kind.
    pub transport: TransportKind,
    /// Plain TCP without TLS. Takes effect only together with the
    /// command-line flag `--insecure-plaintext` (both must agree).
    pub insecure_plaintext: bool,
    /// Receive timeout, ms.
    pub timeout_ms: u64,
    /// Start-up budget, ms.
    pub connect_timeout_ms: u64,
    /// TLS plus hello limit per link, ms.
    pub handshake_timeout_ms: u64,
    /// Largest frame payload accepted, bytes.
    pub max_frame_bytes: usize,
    /// Emulated link profile (`lan`, `wan`, `RATE:LATENCY`), if any.
    pub link: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            transport: TransportKind::Tcp,
            insecure_plaintext: false,
            timeout_ms: 60_000,
            connect_timeout_ms: 30_000,
            handshake_timeout_ms: 10_000,
            max_frame_bytes: spindle_transport::frame::DEFAULT_MAX_FRAME,
            link: None,
        }
    }
}

/// One member's address and certificate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Party id (absent for the dealer).
    #[serde(default)]
    pub id: Option<PartyId>,
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// PEM certificate (required unless plaintext).
    #[serde(default)]
    pub cert: Option<PathBuf>,
}

impl Member {
    /// "host:port" (IPv6 literals bracketed).
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A whole cluster: session id, options, dealer and parties (ordered by id).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Session id (default "spindle").
    #[serde(default = "default_session")]
    pub session: String,
    /// Options.
    #[serde(default)]
    pub options: ClusterOptions,
    /// The dealer, if the job uses one.
    #[serde(default)]
    pub dealer: Option<Member>,
    /// Parties, sorted by id after [`ClusterConfig::validate`].
    #[serde(rename = "party", default)]
    pub parties: Vec<Member>,
}

fn default_session() -> String {
    "spindle".into()
}

fn cfg_err(detail: impl Into<String>) -> Error {
    Error::Format {
        what: "cluster config".into(),
        detail: detail.into(),
    }
}

impl ClusterConfig {
    /// Parses TOML; relative certificate paths are resolved against
    /// `base_dir`. Validates (see [`ClusterConfig::validate`]).
    ///
    /// Errors: [`Error::Format`] with the TOML error or the violated rule.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Self> {
        let mut c: ClusterConfig = toml::from_str(text).map_err(|e| cfg_err(e.to_string()))?;
        let fix = |m: &mut Member| {
            if let Some(p) = &m.cert {
                if p.is_relative() {
                    m.cert = Some(base_dir.join(p));
                }
            }
        };
        c.parties.iter_mut().for_each(fix);
        if let Some(d) = &mut c.dealer {
            fix(d);
        }
        c.validate()?;
        Ok(c)
    }

    /// Reads and parses a TOML file.
    ///
    /// Errors: [`Error::Io`], and as [`ClusterConfig::from_toml`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base)
    }

    /// Checks ids (exactly 0..N-1, N >= 2, each once), sorts parties by id,
    /// checks the session id (1..=255 bytes) and the link profile, and that
    /// every member has a certificate unless plaintext is configured.
    ///
    /// Errors: [`Error::Format`].
    pub fn validate(&mut self) -> Result<()> {
        let n = self.parties.len();
        if n < 2 {
            return Err(cfg_err(format!(
                "need at least 2 [[party]] entries, got {n}"
            )));
        }
        let mut seen = vec![false; n];
        for p in &self.parties {
            let id =
                p.id.ok_or_else(|| cfg_err(format!("party at {} has no id", p.addr())))?;
            if id >= n || seen[id] {
                return Err(cfg_err(format!(
                    "party ids must be 0..{} each exactly once; bad or repeated id {id}",
                    n - 1
                )));
            }
            seen[id] = true;
        }
        self.parties.sort_by_key(|p| p.id);
        if self.session.is_empty() || self.session.len() > 255 {
            return Err(cfg_err("session id must be 1..=255 bytes"));
        }
        if let Some(l) = &self.options.link {
            l.parse::<LinkProfile>()
                .map_err(|e| cfg_err(e.to_string()))?;
        }
        if !self.options.insecure_plaintext {
            for (who, m) in self
                .parties
                .iter()
                .map(|p| (format!("party {}", p.id.unwrap_or(0)), p))
                .chain(self.dealer.iter().map(|d| ("the dealer".to_string(), d)))
            {
                if m.cert.is_none() {
                    return Err(cfg_err(format!(
                        "{who} has no cert (needed for mutual TLS; or set options.insecure_plaintext)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Number of parties.
    pub fn n_parties(&self) -> usize {
        self.parties.len()
    }

    /// "host:port" of every party, by id.
    pub fn addrs(&self) -> Vec<String> {
        self.parties.iter().map(Member::addr).collect()
    }

    /// Link options from `[options]` and the session id.
    pub fn link_options(&self) -> LinkOptions {
        let o = &self.options;
        let mut l = LinkOptions::new(self.session.clone(), self.n_parties());
        l.recv_timeout = Duration::from_millis(o.timeout_ms);
        l.write_timeout = Duration::from_millis(o.timeout_ms);
        l.connect_timeout = Duration::from_millis(o.connect_timeout_ms);
        l.handshake_timeout = Duration::from_millis(o.handshake_timeout_ms);
        l.max_frame = o.max_frame_bytes;
        l
    }

    /// A cluster from launcher environment variables, looked up with `env`:
    ///
    /// - Slurm (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_JOB_NODELIST`): task
    ///   i is party i, on node `nodes[i * nodes / ntasks]` (block
    ///   distribution), port `base + 1 + i`; the dealer on the first node,
    ///   port `base`. `base` is `SPINDLE_BASE_PORT` (default 29500); the
    ///   session id is `SLURM_JOB_ID` (or `SPINDLE_SESSION`).
    /// - torchrun (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`):
    ///   rank i is party i on `SPINDLE_HOSTS` (comma-separated, one per rank)
    ///   or else on `MASTER_ADDR`, port `MASTER_PORT + 1 + i`; the dealer at
    ///   `MASTER_ADDR:MASTER_PORT`. Session id `TORCHELASTIC_RUN_ID` or
    ///   `SPINDLE_SESSION`.
    ///
    /// Certificates are `cert_dir/party{i}.pem` and `cert_dir/dealer.pem`
    /// when `cert_dir` is given. Returns the config and this process's rank.
    ///
    /// Errors: [`Error::Format`] when neither convention is complete or a
    /// value does not parse.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        cert_dir: Option<&Path>,
        insecure_plaintext: bool,
    ) -> Result<(Self, PartyId)> {
        let num = |k: &str| -> Result<Option<usize>> {
            env(k)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| cfg_err(format!("{k}={v:?} is not a number")))
                })
                .transpose()
        };
        let (rank, hosts, base, session) = if let (Some(rank), Some(ntasks), Some(list)) = (
            num("SLURM_PROCID")?,
            num("SLURM_NTASKS")?,
            env("SLURM_JOB_NODELIST"),
        ) {
            let nodes = expand_hostlist(&list)?;
            let base = num("SPINDLE_BASE_PORT")?.unwrap_or(29500);
            let hosts: Vec<String> = (0..ntasks)
                .map(|i| nodes[(i * nodes.len() / ntasks.max(1)).min(nodes.len() - 1)].clone())
                .collect();
            let session = env("SPINDLE_SESSION")
                .or_else(|| env("SLURM_JOB_ID").map(|j| format!("slurm-{j}")))
                .unwrap_or_else(default_session);
            let dealer_host = nodes[0].clone();
            (rank, (hosts, dealer_host), base, session)
        } else if let (Some(rank), Some(world), Some(master), Some(port)) = (
            num("RANK")?,
            num("WORLD_SIZE")?,
            env("MASTER_ADDR"),
            num("MASTER_PORT")?,
        ) {
            let hosts: Vec<String> = match env("SPINDLE_HOSTS") {
                Some(h) => h.split(',').map(|s| s.trim().to_string()).collect(),
                None => vec![master.clone(); world],
            };
            if hosts.len() != world {
                return Err(cfg_err(format!(
                    "SPINDLE_HOSTS lists {} hosts for WORLD_SIZE={world}",
                    hosts.len()
                )));
            }
            let session = env("SPINDLE_SESSION")
                .or_else(|| env("TORCHELASTIC_RUN_ID"))
                .unwrap_or_else(default_session);
            (rank, (hosts, master), port, session)
        } else {
            return Err(cfg_err(
                "no --config and no launcher environment: set RANK, WORLD_SIZE, MASTER_ADDR, \
                 MASTER_PORT (torchrun) or run under srun (SLURM_PROCID, SLURM_NTASKS, \
                 SLURM_JOB_NODELIST)",
            ));
        };
        let (hosts, dealer_host) = hosts;
        let port = |offset: usize| -> Result<u16> {
            u16::try_from(base + offset)
                .map_err(|_| cfg_err(format!("port {} out of range", base + offset)))
        };
        let cert = |name: String| cert_dir.map(|d| d.join(name));
        let parties = hosts
            .into_iter()
            .enumerate()
            .map(|(i, host)| {
                Ok(Member {
                    id: Some(i),
                    host,
                    port: port(1 + i)?,
                    cert: cert(format!("party{i}.pem")),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut c = ClusterConfig {
            session,
            options: ClusterOptions {
                insecure_plaintext,
                ..ClusterOptions::default()
            },
            dealer: Some(Member {
                id: None,
                host: dealer_host,
                port: port(0)?,
                cert: cert("dealer.pem".into()),
            }),
            parties,
        };
        c.validate()?;
        if rank >= c.n_parties() {
            return Err(cfg_err(format!("rank {rank} of {} parties", c.n_parties())));
        }
        Ok((c, rank))
    }
}

/// Expands a Slurm host list: `node[01-03,07],gpu1,rack[1-2]-n[1-2]` ->
/// node01 node02 node03 node07 gpu1 rack1-n1 rack1-n2 rack2-n1 rack2-n2.
/// Zero padding follows the width of the range's first number.
///
/// Errors: [`Error::Format`] for unbalanced brackets, bad ranges, or more
/// than 65536 hosts.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = list.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'[' => depth += 1,
            b']' => depth -= 1,
            b',' if depth == 0 => {
                expand_one(&list[start..i], &mut out)?;
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(cfg_err(format!(
                "bad host list {list:?}: unbalanced brackets"
            )));
        }
    }
    if depth != 0 {
        return Err(cfg_err(format!(
            "bad host list {list:?}: unbalanced brackets"
        )));
    }
    expand_one(&list[start..], &mut out)?;
    if out.is_empty() {
        return Err(cfg_err("empty host list"));
    }
    Ok(out)
}

fn expand_one(item: &str, out: &mut Vec<String>) -> Result<()> {
    let item = item.trim();
    if item.is_empty() {
        return Ok(());
    }
    let Some(open) = item.find('[') else {
        out.push(item.to_string());
        return Ok(());
    };
    let close = item[open..]
        .find(']')
        .map(|c| c + open)
        .ok_or_else(|| cfg_err(format!("bad host {item:?}")))?;
    let (prefix, ranges, rest) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    let mut tails = Vec::new();
    if rest.is_empty() {
        tails.push(String::new());
    } else {
        expand_one(rest, &mut tails)?;
    }
    for r in ranges.split(',') {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let bad = || cfg_err(format!("bad range {r:?} in host {item:?}"));
        let lo: u64 = a.trim().parse().map_err(|_| bad())?;
        let hi: u64 = b.trim().parse().map_err(|_| bad())?;
        if hi < lo || hi - lo > 65536 {
            return Err(bad());
        }
        let width = a.trim().len();
        for v in lo..=hi {
            for t in &tails {
                out.push(format!("{prefix}{v:0width$}{t}"));
                if out.len() > 65536 {
                    return Err(cfg_err("host list expands to more than 65536 hosts"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn hostlists_expand() {
        assert_eq!(expand_hostlist("a").unwrap(), ["a"]);
        assert_eq!(
            expand_hostlist("node[01-03,07],gpu1").unwrap(),
            ["node01", "node02", "node03", "node07", "gpu1"]
        );
        assert_eq!(
            expand_hostlist("r[1-2]-n[8-9]").unwrap(),
            ["r1-n8", "r1-n9", "r2-n8", "r2-n9"]
        );
        for bad in ["n[1-", "n]1[", "n[3-1]", "n[a-b]", ""] {
            assert!(expand_hostlist(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_parses_and_validates() {
        let text = r#"
            session = "s1"
            [options]
            timeout_ms = 5000
            link = "wan"
            [dealer]
            host = "127.0.0.1"
            port = 7100
            cert = "certs/dealer.pem"
            [[party]]
            id = 1
            host = "10.0.0.2"
            port = 7001
            cert = "/abs/party1.pem"
            [[party]]
            id = 0
            host = "::1"
            port = 7000
            cert = "certs/party0.pem"
        "#;
        let c = ClusterConfig::from_toml(text, Path::new("/etc/spindle")).unwrap();
        assert_eq!(c.n_parties(), 2);
        assert_eq!(c.addrs(), ["[::1]:7000", "10.0.0.2:7001"]);
        assert_eq!(
            c.parties[0].cert.as_deref(),
            Some(Path::new("/etc/spindle/certs/party0.pem"))
        );
        assert_eq!(
            c.parties[1].cert.as_deref(),
            Some(Path::new("/abs/party1.pem"))
        );
        assert_eq!(c.link_options().recv_timeout, Duration::from_secs(5));

        let dup = text.replace("id = 1", "id = 0");
        assert!(ClusterConfig::from_toml(&dup, Path::new(".")).is_err());
        let nocert = text.replace("cert = \"/abs/party1.pem\"", "");
        let e = ClusterConfig::from_toml(&nocert, Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("no cert"), "{e}");
        let unknown = text.replace("timeout_ms", "timeout_mss");
        assert!(ClusterConfig::from_toml(&unknown, Path::new(".")).is_err());
        let badlink = text.replace("\"wan\"", "\"fast\"");
        assert!(ClusterConfig::from_toml(&badlink, Path::new(".")).is_err());
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn torchrun_environment() {
        let env = env_of(&[
            ("RANK", "2"),
            ("WORLD_SIZE", "3"),
            ("MASTER_ADDR", "10.1.1.1"),
            ("MASTER_PORT", "29400"),
        ]);
        let (c, rank) = ClusterConfig::from_env(&env, Some(Path::new("/c")), false).unwrap();
        assert_eq!(rank, 2);
        assert_eq!(
            c.addrs(),
            ["10.1.1.1:29401", "10.1.1.1:29402", "10.1.1.1:29403"]
        );
        assert_eq!(c.dealer.as_ref().unwrap().addr(), "10.1.1.1:29400");
        assert_eq!(
            c.parties[2].cert.as_deref(),
            Some(Path::new("/c/party2.pem"))
        );
        // No certificates and no plaintext: refused.
        assert!(ClusterConfig::from_env(&env, None, false).is_err());
        assert!(ClusterConfig::from_env(&env, None, true).is_ok());
    }

    #[test]
    fn slurm_environment() {
        let env = env_of(&[
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_JOB_NODELIST", "gpu[01-02]"),
            ("SLURM_JOB_ID", "777"),
        ]);
        let (c, rank) = ClusterConfig::from_env(&env, None, true).unwrap();
        assert_eq!(rank, 1);
        assert_eq!(c.session, "slurm-777");
        assert_eq!(
            c.addrs(),
            ["gpu01:29501", "gpu01:29502", "gpu02:29503", "gpu02:29504"]
        );
        assert!(ClusterConfig::from_env(&env_of(&[]), None, true).is_err());
        let bad = env_of(&[("RANK", "x"), ("WORLD_SIZE", "2")]);
        assert!(ClusterConfig::from_env(&bad, None, true).is_err());
    }
}
