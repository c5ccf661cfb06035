//! The compressed response body: each data frame is compressed and flushed on its own (so a streamed response
//! keeps streaming, as Envoy flushes per frame), and the encoder is finished at the end of the body or before its
//! trailers.

use crate::upstream::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use outrigger_config::model::http::CompressorLibrary;
use prometheus_client::metrics::counter::Counter;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A streaming encoder writing into a buffer that is taken after each frame.
pub enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl Encoder {
    /// Fails only when zstd cannot make its context (out of memory) or refuses a parameter.
    pub fn new(library: &CompressorLibrary) -> std::io::Result<Self> {
        Ok(match library {
            CompressorLibrary::Gzip { level } => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(*level),
            )),
            CompressorLibrary::Brotli {
                quality,
                window_bits,
            } => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                *quality,
                *window_bits,
            ))),
            CompressorLibrary::Zstd {
                level,
                checksum,
                strategy,
            } => {
                let level = i32::try_from(*level).unwrap_or(3);
                let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                encoder.include_checksum(*checksum)?;
                if let Some(strategy) = zstd_strategy(*strategy) {
                    encoder.set_parameter(zstd::stream::raw::CParameter::Strategy(strategy))?;
                }
                Encoder::Zstd(Box::new(encoder))
            }
        })
    }

    /// Compresses `data` and flushes: what the client can decode so far.
    pub fn compress(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    /// Ends the stream: the last bytes (the gzip trailer, brotli's last block).
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
            Encoder::Zstd(mut e) => {
                // What was flushed before was taken already: the buffer holds only the frame's end.
                let rest = std::mem::take(e.get_mut());
                let mut end = e.finish()?;
                let mut out = rest;
                out.append(&mut end);
                Ok(out)
            }
        }
    }
}

/// Envoy's `strategy` (0 is the level's own choice) as zstd's `ZSTD_strategy`.
fn zstd_strategy(strategy: u32) -> Option<zstd::zstd_safe::Strategy> {
    use zstd::zstd_safe::Strategy as S;
    Some(match strategy {
        1 => S::ZSTD_fast,
        2 => S::ZSTD_dfast,
        3 => S::ZSTD_greedy,
        4 => S::ZSTD_lazy,
        5 => S::ZSTD_lazy2,
        6 => S::ZSTD_btlazy2,
        7 => S::ZSTD_btopt,
        8 => S::ZSTD_btultra,
        9 => S::ZSTD_btultra2,
        _ => return None,
    })
}

/// Counters of one direction: `total_uncompressed_bytes` and `total_compressed_bytes`.
#[derive(Clone)]
pub struct ByteCounters {
    pub uncompressed: Counter,
    pub compressed: Counter,
}

pin_project_lite::pin_project! {
    pub struct Compressed<B> {
        #[pin]
        inner: B,
        encoder: Option<Encoder>,
        // Trailers held back while the encoder's last bytes go out first.
        trailers: Option<http::HeaderMap>,
        counters: ByteCounters,
    }
}

impl<B> Compressed<B> {
    pub fn new(inner: B, encoder: Encoder, counters: ByteCounters) -> Self {
        Self {
            inner,
            encoder: Some(encoder),
            trailers: None,
            counters,
        }
    }
}

impl<B> Body for Compressed<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(trailers) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.counters.uncompressed.inc_by(data.len() as u64);
                        let out = encoder.compress(&data)?;
                        this.counters.compressed.inc_by(out.len() as u64);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body: finish the stream before them.
                        *this.trailers = frame.into_trailers().ok();
                        return Poll::Ready(Some(finish(this.encoder, this.counters)));
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(Some(finish(this.encoder, this.counters))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn finish(
    encoder: &mut Option<Encoder>,
    counters: &ByteCounters,
) -> Result<Frame<Bytes>, BoxError> {
    let out = match encoder.take() {
        Some(encoder) => encoder.finish()?,
        None => Vec::new(),
    };
    counters.compressed.inc_by(out.len() as u64);
    Ok(Frame::data(Bytes::from(out)))
}
