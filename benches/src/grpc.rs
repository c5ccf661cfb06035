//! gRPC's length-prefixed message framing, by hand: one flag byte (0: not compressed), a big-endian u32 length,
//! then the message. The benchmark's messages are opaque bytes, so no protobuf code is needed.

use bytes::{BufMut, Bytes, BytesMut};

/// One uncompressed message, framed.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// The message of a body that holds exactly one uncompressed frame.
pub fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (header, message) = body.split_at_checked(5)?;
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    (header[0] == 0 && usize::try_from(length).ok() == Some(message.len())).then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips() {
        let framed = frame(b"hello");
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 5]);
        assert_eq!(unframe(&framed), Some(&b"hello"[..]));
        assert_eq!(unframe(&framed[..7]), None);
        assert_eq!(unframe(b"\x01\x00\x00\x00\x00"), None);
    }
}
