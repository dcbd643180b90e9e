//! A watching viewer for tests where something else happens meanwhile: its signaling is
//! pumped on a task of its own, and its decoded frames are sampled every 100 ms, so a test
//! can say afterwards whether the picture kept moving over the whole time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gst_viewer::Session;

/// Frames the watcher decoded, sampled every 100 ms, and the longest time they stood still.
pub struct Watch {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
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
                s.lock()
                    .unwrap()
                    .push((Instant::now(), frames.load(Ordering::Relaxed)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let st = stop.clone();
        let task = tokio::spawn(async move {
            session
                .pump(Duration::from_secs(600), move |_| {
                    st.load(Ordering::Relaxed)
                })
                .await;
            session
        });
        Watch {
            samples,
            stop,
            task,
        }
    }

    /// Stops, and returns (frames over the whole watch, its duration, the longest stall).
    pub async fn finish(self) -> (u64, Duration, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let session = self.task.await.expect("watcher");
        let samples = self.samples.lock().unwrap().clone();
        let (first, last) = (samples[0], samples[samples.len() - 1]);
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
        session.leave().await;
        (last.1 - first.1, last.0 - first.0, longest)
    }
}
