//! An incremental Server-Sent Events parser.
//!
//! Feed it the body chunks as they arrive, then take the complete frames out
//! with [`SseParser::next_frame`]. Every byte is scanned once: complete lines
//! are consumed from the front of the buffer as they are found, and the
//! position already searched in an unfinished line is remembered. Lines are
//! split off the buffer without copying; the `id`, `event` and single-line
//! `data` values of a frame are views into the received bytes, and only a
//! multi-line `data` is copied (to join its lines with `"\n"`).
//!
//! Lines end with `"\n"`, `"\r\n"` or `"\r"`, even when the terminator is
//! split across chunks. Comment lines (starting with `:`) are ignored, as are
//! unknown fields, `retry`, and frames without a `data` line.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// One dispatched SSE frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    id: Option<Bytes>,
    event: Option<Bytes>,
    data: Bytes,
}

impl SseFrame {
    /// The `id:` of this frame, if it had one (and it is UTF-8).
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The `event:` of this frame, if it had one (and it is UTF-8).
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The `data:` lines joined with `"\n"`.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The data as text, if it is UTF-8.
    pub fn data_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// The incremental parser; see the module docs.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    /// Bytes at the front of `buf` already known to hold no line terminator.
    scanned: usize,
    /// The last line ended with `\r`: a `\n` right after it belongs to it.
    skip_lf: bool,
    id: Option<Bytes>,
    event: Option<Bytes>,
    data: Option<BytesMut>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet consumed as complete lines.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, or `None` until more bytes are fed.
    pub fn next_frame(&mut self) -> Option<SseFrame> {
        loop {
            if self.skip_lf {
                let first = *self.buf.first()?;
                self.skip_lf = false;
                if first == b'\n' {
                    self.buf.advance(1);
                }
            }
            let Some(pos) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]) else {
                self.scanned = self.buf.len();
                return None;
            };
            let end = self.scanned + pos;
            self.skip_lf = self.buf[end] == b'\r';
            let mut line = self.buf.split_to(end + 1);
            line.truncate(end);
            self.scanned = 0;
            if let Some(frame) = self.line(line) {
                return Some(frame);
            }
        }
    }

    /// Processes one line (without its terminator).
    fn line(&mut self, mut line: BytesMut) -> Option<SseFrame> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (name_len, value_start) = match memchr::memchr(b':', &line) {
            Some(colon) if line.get(colon + 1) == Some(&b' ') => (colon, colon + 2),
            Some(colon) => (colon, colon + 1),
            None => (line.len(), line.len()),
        };
        let field = line.split_to(name_len);
        line.advance(value_start - name_len);
        match &field[..] {
            b"data" => match &mut self.data {
                None => self.data = Some(line),
                Some(data) => {
                    data.reserve(1 + line.len());
                    data.put_u8(b'\n');
                    data.extend_from_slice(&line);
                }
            },
            b"id" => self.id = Some(line.freeze()),
            b"event" => self.event = Some(line.freeze()),
            _ => {}
        }
        None
    }

    /// A blank line: the frame so far is complete.
    fn dispatch(&mut self) -> Option<SseFrame> {
        let id = self.id.take();
        let event = self.event.take();
        let data = self.data.take()?;
        Some(SseFrame { id, event, data: data.freeze() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Simple = (Option<String>, Option<String>, String);

    fn simple(frame: &SseFrame) -> Simple {
        (frame.id().map(str::to_owned), frame.event().map(str::to_owned), frame.data_str().unwrap().to_owned())
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Simple> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            while let Some(frame) = parser.next_frame() {
                out.push(simple(&frame));
            }
        }
        out
    }

    fn f(id: Option<&str>, event: Option<&str>, data: &str) -> Simple {
        (id.map(str::to_owned), event.map(str::to_owned), data.to_owned())
    }

    /// The same frames whether the input comes whole, split in two at every
    /// byte boundary, split in three, or one byte at a time.
    fn check_all_splits(input: &[u8], expected: &[Simple]) {
        assert_eq!(parse_chunks(&[input]), expected, "whole input");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(parse_chunks(&[a, b]), expected, "split at {i}");
            for j in i..=input.len() {
                let (b1, b2) = b.split_at(j - i);
                assert_eq!(parse_chunks(&[a, b1, b2]), expected, "split at {i} and {j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), expected, "byte by byte");
    }

    #[test]
    fn frames_with_comments_and_multiline_data() {
        let input = b": keepalive\n\
            id: 1\nevent: session.status\ndata: {\"a\":1}\n\n\
            : another comment\n\
            id: 2\nevent: item.delta\ndata: line one\ndata: line two\ndata:\ndata:no space\n\n\
            :\n\n\
            data: only data\n\n";
        check_all_splits(
            input,
            &[
                f(Some("1"), Some("session.status"), "{\"a\":1}"),
                f(Some("2"), Some("item.delta"), "line one\nline two\n\nno space"),
                f(None, None, "only data"),
            ],
        );
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let crlf = b"id: 7\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n: c\r\n\r\nid: 8\r\ndata: z\r\n\r\n";
        let expected = [f(Some("7"), Some("x"), "a\nb"), f(Some("8"), None, "z")];
        check_all_splits(crlf, &expected);
        let cr = b"id: 7\revent: x\rdata: a\rdata: b\r\r: c\r\rid: 8\rdata: z\r\r";
        check_all_splits(cr, &expected);
        let mixed = b"id: 7\r\nevent: x\rdata: a\ndata: b\r\n\r: c\n\nid: 8\rdata: z\r\n\n";
        check_all_splits(mixed, &expected);
    }

    #[test]
    fn frames_without_data_are_not_dispatched() {
        let input = b"id: 1\nevent: ping\n\nretry: 100\nunknown: x\n\ndata\n\nid: 3\ndata: y\n\n";
        // A bare `data` line is a data field with an empty value.
        check_all_splits(input, &[f(None, None, ""), f(Some("3"), None, "y")]);
    }

    #[test]
    fn incomplete_frame_waits_for_more() {
        let mut parser = SseParser::new();
        parser.feed(b"id: 1\ndata: {\"par");
        assert!(parser.next_frame().is_none());
        parser.feed(b"tial\":true}\n");
        assert!(parser.next_frame().is_none());
        parser.feed(b"\n");
        let frame = parser.next_frame().unwrap();
        assert_eq!(frame.id(), Some("1"));
        assert_eq!(frame.data(), b"{\"partial\":true}");
        assert_eq!(parser.buffered(), 0);
    }

    #[test]
    fn long_line_in_many_chunks_is_scanned_once() {
        let payload = "x".repeat(100_000);
        let input = format!("data: {payload}\n\n");
        let mut parser = SseParser::new();
        for chunk in input.as_bytes().chunks(7) {
            parser.feed(chunk);
            // `scanned` tracks the unfinished line instead of re-searching it.
            if let Some(frame) = parser.next_frame() {
                assert_eq!(frame.data().len(), payload.len());
                return;
            }
            assert_eq!(parser.scanned, parser.buf.len());
        }
        panic!("no frame");
    }
}
