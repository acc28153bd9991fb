//! Filesystem routes: every path confined to the workspace root
//! (`crate::fs::path`); reads and writes stream, writes are atomic.

use std::io::SeekFrom;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use tether_protocol::{FsDeleteQuery, FsEntries, FsEntry, FsPathQuery, FsWatchQuery, MkdirRequest, MoveRequest};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::encoding::{self, Encoding, Gunzip};
use super::{ApiError, ApiJson, ApiQuery, AppRef};
use crate::error::ErrorCode;
use crate::fs::{self, path};

/// Bytes per read of a streamed file.
const CHUNK: usize = 64 * 1024;

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/fs/entries", get(list).delete(delete))
        .route("/v1/fs/stat", get(stat))
        .route("/v1/fs/file", get(read).put(write.layer(DefaultBodyLimit::disable())))
        .route("/v1/fs/mkdir", post(mkdir))
        .route("/v1/fs/move", post(rename))
        .route("/v1/fs/watch", get(watch))
        .route("/v1/fs/upload", post(upload.layer(DefaultBodyLimit::disable())))
        .route("/v1/fs/download", get(download))
}

/// Runs blocking filesystem work on the blocking pool.
async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let done = tokio::task::spawn_blocking(f).await;
    done.map_err(|e| ApiError::internal(format!("filesystem task failed: {e}")))?.map_err(Into::into)
}

fn workspace(app: &AppRef) -> PathBuf {
    app.shared.workspace.clone()
}

async fn list(State(app): State<AppRef>, ApiQuery(q): ApiQuery<FsPathQuery>) -> Result<Json<FsEntries>, ApiError> {
    let root = workspace(&app);
    Ok(Json(blocking(move || fs::list(&root, &q.path)).await?))
}

async fn stat(State(app): State<AppRef>, ApiQuery(q): ApiQuery<FsPathQuery>) -> Result<Json<FsEntry>, ApiError> {
    let root = workspace(&app);
    Ok(Json(blocking(move || fs::stat(&root, &q.path)).await?))
}

async fn delete(State(app): State<AppRef>, ApiQuery(q): ApiQuery<FsDeleteQuery>) -> Result<StatusCode, ApiError> {
    let root = workspace(&app);
    blocking(move || fs::delete(&root, &q.path, q.recursive)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn mkdir(
    State(app): State<AppRef>,
    ApiJson(req): ApiJson<MkdirRequest>,
) -> Result<(StatusCode, Json<FsEntry>), ApiError> {
    let root = workspace(&app);
    let (entry, created) = blocking(move || fs::mkdir(&root, &req.path)).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(entry)))
}

async fn rename(State(app): State<AppRef>, ApiJson(req): ApiJson<MoveRequest>) -> Result<Json<FsEntry>, ApiError> {
    let root = workspace(&app);
    Ok(Json(blocking(move || fs::rename(&root, &req.from, &req.to, req.overwrite)).await?))
}

/// A single `bytes=` range over a file of `size` bytes: `Ok(None)` to serve
/// the whole file (no header, or one this server does not honour: several
/// ranges, another unit), `Err` when unsatisfiable.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last `b` bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || size == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    let start: u64 = a.parse().map_err(|_| ())?;
    let end: u64 = if b.is_empty() { u64::MAX } else { b.parse().map_err(|_| ())? };
    if end < start || start >= size {
        return Err(());
    }
    Ok(Some((start, end.min(size - 1))))
}

async fn read(
    State(app): State<AppRef>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FsPathQuery>,
) -> Result<Response, ApiError> {
    let root = workspace(&app);
    let user = q.path.clone();
    let file = blocking(move || path::open_read(&root, &path::confine(&root, &user)?, &user)).await?;
    let size = file.metadata().map_err(|e| path::io_error(e, &q.path))?.len();
    let mut file = tokio::fs::File::from_std(file);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => match parse_range(v, size) {
            Ok(r) => r,
            Err(()) => {
                let mut resp = ApiError::of(
                    ErrorCode::RangeNotSatisfiable,
                    format!("range {v:?} is outside the file ({size} bytes)"),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
    };
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(|e| path::io_error(e, &q.path))?;
    }
    let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = CHUNK.min(usize::try_from(left).unwrap_or(CHUNK));
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            // The file shrank under us: end the body early (the client sees a short body).
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some((a, b)) = range {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// `PUT /v1/fs/file?path=`: the body (decoded when `Content-Encoding: gzip`)
/// becomes the whole file, atomically; the limit counts the bytes written.
async fn write(
    State(app): State<AppRef>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FsPathQuery>,
    body: Body,
) -> Result<Json<FsEntry>, ApiError> {
    let encoding = encoding::upload_encoding(&headers)?;
    let limit = app.max_upload_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if encoding == Encoding::Identity && declared.is_some_and(|n| n > limit) {
        return Err(file_too_large(limit));
    }
    let root = workspace(&app);
    let user = q.path.clone();
    // Dropped before the commit (an error, the client gone), it removes the temporary file.
    let fs::NewFile { file, pending } = blocking(move || fs::begin_write(&root, &user)).await?;
    // Writes of 1 MiB, not one blocking write per body chunk (chunks are at most the connection's 32 KiB buffer).
    let file = tokio::io::BufWriter::with_capacity(WRITE_BATCH, tokio::fs::File::from_std(file));
    let mut out = Written { file, written: 0, limit, user: &q.path };
    let mut gunzip = (encoding == Encoding::Gzip).then(Gunzip::default);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| super::body_read_error(&e))?;
        match gunzip.as_mut() {
            None => out.put(&chunk).await?,
            Some(gunzip) => {
                gunzip.push(chunk);
                while let Some(piece) = gunzip.next_piece().map_err(encoding::bad_gzip)? {
                    out.put(&piece).await?;
                }
            }
        }
    }
    if let Some(gunzip) = gunzip {
        out.put(&gunzip.finish().map_err(encoding::bad_gzip)?).await?;
    }
    let mut buffered = out.file;
    buffered.flush().await.map_err(|e| path::io_error(e, &q.path))?;
    let mut file = buffered.into_inner();
    file.flush().await.map_err(|e| path::io_error(e, &q.path))?;
    file.sync_all().await.map_err(|e| path::io_error(e, &q.path))?;
    drop(file);
    Ok(Json(blocking(move || pending.commit()).await?))
}

fn file_too_large(limit: u64) -> ApiError {
    ApiError::payload_too_large(format!("the file is larger than the upload limit ({limit} bytes)"))
}

/// The file of a write, counting the bytes against the limit.
/// How much of an upload is gathered before each write to the file.
const WRITE_BATCH: usize = 1024 * 1024;

struct Written<'a> {
    file: tokio::io::BufWriter<tokio::fs::File>,
    written: u64,
    limit: u64,
    user: &'a str,
}

impl Written<'_> {
    async fn put(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.written += bytes.len() as u64;
        if self.written > self.limit {
            return Err(file_too_large(self.limit));
        }
        self.file.write_all(bytes).await.map_err(|e| path::io_error(e, self.user).into())
    }
}

/// Whether the body is a tar: `Some(gzip)` for `application/x-tar`
/// (gzip-compressed with `Content-Encoding: gzip`) or `application/gzip`;
/// a `Content-Encoding` other than gzip or identity is refused.
pub(super) fn tar_body(headers: &HeaderMap) -> Result<Option<bool>, ApiError> {
    let header_is = |name: header::HeaderName, values: &[&str]| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .is_some_and(|v| values.contains(&v.as_str()))
    };
    // One gzip layer, whether it is said by the encoding, the type, or both.
    let gzip = encoding::upload_encoding(headers)? == Encoding::Gzip
        || header_is(header::CONTENT_TYPE, &["application/gzip", "application/x-gzip", "application/x-tar+gzip"]);
    let is_tar = gzip || header_is(header::CONTENT_TYPE, &["application/x-tar", "application/tar"]);
    Ok(is_tar.then_some(gzip))
}

/// `POST /v1/fs/upload?path=`: extracts a tar body under `path`
/// (`application/x-tar`; gzip as `Content-Encoding: gzip` or `application/gzip`).
async fn upload(
    State(app): State<AppRef>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FsPathQuery>,
    body: Body,
) -> Result<Json<FsEntry>, ApiError> {
    let Some(gzip) = tar_body(&headers)? else {
        return Err(ApiError::unsupported_media_type(
            "the body must be a tar archive (Content-Type: application/x-tar, or application/gzip)",
        ));
    };
    let limit = app.max_upload_bytes;
    let too_large =
        || ApiError::payload_too_large(format!("the archive is larger than the upload limit ({limit} bytes)"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let root = workspace(&app);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let user = q.path.clone();
    let extractor = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            fs::archive::extract(&root, &user, fs::archive::ChannelReader::new(rx), gzip)
        })
    };
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                received += chunk.len() as u64;
                if received > limit {
                    failure = Some(too_large());
                    break;
                }
                // The extractor stopped early (an error): its answer wins.
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failure = Some(super::body_read_error(&e));
                break;
            }
        }
    }
    if failure.is_some() {
        // A truncated archive: the extractor fails on its own; the reason given is ours.
        drop(tx);
        let _ = extractor.await;
        return Err(failure.unwrap_or_else(too_large));
    }
    drop(tx);
    extractor.await.map_err(|e| ApiError::internal(format!("extraction task failed: {e}")))??;
    let user = q.path.clone();
    Ok(Json(blocking(move || fs::stat(&root, &user)).await?))
}

/// `GET /v1/fs/download?path=`: the directory as a tar stream.
async fn download(State(app): State<AppRef>, ApiQuery(q): ApiQuery<FsPathQuery>) -> Result<Response, ApiError> {
    let root = workspace(&app);
    let user = q.path.clone();
    let dir = blocking(move || fs::archive::download_dir(&root, &user)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = fs::archive::archive(dir, fs::archive::ChannelWriter::new(tx)) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "tar download failed");
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(body)
        .map_err(|_| ApiError::internal("could not build the tar response"))
}

/// `GET /v1/fs/watch`: SSE of changes under `path`. Frames carry the hub's
/// event id; a reconnect with `Last-Event-ID` (or `after`) replays from the
/// window, or gets `watch.overflow` when the window no longer covers it.
async fn watch(
    State(app): State<AppRef>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FsWatchQuery>,
) -> Result<Response, ApiError> {
    let root = workspace(&app);
    let user = q.path.clone();
    let (rel, hub) = blocking(move || {
        let rel = path::confine(&root, &user)?;
        path::resolve_existing(&root, &rel, &user)?;
        let hub = fs::watch::hub(&root)?;
        Ok::<_, fs::FsError>((rel.display(), hub))
    })
    .await?;
    let resume = headers.contains_key("last-event-id") || q.after.is_some();
    let cursor = if resume { super::resume_cursor(&headers, q.after)? } else { hub.head() };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(watch_pump(app, hub, rel, q.recursive, cursor, tx));
    Ok(super::sse_response(super::frames_of(rx)))
}

fn wanted(event_path: &str, rel: &str, recursive: bool) -> bool {
    let under = if rel.is_empty() {
        Some(event_path)
    } else if event_path == rel {
        return true;
    } else {
        event_path.strip_prefix(rel).and_then(|r| r.strip_prefix('/'))
    };
    match under {
        Some(r) => recursive || !r.contains('/'),
        None => false,
    }
}

async fn watch_pump(
    app: AppRef,
    hub: std::sync::Arc<fs::watch::Hub>,
    rel: String,
    recursive: bool,
    mut cursor: u64,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    use fs::watch::Since;
    let mut heads = hub.subscribe();
    let mut shutdown = app.shutdown.clone();
    if tx.send(Bytes::from_static(b": connected\n\n")).await.is_err() {
        return;
    }
    let mut keepalive = tokio::time::interval(app.keepalive);
    keepalive.reset();
    loop {
        heads.borrow_and_update();
        let mut buf = Vec::new();
        match hub.since(cursor) {
            Since::Overflow { head } => {
                cursor = head;
                let data = serde_json::json!({"kind": "overflow", "path": rel});
                buf.extend_from_slice(format!("id: {head}\nevent: watch.overflow\ndata: {data}\n\n").as_bytes());
            }
            Since::Events(events) => {
                for (id, event) in events {
                    cursor = id;
                    if !wanted(&event.path, &rel, recursive)
                        && !event.from.as_deref().is_some_and(|f| wanted(f, &rel, recursive))
                    {
                        continue;
                    }
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    let kind = serde_json::to_value(event.kind).ok();
                    let kind = kind.as_ref().and_then(|k| k.as_str()).unwrap_or("change");
                    buf.extend_from_slice(format!("id: {id}\nevent: watch.{kind}\ndata: {data}\n\n").as_bytes());
                    if buf.len() >= CHUNK && tx.send(Bytes::from(std::mem::take(&mut buf))).await.is_err() {
                        return;
                    }
                }
            }
        }
        if !buf.is_empty() {
            if tx.send(Bytes::from(buf)).await.is_err() {
                return;
            }
            keepalive.reset();
        }
        tokio::select! {
            r = heads.changed() => if r.is_err() { return },
            _ = keepalive.tick() => {
                if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=90-200", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-200", 100), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-1", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
