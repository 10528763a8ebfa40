//! Fetching another pinger's published file over HTTP or HTTPS: one GET, at most
//! [`super::peer_list::MAX_LIST_BYTES`] of body (the read stops there), within a time limit,
//! certificates checked against the system's roots. A stranger's server can cost us no more
//! than that. Conditional GET: the validators of the last copy go out, and a 304 says the
//! copy is still current.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::peer_list::MAX_LIST_BYTES;

/// The whole fetch (connect, TLS, request, body) must end within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 200: the body, with its validators for the next conditional GET.
    Body { text: String, etag: Option<String>, last_modified: Option<String> },
    /// 304: the copy held is current.
    NotModified,
}

/// The validators of the copy held, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Why a fetch failed, said for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not an http:// or https:// URL: {0}")]
    BadUrl(String),
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("more than {MAX_LIST_BYTES} bytes")]
    TooLarge,
    #[error("no answer within {} s", FETCH_TIMEOUT.as_secs())]
    Timeout,
}

/// (https, host, port, path) of an http(s) URL.
fn split_url(url: &str) -> Result<(bool, String, u16, String), FetchError> {
    let bad = || FetchError::BadUrl(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.to_owned(), p.parse().map_err(|_| bad())?)
        }
        _ => (authority.to_owned(), if tls { 443 } else { 80 }),
    };
    if host.is_empty() || !authority.is_ascii() || authority.contains('@') {
        return Err(bad());
    }
    let path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };
    Ok((tls, host, port, path))
}

/// GETs `url`, conditionally on `held`.
pub async fn fetch(url: &str, held: &Validators) -> Result<Fetched, FetchError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_unbounded(url, held))
        .await
        .map_err(|_| FetchError::Timeout)?
}

async fn fetch_unbounded(url: &str, held: &Validators) -> Result<Fetched, FetchError> {
    let (tls, host, port, path) = split_url(url)?;
    let addr = format!("{host}:{port}");
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| FetchError::Connect(addr.clone(), e.to_string()))?;
    let mut request = hyper::Request::get(&path)
        .header(hyper::header::HOST, &host)
        .header(hyper::header::USER_AGENT, concat!("fathometer/", env!("CARGO_PKG_VERSION")));
    if let Some(etag) = &held.etag {
        request = request.header(hyper::header::IF_NONE_MATCH, etag);
    }
    if let Some(date) = &held.last_modified {
        request = request.header(hyper::header::IF_MODIFIED_SINCE, date);
    }
    let request =
        request.body(Empty::<Bytes>::new()).map_err(|e| FetchError::Http(e.to_string()))?;
    let response = if tls {
        let connector = tokio_native_tls::native_tls::TlsConnector::new()
            .map_err(|e| FetchError::Tls(addr.clone(), e.to_string()))?;
        let stream = tokio_native_tls::TlsConnector::from(connector)
            .connect(&host, tcp)
            .await
            .map_err(|e| FetchError::Tls(addr.clone(), e.to_string()))?;
        send(TokioIo::new(stream), request).await?
    } else {
        send(TokioIo::new(tcp), request).await?
    };
    let status = response.status().as_u16();
    if status == 304 {
        return Ok(Fetched::NotModified);
    }
    if status != 200 {
        return Err(FetchError::Status(status));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
            .filter(|v| v.len() <= 200)
            .map(str::to_owned)
    };
    let etag = header(hyper::header::ETAG);
    let last_modified = header(hyper::header::LAST_MODIFIED);
    let mut body = response.into_body();
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Http(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > MAX_LIST_BYTES {
                return Err(FetchError::TooLarge);
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(Fetched::Body { text: String::from_utf8_lossy(&bytes).into_owned(), etag, last_modified })
}

async fn send<S>(
    io: TokioIo<S>,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    tokio::spawn(async move {
        // Ends with the response body or the connection; its error shows in the request.
        let _ = connection.await;
    });
    sender.send_request(request).await.map_err(|e| FetchError::Http(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_strangers_urls_are_refused() {
        assert_eq!(
            split_url("https://pinger.example/stats/mlist2.txt").unwrap(),
            (true, "pinger.example".into(), 443, "/stats/mlist2.txt".into())
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            (false, "127.0.0.1".into(), 8080, "/".into())
        );
        for bad in ["ftp://x/y", "http://", "http://user@host/", "http://h:port/", "file:///etc"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

    /// A server that sends an endless body: the read stops at the limit.
    #[tokio::test]
    async fn an_endless_body_stops_at_the_limit_and_a_304_is_not_modified() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for answer in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                if answer == 0 {
                    s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await
                        .unwrap();
                    let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
                    for _ in 0..40 {
                        if s.write_all(chunk.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                } else {
                    assert!(request.contains("if-none-match: \"v1\""), "{request}");
                    s.write_all(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n")
                        .await
                        .unwrap();
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/mlist2.txt");
        assert_eq!(fetch(&url, &Validators::default()).await, Err(FetchError::TooLarge));
        let held = Validators { etag: Some("\"v1\"".into()), last_modified: None };
        assert_eq!(fetch(&url, &held).await, Ok(Fetched::NotModified));
    }
}
