//! The decoders behind the decompressor filter, fed one body frame at a time (and once more, empty, at the end
//! of the body, as Envoy's codec does), driven the way Envoy drives zlib, brotli and zstd:
//! - output is produced in `chunk_size` pieces;
//! - gzip keeps zlib's `window_bits` (a stream reaching further back fails), and stops a frame once its full
//!   pieces pass `max_inflate_ratio` times the frame's size (`zlib_data_error`); the stream goes on with the
//!   next frame;
//! - brotli stops a frame the same way past 100 times (`brotli_output_overflow`, also counted as `brotli_error`)
//!   and flushes what its piece holds; zstd has no such limit;
//! - a decoding error keeps what was decoded before it and counts the library's error statistic; a broken
//!   stream counts it again for every later frame and yields nothing more.

use brotli_decompressor::{BrotliResult, BrotliState, StandardAlloc};
use prometheus_client::metrics::counter::Counter;

/// Brotli's fixed inflate ratio in Envoy.
const BROTLI_MAX_INFLATE_RATIO: u64 = 100;

/// The library's error counters (`decompressor_library.*`) that a decoder can raise.
#[derive(Clone, Default)]
pub struct LibraryStats {
    pub zlib_data_error: Counter,
    pub brotli_error: Counter,
    pub brotli_output_overflow: Counter,
    pub brotli_redundant_input: Counter,
    pub zstd_generic_error: Counter,
}

type Brotli = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

pub enum Inflater {
    Gzip {
        state: Box<flate2::Decompress>,
        chunk_size: usize,
        max_inflate_ratio: u64,
    },
    Brotli {
        state: Box<Brotli>,
        chunk_size: usize,
        failed: bool,
    },
    Zstd {
        state: Option<Box<zstd::stream::raw::Decoder<'static>>>,
        chunk_size: usize,
    },
}

impl Inflater {
    pub fn gzip(window_bits: u32, chunk_size: u32, max_inflate_ratio: u32) -> Self {
        // The loader keeps window_bits within 9..=15 (Envoy's field rule); the clamp only guards the call.
        let window_bits = window_bits.clamp(9, 15) as u8;
        Inflater::Gzip {
            state: Box::new(flate2::Decompress::new_gzip(window_bits)),
            chunk_size: chunk_size.max(1) as usize,
            max_inflate_ratio: u64::from(max_inflate_ratio),
        }
    }

    pub fn brotli(chunk_size: u32) -> Self {
        Inflater::Brotli {
            state: Box::new(BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            )),
            chunk_size: chunk_size.max(1) as usize,
            failed: false,
        }
    }

    pub fn zstd(chunk_size: u32) -> Self {
        Inflater::Zstd {
            state: zstd::stream::raw::Decoder::new().ok().map(Box::new),
            chunk_size: chunk_size.max(1) as usize,
        }
    }

    /// Decodes one frame's bytes (empty at the end of the body).
    pub fn inflate(&mut self, input: &[u8], stats: &LibraryStats) -> Vec<u8> {
        match self {
            Inflater::Gzip {
                state,
                chunk_size,
                max_inflate_ratio,
            } => gzip(
                state,
                input,
                *chunk_size,
                max_inflate_ratio.saturating_mul(input.len() as u64),
                stats,
            ),
            Inflater::Brotli {
                state,
                chunk_size,
                failed,
            } => {
                if *failed {
                    if !input.is_empty() {
                        stats.brotli_error.inc();
                    }
                    return Vec::new();
                }
                let limit = BROTLI_MAX_INFLATE_RATIO.saturating_mul(input.len() as u64);
                brotli(state, input, *chunk_size, limit, stats, failed)
            }
            Inflater::Zstd { state, chunk_size } => {
                if input.is_empty() {
                    return Vec::new();
                }
                let Some(decoder) = state else {
                    stats.zstd_generic_error.inc();
                    return Vec::new();
                };
                let (output, ok) = zstd_inflate(decoder, input, *chunk_size);
                if !ok {
                    stats.zstd_generic_error.inc();
                    *state = None;
                }
                output
            }
        }
    }
}

/// zlib's inflate loop: each full piece moves to the output, and the ratio is checked after every step.
fn gzip(
    state: &mut flate2::Decompress,
    input: &[u8],
    chunk_size: usize,
    limit: u64,
    stats: &LibraryStats,
) -> Vec<u8> {
    let mut output = Vec::new();
    if input.is_empty() {
        return output;
    }
    let mut chunk = vec![0u8; chunk_size];
    let mut filled = 0;
    let mut consumed = 0;
    loop {
        let (in_before, out_before) = (state.total_in(), state.total_out());
        let result = state.decompress(
            &input[consumed..],
            &mut chunk[filled..],
            flate2::FlushDecompress::None,
        );
        consumed += (state.total_in() - in_before) as usize;
        filled += (state.total_out() - out_before) as usize;
        match result {
            // The end of the stream, or no progress possible without more input.
            Ok(flate2::Status::StreamEnd | flate2::Status::BufError) => break,
            Ok(flate2::Status::Ok) => {}
            Err(_) => {
                stats.zlib_data_error.inc();
                break;
            }
        }
        if filled == chunk_size {
            output.extend_from_slice(&chunk);
            filled = 0;
        }
        if output.len() as u64 > limit {
            // Envoy returns here: the rest of this frame's input is dropped.
            stats.zlib_data_error.inc();
            return output;
        }
        if consumed == input.len() && state.total_out() == out_before {
            break;
        }
    }
    output.extend_from_slice(&chunk[..filled]);
    output
}

/// Envoy's brotli loop: a piece is flushed when full; the ratio is checked before each flush.
fn brotli(
    state: &mut Brotli,
    input: &[u8],
    chunk_size: usize,
    limit: u64,
    stats: &LibraryStats,
    failed: &mut bool,
) -> Vec<u8> {
    let mut run = BrotliRun {
        input,
        available_in: input.len(),
        input_offset: 0,
        chunk: vec![0u8; chunk_size],
        available_out: chunk_size,
        output_offset: 0,
        output: Vec::new(),
        limit,
    };
    let mut stopped = false;
    while run.available_in > 0 {
        if !run.step(state, stats, failed) {
            stopped = true;
            break;
        }
    }
    if !stopped {
        // Input all read, the decoder may still hold output that did not fit the piece.
        while run.step(state, stats, failed)
            && brotli_decompressor::BrotliDecoderHasMoreOutput(state)
        {}
    }
    // What the piece holds goes out too (Envoy's `finalizeOutput`).
    let held = chunk_size - run.available_out;
    run.output.extend_from_slice(&run.chunk[..held]);
    run.output
}

/// One frame's pass through brotli: Envoy's `BrotliContext`.
struct BrotliRun<'a> {
    input: &'a [u8],
    available_in: usize,
    input_offset: usize,
    chunk: Vec<u8>,
    available_out: usize,
    output_offset: usize,
    output: Vec<u8>,
    limit: u64,
}

impl BrotliRun<'_> {
    /// One call into the decoder; false when decoding stops for this frame.
    fn step(&mut self, state: &mut Brotli, stats: &LibraryStats, failed: &mut bool) -> bool {
        let mut total_out = 0;
        let result = brotli_decompressor::BrotliDecompressStream(
            &mut self.available_in,
            &mut self.input_offset,
            self.input,
            &mut self.available_out,
            &mut self.output_offset,
            &mut self.chunk,
            &mut total_out,
            state,
        );
        match result {
            BrotliResult::ResultFailure => {
                stats.brotli_error.inc();
                *failed = true;
                false
            }
            BrotliResult::ResultSuccess if self.available_in > 0 => {
                stats.brotli_error.inc();
                stats.brotli_redundant_input.inc();
                false
            }
            _ => {
                if self.output.len() as u64 > self.limit {
                    stats.brotli_error.inc();
                    stats.brotli_output_overflow.inc();
                    return false;
                }
                if self.available_out == 0 {
                    self.output.extend_from_slice(&self.chunk);
                    self.available_out = self.chunk.len();
                    self.output_offset = 0;
                }
                true
            }
        }
    }
}

/// zstd's stream loop over one frame's bytes; false after an error.
fn zstd_inflate(
    decoder: &mut zstd::stream::raw::Decoder<'static>,
    input: &[u8],
    chunk_size: usize,
) -> (Vec<u8>, bool) {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut output = Vec::new();
    let mut chunk = vec![0u8; chunk_size];
    let mut source = InBuffer::around(input);
    while source.pos() < input.len() {
        let mut sink = OutBuffer::around(&mut chunk[..]);
        let result = decoder.run(&mut source, &mut sink);
        let produced = sink.pos();
        output.extend_from_slice(&chunk[..produced]);
        if result.is_err() {
            return (output, false);
        }
    }
    // The input is read; output the decoder still holds comes out with empty input.
    loop {
        let mut empty = InBuffer::around(&[]);
        let mut sink = OutBuffer::around(&mut chunk[..]);
        let result = decoder.run(&mut empty, &mut sink);
        let produced = sink.pos();
        output.extend_from_slice(&chunk[..produced]);
        match result {
            Err(_) => return (output, false),
            Ok(_) if produced < chunk_size => return (output, true),
            Ok(_) => {}
        }
    }
}
