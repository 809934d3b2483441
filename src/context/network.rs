//! The TCP connections between a job's processes (`-n/-p/-h`), made by sluice and handed to
//! timely's communication threads.
//!
//! Timely's own set-up retries a missing peer forever and prints to standard output; a
//! connection that fails later ends in panics of its communication threads, and a peer that
//! goes silent (its machine gone, the link cut) is never noticed. Here:
//!
//! - **Handshake.** Each process connects to the processes before it in the hostfile and
//!   accepts the ones after it; the first bytes say `sluice`, the process index, the number of
//!   processes and the job's name, and the other side answers. A process of another job, or one
//!   started with another hostfile, is refused with both sides named.
//! - **Start-up deadline.** A process that has not connected within the connect timeout is
//!   named with its hostfile line.
//! - **Silent peers.** Keepalive probes and `TCP_USER_TIMEOUT` end a connection whose peer has
//!   not answered for the peer timeout, so a link down for less than it (a short cut) is
//!   ridden out by TCP and the job goes on exactly, and one down for longer ends the job.
//! - **One message.** A panic hook turns timely's communication panics (and the panics they
//!   cause in workers) into one [`SluiceError::Cluster`] naming the process and its address;
//!   other panics go to the previous hook.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::config::Cluster;
use crate::error::{Result, SluiceError};

const MAGIC: &[u8; 8] = b"sluice\x01\x00";

/// What failed first in a connection, as timely's communication threads reported it:
/// `(remote process, message)`.
static FAILURE: Mutex<Option<(usize, String)>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// The connection failure reported by timely's threads since the job started, if any.
pub(crate) fn failure() -> Option<(usize, String)> {
    FAILURE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The job's error for a failed connection to process `remote`.
pub(crate) fn lost(
    cluster: &Cluster,
    remote: usize,
    cause: &str,
    peer_timeout: Duration,
) -> SluiceError {
    let address = cluster.addresses.get(remote).map_or("?", String::as_str);
    let cause = cause
        .strip_prefix("timely communication error: ")
        .unwrap_or(cause);
    SluiceError::Cluster {
        problem: format!(
            "process {} lost its connection to process {remote} ({address}, line {} of the hostfile): {cause}; this process stopped",
            cluster.process,
            remote + 1
        ),
        fix: format!(
            "restart every process of the job (a checkpointed job resumes after its last finished batch); a peer silent for longer than the peer timeout ({} s) counts as gone",
            peer_timeout.as_secs()
        ),
    }
}

/// Installs the panic hook that keeps timely's communication panics quiet (once per process).
pub(crate) fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            let remote = name
                .strip_prefix("timely:send-")
                .or_else(|| name.strip_prefix("timely:recv-"))
                .and_then(|i| i.parse::<usize>().ok());
            if let (Some(remote), true) = (remote, msg.starts_with("timely communication error")) {
                let mut first = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    tracing::error!("the connection to process {remote} failed: {msg}");
                    *first = Some((remote, msg));
                }
                return;
            }
            // What a failed connection causes elsewhere: said once, by the job's error.
            let consequence = msg.contains("MergeQueue poisoned")
                || msg.contains("Send thread panic")
                || msg.contains("Recv thread panic");
            if consequence && failure().is_some() {
                return;
            }
            previous(info);
        }));
    });
}

/// Connects this process to every other (`None` at its own index), within `connect_timeout`.
pub(crate) fn connect(
    cluster: &Cluster,
    job: &str,
    connect_timeout: Duration,
    peer_timeout: Duration,
) -> Result<Vec<Option<TcpStream>>> {
    let me = cluster.process;
    let n = cluster.processes;
    let deadline = Instant::now() + connect_timeout;
    let own = &cluster.addresses[me];
    let listener = TcpListener::bind(own.as_str()).map_err(|e| SluiceError::Cluster {
        problem: format!(
            "process {me} cannot listen on {own} (line {} of the hostfile): {e}",
            me + 1
        ),
        fix: "give this process a free address of this machine in the hostfile".into(),
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| startup(format!("cannot poll {own}: {e}")))?;
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut last_report = Instant::now();
    let waiting = |sockets: &[Option<TcpStream>]| -> Vec<usize> {
        (0..n)
            .filter(|&i| i != me && sockets[i].is_none())
            .collect()
    };
    while !waiting(&sockets).is_empty() {
        let mut progressed = false;
        // The processes before this one listen; connect to them.
        for (remote, socket) in sockets.iter_mut().enumerate().take(me) {
            if socket.is_some() {
                continue;
            }
            if let Ok(stream) = connect_once(&cluster.addresses[remote]) {
                let stream = tune(stream, peer_timeout)?;
                *socket = Some(hello(stream, me, n, job, remote, cluster)?);
                progressed = true;
            }
        }
        // The processes after this one connect here.
        match listener.accept() {
            Ok((stream, _)) => {
                stream
                    .set_nonblocking(false)
                    .map_err(|e| startup(format!("cannot use a connection: {e}")))?;
                let stream = tune(stream, peer_timeout)?;
                if let Some((remote, stream)) = welcome(stream, me, n, job, cluster)? {
                    sockets[remote] = Some(stream);
                    progressed = true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(startup(format!("cannot accept on {own}: {e}"))),
        }
        let missing = waiting(&sockets);
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let named: Vec<String> = missing
                .iter()
                .map(|&i| format!("process {i} ({}, line {})", cluster.addresses[i], i + 1))
                .collect();
            return Err(SluiceError::Cluster {
                problem: format!(
                    "process {me} waited {} s for {} of the hostfile",
                    connect_timeout.as_secs(),
                    named.join(", ")
                ),
                fix: "start every process with the same hostfile and -n (each with its own -p), check that the addresses are reachable, or raise --connect-timeout".into(),
            });
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            tracing::warn!("process {me}: waiting for processes {missing:?} to connect");
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    tracing::info!("process {me}: connected to all {} other processes", n - 1);
    Ok(sockets)
}

fn startup(problem: String) -> SluiceError {
    SluiceError::Startup(problem)
}

fn connect_once(address: &str) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "the address resolved to nothing",
    );
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// No delay, keepalive and a user timeout of `peer_timeout`.
fn tune(stream: TcpStream, peer_timeout: Duration) -> Result<TcpStream> {
    let sock = socket2::SockRef::from(&stream);
    let probe = (peer_timeout / 3).max(Duration::from_secs(1));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(probe)
        .with_interval(Duration::from_secs(1))
        .with_retries(((peer_timeout.as_secs() / 3).max(1)) as u32);
    let tuned = stream
        .set_nodelay(true)
        .and_then(|()| sock.set_tcp_keepalive(&keepalive))
        .and_then(|()| sock.set_tcp_user_timeout(Some(peer_timeout)));
    tuned.map_err(|e| startup(format!("cannot set up a connection: {e}")))?;
    Ok(stream)
}

fn handshake(me: usize, n: usize, job: &str) -> Vec<u8> {
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&(me as u64).to_le_bytes());
    hello.extend_from_slice(&(n as u64).to_le_bytes());
    let name = &job.as_bytes()[..job.len().min(u16::MAX as usize)];
    hello.extend_from_slice(&(name.len() as u16).to_le_bytes());
    hello.extend_from_slice(name);
    hello
}

fn read_handshake(stream: &mut TcpStream) -> std::io::Result<Option<(usize, usize, String)>> {
    let mut head = [0u8; 26];
    stream.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Ok(None);
    }
    let index = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default()) as usize;
    let n = u64::from_le_bytes(head[16..24].try_into().unwrap_or_default()) as usize;
    let len = u16::from_le_bytes([head[24], head[25]]) as usize;
    let mut name = vec![0u8; len];
    stream.read_exact(&mut name)?;
    Ok(Some((
        index,
        n,
        String::from_utf8_lossy(&name).into_owned(),
    )))
}

/// The connecting side: says who it is, and waits for the answer.
fn hello(
    mut stream: TcpStream,
    me: usize,
    n: usize,
    job: &str,
    remote: usize,
    cluster: &Cluster,
) -> Result<TcpStream> {
    let address = &cluster.addresses[remote];
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| stream.write_all(&handshake(me, n, job)))
        .map_err(|e| startup(format!("cannot greet process {remote} at {address}: {e}")))?;
    let mut answer = [0u8; 1];
    let mut reason = String::new();
    let answered = stream.read_exact(&mut answer).and_then(|()| {
        if answer[0] != 0 {
            stream.read_to_string(&mut reason)?;
        }
        Ok(())
    });
    if answered.is_err() || answer[0] != 0 {
        return Err(SluiceError::Cluster {
            problem: format!(
                "process {remote} at {address} (line {} of the hostfile) refused process {me}: {}",
                remote + 1,
                if reason.is_empty() {
                    "it is not a process of this job".to_owned()
                } else {
                    reason
                }
            ),
            fix: "start every process of one job with the same job, hostfile and -n".into(),
        });
    }
    stream
        .set_read_timeout(None)
        .map_err(|e| startup(format!("cannot use the connection to {address}: {e}")))?;
    Ok(stream)
}

/// The accepting side: checks who connected. `Ok(None)`: not a sluice process (ignored).
fn welcome(
    mut stream: TcpStream,
    me: usize,
    n: usize,
    job: &str,
    cluster: &Cluster,
) -> Result<Option<(usize, TcpStream)>> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let greeting = match read_handshake(&mut stream) {
        Ok(Some(g)) => g,
        Ok(None) | Err(_) => {
            tracing::warn!("process {me}: a connection that is not a sluice process was closed");
            return Ok(None);
        }
    };
    let (index, theirs, name) = greeting;
    let refuse = |mut stream: TcpStream, reason: String| -> Result<Option<(usize, TcpStream)>> {
        let mut answer = vec![1u8];
        answer.extend_from_slice(reason.as_bytes());
        let _ = stream.write_all(&answer);
        Err(SluiceError::Cluster {
            problem: format!("process {me} was reached by a process it cannot work with: {reason}"),
            fix: "start every process of one job with the same job, hostfile and -n".into(),
        })
    };
    if theirs != n {
        return refuse(
            stream,
            format!("process {index} was started with -n {theirs}, process {me} with -n {n}"),
        );
    }
    if index <= me || index >= n {
        return refuse(
            stream,
            format!(
                "process {me} expects processes {} to {} to connect to it, not process {index}",
                me + 1,
                n - 1
            ),
        );
    }
    if name != job {
        return refuse(
            stream,
            format!("process {index} runs the job `{name}`, process {me} runs `{job}`"),
        );
    }
    stream
        .write_all(&[0])
        .and_then(|()| stream.set_read_timeout(None))
        .map_err(|e| {
            startup(format!(
                "cannot answer process {index} ({}): {e}",
                cluster.addresses[index]
            ))
        })?;
    Ok(Some((index, stream)))
}

/// Runs `work` on this process's workers over the connected `sockets` (timely's
/// `execute_from` with the allocators of `initialize_networking_from_sockets`).
pub(crate) fn execute<T, F>(
    sockets: Vec<Option<TcpStream>>,
    cluster: &Cluster,
    worker: timely::WorkerConfig,
    work: F,
) -> std::result::Result<timely::communication::WorkerGuards<T>, String>
where
    T: Send + 'static,
    F: Fn(&mut timely::worker::Worker) -> T + Send + Sync + 'static,
{
    use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
    use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
    let hooks = timely::communication::Hooks::default();
    let local = ProcessBuilder::new_typed_vector(
        cluster.threads,
        hooks.refill.clone(),
        hooks.spill.clone(),
    );
    let (builders, guard) =
        initialize_networking_from_sockets(local, sockets, cluster.process, cluster.threads, hooks)
            .map_err(|e| format!("cannot start the connections between processes: {e}"))?;
    let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
    timely::execute::execute_from(builders, Box::new(guard), worker, work)
}
