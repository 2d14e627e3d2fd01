//! Watches the repository: file notifications trigger a reconcile at once, and a periodic poll
//! catches whatever notifications miss (network file systems, dropped events).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};

use crate::Manager;

/// The background thread that keeps a [`Manager`] in line with its repository.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Reconciles now, then on every change notification and every `poll` interval.
    pub fn start(manager: Arc<Manager>, poll: Duration) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, rx) = mpsc::channel::<()>();
        let events = wake.clone();
        let root = manager.repository().root().to_path_buf();
        let _ = std::fs::create_dir_all(&root);
        let notifier = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                let _ = events.send(());
            }
        })
        .and_then(|mut w| w.watch(&root, RecursiveMode::Recursive).map(|_| w));
        if let Err(e) = &notifier {
            tracing::warn!(error = %e, "file notifications unavailable; polling only");
        }
        manager.reconcile();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("repository-watcher".into())
            .spawn(move || {
                let _notifier = notifier;
                while !flag.load(Ordering::Acquire) {
                    match rx.recv_timeout(poll) {
                        Ok(()) => {
                            // Let a burst of events (a publish writes several files) settle.
                            std::thread::sleep(Duration::from_millis(20));
                            while rx.try_recv().is_ok() {}
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    if !flag.load(Ordering::Acquire) {
                        manager.reconcile();
                    }
                }
            })
            .expect("spawn watcher thread");
        Watcher { stop, wake, thread: Some(thread) }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
