//! Process routes of [`Client`]: commands run beside the agents, their input,
//! size, signals, kept output and screen. The terminal attach is in
//! [`terminal`](crate::terminal).

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT};
use reqwest::Method;

use super::{empty, json, path, send, Client, Error, Result};
use crate::{
    CreateProcess, OutputQuery, Process, ProcessInput, ProcessList, ProcessOutput, ProcessResize, ProcessSignal,
    Screen, Signal, MAX_INPUT_BYTES,
};

/// `/v1/processes/{id}/{rest..}`, each segment percent-encoded.
pub(crate) fn process_path(id: &str, rest: &[&str]) -> String {
    let mut segments = vec!["v1", "processes", id];
    segments.extend_from_slice(rest);
    path(&segments)
}

/// The output of a process as raw bytes (`GET /v1/processes/{id}/output`
/// with `Accept: application/octet-stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputBytes {
    /// The offset of the first byte: the `after` asked, or the oldest kept
    /// byte when output from `after` on was dropped (`missed` > 0).
    pub start: u64,
    /// The offset after the last byte: the next `after`.
    pub end: u64,
    /// Bytes between `after` and `start` that are no longer kept.
    pub missed: u64,
    pub bytes: Bytes,
}

impl Client {
    /// `POST /v1/processes` (201): starts a process beside the agents.
    pub async fn create_process(&self, body: &CreateProcess) -> Result<Process> {
        json(self.request(Method::POST, "/v1/processes").json(body)).await
    }

    /// `GET /v1/processes`: every process the server remembers, newest first.
    pub async fn list_processes(&self) -> Result<ProcessList> {
        json(self.request(Method::GET, "/v1/processes")).await
    }

    /// `GET /v1/processes/{id}`.
    pub async fn get_process(&self, id: impl AsRef<str>) -> Result<Process> {
        json(self.request(Method::GET, &process_path(id.as_ref(), &[]))).await
    }

    /// `DELETE /v1/processes/{id}`: stops the process's whole group (SIGTERM,
    /// then SIGKILL) and answers once none of it is left, with its record.
    pub async fn delete_process(&self, id: impl AsRef<str>) -> Result<Process> {
        json(self.request(Method::DELETE, &process_path(id.as_ref(), &[]))).await
    }

    /// `POST /v1/processes/{id}/input` (204).
    pub async fn process_input(&self, id: impl AsRef<str>, input: &ProcessInput) -> Result<()> {
        empty(self.request(Method::POST, &process_path(id.as_ref(), &["input"])).json(input)).await
    }

    /// Writes `bytes` to the process's input: as `text` when they are UTF-8,
    /// as `base64` otherwise, in requests of at most 64 KiB each.
    pub async fn send_process_bytes(&self, id: impl AsRef<str>, bytes: &[u8]) -> Result<()> {
        for chunk in bytes.chunks(MAX_INPUT_BYTES) {
            self.process_input(id.as_ref(), &input_of(chunk)).await?;
        }
        Ok(())
    }

    /// [`send_process_bytes`](Self::send_process_bytes) with text (a line
    /// typed at a terminal ends with `\r`; through a pipe, with `\n`).
    pub async fn send_process_text(&self, id: impl AsRef<str>, text: impl AsRef<str>) -> Result<()> {
        self.send_process_bytes(id, text.as_ref().as_bytes()).await
    }

    /// `POST /v1/processes/{id}/resize`: the terminal's new size.
    pub async fn resize_process(&self, id: impl AsRef<str>, cols: u16, rows: u16) -> Result<Process> {
        let body = ProcessResize { cols, rows };
        json(self.request(Method::POST, &process_path(id.as_ref(), &["resize"])).json(&body)).await
    }

    /// `POST /v1/processes/{id}/signal` (204): to the process's whole group.
    pub async fn signal_process(&self, id: impl AsRef<str>, signal: Signal) -> Result<()> {
        let body = ProcessSignal { signal };
        empty(self.request(Method::POST, &process_path(id.as_ref(), &["signal"])).json(&body)).await
    }

    /// `GET /v1/processes/{id}/output?after=&limit=` as JSON (base64 and text).
    pub async fn process_output(&self, id: impl AsRef<str>, query: &OutputQuery) -> Result<ProcessOutput> {
        json(self.request(Method::GET, &process_path(id.as_ref(), &["output"])).query(query)).await
    }

    /// `GET /v1/processes/{id}/output?after=&limit=` as raw bytes, with the
    /// offsets from the `Tether-Output-*` headers.
    pub async fn process_output_bytes(&self, id: impl AsRef<str>, query: &OutputQuery) -> Result<OutputBytes> {
        let request = self
            .request(Method::GET, &process_path(id.as_ref(), &["output"]))
            .query(query)
            .header(ACCEPT, "application/octet-stream");
        let response = send(request).await?;
        let (start, end, missed) = output_offsets(response.headers())?;
        let bytes = response.bytes().await?;
        Ok(OutputBytes { start, end, missed, bytes })
    }

    /// `GET /v1/processes/{id}/screen`: what the terminal shows now, as text.
    pub async fn process_screen(&self, id: impl AsRef<str>) -> Result<Screen> {
        json(self.request(Method::GET, &process_path(id.as_ref(), &["screen"]))).await
    }
}

/// Input as the route takes it: `text` when UTF-8, `base64` otherwise.
fn input_of(bytes: &[u8]) -> ProcessInput {
    match std::str::from_utf8(bytes) {
        Ok(text) => ProcessInput { text: Some(text.to_owned()), base64: None },
        Err(_) => ProcessInput { text: None, base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)) },
    }
}

/// `Tether-Output-Start`, `-End` and `-Missed` of an octet-stream answer.
fn output_offsets(headers: &HeaderMap) -> Result<(u64, u64, u64)> {
    let read = |name: &str| -> Result<u64> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Decode(format!("the output answer has no valid {name} header")))
    };
    Ok((read("tether-output-start")?, read("tether-output-end")?, read("tether-output-missed")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::tests::{serve, Answer};

    #[test]
    fn input_is_text_when_it_can_be() {
        assert_eq!(input_of(b"ls\r").text.as_deref(), Some("ls\r"));
        let binary = input_of(&[0xff, 0x00, b'a']);
        assert_eq!((binary.text, binary.base64.as_deref()), (None, Some("/wBh")));
        assert_eq!(process_path("prc_1/x", &["output"]), "/v1/processes/prc_1%2Fx/output");
    }

    #[tokio::test]
    async fn routes_and_raw_output() {
        let (base, mut heads) = serve(|n, _| {
            let (head, body) = match n {
                0 => ("HTTP/1.1 200 OK\r\nTether-Output-Start: 5\r\nTether-Output-End: 8\r\nTether-Output-Missed: 2\r\nContent-Type: application/octet-stream\r\n".to_owned(), "a\u{0}b".to_owned()),
                1 => ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n".to_owned(), "x".to_owned()),
                _ => ("HTTP/1.1 204 No Content\r\n".to_owned(), String::new()),
            };
            Answer {
                bytes: format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes(),
                keep_open: false,
            }
        })
        .await;
        let client = Client::new(base);
        let out = client.process_output_bytes("prc_1", &OutputQuery { after: Some(3), limit: None }).await.unwrap();
        assert_eq!(out, OutputBytes { start: 5, end: 8, missed: 2, bytes: Bytes::from_static(b"a\0b") });
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /v1/processes/prc_1/output?after=3 HTTP/1.1"), "{head}");
        assert!(head.to_ascii_lowercase().contains("accept: application/octet-stream"), "{head}");

        let err = client.process_output_bytes("prc_1", &OutputQuery::default()).await.unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err:?}");
        heads.recv().await.unwrap();

        client.send_process_text("prc_1", "ls\r").await.unwrap();
        assert!(heads.recv().await.unwrap().starts_with("POST /v1/processes/prc_1/input HTTP/1.1"));
        client.signal_process("prc_1", Signal::SIGINT).await.unwrap();
        assert!(heads.recv().await.unwrap().starts_with("POST /v1/processes/prc_1/signal HTTP/1.1"));
    }
}
