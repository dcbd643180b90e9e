//! A watching viewer for tests where something else happens meanwhile: its signaling is
//! pumped on a task of its own, and its decoded frames are sampled every 100 ms, so a test
//! can say afterwards whether the picture kept moving over the whole time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gst_viewer::Session;

/// Frames the watcher decoded, sampled every 100 ms, and the longest time they stood still.
pub struct Watch {
    /// (when, frames decoded so far), every 100 ms.
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    /// When sampling started.
    started: Instant,
    /// Set to end the sampling and the signaling task.
    stop: Arc<AtomicBool>,
    /// The watcher's signaling, handing the session back when stopped.
    task: tokio::task::JoinHandle<Session>,
}

impl Watch {
    /// Starts pumping `session` (already playing) and sampling its frames.
    pub fn start(mut session: Session) -> Watch {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let frames = session.viewer.frames.clone();
        let (s, st) = (samples.clone(), stop.clone());
        tokio::spawn(async move {
            while !st.load(Ordering::Relaxed) {
                // Invariant: nothing panics while holding the lock.
                s.lock()
                    .unwrap()
                    .push((Instant::now(), frames.load(Ordering::Relaxed)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let st = stop.clone();
        let task = tokio::spawn(async move {
            // Bounded by the stop flag, and by a day in case it is never set.
            session
                .pump(Duration::from_secs(86_400), move |_| {
                    st.load(Ordering::Relaxed)
                })
                .await;
            session
        });
        Watch {
            samples,
            started: Instant::now(),
            stop,
            task,
        }
    }

    /// (frames, over how long, the longest time the count stood still) from `from` on.
    pub fn so_far(&self, from: Instant) -> (u64, Duration, Duration) {
        // Invariant: nothing panics while holding the lock.
        let samples: Vec<(Instant, u64)> = self
            .samples
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|(t, _)| *t >= from)
            .collect();
        let (Some(&first), Some(&last)) = (samples.first(), samples.last()) else {
            return (0, Duration::ZERO, Duration::ZERO);
        };
        // The longest time between one increase of the count and the next (or the end).
        let mut longest = Duration::ZERO;
        let mut last_increase = first.0;
        for w in samples.windows(2) {
            if w[1].1 > w[0].1 {
                longest = longest.max(w[1].0 - last_increase);
                last_increase = w[1].0;
            }
        }
        longest = longest.max(last.0 - last_increase);
        (last.1 - first.1, last.0 - first.0, longest)
    }

    /// Stops, leaves, and returns [`Watch::so_far`] over the whole watch.
    pub async fn finish(self) -> (u64, Duration, Duration) {
        let whole = self.so_far(self.started);
        self.stop.store(true, Ordering::Relaxed);
        let session = self.task.await.expect("watcher");
        session.leave().await;
        whole
    }
}
