//! Filesystem routes of [`Client`]: every path is relative to the server's
//! workspace root (or absolute under it).

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStream};
use reqwest::Method;

use super::{empty, json, send, Client, Error, Result};
use crate::sse::SseParser;
use crate::{FsDeleteQuery, FsEntries, FsEntry, FsPathQuery, FsWatchQuery, MkdirRequest, MoveRequest, WatchEvent};

/// The query of the routes that name one path.
fn at(path: &str) -> FsPathQuery {
    FsPathQuery { path: path.to_owned() }
}

/// One frame of [`Client::fs_watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchFrame {
    /// A change; `id` is the cursor to resume after (`Last-Event-ID`).
    Change { id: u64, event: WatchEvent },
    /// The server's replay window no longer covers the cursor asked for:
    /// changes were missed, re-list. Resume after `id`.
    Overflow { id: u64 },
}

impl Client {
    /// `GET /v1/fs/entries?path=`: a directory's entries.
    pub async fn fs_list(&self, path: impl AsRef<str>) -> Result<FsEntries> {
        json(self.request(Method::GET, "/v1/fs/entries").query(&at(path.as_ref()))).await
    }

    /// `GET /v1/fs/stat?path=`: one entry (a symlink is not followed).
    pub async fn fs_stat(&self, path: impl AsRef<str>) -> Result<FsEntry> {
        json(self.request(Method::GET, "/v1/fs/stat").query(&at(path.as_ref()))).await
    }

    /// `GET /v1/fs/file?path=`: a whole file in memory (see
    /// [`fs_read_stream`](Self::fs_read_stream) for large ones).
    pub async fn fs_read(&self, path: impl AsRef<str>) -> Result<Bytes> {
        Ok(send(self.request(Method::GET, "/v1/fs/file").query(&at(path.as_ref()))).await?.bytes().await?)
    }

    /// `GET /v1/fs/file?path=` with `Range: bytes=start-end` (inclusive; `end`
    /// `None` for the rest of the file).
    pub async fn fs_read_range(&self, path: impl AsRef<str>, start: u64, end: Option<u64>) -> Result<Bytes> {
        let range = match end {
            Some(end) => format!("bytes={start}-{end}"),
            None => format!("bytes={start}-"),
        };
        let request = self.request(Method::GET, "/v1/fs/file").query(&at(path.as_ref())).header("range", range);
        Ok(send(request).await?.bytes().await?)
    }

    /// `GET /v1/fs/file?path=`, streamed: the answer is checked (a problem
    /// is an error here), then the bytes arrive as they are read.
    pub async fn fs_read_stream(
        &self,
        path: impl AsRef<str>,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let response = send(self.request(Method::GET, "/v1/fs/file").query(&at(path.as_ref()))).await?;
        Ok(response.bytes_stream().map(|chunk| chunk.map_err(Into::into)))
    }

    /// `PUT /v1/fs/file?path=`: writes `bytes` atomically, creating parents.
    pub async fn fs_write(&self, path: impl AsRef<str>, bytes: impl Into<Bytes>) -> Result<FsEntry> {
        let request = self
            .request(Method::PUT, "/v1/fs/file")
            .query(&at(path.as_ref()))
            .header("content-type", "application/octet-stream")
            .body(bytes.into());
        json(request).await
    }

    /// `PUT /v1/fs/file?path=` with a streamed body (never held in memory).
    pub async fn fs_write_stream<S>(&self, path: impl AsRef<str>, stream: S) -> Result<FsEntry>
    where
        S: TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        let request = self
            .request(Method::PUT, "/v1/fs/file")
            .query(&at(path.as_ref()))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream));
        json(request).await
    }

    /// `DELETE /v1/fs/entries?path=&recursive=`.
    pub async fn fs_delete(&self, path: impl AsRef<str>, recursive: bool) -> Result<()> {
        let query = FsDeleteQuery { path: path.as_ref().to_owned(), recursive };
        empty(self.request(Method::DELETE, "/v1/fs/entries").query(&query)).await
    }

    /// `POST /v1/fs/mkdir`: the directory and its parents.
    pub async fn fs_mkdir(&self, path: impl AsRef<str>) -> Result<FsEntry> {
        let body = MkdirRequest { path: path.as_ref().to_owned() };
        json(self.request(Method::POST, "/v1/fs/mkdir").json(&body)).await
    }

    /// `POST /v1/fs/move`.
    pub async fn fs_move(&self, from: impl AsRef<str>, to: impl AsRef<str>, overwrite: bool) -> Result<FsEntry> {
        let body = MoveRequest { from: from.as_ref().to_owned(), to: to.as_ref().to_owned(), overwrite };
        json(self.request(Method::POST, "/v1/fs/move").json(&body)).await
    }

    /// `GET /v1/fs/watch?path=&recursive=`: the changes under `path`, after
    /// `last_event_id` when given (replayed from the server's window, or
    /// [`WatchFrame::Overflow`]), else from now on. The stream does not
    /// reconnect by itself: resume with the last frame's id.
    pub async fn fs_watch(
        &self,
        path: impl AsRef<str>,
        recursive: bool,
        last_event_id: Option<u64>,
    ) -> Result<impl Stream<Item = Result<WatchFrame>> + Send + 'static> {
        let query = FsWatchQuery { path: path.as_ref().to_owned(), recursive, after: None };
        let mut request = self.request(Method::GET, "/v1/fs/watch").query(&query).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let body = Box::pin(send(request).await?.bytes_stream());
        Ok(futures_util::stream::unfold((body, SseParser::new(), false), |(mut body, mut parser, done)| async move {
            loop {
                if let Some(frame) = parser.next_frame() {
                    let id = frame.id().and_then(|i| i.parse::<u64>().ok()).unwrap_or(0);
                    let item = if frame.event() == Some("watch.overflow") {
                        Ok(WatchFrame::Overflow { id })
                    } else {
                        serde_json::from_slice::<WatchEvent>(frame.data())
                            .map(|event| WatchFrame::Change { id, event })
                            .map_err(|e| Error::Decode(format!("watch frame: {e}")))
                    };
                    return Some((item, (body, parser, done)));
                }
                if done {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => parser.feed(&chunk),
                    Some(Err(e)) => return Some((Err(e.into()), (body, parser, true))),
                    None => return None,
                }
            }
        }))
    }

    /// `POST /v1/fs/upload?path=`: extracts a tar (`gzip`: gzip-compressed)
    /// under `path`, streamed; answers the entry of `path`.
    pub async fn fs_upload<S>(&self, path: impl AsRef<str>, tar: S, gzip: bool) -> Result<FsEntry>
    where
        S: TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        let content_type = if gzip { "application/gzip" } else { "application/x-tar" };
        let request = self
            .request(Method::POST, "/v1/fs/upload")
            .query(&at(path.as_ref()))
            .header("content-type", content_type)
            .body(reqwest::Body::wrap_stream(tar));
        json(request).await
    }

    /// `GET /v1/fs/download?path=`: the directory as a tar, streamed.
    pub async fn fs_download(
        &self,
        path: impl AsRef<str>,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let response = send(self.request(Method::GET, "/v1/fs/download").query(&at(path.as_ref()))).await?;
        Ok(response.bytes_stream().map(|chunk| chunk.map_err(Into::into)))
    }
}
