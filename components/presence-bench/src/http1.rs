//! A minimal keep-alive HTTP/1.1 client over one loopback connection (enough for seeding and
//! measuring; avoids a client library).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub async fn open(addr: &str) -> Result<Self, String> {
        Self::open_from(addr, None).await
    }

    /// [`Conn::open`] from a given local address (another loopback address, so that a server
    /// counts this client apart from others).
    pub async fn open_from(addr: &str, local: Option<std::net::IpAddr>) -> Result<Self, String> {
        let stream = match local {
            None => TcpStream::connect(addr).await,
            Some(local) => {
                let remote: std::net::SocketAddr =
                    addr.parse().map_err(|e| format!("{addr}: {e}"))?;
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .bind((local, 0).into())
                    .map_err(|e| format!("bind {local}: {e}"))?;
                socket.connect(remote).await
            }
        }
        .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).ok();
        Ok(Conn {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    /// POSTs a JSON body; returns the status and the body.
    pub async fn post_json(&mut self, path: &str, body: &str) -> Result<(u16, String), String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.exchange(&request).await
    }

    /// GETs a path; returns the status and the body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            self.host
        );
        self.exchange(&request).await
    }

    /// Writes one request and reads its response.
    async fn exchange(&mut self, request: &str) -> Result<(u16, String), String> {
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> Result<(u16, String), String> {
        let mut line = String::new();
        self.stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
