//! The worker's still pictures in flight: who waits for which picture, until when, and which
//! JPEG encoder the next one uses.
//!
//! - Requests for a picture of the size and quality of one being taken wait for that one: a
//!   burst costs one encode.
//! - Every request is answered: with the JPEG, or with why there is none (the capture failed
//!   or stopped, the encoder failed, nothing came within [`PICTURE_LIMIT`]).
//! - The encoder is chosen once per worker, off the loop's thread, as soon as the worker
//!   starts ([`crate::jpeg::choose`]); until then, and for good once the hardware one has
//!   failed, the software one.
//!
//! Plain bookkeeping with time passed in: the loop (run.rs) attaches and detaches the
//! branches and sends the answers.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::jpeg::{self, Delivery, JpegEncoder};
use peercam_wire::SnapshotSpec;

/// The longest a picture may take, from the request to the JPEG: enough to open an idle
/// camera and encode its first frame on a Pi; less than the device waits (5 s), so that the
/// person who asked reads why rather than a timeout.
pub(super) const PICTURE_LIMIT: Duration = Duration::from_secs(4);

/// Bound of the queue of JPEGs from the branches' streaming threads: each branch delivers at
/// most one, and few are in flight at once.
const DELIVERY_QUEUE: usize = 16;

/// One picture being taken.
#[derive(Debug)]
pub(super) struct Taking {
    /// Its number (names its branch).
    pub number: u64,
    /// Its size and quality.
    pub spec: SnapshotSpec,
    /// When it is overdue.
    pub deadline: Instant,
    /// The device's requests waiting for it.
    pub waiting: Vec<u64>,
}

/// The pictures being taken.
pub(super) struct Pictures {
    /// In flight, oldest first.
    taking: Vec<Taking>,
    /// Pictures started so far (numbers them).
    made: u64,
    /// Where the branches deliver.
    delivered: mpsc::Sender<Delivery>,
    /// The encoder chosen for this machine, once the choice is made.
    chosen: Arc<OnceLock<JpegEncoder>>,
    /// The hardware encoder failed in this worker: the software one from now on.
    hardware_failed: bool,
}

impl Pictures {
    /// No picture in flight; the JPEGs come out of the receiver. Starts choosing the
    /// encoder on a thread of its own (a hardware trial can take a moment).
    pub(super) fn new() -> (Pictures, mpsc::Receiver<Delivery>) {
        let (delivered, rx) = mpsc::channel(DELIVERY_QUEUE);
        let chosen = Arc::new(OnceLock::new());
        let choosing = chosen.clone();
        let spawned = std::thread::Builder::new()
            .name("peercam-jpeg-probe".into())
            .spawn(move || {
                let encoder = match crate::probe::SystemProbe::new() {
                    Ok(probe) => jpeg::choose(&probe),
                    Err(_) => JpegEncoder::Software,
                };
                let _ = choosing.set(encoder);
            });
        if spawned.is_err() {
            let _ = chosen.set(JpegEncoder::Software);
        }
        let pictures = Pictures {
            taking: Vec::new(),
            made: 0,
            delivered,
            chosen,
            hardware_failed: false,
        };
        (pictures, rx)
    }

    /// Where a branch delivers its JPEG.
    pub(super) fn deliver_to(&self) -> mpsc::Sender<Delivery> {
        self.delivered.clone()
    }

    /// The encoder the next picture uses.
    pub(super) fn encoder(&self) -> JpegEncoder {
        match self.chosen.get() {
            Some(JpegEncoder::Hardware) if !self.hardware_failed => JpegEncoder::Hardware,
            _ => JpegEncoder::Software,
        }
    }

    /// The hardware encoder failed: the software one from now on. Whether it was the one in
    /// use (and the picture is worth taking again).
    pub(super) fn hardware_failed(&mut self) -> bool {
        let was = self.encoder() == JpegEncoder::Hardware;
        self.hardware_failed = true;
        was
    }

    /// Request `id` waits for the picture of `spec` being taken, if there is one.
    pub(super) fn join(&mut self, id: u64, spec: &SnapshotSpec) -> bool {
        match self.taking.iter_mut().find(|t| t.spec == *spec) {
            Some(taking) => {
                taking.waiting.push(id);
                true
            }
            None => false,
        }
    }

    /// A new picture of `spec` for `waiting`, overdue at `deadline`: its number.
    pub(super) fn start(
        &mut self,
        spec: SnapshotSpec,
        waiting: Vec<u64>,
        deadline: Instant,
    ) -> u64 {
        self.made += 1;
        self.taking.push(Taking {
            number: self.made,
            spec,
            deadline,
            waiting,
        });
        self.made
    }

    /// Picture `number` is over (delivered, failed): who waited for it. `None` when it was
    /// already over (a late delivery after its deadline).
    pub(super) fn finish(&mut self, number: u64) -> Option<Taking> {
        let at = self.taking.iter().position(|t| t.number == number)?;
        Some(self.taking.remove(at))
    }

    /// The pictures overdue at `now`, no longer in flight.
    pub(super) fn overdue(&mut self, now: Instant) -> Vec<Taking> {
        let (late, on_time) = std::mem::take(&mut self.taking)
            .into_iter()
            .partition(|t| now >= t.deadline);
        self.taking = on_time;
        late
    }

    /// Every picture in flight, no longer in flight.
    pub(super) fn drain(&mut self) -> Vec<Taking> {
        std::mem::take(&mut self.taking)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: SnapshotSpec = SnapshotSpec {
        size: Some((320, 180)),
        quality: 85,
    };
    const FULL: SnapshotSpec = SnapshotSpec {
        size: None,
        quality: 85,
    };

    #[tokio::test]
    async fn requests_for_the_same_picture_share_it_and_each_picture_ends_once() {
        let (mut pictures, _rx) = Pictures::new();
        let t0 = Instant::now();
        assert!(!pictures.join(1, &SMALL), "nothing in flight");
        let small = pictures.start(SMALL, vec![1], t0 + PICTURE_LIMIT);
        assert!(pictures.join(2, &SMALL));
        assert!(!pictures.join(3, &FULL), "another size is another picture");
        let full = pictures.start(FULL, vec![3], t0 + PICTURE_LIMIT);
        assert_ne!(small, full);
        let done = pictures.finish(small).unwrap();
        assert_eq!(done.waiting, [1, 2]);
        assert!(pictures.finish(small).is_none(), "once");
        assert_eq!(pictures.drain().len(), 1);
        assert!(pictures.drain().is_empty());
    }

    #[tokio::test]
    async fn pictures_past_their_deadline_are_overdue() {
        let (mut pictures, _rx) = Pictures::new();
        let t0 = Instant::now();
        let first = pictures.start(SMALL, vec![1], t0 + Duration::from_secs(1));
        pictures.start(FULL, vec![2], t0 + Duration::from_secs(3));
        assert!(pictures.overdue(t0).is_empty());
        let late = pictures.overdue(t0 + Duration::from_secs(2));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].number, first);
        assert!(pictures.join(3, &FULL), "the other is still in flight");
    }

    #[tokio::test]
    async fn a_failed_hardware_encoder_is_not_used_again() {
        let (mut pictures, _rx) = Pictures::new();
        pictures.chosen = Arc::new(OnceLock::from(JpegEncoder::Hardware));
        assert_eq!(pictures.encoder(), JpegEncoder::Hardware);
        assert!(pictures.hardware_failed(), "it was in use");
        assert_eq!(pictures.encoder(), JpegEncoder::Software);
        assert!(!pictures.hardware_failed(), "no longer");
    }
}
