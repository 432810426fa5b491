//! Polling with a deadline whose failure says what was expected and what was last seen.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every 100 ms until it returns `Ok(Some(v))`, or panics after `timeout`
/// with `what` (the expectation) and the last observation (`Ok(None)` carries none,
/// `Err(seen)` carries what was seen instead).
pub async fn until<T, S, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    S: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if start.elapsed() > timeout {
            panic!(
                "timed out after {:?} waiting for {what}; last seen: {:?}",
                timeout, last
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
