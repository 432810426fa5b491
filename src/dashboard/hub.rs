//! Fan-out of live changes to WebSocket clients. Each client has a bounded queue; publishing
//! never waits: a client whose queue is full is dropped (its sender removed, a notice sent
//! by its connection task), so one slow browser can neither stall the others nor grow the
//! server's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

/// One serialized change (shared by every client queue that holds it).
pub type Message = Arc<str>;

struct Client {
    tables: Option<Vec<String>>,
    tx: mpsc::Sender<Message>,
    dropped: Arc<Notify>,
}

/// What a connection task holds: its queue and the signal that it was dropped.
pub struct Subscription {
    pub id: u64,
    pub rx: mpsc::Receiver<Message>,
    pub dropped: Arc<Notify>,
}

#[derive(Default)]
pub struct HubStats {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped_clients: AtomicU64,
}

pub struct Hub {
    capacity: usize,
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, Client>>,
    pub stats: HubStats,
}

impl Hub {
    pub fn new(capacity: usize) -> Hub {
        Hub {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            clients: Mutex::new(HashMap::new()),
            stats: HubStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Client>> {
        // A panic while holding the lock leaves the map consistent (inserts and removes
        // only), so a poisoned lock is still usable.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a client for `tables` (None: every table).
    pub fn subscribe(&self, tables: Option<Vec<String>>) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.capacity);
        let dropped = Arc::new(Notify::new());
        self.lock().insert(
            id,
            Client {
                tables,
                tx,
                dropped: dropped.clone(),
            },
        );
        Subscription { id, rx, dropped }
    }

    pub fn unsubscribe(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn clients(&self) -> usize {
        self.lock().len()
    }

    /// Queues `msg` for every client watching `table`; drops clients whose queue is full.
    /// Returns the number of clients dropped.
    pub fn publish(&self, table: &str, msg: Message) -> usize {
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let mut clients = self.lock();
        let mut full = Vec::new();
        for (id, c) in clients.iter() {
            if c.tables
                .as_ref()
                .is_some_and(|t| !t.iter().any(|n| n == table))
            {
                continue;
            }
            match c.tx.try_send(msg.clone()) {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => full.push(*id),
                // The connection ended; its task unsubscribes.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for id in &full {
            if let Some(c) = clients.remove(id) {
                c.dropped.notify_one();
                self.stats.dropped_clients.fetch_add(1, Ordering::Relaxed);
            }
        }
        full.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_only_that_client_and_signals_it() {
        let hub = Hub::new(2);
        let mut fast = hub.subscribe(None);
        let slow = hub.subscribe(Some(vec!["orders".into()]));
        let other = hub.subscribe(Some(vec!["customers".into()]));
        for i in 0..3 {
            let msg: Message = format!("m{i}").into();
            hub.publish("orders", msg);
            // The fast client keeps up.
            assert_eq!(
                fast.rx.recv().await.as_deref(),
                Some(format!("m{i}").as_str())
            );
        }
        assert_eq!(hub.stats.dropped_clients.load(Ordering::Relaxed), 1);
        assert_eq!(hub.clients(), 2, "slow client removed, others kept");
        // The dropped client is told (a stored permit: no race with its task).
        tokio::time::timeout(std::time::Duration::from_secs(1), slow.dropped.notified())
            .await
            .expect("drop notice");
        // Its queue is bounded: what it had queued, then closed.
        let mut rx = slow.rx;
        assert_eq!(rx.recv().await.as_deref(), Some("m0"));
        assert_eq!(rx.recv().await.as_deref(), Some("m1"));
        assert_eq!(rx.recv().await, None);
        // A client of another table saw nothing and was not dropped.
        let mut orx = other.rx;
        assert!(orx.try_recv().is_err());
        hub.publish("customers", "c".into());
        assert_eq!(orx.recv().await.as_deref(), Some("c"));
    }
}
