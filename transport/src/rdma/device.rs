//! Device discovery: list the verbs devices, open the configured one, check
//! its port and read the port's addresses (LID, GID) and MTU.

use std::sync::Arc;

use sideway::ibverbs::device::{DeviceInfo, DeviceList, GetDeviceListErrorKind};
use sideway::ibverbs::device_context::{DeviceContext, PortState};

use super::{error_chain, RdmaDevice, RdmaOptions, RdmaUnavailable};

/// ENOSYS: what libibverbs' device listing fails with where the kernel has
/// no RDMA support (no `/sys/class/infiniband_verbs`).
const ENOSYS: i32 = 38;
/// EOPNOTSUPP: what sideway's loader stubs (rdma-mummy-sys) fail with when
/// `libibverbs.so.1` cannot be loaded at all.
const EOPNOTSUPP: i32 = 95;

/// An opened device and what was found about its port.
pub(crate) struct OpenDevice {
    /// The device context; queue pairs and memory are created from it.
    pub(crate) ctx: Arc<DeviceContext>,
    /// Name, port, addresses, MTU.
    pub(crate) info: RdmaDevice,
    /// The active MTU as the verbs code (1 = 256 B ... 5 = 4096 B).
    pub(crate) mtu_code: u8,
}

/// Opens the device `opts` asks for (or the first one) and checks its port.
///
/// Errors: as [`super::probe`].
pub(crate) fn open(opts: &RdmaOptions) -> Result<OpenDevice, RdmaUnavailable> {
    let list = DeviceList::new().map_err(|e| {
        let errno = match &e.0 {
            GetDeviceListErrorKind::Ibverbs(io) => io.raw_os_error(),
            _ => None,
        };
        let hint = match errno {
            Some(ENOSYS) => " (no RDMA support in this host's kernel)",
            Some(EOPNOTSUPP) => {
                " (libibverbs.so.1 could not be loaded: install rdma-core / libibverbs1)"
            }
            _ => "",
        };
        RdmaUnavailable::NoDevice(format!(
            "listing RDMA devices failed: {}{hint}",
            error_chain(&e)
        ))
    })?;
    if list.is_empty() {
        return Err(RdmaUnavailable::NoDevice(
            "libibverbs lists no devices".into(),
        ));
    }
    let names: Vec<String> = list.iter().map(|d| d.name()).collect();
    let device = match &opts.device {
        None => list.get(0),
        Some(want) => list.iter().find(|d| &d.name() == want),
    };
    let Some(device) = device else {
        return Err(RdmaUnavailable::NoDevice(format!(
            "no device named {:?} (found: {})",
            opts.device.as_deref().unwrap_or(""),
            names.join(", ")
        )));
    };
    let name = device.name();
    let ctx = device.open().map_err(|e| {
        RdmaUnavailable::Unusable(format!("cannot open {name}: {}", error_chain(&e)))
    })?;
    let port = ctx.query_port(opts.port).map_err(|e| {
        RdmaUnavailable::Unusable(format!("{name} port {}: {}", opts.port, error_chain(&e)))
    })?;
    let state = port.port_state();
    if state != PortState::Active {
        return Err(RdmaUnavailable::Unusable(format!(
            "{name} port {} is not active ({state:?})",
            opts.port
        )));
    }
    let gid = ctx.query_gid(opts.port, opts.gid_index).map_err(|e| {
        RdmaUnavailable::Unusable(format!(
            "{name} port {} GID index {}: {}",
            opts.port,
            opts.gid_index,
            error_chain(&e)
        ))
    })?;
    let lid = port.lid();
    if lid == 0 && gid.is_zero() {
        return Err(RdmaUnavailable::Unusable(format!(
            "{name} port {} has no LID and GID index {} is empty \
             (set SPINDLE_RDMA_GID_INDEX to a populated index)",
            opts.port, opts.gid_index
        )));
    }
    let mtu_code = port.active_mtu() as u32;
    let mtu_code = u8::try_from(mtu_code)
        .ok()
        .filter(|c| super::endpoint::mtu_bytes(*c).is_some())
        .ok_or_else(|| {
            RdmaUnavailable::Unusable(format!("{name}: unknown active MTU code {mtu_code}"))
        })?;
    let info = RdmaDevice {
        name,
        port: opts.port,
        lid,
        gid: gid.raw,
        mtu_bytes: super::endpoint::mtu_bytes(mtu_code).unwrap_or(256),
    };
    Ok(OpenDevice {
        ctx,
        info,
        mtu_code,
    })
}
