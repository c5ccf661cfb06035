//! Just enough of a TLS ClientHello to read SNI and ALPN (RFC 8446 section 4.1.2, RFC 6066, RFC 7301).

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Hello {
        server_name: Option<String>,
        alpn: Vec<String>,
    },
    Incomplete,
    NotTls,
}

/// A cursor that fails instead of panicking at the end of its bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A length-prefixed block as its own reader.
    fn block(&mut self, len: usize) -> Option<Reader<'a>> {
        self.take(len).map(|bytes| Reader { bytes })
    }
}

pub fn parse(bytes: &[u8]) -> Parsed {
    let mut record = Reader { bytes };
    let Some(header) = record.take(5) else {
        return Parsed::Incomplete;
    };
    if header[0] != 0x16 || header[1] != 0x03 {
        return Parsed::NotTls;
    }
    let record_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let Some(mut body) = record.block(record_len) else {
        return Parsed::Incomplete;
    };
    // The ClientHello may span records only when huge; we read the first record, as Envoy does.
    match hello(&mut body) {
        Some(parsed) => parsed,
        None => Parsed::NotTls,
    }
}

fn hello(r: &mut Reader<'_>) -> Option<Parsed> {
    if r.u8()? != 1 {
        return Some(Parsed::NotTls);
    }
    let len = r.u24()?;
    let Some(mut hello) = r.block(len) else {
        return Some(Parsed::Incomplete);
    };
    hello.take(2 + 32)?; // legacy_version, random
    let session = hello.u8()?;
    hello.take(session)?;
    let suites = hello.u16()?;
    hello.take(suites)?;
    let compression = hello.u8()?;
    hello.take(compression)?;
    let mut server_name = None;
    let mut alpn = Vec::new();
    if hello.bytes.is_empty() {
        return Some(Parsed::Hello { server_name, alpn });
    }
    let extensions_len = hello.u16()?;
    let mut extensions = hello.block(extensions_len)?;
    while !extensions.bytes.is_empty() {
        let kind = extensions.u16()?;
        let len = extensions.u16()?;
        let mut data = extensions.block(len)?;
        match kind {
            0 => {
                let list_len = data.u16()?;
                let mut list = data.block(list_len)?;
                while !list.bytes.is_empty() {
                    let name_type = list.u8()?;
                    let name_len = list.u16()?;
                    let name = list.take(name_len)?;
                    if name_type == 0 {
                        server_name = std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
                    }
                }
            }
            16 => {
                let list_len = data.u16()?;
                let mut list = data.block(list_len)?;
                while !list.bytes.is_empty() {
                    let proto_len = list.u8()?;
                    let proto = list.take(proto_len)?;
                    alpn.push(String::from_utf8_lossy(proto).into_owned());
                }
            }
            _ => {}
        }
    }
    Some(Parsed::Hello { server_name, alpn })
}

/// A minimal ClientHello naming `server_name` and offering `alpn`: what a TLS client sends first. For tests
/// and benchmarks of detection; it is not enough to complete a handshake.
pub fn encode(server_name: &str, alpn: &[&str]) -> Vec<u8> {
    let with_len16 = |body: Vec<u8>| {
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend(body);
        out
    };
    let mut name = vec![0];
    name.extend(with_len16(server_name.as_bytes().to_vec()));
    let sni = with_len16(name);
    let mut protocols = Vec::new();
    for p in alpn {
        protocols.push(p.len() as u8);
        protocols.extend_from_slice(p.as_bytes());
    }
    let alpn = with_len16(protocols);
    let mut extensions = Vec::new();
    for (kind, data) in [(0u16, sni), (16u16, alpn)] {
        extensions.extend_from_slice(&kind.to_be_bytes());
        extensions.extend(with_len16(data));
    }
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend(with_len16(extensions));
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(with_len16(handshake));
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sni_and_alpn() {
        let parsed = parse(&encode("api.svc.cluster.local", &["h2", "http/1.1"]));
        assert_eq!(
            parsed,
            Parsed::Hello {
                server_name: Some("api.svc.cluster.local".into()),
                alpn: vec!["h2".into(), "http/1.1".into()]
            }
        );
    }

    #[test]
    fn every_truncation_is_incomplete_and_garbage_is_not_tls() {
        let bytes = encode("api.svc.cluster.local", &["h2", "http/1.1"]);
        for n in 0..bytes.len() {
            assert_eq!(parse(&bytes[..n]), Parsed::Incomplete, "at {n}");
        }
        assert_eq!(
            parse(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"),
            Parsed::NotTls
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::NotTls);
    }
}
