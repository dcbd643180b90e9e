//! One media worker process as the device sees it: spawned as `peercam-media worker` with one
//! end of a Unix socket pair as its stdin, a task writing the device's messages to it and a
//! task reading its messages into the camera loop (tagged with the worker's number). It only
//! carries messages and ends the process: what a worker is for, and when it is started or
//! stopped, is the policy's (policy.rs).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::signaling::Outgoing;
use peercam_wire::{self as wire, FromWorker, SnapshotSpec, ToWorker, WorkerSettings};

/// Messages queued for one worker; it reads continuously, so a full queue means it is
/// wedged (its messages are then dropped and its peers time out).
const QUEUE: usize = 4096;

/// How long a worker may take to close its peers and exit when told to stop.
pub const STOP_LIMIT: Duration = Duration::from_secs(1);

/// What a worker reports to the camera loop.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A message.
    Message(FromWorker),
    /// Its socket closed: it exited, or is about to.
    Gone,
}

/// A running worker.
pub struct Process {
    /// Its number in this device's life (tags its events).
    pub id: u64,
    /// The process.
    child: Child,
    /// Messages for it, written to its socket in order.
    tx: mpsc::Sender<ToWorker>,
}

impl Process {
    /// Spawns worker `id` and sends it `settings`.
    pub fn spawn(
        id: u64,
        program: &Path,
        settings: WorkerSettings,
        events: mpsc::Sender<(u64, WorkerEvent)>,
    ) -> std::io::Result<Process> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let mut command = Command::new(program);
        let (slice, malloc) = wire::memory::GLIB_SLICE;
        if std::env::var_os(slice).is_none() {
            command.env(slice, malloc);
        }
        let child = command
            .arg("worker")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            // systemd's notifications and watchdog are the serving process's business.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .kill_on_drop(true)
            .spawn()?;
        let (read, write) = UnixStream::from_std(ours)?.into_split();
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(wire::write_lines(write, rx));
        tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            let mut first = true;
            while let Ok(Some(line)) = lines.next_line().await {
                if line.len() > wire::MAX_LINE {
                    log::warn!("oversized message from media worker {id} dropped");
                    continue;
                }
                // A worker's first line is `Ready` stating its protocol, or `Failed`, which
                // every version can read: anything else is a worker from another build.
                if std::mem::take(&mut first) && wire::protocol_of(&line) != wire::PROTOCOL {
                    let msg = match wire::decode::<FromWorker>(&line) {
                        Ok(failed @ FromWorker::Failed { .. }) => failed,
                        _ => FromWorker::Failed {
                            selecting: false,
                            error: wire::mismatch(
                                "peercam",
                                "the media program",
                                wire::protocol_of(&line),
                            ),
                        },
                    };
                    let _ = events.send((id, WorkerEvent::Message(msg))).await;
                    break;
                }
                match wire::decode::<FromWorker>(&line) {
                    Ok(msg) => {
                        if events.send((id, WorkerEvent::Message(msg))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => log::warn!("bad message from media worker {id}: {e}"),
                }
            }
            let _ = events.send((id, WorkerEvent::Gone)).await;
        });
        let _ = tx.try_send(ToWorker::Start(Box::new(settings)));
        Ok(Process { id, child, tx })
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Passes on a message for one of the device's members.
    pub fn signal(&self, member: &str, msg: Outgoing) {
        let msg = ToWorker::Signal {
            member: member.to_owned(),
            msg,
        };
        if self.tx.try_send(msg).is_err() {
            log::warn!("media worker {} is not reading; message dropped", self.id);
        }
    }

    /// Asks it for a still picture, answered as `id`.
    pub fn snapshot(&self, id: u64, spec: SnapshotSpec) {
        if self.tx.try_send(ToWorker::Snapshot { id, spec }).is_err() {
            log::warn!(
                "media worker {} is not reading; picture not asked for",
                self.id
            );
        }
    }

    /// Asks it to load what a session needs.
    pub fn prime(&self) {
        let _ = self.tx.try_send(ToWorker::Prime);
    }

    /// Tells it to close its peers and exit, and waits for that (killing it after
    /// [`STOP_LIMIT`]).
    pub async fn stop(mut self) {
        let _ = self.tx.try_send(ToWorker::Stop);
        match tokio::time::timeout(STOP_LIMIT, self.child.wait()).await {
            Ok(Ok(status)) if !status.success() => {
                log::warn!("media worker {} stopped with {status}", self.id)
            }
            Ok(_) => {}
            Err(_) => {
                log::warn!("media worker {} did not stop in time; killing it", self.id);
                let _ = self.child.kill().await;
            }
        }
    }

    /// Collects the exit status of a worker whose socket closed, for the log.
    pub async fn reap(mut self) -> String {
        match tokio::time::timeout(STOP_LIMIT, self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("unknown status ({e})"),
            Err(_) => {
                let _ = self.child.kill().await;
                "socket closed; killed".to_owned()
            }
        }
    }
}
