//! The `Content-Encoding` of upload bodies (`PUT /v1/fs/file`,
//! `POST /v1/fs/upload`, a skill's tar): `gzip` (or `x-gzip`) is decoded,
//! `identity` changes nothing, and any other is refused with
//! `415 unsupported_encoding` — a body is never stored still encoded.

use std::io::{self, Write};

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use flate2::write::MultiGzDecoder;

use crate::error::ErrorCode;
use crate::http::ApiError;

/// How an upload body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

/// The body's encoding, from every `Content-Encoding` header.
pub fn upload_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let mut gzip = 0;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let value = value.to_str().map_err(|_| unsupported("(not ASCII)"))?;
        for coding in value.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()) {
            match coding.as_str() {
                "identity" => {}
                "gzip" | "x-gzip" => gzip += 1,
                other => return Err(unsupported(other)),
            }
        }
    }
    match gzip {
        0 => Ok(Encoding::Identity),
        1 => Ok(Encoding::Gzip),
        _ => Err(unsupported("gzip, gzip")),
    }
}

fn unsupported(coding: &str) -> ApiError {
    ApiError::of(
        ErrorCode::UnsupportedEncoding,
        format!(
            "Content-Encoding {coding:?} is not accepted on uploads: send the body as is (no Content-Encoding, or \
             identity) or gzip-compressed (Content-Encoding: gzip)"
        ),
    )
}

/// A body that is not valid gzip.
pub fn bad_gzip(e: io::Error) -> ApiError {
    ApiError::invalid(format!("the body is not valid gzip (it was sent with Content-Encoding: gzip): {e}"))
}

/// Input fed to the decoder at a time: what one step can expand to stays
/// around a megabyte (deflate expands at most ~1032 times).
const STEP: usize = 1024;

/// A streaming gzip decoder (every member of the stream) for a body that
/// arrives in chunks: [`Gunzip::push`] a chunk, then take what it decodes to
/// piece by piece with [`Gunzip::next_piece`], so a compression bomb never
/// expands in memory at once.
pub struct Gunzip {
    decoder: MultiGzDecoder<Vec<u8>>,
    input: Bytes,
}

impl Default for Gunzip {
    fn default() -> Self {
        Gunzip { decoder: MultiGzDecoder::new(Vec::new()), input: Bytes::new() }
    }
}

impl Gunzip {
    /// The next chunk of the compressed body (after the last one is drained).
    pub fn push(&mut self, chunk: Bytes) {
        debug_assert!(self.input.is_empty());
        self.input = chunk;
    }

    /// The next decoded bytes of what was pushed; `None` once it is all decoded.
    pub fn next_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        while !self.input.is_empty() {
            let step = self.input.split_to(self.input.len().min(STEP));
            self.decoder.write_all(&step)?;
            let out = std::mem::take(self.decoder.get_mut());
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
        Ok(None)
    }

    /// The end of the body: the last decoded bytes (a truncated stream or a
    /// wrong checksum is an error).
    pub fn finish(self) -> io::Result<Vec<u8>> {
        self.decoder.finish()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use flate2::write::GzEncoder;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::CONTENT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn encodings() {
        assert_eq!(upload_encoding(&headers(&[])).unwrap(), Encoding::Identity);
        assert_eq!(upload_encoding(&headers(&["identity"])).unwrap(), Encoding::Identity);
        assert_eq!(upload_encoding(&headers(&["GZIP"])).unwrap(), Encoding::Gzip);
        assert_eq!(upload_encoding(&headers(&["x-gzip, identity"])).unwrap(), Encoding::Gzip);
        for bad in [&["br"][..], &["gzip, br"], &["gzip", "gzip"], &["deflate"]] {
            assert_eq!(upload_encoding(&headers(bad)).unwrap_err().code.as_str(), "unsupported_encoding", "{bad:?}");
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(body: &[u8], chunk: usize) -> io::Result<(Vec<u8>, usize)> {
        let mut g = Gunzip::default();
        let (mut out, mut largest) = (Vec::new(), 0);
        for c in body.chunks(chunk) {
            g.push(Bytes::copy_from_slice(c));
            while let Some(piece) = g.next_piece()? {
                largest = largest.max(piece.len());
                out.extend_from_slice(&piece);
            }
        }
        out.extend_from_slice(&g.finish()?);
        Ok((out, largest))
    }

    #[test]
    fn gunzip_streams_in_bounded_pieces() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut body = gzip(&data);
        body.extend_from_slice(&gzip(b"second member"));
        let (out, _) = decode(&body, 7000).unwrap();
        assert_eq!(&out[..data.len()], &data[..]);
        assert_eq!(&out[data.len()..], b"second member");
        // 64 MiB of zeros, compressed ~1000:1, never comes out more than ~1 MiB at a time.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        let (out, largest) = decode(&bomb, 64 * 1024).unwrap();
        assert_eq!(out.len(), 64 << 20);
        assert!(largest <= 2 << 20, "a piece of {largest} bytes");
    }

    #[test]
    fn truncated_or_garbage_gzip_is_an_error() {
        let body = gzip(b"hello, world");
        assert!(decode(&body[..body.len() - 3], 5).is_err());
        assert!(decode(b"not gzip at all", 5).is_err());
        let mut trailing = body.clone();
        trailing.extend_from_slice(b"junk");
        assert!(decode(&trailing, 5).is_err());
    }
}
