//! A TCP relay that puts a network between muninn-sync and the database:
//! every chunk of bytes is held for a fixed delay in each direction, as if
//! the server were on another host, without slowing the flow of bytes.
//!
//! Each direction of a connection is a reader and a writer thread joined by
//! a queue: the reader stamps each chunk with the time it is due and queues
//! it at once; the writer sleeps until a chunk is due and sends it. Order is
//! kept, and a large transfer is delayed once, not once per chunk, so the
//! relay adds latency and no cost per byte.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most bytes read at once: large enough that a bulk transfer is a few
/// big chunks rather than many small ones.
const CHUNK: usize = 256 * 1024;

/// A relay on 127.0.0.1 to one server, alive as long as the process.
pub struct LatencyProxy {
    port: u16,
    counters: Arc<Counters>,
}

/// Across every connection of the relay.
#[derive(Default)]
struct Counters {
    /// The delay in each direction, in nanoseconds.
    one_way_nanos: AtomicU64,
    /// Times a client spoke after its server had answered: each is a round
    /// trip the client waited for (or could have).
    round_trips: AtomicU64,
}

/// One connection's state shared by its two directions.
#[derive(Default)]
struct Turn {
    /// Whether the last chunk went from the server to the client.
    server_spoke_last: AtomicBool,
}

impl LatencyProxy {
    /// Listens on a free port of 127.0.0.1 and relays every connection to
    /// `server`, delaying each direction by `one_way`.
    pub fn start(server: SocketAddr, one_way: Duration) -> Result<LatencyProxy> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("the latency proxy cannot listen")?;
        let port = listener.local_addr()?.port();
        let counters = Arc::new(Counters::default());
        counters
            .one_way_nanos
            .store(one_way.as_nanos() as u64, Ordering::Relaxed);
        let shared = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("latency-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    let relayed = client
                        .map_err(anyhow::Error::from)
                        .and_then(|client| relay(client, server, &shared));
                    if let Err(error) = relayed {
                        eprintln!("latency proxy: {error:#}");
                    }
                }
            })?;
        Ok(LatencyProxy { port, counters })
    }

    /// Changes the delay of each direction, for connections made from now
    /// on: a sleep wakes up late by a few tens of microseconds, which the
    /// caller may take off.
    pub fn set_one_way(&self, one_way: Duration) {
        self.counters
            .one_way_nanos
            .store(one_way.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The port to connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Round trips relayed so far, over every connection.
    pub fn round_trips(&self) -> u64 {
        self.counters.round_trips.load(Ordering::Relaxed)
    }
}

/// Connects `client` to the server through two delayed directions.
fn relay(client: TcpStream, server: SocketAddr, counters: &Arc<Counters>) -> Result<()> {
    let one_way = Duration::from_nanos(counters.one_way_nanos.load(Ordering::Relaxed));
    let upstream = TcpStream::connect(server)
        .with_context(|| format!("the latency proxy cannot reach {server}"))?;
    // The relay must not hold small messages back on its own.
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let turn = Arc::new(Turn::default());
    let to_server = Direction {
        from_client: true,
        turn: Arc::clone(&turn),
        counters: Arc::clone(counters),
    };
    let to_client = Direction {
        from_client: false,
        turn,
        counters: Arc::clone(counters),
    };
    to_server.spawn(client.try_clone()?, upstream.try_clone()?, one_way)?;
    to_client.spawn(upstream, client, one_way)?;
    Ok(())
}

/// A chunk and when it may be sent; `None` for the end of the stream.
type Due = (Instant, Option<Vec<u8>>);

/// One direction of a connection.
struct Direction {
    from_client: bool,
    turn: Arc<Turn>,
    counters: Arc<Counters>,
}

impl Direction {
    fn spawn(self, from: TcpStream, to: TcpStream, delay: Duration) -> Result<()> {
        let (queue, due) = channel();
        std::thread::Builder::new()
            .name("proxy-write".into())
            .spawn(move || send_when_due(due, to))?;
        std::thread::Builder::new()
            .name("proxy-read".into())
            .spawn(move || self.read_and_queue(from, queue, delay))?;
        Ok(())
    }

    fn read_and_queue(self, mut from: TcpStream, queue: Sender<Due>, delay: Duration) {
        let mut buffer = vec![0; CHUNK];
        loop {
            let read = match from.read(&mut buffer) {
                Ok(0) | Err(_) => 0,
                Ok(read) => read,
            };
            let due = Instant::now() + delay;
            if read == 0 {
                let _ = queue.send((due, None));
                return;
            }
            let server_spoke_last = self
                .turn
                .server_spoke_last
                .swap(!self.from_client, Ordering::Relaxed);
            if self.from_client && server_spoke_last {
                self.counters.round_trips.fetch_add(1, Ordering::Relaxed);
            }
            if queue.send((due, Some(buffer[..read].to_vec()))).is_err() {
                return;
            }
        }
    }
}

/// Sends each queued chunk once it is due, in order; ends the stream after
/// the last.
fn send_when_due(due: Receiver<Due>, mut to: TcpStream) {
    sharpen_sleep();
    for (at, chunk) in due {
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        match chunk {
            Some(bytes) => {
                if to.write_all(&bytes).is_err() {
                    break;
                }
            }
            None => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Sleeps of half a millisecond are late by the kernel's timer slack (50 µs
/// by default) on top of the wake-up; a 1 µs slack keeps this thread's
/// delays close to what was asked.
fn sharpen_sleep() {
    // SAFETY: prctl with PR_SET_TIMERSLACK takes a plain integer and only
    // changes the calling thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_after_the_delay_each_way() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = echo.accept().unwrap();
            let mut buffer = [0; 4096];
            loop {
                let read = stream.read(&mut buffer).unwrap();
                if read == 0 {
                    break;
                }
                stream.write_all(&buffer[..read]).unwrap();
            }
        });
        let proxy = LatencyProxy::start(server, Duration::from_millis(5)).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        for message in [b"ping".to_vec(), (0..100_000u32).map(|i| i as u8).collect()] {
            let started = Instant::now();
            client.write_all(&message).unwrap();
            let mut echoed = vec![0; message.len()];
            client.read_exact(&mut echoed).unwrap();
            assert_eq!(echoed, message);
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(10), "{took:?}");
        }
        // The second message was sent after the first came back.
        assert_eq!(proxy.round_trips(), 1);
    }
}
