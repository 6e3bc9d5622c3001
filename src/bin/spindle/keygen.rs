//! `spindle keygen`: a cluster member's key and self-signed certificate.

use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub(crate) struct KeygenArgs {
    /// Member name: party0, party1, ..., or dealer (file names NAME.key, NAME.pem).
    #[arg(long)]
    pub(crate) name: String,
    /// Output directory (created if missing).
    #[arg(long, default_value = ".")]
    pub(crate) out: PathBuf,
    /// Extra subject alternative names (host names or IPs; informative, peers pin the certificate).
    #[arg(long)]
    pub(crate) host: Vec<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) fn write_new(
    path: &Path,
    text: &str,
    force: bool,
    private: bool,
) -> spindle::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = o.open(path).map_err(|e| spindle::Error::io(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| spindle::Error::io(path, e))
}

pub(crate) fn run_keygen(args: KeygenArgs) -> spindle::Result<()> {
    let ok = !args.name.is_empty()
        && args
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(spindle::Error::InvalidParty(format!(
            "--name must be letters, digits, - or _, got {:?}",
            args.name
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| spindle::Error::io(&args.out, e))?;
    let g = spindle_transport::tls::generate_self_signed(
        &format!("spindle-{}", args.name),
        &args.host,
    )?;
    let key = args.out.join(format!("{}.key", args.name));
    let cert = args.out.join(format!("{}.pem", args.name));
    write_new(&key, &g.key_pem, args.force, true)?;
    write_new(&cert, &g.cert_pem, args.force, false)?;
    println!(
        "wrote {} (private: keep on this member's host) and {} (public: list it in the cluster config)",
        key.display(),
        cert.display()
    );
    Ok(())
}
