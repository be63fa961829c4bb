//! A TCP proxy that cuts every connection after the server has sent a number of bytes: a server that
//! goes away in the middle of an answer (a read cut off mid-page), at a point a test chooses, without
//! stopping a server other tests share. It can also stall the connections open at a moment
//! ([`CutProxy::stall_open_connections`]): they stay open but nothing comes back, as when a firewall
//! silently drops an idle connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; stops accepting when dropped (connections in flight end with their task).
#[derive(Debug)]
pub struct CutProxy {
    addr: SocketAddr,
    cuts: Arc<AtomicU64>,
    /// Where new connections are cut ([`CutProxy::set_server_bytes`]).
    limit: Arc<AtomicU64>,
    /// Connections accepted before the last [`CutProxy::stall_open_connections`] are of an older
    /// generation, and stall.
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CutProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards each connection to `upstream`, closing both
    /// sides once `server_bytes` bytes came from the server.
    pub async fn start(upstream: SocketAddr, server_bytes: u64) -> io::Result<CutProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cuts = Arc::new(AtomicU64::new(0));
        let counted = cuts.clone();
        let limit = Arc::new(AtomicU64::new(server_bytes));
        let limit_now = limit.clone();
        let generation = Arc::new(AtomicU64::new(0));
        let generation_now = generation.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counted = counted.clone();
                let server_bytes = limit_now.load(Ordering::Relaxed);
                let stall = Stall {
                    born: generation_now.load(Ordering::SeqCst),
                    now: generation_now.clone(),
                };
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await
                        && forward(client, server, server_bytes, stall).await
                    {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        Ok(CutProxy {
            addr,
            cuts,
            limit,
            generation,
            task,
        })
    }

    /// From now on, nothing the server sends on the connections open now reaches the client, and they
    /// are never closed: a connection silently dropped by a firewall. New connections work.
    pub fn stall_open_connections(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Cuts the connections accepted from now on after `server_bytes` from the server (`u64::MAX`:
    /// never), so that a test can let a first read through whole and cut a later one in the middle.
    pub fn set_server_bytes(&self, server_bytes: u64) {
        self.limit.store(server_bytes, Ordering::Relaxed);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

/// Whether a connection was accepted before the proxy last stalled the open ones.
struct Stall {
    born: u64,
    now: Arc<AtomicU64>,
}

impl Stall {
    fn stalled(&self) -> bool {
        self.now.load(Ordering::SeqCst) != self.born
    }
}

/// Copies both ways; returns whether the connection was cut (rather than closed by either side).
async fn forward(client: TcpStream, server: TcpStream, server_bytes: u64, stall: Stall) -> bool {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    });
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let cut = loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break false,
            Ok(n) => n,
        };
        if stall.stalled() {
            // Swallow this and everything after, and keep both sockets open.
            std::future::pending::<()>().await;
        }
        let allowed = usize::try_from(server_bytes.saturating_sub(sent)).unwrap_or(usize::MAX);
        let part = n.min(allowed);
        if client_write
            .write_all(buf.get(..part).unwrap_or_default())
            .await
            .is_err()
        {
            break false;
        }
        sent += part as u64;
        if part < n || sent >= server_bytes {
            break true;
        }
    };
    upstream.abort();
    let _ = client_write.shutdown().await;
    cut
}
