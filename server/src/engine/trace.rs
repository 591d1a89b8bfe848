//! Which thread ran which part of an execution, for tests that assert no
//! guest work lands on the async runtime's threads.

use std::sync::Arc;

use parking_lot::Mutex;

/// A shared log of (what ran, name of the thread it ran on).
#[derive(Clone, Debug, Default)]
pub struct ThreadTrace(Arc<Mutex<Vec<(String, String)>>>);

impl ThreadTrace {
    /// Notes that `what` runs on the current thread.
    pub fn record(&self, what: &str) {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed").to_string();
        self.0.lock().push((what.to_string(), name));
    }

    /// Every (what, thread name) recorded so far, in order.
    pub fn events(&self) -> Vec<(String, String)> {
        self.0.lock().clone()
    }

    /// Names of the threads `what` ran on.
    pub fn threads_of(&self, what: &str) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, t)| t.clone())
            .collect()
    }
}
