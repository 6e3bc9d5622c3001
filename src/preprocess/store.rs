//! One party's preprocessing store: what the dealer sends it, in memory or
//! as a file.
//!
//! File format (little-endian): magic `SPNDPRE1`; u32 party; u32 n_parties;
//! 16-byte seed; u64 planned request count; u64 correction count; then per
//! correction: u32 length + JSON of the [`Request`], u32 tensor count, and
//! per tensor: u8 ring bits (32 or 64), u32 rank, u64 dims, raw elements.
//! Then, only for a plan with forked sessions: u64 fork count, and per
//! fork: u64 stream id, u64 planned request count, u64 correction count
//! and its corrections as above.

use std::path::Path;

use super::{Request, SeededProvider};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::prg::Seed;
use crate::ring::{AnyTensor, RingTensor, Shape};

const MAGIC: &[u8; 8] = b"SPNDPRE1";
/// Refuse tensors whose header claims more than this many elements, so a bad
/// header cannot trigger an unbounded allocation (the data must be there too).
const MAX_RANK: usize = 8;

/// The preprocessing material of one party for one plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartyStore {
    /// The party it belongs to.
    pub party: usize,
    /// Number of parties of the session.
    pub n_parties: usize,
    /// The party's PRG seed (shared with the dealer only).
    pub seed: Seed,
    /// Number of requests the plan holds.
    pub n_requests: usize,
    /// Party 0: the plan's requests with their corrections. Others: empty.
    pub corrections: Vec<(Request, Vec<AnyTensor>)>,
    /// The material of each forked session of the plan.
    pub forks: Vec<ForkStore>,
}

/// One forked session's part of a [`PartyStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkStore {
    /// The fork's stream id.
    pub stream: u64,
    /// Number of requests the fork's plan holds.
    pub n_requests: usize,
    /// Party 0: the fork's requests with their corrections. Others: empty.
    pub corrections: Vec<(Request, Vec<AnyTensor>)>,
}

impl PartyStore {
    /// The provider that serves this store online.
    pub fn into_provider(self, backend: Device) -> SeededProvider {
        let p = if self.party == 0 {
            SeededProvider::with_corrections(self.seed, self.corrections, backend)
        } else {
            SeededProvider::from_seed(self.seed, Some(self.n_requests), backend)
        };
        p.with_fork_stores(self.forks)
    }

    /// Serializes the store (the bytes the dealer sends this party).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.party as u32).to_le_bytes());
        out.extend_from_slice(&(self.n_parties as u32).to_le_bytes());
        out.extend_from_slice(&self.seed.0);
        out.extend_from_slice(&(self.n_requests as u64).to_le_bytes());
        out.extend_from_slice(&(self.corrections.len() as u64).to_le_bytes());
        encode_corrections(&self.corrections, &mut out);
        if !self.forks.is_empty() {
            out.extend_from_slice(&(self.forks.len() as u64).to_le_bytes());
            for f in &self.forks {
                out.extend_from_slice(&f.stream.to_le_bytes());
                out.extend_from_slice(&(f.n_requests as u64).to_le_bytes());
                out.extend_from_slice(&(f.corrections.len() as u64).to_le_bytes());
                encode_corrections(&f.corrections, &mut out);
            }
        }
        out
    }

    /// Parses a store; `what` names the source in errors.
    ///
    /// Errors: [`Error::Format`] for a wrong magic, truncated data, or
    /// inconsistent sizes.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let mut r = Reader {
            bytes,
            pos: 0,
            what,
        };
        if r.take(8)? != MAGIC {
            return Err(r.err("not a Spindle preprocessing store (bad magic)"));
        }
        let party = r.u32()? as usize;
        let n_parties = r.u32()? as usize;
        if party >= n_parties {
            return Err(r.err(&format!(
                "party {party} out of range for {n_parties} parties"
            )));
        }
        let seed = Seed(r.take(16)?.try_into().expect("16 bytes"));
        let n_requests = r.u64()? as usize;
        let n_corr = r.u64()? as usize;
        let corrections = r.corrections(n_corr)?;
        let mut forks = Vec::new();
        if r.pos != bytes.len() {
            for _ in 0..r.u64()? {
                let stream = r.u64()?;
                let n_requests = r.u64()? as usize;
                let n_corr = r.u64()? as usize;
                forks.push(ForkStore {
                    stream,
                    n_requests,
                    corrections: r.corrections(n_corr)?,
                });
            }
        }
        if r.pos != bytes.len() {
            return Err(r.err("trailing bytes after the last record"));
        }
        Ok(PartyStore {
            party,
            n_parties,
            seed,
            n_requests,
            corrections,
            forks,
        })
    }

    /// Writes the store to a file (one file per party).
    ///
    /// Errors: [`Error::Io`].
    pub fn write_file(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_bytes()).map_err(|e| Error::io(path, e))
    }

    /// Reads a store written by [`PartyStore::write_file`].
    ///
    /// Errors: [`Error::Io`], [`Error::Format`].
    pub fn read_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn err(&self, detail: &str) -> Error {
        Error::Format {
            what: self.what.to_string(),
            detail: format!("{detail} (at byte {})", self.pos),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return Err(self.err(&format!("truncated: needed {n} more bytes")));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// `n` correction records as written by [`encode_corrections`] (the
    /// count comes from the caller, so a lying count fails on missing
    /// bytes, not on an allocation).
    fn corrections(&mut self, n: usize) -> Result<Vec<(Request, Vec<AnyTensor>)>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let len = self.u32()? as usize;
            let req: Request = serde_json::from_slice(self.take(len)?)
                .map_err(|e| self.err(&format!("bad request record: {e}")))?;
            let tensors = self.tensors()?;
            out.push((req, tensors));
        }
        Ok(out)
    }

    /// A tensor list as written by [`encode_tensors`].
    fn tensors(&mut self) -> Result<Vec<AnyTensor>> {
        let count = self.u32()? as usize;
        let mut tensors = Vec::new();
        for _ in 0..count {
            let bits = self.take(1)?[0];
            let rank = self.u32()? as usize;
            if rank > MAX_RANK {
                return Err(self.err(&format!("tensor rank {rank} exceeds {MAX_RANK}")));
            }
            let dims = (0..rank)
                .map(|_| Ok(self.u64()? as usize))
                .collect::<Result<Vec<_>>>()?;
            let numel = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| self.err("tensor size overflows"))?;
            let shape = Shape(dims);
            let t = match bits {
                32 => AnyTensor::Z32(RingTensor::from_le_bytes(
                    shape,
                    self.take(
                        numel
                            .checked_mul(4)
                            .ok_or_else(|| self.err("size overflow"))?,
                    )?,
                )?),
                64 => AnyTensor::Z64(RingTensor::from_le_bytes(
                    shape,
                    self.take(
                        numel
                            .checked_mul(8)
                            .ok_or_else(|| self.err("size overflow"))?,
                    )?,
                )?),
                b => return Err(self.err(&format!("unknown ring width {b}"))),
            };
            tensors.push(t);
        }
        Ok(tensors)
    }
}

/// Appends correction records: per record u32 length + JSON of the
/// [`Request`], then its tensors ([`encode_tensors`]).
fn encode_corrections(records: &[(Request, Vec<AnyTensor>)], out: &mut Vec<u8>) {
    for (req, tensors) in records {
        let json = serde_json::to_vec(req).expect("requests always serialize");
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        encode_tensors(tensors, out);
    }
}

/// Appends a tensor list: u32 count, then per tensor u8 ring bits, u32 rank,
/// u64 dims and the raw little-endian elements (the store's record body,
/// also the online dealer's reply).
pub(crate) fn encode_tensors(tensors: &[AnyTensor], out: &mut Vec<u8>) {
    out.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    for t in tensors {
        out.push(t.ring().bits() as u8);
        let dims = t.shape().dims();
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        match t {
            AnyTensor::Z32(t) => out.extend_from_slice(&t.to_le_bytes()),
            AnyTensor::Z64(t) => out.extend_from_slice(&t.to_le_bytes()),
        }
    }
}

/// Parses exactly one tensor list written by [`encode_tensors`]; `what`
/// names the source in errors.
///
/// Errors: [`Error::Format`] for truncated data, a bad header or trailing bytes.
pub(crate) fn decode_tensors(bytes: &[u8], what: &str) -> Result<Vec<AnyTensor>> {
    let mut r = Reader {
        bytes,
        pos: 0,
        what,
    };
    let t = r.tensors()?;
    if r.pos != bytes.len() {
        return Err(r.err("trailing bytes after the tensor list"));
    }
    Ok(t)
}
