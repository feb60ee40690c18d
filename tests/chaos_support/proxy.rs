//! A TCP proxy in front of a shared service, so that a chaos run can take the service away from
//! one job (an outage) or slow it down, without touching the service other people use.
//!
//! `Up` forwards bytes both ways. `Down` drops every open connection at once and closes each new
//! one as soon as it is accepted (what a client sees when the server dies and restarts in a
//! loop). `Slow(d)` holds every chunk read in either direction for `d` before forwarding it, so
//! each request and each answer is `d` late.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward.
    Up,
    /// Refuse: drop every connection.
    Down,
    /// Forward each chunk this late.
    Slow(Duration),
}

/// A running proxy; it stops with the runtime it was started on.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Proxy {
    /// Listen on 127.0.0.1 (a free port) and forward to `upstream`.
    pub fn start(rt: &tokio::runtime::Runtime, upstream: SocketAddr) -> Proxy {
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let (mode, watching) = watch::channel(Mode::Up);
        rt.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *watching.borrow() == Mode::Down {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, upstream, watching.clone()));
            }
        });
        Proxy { addr, mode }
    }

    /// Switch the mode (takes effect on open connections at once).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending (a close, or the proxy going down) ends the connection.
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone()) => {}
        _ = pump(server_read, client_write, mode) => {}
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| *m == Mode::Down) => return,
        };
        let current = *mode.borrow();
        match current {
            Mode::Down => return,
            Mode::Slow(delay) => tokio::time::sleep(delay).await,
            Mode::Up => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// `host:port` of a URL such as `postgres://user@127.0.0.1:5432/db` or `http://127.0.0.1:9200`:
/// (everything before it, the address, everything after it).
pub fn split_authority(url: &str) -> (String, SocketAddr, String) {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_start = scheme_end
        + rest[..rest.find('/').unwrap_or(rest.len())]
            .rfind('@')
            .map_or(0, |i| i + 1);
    let tail = &url[host_start..];
    let host_end = host_start + tail.find(['/', '?']).unwrap_or(tail.len());
    let hostport = &url[host_start..host_end];
    let addr = hostport
        .replace("localhost", "127.0.0.1")
        .parse()
        .unwrap_or_else(|e| panic!("{url}: the chaos proxy needs an IP:port address ({e})"));
    (
        url[..host_start].to_string(),
        addr,
        url[host_end..].to_string(),
    )
}

/// `url` with its address replaced by the proxy's.
pub fn through(url: &str, proxy: &Proxy) -> String {
    let (head, _, tail) = split_authority(url);
    format!("{head}{}{tail}", proxy.addr)
}
