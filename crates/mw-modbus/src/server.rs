//! A read-only Modbus TCP server over a shared register image (for the simulator and tests),
//! built on tokio-modbus's server (`Server` + a `Service`).
//!
//! Behaviour:
//! * fc 1, 2, 3, 4 (read coils, discrete inputs, holding registers, input registers) are served
//!   from the [`RegisterImage`] as it is at the moment of the request;
//! * a quantity of 0 or above the protocol limit (2000 bits, 125 registers) → exception 3
//!   *illegal data value*; a range that runs past the end of the image → exception 2 *illegal
//!   data address*; a range touching an address marked unavailable → exception 11 *gateway
//!   target device failed to respond* (simulated dropouts, see [`RegisterImage::mark_unavailable`]);
//! * every other function code, writes (fc 5, 6, 15, 16) included → exception 1 *illegal
//!   function*: the simulator is read-only, its values come from its physics;
//! * any unit id is accepted (and echoed);
//! * at most [`MAX_CONNECTIONS`] clients at a time: a connection beyond that is accepted and
//!   closed at once (the client sees the connection reset/closed);
//! * a client that sends nothing for [`IDLE_TIMEOUT`] (60 s; [`ServerOptions::idle_timeout`]) is
//!   disconnected and its slot freed, so idle connections cannot hold every slot. Only what the
//!   client sends counts as activity: a client that polls now and then stays connected.
//! * shutdown: when the watch turns `true` (or its sender is dropped) the listener and every
//!   client connection are closed and [`serve`] returns `Ok(())` — after the connections are
//!   really closed (it waits for them, at most 1 s).
//!
//! Transient accept errors (too many open files, connection aborted before accept) are logged
//! and retried after 100 ms; note that tokio-modbus closes the open connections when that
//! happens. Any other accept error is returned.

use std::future::{Future, Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::config::RegisterTable;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response};

use crate::plan::{MAX_READ_BITS, MAX_READ_REGISTERS};

/// Default cap on concurrent client connections of [`serve`].
pub const MAX_CONNECTIONS: usize = 64;
/// Default time after which a client that has sent nothing is disconnected.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits of [`serve_with_options`]; `ServerOptions::default()` gives [`MAX_CONNECTIONS`] and
/// [`IDLE_TIMEOUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Concurrent client connections (at least 1).
    pub max_connections: usize,
    /// A client that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// A range of addresses of one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRange {
    pub table: RegisterTable,
    pub start: u16,
    pub count: u16,
}

impl AddressRange {
    fn overlaps(&self, table: RegisterTable, start: u16, count: u16) -> bool {
        let (a0, a1) = (
            u32::from(self.start),
            u32::from(self.start) + u32::from(self.count),
        );
        let (b0, b1) = (u32::from(start), u32::from(start) + u32::from(count));
        self.table == table && a0 < b1 && b0 < a1
    }
}

/// The four Modbus tables, indexed by 0-based protocol address, plus dropout marks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterImage {
    pub coils: Vec<bool>,
    pub discrete_inputs: Vec<bool>,
    pub input_registers: Vec<u16>,
    pub holding_registers: Vec<u16>,
    /// Ranges that currently have no data: a read touching any of them gets exception 11.
    pub unavailable: Vec<AddressRange>,
}

/// The image shared between the server and whoever updates it.
pub type SharedImage = Arc<RwLock<RegisterImage>>;

impl RegisterImage {
    /// An image of the given sizes, all zero/false.
    pub fn with_sizes(
        coils: usize,
        discrete_inputs: usize,
        input_registers: usize,
        holding_registers: usize,
    ) -> Self {
        RegisterImage {
            coils: vec![false; coils],
            discrete_inputs: vec![false; discrete_inputs],
            input_registers: vec![0; input_registers],
            holding_registers: vec![0; holding_registers],
            unavailable: Vec::new(),
        }
    }

    /// Wraps the image for [`serve`].
    pub fn shared(self) -> SharedImage {
        Arc::new(RwLock::new(self))
    }

    /// Marks `count` addresses from `start` of `table` as unavailable (simulated dropout).
    pub fn mark_unavailable(&mut self, table: RegisterTable, start: u16, count: u16) {
        let r = AddressRange {
            table,
            start,
            count,
        };
        if count > 0 && !self.unavailable.contains(&r) {
            self.unavailable.push(r);
        }
    }

    /// Removes every unavailable mark that overlaps the given range.
    pub fn clear_unavailable(&mut self, table: RegisterTable, start: u16, count: u16) {
        self.unavailable
            .retain(|r| !r.overlaps(table, start, count));
    }

    /// Whether any address of the range is marked unavailable.
    pub fn is_unavailable(&self, table: RegisterTable, start: u16, count: u16) -> bool {
        self.unavailable
            .iter()
            .any(|r| r.overlaps(table, start, count))
    }

    /// Answers one request exactly as the server does (pure; usable without a socket).
    pub fn respond(&self, request: &Request<'_>) -> Result<Response, ExceptionCode> {
        match *request {
            Request::ReadCoils(a, n) => self
                .bits(RegisterTable::Coil, &self.coils, a, n)
                .map(Response::ReadCoils),
            Request::ReadDiscreteInputs(a, n) => self
                .bits(RegisterTable::DiscreteInput, &self.discrete_inputs, a, n)
                .map(Response::ReadDiscreteInputs),
            Request::ReadHoldingRegisters(a, n) => self
                .registers(
                    RegisterTable::HoldingRegister,
                    &self.holding_registers,
                    a,
                    n,
                )
                .map(Response::ReadHoldingRegisters),
            Request::ReadInputRegisters(a, n) => self
                .registers(RegisterTable::InputRegister, &self.input_registers, a, n)
                .map(Response::ReadInputRegisters),
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }

    fn check(
        &self,
        table: RegisterTable,
        len: usize,
        start: u16,
        count: u16,
        max: u16,
    ) -> Result<(), ExceptionCode> {
        if count == 0 || count > max {
            return Err(ExceptionCode::IllegalDataValue);
        }
        if usize::from(start) + usize::from(count) > len {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        if self.is_unavailable(table, start, count) {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        Ok(())
    }

    fn bits(
        &self,
        table: RegisterTable,
        v: &[bool],
        start: u16,
        count: u16,
    ) -> Result<Vec<bool>, ExceptionCode> {
        self.check(table, v.len(), start, count, MAX_READ_BITS)?;
        let s = usize::from(start);
        Ok(v[s..s + usize::from(count)].to_vec())
    }

    fn registers(
        &self,
        table: RegisterTable,
        v: &[u16],
        start: u16,
        count: u16,
    ) -> Result<Vec<u16>, ExceptionCode> {
        self.check(table, v.len(), start, count, MAX_READ_REGISTERS)?;
        let s = usize::from(start);
        Ok(v[s..s + usize::from(count)].to_vec())
    }
}

/// One client connection's service; holds a connection slot until the connection ends.
struct ImageService {
    image: SharedImage,
    _slot: OwnedSemaphorePermit,
}

impl Service for ImageService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let image = self
            .image
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ready(image.respond(&req))
    }
}

/// Serves `image` on `listener` until `shutdown` turns `true`, with the default
/// [`ServerOptions`] (see the module docs).
pub async fn serve(
    listener: TcpListener,
    image: SharedImage,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_with_options(listener, image, shutdown, ServerOptions::default()).await
}

/// [`serve`] with another cap on concurrent connections (at least 1).
pub async fn serve_with_limit(
    listener: TcpListener,
    image: SharedImage,
    shutdown: watch::Receiver<bool>,
    max_connections: usize,
) -> io::Result<()> {
    let options = ServerOptions {
        max_connections,
        ..ServerOptions::default()
    };
    serve_with_options(listener, image, shutdown, options).await
}

/// [`serve`] with other limits.
pub async fn serve_with_options(
    listener: TcpListener,
    image: SharedImage,
    mut shutdown: watch::Receiver<bool>,
    options: ServerOptions,
) -> io::Result<()> {
    let local = listener.local_addr().ok();
    let max_connections = options.max_connections.clamp(1, 65_535);
    let idle = options.idle_timeout;
    let slots = Arc::new(Semaphore::new(max_connections));
    let server = Server::new(listener);
    let new_service = |peer: SocketAddr| -> io::Result<Option<ImageService>> {
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => Ok(Some(ImageService {
                image: Arc::clone(&image),
                _slot: slot,
            })),
            Err(_) => {
                tracing::warn!(?local, %peer, max_connections, "modbus server full; connection refused");
                Ok(None)
            }
        }
    };
    let on_connected = |stream: TcpStream, peer: SocketAddr| {
        std::future::ready(
            new_service(peer).map(|s| s.map(|service| (service, IdleStream::new(stream, idle)))),
        )
    };
    let on_error =
        |e: io::Error| tracing::debug!("modbus server connection ended with an error: {e}");
    let result = loop {
        // Dropping the `serve` future (shutdown) cancels every connection task.
        let served = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break Ok(()),
            r = server.serve(&on_connected, on_error) => r,
        };
        match served {
            Ok(()) => break Ok(()),
            Err(e) if transient(&e) => {
                tracing::warn!(
                    ?local,
                    "modbus server accept failed, retrying in 100 ms: {e}"
                );
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            Err(e) => break Err(e),
        }
    };
    drop(server); // closes the listener
    // Connection tasks end at their next poll after the cancellation; each holds a slot until it
    // is gone. Waiting for every slot (bounded) means that when this returns, every client
    // socket is closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(1), slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            ?local,
            "modbus server: some connections were still closing after 1 s"
        );
    }
    result
}

/// A client stream that fails with `TimedOut` once the client has sent nothing for `idle`
/// (tokio-modbus then ends the connection, which frees its slot).
struct IdleStream<T> {
    inner: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleStream<T> {
    fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        IdleStream {
            inner,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            if buf.filled().len() > before {
                this.last = Instant::now();
            }
            return Poll::Ready(r);
        }
        // Re-armed lazily: a read only records the time.
        loop {
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = this.last + this.idle;
            if Instant::now() >= due {
                tracing::debug!(idle = ?this.idle, "modbus client sent nothing; disconnecting");
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "modbus client idle timeout",
                )));
            }
            this.timer.as_mut().reset(due);
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    // 23 ENFILE, 24 EMFILE, 105 ENOBUFS, 12 ENOMEM (Linux numbering).
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn image() -> RegisterImage {
        let mut img = RegisterImage::with_sizes(10, 3, 4, 130);
        img.coils[2] = true;
        img.holding_registers[0] = 0x1234;
        img.holding_registers[129] = 7;
        img.input_registers[3] = 9;
        img
    }

    #[test]
    fn reads_are_served_from_the_image() {
        let img = image();
        assert_eq!(
            img.respond(&Request::ReadCoils(1, 3)),
            Ok(Response::ReadCoils(vec![false, true, false]))
        );
        assert_eq!(
            img.respond(&Request::ReadDiscreteInputs(0, 3)),
            Ok(Response::ReadDiscreteInputs(vec![false; 3]))
        );
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(0, 1)),
            Ok(Response::ReadHoldingRegisters(vec![0x1234]))
        );
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(129, 1)),
            Ok(Response::ReadHoldingRegisters(vec![7]))
        );
        assert_eq!(
            img.respond(&Request::ReadInputRegisters(2, 2)),
            Ok(Response::ReadInputRegisters(vec![0, 9]))
        );
    }

    #[test]
    fn bad_requests_get_the_right_exception() {
        let img = image();
        use ExceptionCode::*;
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(129, 2)),
            Err(IllegalDataAddress)
        );
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(65535, 1)),
            Err(IllegalDataAddress)
        );
        assert_eq!(
            img.respond(&Request::ReadCoils(10, 1)),
            Err(IllegalDataAddress)
        );
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(0, 126)),
            Err(IllegalDataValue)
        );
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(0, 0)),
            Err(IllegalDataValue)
        );
        assert_eq!(
            img.respond(&Request::ReadCoils(0, 2001)),
            Err(IllegalDataValue)
        );
        assert_eq!(
            img.respond(&Request::WriteSingleRegister(0, 1)),
            Err(IllegalFunction)
        );
        assert_eq!(
            img.respond(&Request::WriteSingleCoil(0, true)),
            Err(IllegalFunction)
        );
        assert_eq!(
            img.respond(&Request::WriteMultipleRegisters(0, Cow::Owned(vec![1, 2]))),
            Err(IllegalFunction)
        );
        assert_eq!(
            img.respond(&Request::WriteMultipleCoils(0, Cow::Owned(vec![true]))),
            Err(IllegalFunction)
        );
        assert_eq!(img.respond(&Request::ReportServerId), Err(IllegalFunction));
    }

    #[test]
    fn unavailable_ranges_answer_gateway_target_failed() {
        let mut img = image();
        img.mark_unavailable(RegisterTable::HoldingRegister, 10, 2);
        let t = RegisterTable::HoldingRegister;
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(11, 1)),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert_eq!(
            img.respond(&Request::ReadHoldingRegisters(0, 20)),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert!(img.respond(&Request::ReadHoldingRegisters(12, 1)).is_ok());
        assert!(
            img.respond(&Request::ReadInputRegisters(0, 4)).is_ok(),
            "other tables unaffected"
        );
        assert!(img.is_unavailable(t, 9, 2) && !img.is_unavailable(t, 8, 2));
        img.clear_unavailable(t, 11, 1);
        assert!(img.unavailable.is_empty());
        assert!(img.respond(&Request::ReadHoldingRegisters(0, 20)).is_ok());
    }
}
