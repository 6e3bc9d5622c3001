//! Settings of the RDMA transport: which device and port, and the sizes of
//! the registered buffer pool and of the completion thread's polling.

use std::time::Duration;

use crate::TransportError;

/// Device selection and buffer sizes of [`super::RdmaTransport`]. The
/// defaults suit one RC queue pair per peer on an InfiniBand or RoCE port
/// (GID index 0; RoCE v2 often needs another, see `show_gids`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmaOptions {
    /// Verbs device name (e.g. `mlx5_0`); `None`: the first device listed.
    pub device: Option<String>,
    /// Physical port of the device, from 1 (default 1).
    pub port: u8,
    /// GID table index of the source address (default 0; 0..=255).
    pub gid_index: u32,
    /// Size of each registered buffer, the largest chunk of a frame on the
    /// wire, bytes (default 128 KiB; 1 KiB ..= 1 GiB).
    pub slot_bytes: usize,
    /// Send buffers per peer: SENDs in flight at most (default 16; 1..=4096).
    pub send_slots: usize,
    /// Receive buffers kept posted per peer (default 32; 1..=4096). Twice
    /// the peer's send buffers makes receiver-not-ready retries rare.
    pub recv_slots: usize,
    /// How long the completion thread keeps busy-polling after the last
    /// completion or command before it starts sleeping (default 1 ms).
    pub spin: Duration,
    /// How long the completion thread sleeps between polls when idle
    /// (default 50 µs; it wakes at once for a new send). This bounds the
    /// extra latency of a message that arrives after an idle period.
    pub idle_wait: Duration,
}

impl Default for RdmaOptions {
    fn default() -> Self {
        RdmaOptions {
            device: None,
            port: 1,
            gid_index: 0,
            slot_bytes: 128 << 10,
            send_slots: 16,
            recv_slots: 32,
            spin: Duration::from_millis(1),
            idle_wait: Duration::from_micros(50),
        }
    }
}

/// Environment variable naming the verbs device.
pub const ENV_DEVICE: &str = "SPINDLE_RDMA_DEVICE";
/// Environment variable with the port number.
pub const ENV_PORT: &str = "SPINDLE_RDMA_PORT";
/// Environment variable with the GID index.
pub const ENV_GID_INDEX: &str = "SPINDLE_RDMA_GID_INDEX";

impl RdmaOptions {
    /// Defaults, with the device, port and GID index taken from the
    /// environment when set: `SPINDLE_RDMA_DEVICE`, `SPINDLE_RDMA_PORT`,
    /// `SPINDLE_RDMA_GID_INDEX`.
    ///
    /// Errors: [`TransportError::Config`] for a value that does not parse.
    pub fn from_env() -> Result<RdmaOptions, TransportError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// As [`RdmaOptions::from_env`], reading variables through `var`.
    ///
    /// Errors: [`TransportError::Config`] for a value that does not parse.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<RdmaOptions, TransportError> {
        let mut o = RdmaOptions::default();
        let bad =
            |k: &str, v: &str| TransportError::Config(format!("{k}={v:?} is not a valid number"));
        if let Some(d) = var(ENV_DEVICE).filter(|d| !d.is_empty()) {
            o.device = Some(d);
        }
        if let Some(p) = var(ENV_PORT) {
            o.port = p.trim().parse().map_err(|_| bad(ENV_PORT, &p))?;
        }
        if let Some(g) = var(ENV_GID_INDEX) {
            o.gid_index = g.trim().parse().map_err(|_| bad(ENV_GID_INDEX, &g))?;
        }
        o.validate()?;
        Ok(o)
    }

    /// Checks the ranges documented on the fields.
    ///
    /// Errors: [`TransportError::Config`] naming the bad field.
    pub fn validate(&self) -> Result<(), TransportError> {
        let bad = |what: String| Err(TransportError::Config(format!("RDMA options: {what}")));
        if self.port == 0 {
            return bad("port numbers start at 1".into());
        }
        if self.gid_index > 255 {
            return bad(format!("GID index {} (0..=255)", self.gid_index));
        }
        if !(1024..=1 << 30).contains(&self.slot_bytes) {
            return bad(format!(
                "buffer size {} bytes (1 KiB ..= 1 GiB)",
                self.slot_bytes
            ));
        }
        for (name, n) in [("send", self.send_slots), ("receive", self.recv_slots)] {
            if !(1..=4096).contains(&n) {
                return bad(format!("{n} {name} buffers per peer (1..=4096)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_env_overrides_parse() {
        RdmaOptions::default().validate().unwrap();
        let o = RdmaOptions::from_vars(|k| match k {
            ENV_DEVICE => Some("mlx5_1".into()),
            ENV_PORT => Some("2".into()),
            ENV_GID_INDEX => Some(" 3 ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(o.device.as_deref(), Some("mlx5_1"));
        assert_eq!((o.port, o.gid_index), (2, 3));
        assert_eq!(
            RdmaOptions::from_vars(|_| None).unwrap(),
            RdmaOptions::default()
        );
    }

    #[test]
    fn bad_values_are_config_errors() {
        for (k, v) in [
            (ENV_PORT, "x"),
            (ENV_PORT, "0"),
            (ENV_PORT, "300"),
            (ENV_GID_INDEX, "-1"),
            (ENV_GID_INDEX, "256"),
        ] {
            let e = RdmaOptions::from_vars(|q| (q == k).then(|| v.to_string())).unwrap_err();
            assert!(matches!(e, TransportError::Config(_)), "{k}={v}: {e}");
        }
        let o = RdmaOptions {
            slot_bytes: 100,
            ..Default::default()
        };
        assert!(o.validate().is_err());
        let o = RdmaOptions {
            send_slots: 0,
            ..Default::default()
        };
        assert!(o.validate().is_err());
        let o = RdmaOptions {
            recv_slots: 5000,
            ..Default::default()
        };
        assert!(o.validate().is_err());
    }
}
