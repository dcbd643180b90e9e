//! The other cameras on the LAN, as this device's page lists them: a browse of
//! `_nextrtc._tcp` that runs for as long as the device does ([`Neighbourhood`]), and the table
//! it keeps ([`Neighbours`], pure: fed what the browse sees, it says who is there).
//!
//! A browser cannot browse mDNS, so a person who opens one camera finds the others here. It
//! must not advertise (the advertiser does) and must not serve HTTP (the web routes read the
//! table).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::browse::{BrowseEvent, Browser, FoundCamera};

/// How long the browse thread waits for an event before it looks whether to stop.
const POLL: Duration = Duration::from_millis(500);

/// Devices seen on the LAN, this one left out, by instance name (compared without case, as
/// DNS-SD does).
#[derive(Debug, Default)]
pub struct Neighbours {
    /// This device's instance name, lowercased.
    own: String,
    /// The others, by lowercased instance name.
    found: BTreeMap<String, FoundCamera>,
}

impl Neighbours {
    /// An empty table for the device advertised as `own`.
    pub fn new(own: &str) -> Self {
        Neighbours {
            own: own.to_lowercase(),
            found: BTreeMap::new(),
        }
    }

    /// Takes in one change the browse saw.
    pub fn apply(&mut self, event: BrowseEvent) {
        match event {
            BrowseEvent::Found(camera) => {
                let key = camera.name.to_lowercase();
                if key != self.own {
                    self.found.insert(key, camera);
                }
            }
            BrowseEvent::Removed(name) => {
                self.found.remove(&name.to_lowercase());
            }
        }
    }

    /// This device was renamed (a name conflict on the LAN): itself is left out under the new
    /// name.
    pub fn rename_own(&mut self, own: &str) {
        self.own = own.to_lowercase();
        self.found.remove(&self.own);
    }

    /// The other cameras, by name.
    pub fn list(&self) -> Vec<FoundCamera> {
        self.found.values().cloned().collect()
    }
}

/// A browse of the LAN running on a thread of its own, keeping a [`Neighbours`] table
/// current; stopped on drop.
pub struct Neighbourhood {
    /// The table, read by the web routes.
    table: Arc<Mutex<Neighbours>>,
    /// Set to stop the thread.
    stop: Arc<AtomicBool>,
}

impl Neighbourhood {
    /// Starts browsing for the device advertised as `own`. A browse that cannot start (no
    /// multicast) is logged and leaves the table empty: the camera works without it.
    pub fn start(own: &str) -> Neighbourhood {
        let table = Arc::new(Mutex::new(Neighbours::new(own)));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (table.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("neighbours".into())
            .spawn(move || follow(&t, &s));
        if let Err(e) = spawned {
            log::warn!("other cameras on the LAN will not be listed: {e}");
        }
        Neighbourhood { table, stop }
    }

    /// The table.
    pub fn table(&self) -> Arc<Mutex<Neighbours>> {
        self.table.clone()
    }
}

impl Drop for Neighbourhood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The browse thread: applies every change to `table` until `stop` is set.
fn follow(table: &Mutex<Neighbours>, stop: &AtomicBool) {
    let browser = match Browser::start() {
        Ok(b) => b,
        Err(e) => {
            log::warn!("other cameras on the LAN will not be listed: {e}");
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        if let Some(event) = browser.next(Instant::now() + POLL) {
            table.lock().unwrap_or_else(|e| e.into_inner()).apply(event);
        }
    }
    browser.stop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn camera(name: &str, address: &str) -> FoundCamera {
        FoundCamera::new(
            name.into(),
            format!("{}.local", super::super::host_label(name)),
            vec![address.parse::<IpAddr>().unwrap()],
            8080,
            BTreeMap::new(),
        )
    }

    #[test]
    fn others_come_and_go_and_this_device_is_never_listed() {
        let mut n = Neighbours::new("Porch Cam");
        n.apply(BrowseEvent::Found(camera("Porch Cam", "192.0.2.1")));
        n.apply(BrowseEvent::Found(camera("porch cam", "192.0.2.1")));
        assert!(n.list().is_empty());
        n.apply(BrowseEvent::Found(camera("Garden", "192.0.2.2")));
        n.apply(BrowseEvent::Found(camera("Attic", "192.0.2.3")));
        let names: Vec<String> = n.list().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Attic", "Garden"]);
        // New details replace the old.
        n.apply(BrowseEvent::Found(camera("Garden", "192.0.2.4")));
        let garden = n.list().into_iter().find(|c| c.name == "Garden").unwrap();
        assert_eq!(garden.url, "http://192.0.2.4:8080/");
        n.apply(BrowseEvent::Removed("GARDEN".into()));
        let names: Vec<String> = n.list().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Attic"]);
        // A goodbye from one never seen changes nothing.
        n.apply(BrowseEvent::Removed("Shed".into()));
        assert_eq!(n.list().len(), 1);
    }

    #[test]
    fn a_renamed_device_leaves_itself_out_under_its_new_name() {
        let mut n = Neighbours::new("Porch Cam");
        n.apply(BrowseEvent::Found(camera("Porch Cam (2)", "192.0.2.1")));
        assert_eq!(n.list().len(), 1);
        n.rename_own("Porch Cam (2)");
        assert!(n.list().is_empty());
        // The other device that holds the first name is one of the others now.
        n.apply(BrowseEvent::Found(camera("Porch Cam", "192.0.2.9")));
        assert_eq!(n.list().len(), 1);
    }
}
