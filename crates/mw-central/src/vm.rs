//! The VictoriaMetrics sink: `POST {base}/api/v1/import` over HTTP/1.1 (hyper), one keep-alive
//! connection per consumer, reopened after an error.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::config::VmUrl;

/// How long one write may take (connect, send, answer).
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot connect to VictoriaMetrics at {0}: {1}")]
    Connect(String, String),
    #[error("VictoriaMetrics at {0}: {1}")]
    Http(String, String),
    #[error("VictoriaMetrics at {0} answered {1}: {2}")]
    Status(String, u16, String),
    #[error("VictoriaMetrics at {0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

impl VmError {
    /// The `error_type` label of the error counter.
    pub fn kind(&self) -> &'static str {
        match self {
            VmError::Connect(..) => "connect",
            VmError::Http(..) => "http",
            VmError::Status(..) => "status",
            VmError::Timeout(..) => "timeout",
        }
    }
}

pub struct VmClient {
    url: VmUrl,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl VmClient {
    pub fn new(url: VmUrl) -> VmClient {
        VmClient { url, conn: None }
    }

    /// Writes `body` (import JSON lines); `Ok` only on a 2xx answer.
    pub async fn import(&mut self, body: Vec<u8>) -> Result<(), VmError> {
        let authority = self.url.authority.clone();
        match tokio::time::timeout(TIMEOUT, self.send(body)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(VmError::Timeout(authority, TIMEOUT))
            }
        }
    }

    async fn send(&mut self, body: Vec<u8>) -> Result<(), VmError> {
        let a = self.url.authority.clone();
        let mut conn = match self.conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => {
                let tcp = tokio::net::TcpStream::connect(&a)
                    .await
                    .map_err(|e| VmError::Connect(a.clone(), e.to_string()))?;
                let _ = tcp.set_nodelay(true);
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| VmError::Connect(a.clone(), e.to_string()))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                send
            }
        };
        conn.ready()
            .await
            .map_err(|e| VmError::Http(a.clone(), e.to_string()))?;
        let req = hyper::Request::post(format!("{}/api/v1/import", self.url.prefix))
            .header(hyper::header::HOST, a.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| VmError::Http(a.clone(), e.to_string()))?;
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| VmError::Http(a.clone(), e.to_string()))?;
        let status = resp.status();
        // read the (short) answer whole, so the connection can be reused; bounded
        let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| VmError::Http(a.clone(), e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
            return Err(VmError::Status(a, status.as_u16(), text.trim().to_owned()));
        }
        self.conn = Some(conn);
        Ok(())
    }
}
