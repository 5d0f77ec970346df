//! A tiny in-process HTTP/1.1 server for what a real registry cannot show (bearer
//! challenges, redirects, 429s, corrupt bodies). One thread per connection, every
//! reply closes the connection, every request is logged.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::oci::Layout;

/// A logged request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Declare the full Content-Length but send only this many body bytes, then close.
    pub cut_at: Option<usize>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            cut_at: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running fake server.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Request>>>,
}

impl FakeServer {
    /// Listens on `ip`:free-port and answers with `handler`.
    pub fn start(
        ip: &str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind fake server");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread_log = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, log) = (handler.clone(), thread_log.clone());
                std::thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        FakeServer { addr, log }
    }

    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests whose path contains `needle`.
    pub fn requests(&self, needle: &str) -> Vec<Request> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|r| r.target.contains(needle))
            .cloned()
            .collect()
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let request = Request {
        method,
        target,
        headers,
    };
    log.lock().expect("log").push(request.clone());
    let reply = handler(&request);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let body = &reply.body[..reply
        .cut_at
        .unwrap_or(reply.body.len())
        .min(reply.body.len())];
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// The repository the fake registry serves.
pub const REPO: &str = "test/img";

/// Content of a layout, served the way a registry would (as `REPO:tag`).
pub struct Content {
    /// Blobs (manifests too) by digest.
    pub blobs: HashMap<String, Vec<u8>>,
    /// Tag → manifest digest.
    pub tags: HashMap<String, String>,
}

impl Content {
    pub fn from_layout(layout: &Layout, tag: &str) -> Arc<Content> {
        let mut blobs = HashMap::new();
        for entry in std::fs::read_dir(layout.dir.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            blobs.insert(digest, std::fs::read(entry.path()).unwrap());
        }
        let tags = HashMap::from([(tag.to_string(), layout.top_digest.clone())]);
        Arc::new(Content { blobs, tags })
    }

    /// Answers `/v2/`, manifests (by tag or digest) and blobs, like a registry.
    pub fn reply(&self, request: &Request) -> Reply {
        let path = request.path();
        if path == "/v2/" {
            return Reply::new(200, "{}");
        }
        let prefix = format!("/v2/{REPO}/");
        let Some(rest) = path.strip_prefix(&prefix) else {
            return not_found("NAME_UNKNOWN", "repository name not known to registry");
        };
        if let Some(reference) = rest.strip_prefix("manifests/") {
            let digest = self
                .tags
                .get(reference)
                .cloned()
                .unwrap_or_else(|| reference.to_string());
            return match self.blobs.get(&digest) {
                Some(body) => {
                    let media_type: serde_json::Value = serde_json::from_slice(body).unwrap();
                    let media_type = media_type["mediaType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    Reply::new(200, body.clone())
                        .header("Content-Type", &media_type)
                        .header("Docker-Content-Digest", &digest)
                }
                None => not_found("MANIFEST_UNKNOWN", "manifest unknown"),
            };
        }
        if let Some(digest) = rest.strip_prefix("blobs/") {
            return match self.blobs.get(digest) {
                Some(body) => Reply::new(200, body.clone()),
                None => not_found("BLOB_UNKNOWN", "blob unknown to registry"),
            };
        }
        not_found("UNSUPPORTED", "unsupported")
    }
}

pub fn not_found(code: &str, message: &str) -> Reply {
    Reply::new(
        404,
        json!({"errors": [{"code": code, "message": message}]}).to_string(),
    )
}

/// Serves `layout`'s image, passing the replies for its second layer
/// through `mangle` (with the number of the request for it, from 0).
pub fn mangling_registry(
    layout: &Layout,
    mangle: impl Fn(Reply, usize) -> Reply + Send + Sync + 'static,
) -> FakeServer {
    let content = Content::from_layout(layout, "v1");
    let target = layout.images[0].layer_digests[1].clone();
    let count = AtomicUsize::new(0);
    FakeServer::start("127.0.0.1", move |request| {
        let reply = content.reply(request);
        if request.path().ends_with(&target) {
            mangle(reply, count.fetch_add(1, Ordering::SeqCst))
        } else {
            reply
        }
    })
}
