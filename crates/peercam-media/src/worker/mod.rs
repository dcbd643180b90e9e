//! The media worker (`peercam-media worker`): the process that holds the camera's peers, the
//! shared capture and the encoder, run by the device (camera/) with a Unix socket as its
//! stdin (messages in peercam-wire's protocol).
//!
//! GStreamer lives here and not in the serving process, so that
//! - everything a viewing session loads and allocates (libnice and its TLS and UPnP
//!   libraries, SRTP, the encoder, per-thread heap arenas) goes away with the worker when the
//!   last viewer leaves: the device returns to its idle footprint;
//! - a crash in a plugin or a camera driver ends this process, not signaling: the device
//!   ends the broadcast (viewers rejoin) and carries on with a fresh worker.
//!
//! This file owns the process: the socket on stdin, the runtime, dying with the device, and
//! the start-up exchange (`Start`, then `Ready` or `Failed`, then `Warm`). It must not touch
//! peers: that is the loop's ([`run`]), which carries out what the negotiation
//! ([`crate::negotiation`]) decides.
//!
//! - [`start`]: GStreamer, the elements every session needs, the capture's selection.
//! - [`dtls`]: the DTLS certificate, made before anyone waits for it.
//! - [`prime`]: a rehearsal of the first session, on a thread of its own.
//! - [`run`]: the loop and the GStreamer peers.
//! - [`mdns`]: bounded resolution of browsers' `.local` candidates.
//! - [`bus`]: pipeline errors and the frame count.
//! - [`source`]: the camera source's health carried out on the capture's switch.
//! - [`pictures`]: the still pictures in flight and the JPEG encoder they use.

mod bus;
mod dtls;
mod mdns;
mod pictures;
mod prime;
mod rate;
mod reap;
mod run;
mod source;
mod start;
mod talk;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use peercam_wire::{self as wire, FromWorker, ToWorker};

/// Bound of the loop's event queue: events for every peer of a busy camera fit with room to
/// spare.
const EVENT_QUEUE: usize = 4096;

/// Bound of the queue of messages to the device. The device reads continuously; a full
/// queue means it is gone or wedged, and the worker stops.
const SEND_QUEUE: usize = 4096;

/// Bound of the queue of pipeline errors: a failing pipeline posts a few, and the first one
/// already closes what failed.
const BUS_QUEUE: usize = 64;

/// Runs the worker on stdin until the device says stop or goes away. The exit status tells
/// the device only whether it ended cleanly; what failed was sent as `Failed` first.
pub fn main() -> anyhow::Result<()> {
    die_with_parent();
    // SAFETY: fd 0 is the socket the device made for this process and nothing else in the
    // process uses or closes it.
    let socket = unsafe { OwnedFd::from_raw_fd(std::io::stdin().as_raw_fd()) };
    let socket = std::os::unix::net::UnixStream::from(socket);
    socket
        .set_nonblocking(true)
        .context("stdin is not the device's socket")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("worker runtime")?;
    rt.block_on(serve(socket))
}

/// The device dying (even by SIGKILL) takes the worker with it, camera and all.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with these arguments only sets this process's parent-death signal.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

async fn serve(socket: std::os::unix::net::UnixStream) -> anyhow::Result<()> {
    let (read, write) = UnixStream::from_std(socket)?.into_split();
    let mut lines = BufReader::new(read).lines();
    let (out_tx, out_rx) = mpsc::channel(SEND_QUEUE);
    let writer = tokio::spawn(wire::write_lines(write, out_rx));

    let first = lines
        .next_line()
        .await?
        .context("the device sent nothing")?;
    let theirs = wire::protocol_of(&first);
    if theirs != wire::PROTOCOL {
        let error = wire::mismatch("this media program", "the device", theirs);
        let _ = out_tx.try_send(FromWorker::Failed {
            selecting: false,
            error: error.clone(),
        });
        drop(out_tx);
        let _ = writer.await;
        bail!("{error}");
    }
    let ToWorker::Start(settings) = wire::decode(&first).context("first message")? else {
        bail!("the first message was not Start");
    };
    let settings = *settings;
    crate::logging::init(&settings.log_level);
    let started = match start::start(&settings) {
        Ok(mut started) => {
            let _ = out_tx.try_send(FromWorker::Ready {
                protocol: wire::PROTOCOL,
                launch: started.launch.clone(),
                chosen: started.chosen.take(),
            });
            started
        }
        Err((selecting, error)) => {
            let _ = out_tx.try_send(FromWorker::Failed { selecting, error });
            drop(out_tx);
            let _ = writer.await;
            std::process::exit(1);
        }
    };
    // Made now, while the device has nobody to serve yet: it takes ~100-300 ms (longer on a
    // Pi), and GStreamer's DTLS agent keeps it for the life of the process.
    // Off the loop's thread, so that `Ready` is written at once.
    let _ = tokio::task::spawn_blocking(dtls::prepare_certificate).await;
    let _ = out_tx.try_send(FromWorker::Warm);

    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (bus_tx, bus_rx) = mpsc::channel(BUS_QUEUE);
    let (sig_tx, sig_rx) = mpsc::channel(EVENT_QUEUE);
    let (pictures, delivered) = pictures::Pictures::new();
    let (speaker_tx, speaker_rx) = mpsc::channel(BUS_QUEUE);
    let channels = run::Channels {
        out: out_tx,
        events: ev_tx,
        resolved: sig_tx,
        bus_errors: bus_tx,
        speaker_errors: speaker_tx,
    };
    let mut worker = run::Worker::new(settings, started, channels, pictures);
    worker
        .run(lines, sig_rx, ev_rx, bus_rx, delivered, speaker_rx)
        .await;
    drop(worker);
    let _ = writer.await;
    Ok(())
}
