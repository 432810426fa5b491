//! Graceful shutdown for the servers (`parity kms`, `secrets-api`, `dashboard`).

/// Resolves on SIGINT (ctrl-c) or SIGTERM (what the kubelet sends before killing a pod).
pub async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} },
            // No SIGTERM handler could be installed: ctrl-c still works.
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
