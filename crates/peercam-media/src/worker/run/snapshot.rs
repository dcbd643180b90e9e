//! The loop's side of [`ToWorker::Snapshot`](peercam_wire::ToWorker::Snapshot): a still
//! picture off the capture.
//!
//! - While someone watches, the picture's branch joins the running capture (no second
//!   capture, no second H.264 encode).
//! - While nobody does, the capture is built and started for it as for a first viewer, and
//!   stopped once the picture is taken as after the last one: meanwhile the counts say
//!   `capturing`, so the device does not retire this worker.
//! - Each request is answered once (counted in `handled`): with the JPEG, or with a sentence
//!   saying why there is none. A hardware JPEG encoder that fails is not used again by this
//!   worker, and the picture is taken again with the software one. An encode that fails
//!   costs only its picture: it runs outside the capture (see [`crate::jpeg`]).
//!
//! What waits for which picture is [`Pictures`](super::super::pictures::Pictures)'s; the
//! branch is [`crate::jpeg`]'s. This file must not touch peers.

use std::time::Instant;

use peercam_wire::{FromWorker, Jpeg, SnapshotSpec, MAX_JPEG};

use super::super::pictures::{Taking, PICTURE_LIMIT};
use super::Worker;

impl Worker {
    /// Request `id` for a picture of `spec`: it waits for the same picture being taken, or a
    /// new one is started.
    pub(super) fn take_picture(&mut self, id: u64, spec: SnapshotSpec) {
        if self.pictures.join(id, &spec) {
            return;
        }
        self.start_picture(spec, vec![id], Instant::now() + PICTURE_LIMIT);
    }

    /// Starts a picture of `spec` for `waiting`, due by `deadline`, starting the capture if
    /// nothing runs it; answers them at once if it cannot.
    fn start_picture(&mut self, spec: SnapshotSpec, waiting: Vec<u64>, deadline: Instant) {
        let number = self.pictures.start(spec, waiting, deadline);
        let encoder = self.pictures.encoder();
        let deliver = self.pictures.deliver_to();
        let started = self.fanout().and_then(|fanout| {
            let starting = !fanout.is_playing();
            fanout
                .take_picture(number, &spec, encoder, deliver)
                .map(|()| starting)
        });
        match started {
            Ok(true) => self.open_source(),
            Ok(false) => {}
            Err(e) => {
                log::warn!("cannot take a picture: {e}");
                self.picture_over(
                    number,
                    Err(format!("the camera cannot take a picture: {e}")),
                );
            }
        }
    }

    /// Picture `number`'s frame was encoded (the JPEG, or why not).
    pub(super) fn picture_delivered(&mut self, number: u64, jpeg: Result<Vec<u8>, String>) {
        match jpeg {
            Ok(bytes) if bytes.len() > MAX_JPEG => {
                let why = format!(
                    "the picture is {} bytes, more than the camera can pass on ({MAX_JPEG}); \
                     lower snapshot.quality or its size",
                    bytes.len()
                );
                self.picture_over(number, Err(why));
            }
            Ok(bytes) => self.picture_over(number, Ok(Jpeg(bytes))),
            Err(why) => self.picture_failed(number, &why),
        }
    }

    /// Picture `number` failed (its encode, or an element of its branch): with the hardware
    /// encoder, the picture is taken again with the software one (which this worker uses from
    /// now on).
    pub(super) fn picture_failed(&mut self, number: u64, message: &str) {
        let Some(taking) = self.pictures.finish(number) else {
            return;
        };
        let used = self.fanout.as_mut().and_then(|f| f.drop_picture(number));
        let hardware = used == Some(crate::jpeg::JpegEncoder::Hardware);
        if hardware && self.pictures.hardware_failed() {
            log::warn!("the hardware JPEG encoder failed ({message}); using jpegenc from now on");
            return self.start_picture(taking.spec, taking.waiting, taking.deadline);
        }
        log::warn!("taking a picture failed: {message}");
        let why = format!("the camera could not encode the picture ({message})");
        self.answer(taking, Err(why));
        self.stop_capture_if_unused();
    }

    /// Answers the pictures that took longer than their deadline.
    pub(super) fn pictures_overdue(&mut self) {
        for taking in self.pictures.overdue(Instant::now()) {
            if let Some(fanout) = self.fanout.as_mut() {
                fanout.drop_picture(taking.number);
            }
            let why = format!(
                "the camera delivered no picture within {} s",
                PICTURE_LIMIT.as_secs()
            );
            log::warn!("{why}");
            self.answer(taking, Err(why));
        }
        self.stop_capture_if_unused();
    }

    /// The capture stopped (it failed, or the worker stops): the pictures being taken from it
    /// are answered that it did.
    pub(super) fn capture_stopped(&mut self) {
        for taking in self.pictures.drain() {
            let why = "the camera's capture stopped before it delivered a picture".to_owned();
            self.answer(taking, Err(why));
        }
    }

    /// Picture `number` is over with `result`: its branch is taken off, whoever waited for
    /// it answered, and the capture stopped if nothing else uses it.
    fn picture_over(&mut self, number: u64, result: Result<Jpeg, String>) {
        let Some(taking) = self.pictures.finish(number) else {
            // Already answered (overdue); its branch is gone.
            return;
        };
        if let Some(fanout) = self.fanout.as_mut() {
            fanout.drop_picture(number);
        }
        self.answer(taking, result);
        self.stop_capture_if_unused();
    }

    /// Sends `result` to every request that waited for `taking`.
    fn answer(&mut self, taking: Taking, result: Result<Jpeg, String>) {
        for id in taking.waiting {
            let msg = FromWorker::Snapshot {
                id,
                result: result.clone(),
            };
            if self.out.try_send(msg).is_err() {
                log::warn!("the device is not reading; a picture's answer dropped");
            }
            self.handled += 1;
        }
    }

    /// Stops the capture when it ran only for pictures and none is left.
    fn stop_capture_if_unused(&mut self) {
        if self.fanout.as_ref().is_some_and(|f| !f.in_use()) {
            self.stop_capture();
        }
    }
}
