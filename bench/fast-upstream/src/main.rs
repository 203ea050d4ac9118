//! The upstream of the in-Envoy benchmark and the soak (`bench/envoy_pack.py`, `bench/soak.py`):
//! recorded provider responses, served fast enough that Envoy is always the bottleneck.
//!
//!     fast-upstream --dir <responses> [--port 0]
//!
//! `<responses>` holds prepared responses (`bench/responses.py` writes them from
//! `tests/fixtures/providers/`): `<name>.<n>` files, each one write of the response, in order,
//! status line and headers included, so framing (content-length or chunked) is exactly what the
//! file says. A request gets `x-fixture: <name>` when it names one, else `sse` when its body has
//! `"stream": true` (or `"stream":true`), else `chat`. `GET /health` answers 200. With
//! `x-bench-pause-ms: N` the server waits N ms after the first write, as a provider does between
//! its first event and the next, so a client can time the first event through Envoy alone. With
//! `x-bench-head-pause-ms: N` it writes the status line and headers alone, waits N ms, then the
//! rest of the first write: the client sees the response head and the first event arrive apart,
//! so the time a filter holds the first event shows on its own.
//!
//! One thread per connection (Envoy keeps a handful of upstream connections alive), TCP_NODELAY
//! so every prepared write leaves at once, as a provider flushes each stream event. Prints
//! `listening <port>` on stdout when ready. Binds 127.0.0.1 only. Runs until killed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

type Responses = HashMap<String, Vec<Vec<u8>>>;

fn main() {
    let mut dir = None;
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = args.next(),
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            _ => fail(&format!("unknown argument {arg}")),
        }
    }
    let responses = Arc::new(load(dir.as_deref().unwrap_or_else(|| fail("--dir is required"))));
    for name in ["chat", "sse"] {
        if !responses.contains_key(name) {
            fail(&format!("no {name}.0 response"));
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| fail(&format!("bind: {e}")));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| fail(&format!("{e}")));
    println!("listening {port}");
    let _ = std::io::stdout().flush();
    for conn in listener.incoming().flatten() {
        let responses = Arc::clone(&responses);
        std::thread::spawn(move || {
            // A connection error ends that connection only.
            let _ = serve(conn, &responses);
        });
    }
}

fn fail(message: &str) -> ! {
    eprintln!("fast-upstream: {message}");
    std::process::exit(2)
}

fn load(dir: &str) -> Responses {
    let mut parts: HashMap<String, Vec<(usize, Vec<u8>)>> = HashMap::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("{dir}: {e}")));
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((name, index)) = file.rsplit_once('.') else { continue };
        let Ok(index) = index.parse::<usize>() else { continue };
        let bytes = std::fs::read(entry.path()).unwrap_or_else(|e| fail(&format!("{file}: {e}")));
        parts.entry(name.to_string()).or_default().push((index, bytes));
    }
    parts
        .into_iter()
        .map(|(name, mut writes)| {
            writes.sort_by_key(|(i, _)| *i);
            (name, writes.into_iter().map(|(_, w)| w).collect())
        })
        .collect()
}

fn serve(conn: TcpStream, responses: &Responses) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, conn);
    let mut body = Vec::with_capacity(64 * 1024);
    loop {
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        body.clear();
        read_body(&mut reader, &head, &mut body)?;
        let name = if head.path == "/health" {
            writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")?;
            continue;
        } else if let Some(name) = head.fixture.as_deref() {
            name
        } else if contains(&body, b"\"stream\": true") || contains(&body, b"\"stream\":true") {
            "sse"
        } else {
            "chat"
        };
        match responses.get(name) {
            Some(writes) => {
                for (i, w) in writes.iter().enumerate() {
                    match head_end(w) {
                        Some(end) if i == 0 && head.head_pause_ms > 0 => {
                            writer.write_all(&w[..end])?;
                            std::thread::sleep(std::time::Duration::from_millis(head.head_pause_ms));
                            writer.write_all(&w[end..])?;
                        }
                        _ => writer.write_all(w)?,
                    }
                    if i == 0 && head.pause_ms > 0 {
                        std::thread::sleep(std::time::Duration::from_millis(head.pause_ms));
                    }
                }
            }
            None => writer.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?,
        }
    }
}

struct Head {
    path: String,
    content_length: usize,
    chunked: bool,
    fixture: Option<String>,
    pause_ms: u64,
    head_pause_ms: u64,
}

/// Where the response head ends in a prepared write (after its blank line), if it holds one.
fn head_end(write: &[u8]) -> Option<usize> {
    write.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
}

/// The request line and headers; `None` at a clean end of the connection.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut head = Head { path, content_length: 0, chunked: false, fixture: None, pause_ms: 0, head_pause_ms: 0 };
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return Ok(Some(head));
        }
        let Some((name, value)) = trimmed.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| std::io::ErrorKind::InvalidData)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("x-bench-pause-ms") {
            head.pause_ms = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("x-bench-head-pause-ms") {
            head.head_pause_ms = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("x-fixture") {
            head.fixture = Some(value.to_string());
        }
    }
}

/// The whole request body, content-length or chunked (Envoy sends a body a filter rewrote
/// chunked).
fn read_body(reader: &mut impl BufRead, head: &Head, body: &mut Vec<u8>) -> std::io::Result<()> {
    if !head.chunked {
        body.resize(head.content_length, 0);
        return reader.read_exact(body);
    }
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = line.trim_end().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| std::io::ErrorKind::InvalidData)?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
