//! Fuzzes the frame decoder: any bytes must decode to frames, "need more"
//! or a typed error, never a panic, never a read past the input, and every
//! decoded frame must re-encode to the bytes it came from.
//!
//! `cargo +nightly fuzz run frame_decoder` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spindle_transport::frame::{decode_frame, encode_header, FrameKind, RoundOrder, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a small maximum frame size so that the
    // "too large" path is reached as well as the accepting ones.
    let Some((&m, mut buf)) = data.split_first() else {
        return;
    };
    let max = (m as usize) * 64;
    let mut order = RoundOrder::default();
    while let Ok(Some((frame, used))) = decode_frame(buf, max) {
        assert!(used >= HEADER_LEN && used <= buf.len());
        assert_eq!(used, HEADER_LEN + frame.payload.len());
        assert_eq!(frame.header.len, frame.payload.len());
        assert!(frame.header.len <= max.max(spindle_transport::frame::MAX_ABORT_REASON));
        assert_eq!(&encode_header(&frame.header)[..], &buf[..HEADER_LEN]);
        assert_eq!(&frame.payload[..], &buf[HEADER_LEN..used]);
        if frame.header.kind == FrameKind::Data {
            let _ = order.check(frame.header.round);
        }
        buf = &buf[used..];
    }
});
