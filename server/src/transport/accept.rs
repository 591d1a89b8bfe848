//! The accept loop: caps connections per peer IP and in total (closing
//! the excess at once), sets TCP_NODELAY (small gRPC frames must not wait
//! for Nagle), runs TLS when configured, and serves each connection on its
//! own task until shutdown.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpListener, time::Instant};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    connection::{serve_connection, HttpService},
    ConnectionSettings, TransportMetrics,
};

/// Counts open connections per peer IP and in total.
pub struct Admission {
    max_per_ip: usize,
    max_total: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    PerIp,
    Total,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::PerIp => "per_ip",
            Refused::Total => "total",
        }
    }
}

/// A connection's place in the counts, given back on drop.
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(max_per_ip: usize, max_total: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_ip,
            max_total,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let mut open = self.open.lock().expect("admission lock");
        let (total, per_ip) = &mut *open;
        if *total >= self.max_total {
            return Err(Refused::Total);
        }
        let of_ip = per_ip.entry(ip).or_insert(0);
        if *of_ip >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        *of_ip += 1;
        *total += 1;
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().expect("admission lock");
        let (total, per_ip) = &mut *open;
        *total -= 1;
        if let Some(of_ip) = per_ip.get_mut(&self.ip) {
            *of_ip -= 1;
            if *of_ip == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// What the accept loop needs.
pub struct Serving {
    pub service: HttpService,
    pub settings: Arc<ConnectionSettings>,
    pub admission: Arc<Admission>,
    pub tls: Option<TlsAcceptor>,
    pub metrics: TransportMetrics,
}

/// Accepts connections on `listener` until `shutdown` is cancelled, then
/// lets every connection finish gracefully; returns once all have closed.
/// Cancelling `force_close` drops the connections still open.
pub async fn serve(
    listener: TcpListener,
    serving: Serving,
    shutdown: CancellationToken,
    force_close: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let serving = Arc::new(serving);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Per-connection errors (reset before accept) and fd
                // exhaustion alike: back off briefly rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match serving.admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                serving
                    .metrics
                    .connections_refused
                    .with_label_values(&[refused.label()])
                    .inc();
                tracing::debug!(%peer, reason = refused.label(), "connection refused");
                continue;
            }
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY");
        }
        let serving = serving.clone();
        let shutdown = shutdown.clone();
        let force_close = force_close.clone();
        tracker.spawn(async move {
            let _admitted = admitted;
            serving.metrics.connections_open.inc();
            let deadline = Instant::now() + serving.settings.handshake_timeout;
            let service = serving.service.clone();
            match &serving.tls {
                None => {
                    serve_connection(
                        tcp,
                        service,
                        &serving.settings,
                        deadline,
                        &serving.metrics,
                        &shutdown,
                        &force_close,
                    )
                    .await
                }
                Some(tls) => {
                    let handshake = tokio::select! {
                        handshake = tokio::time::timeout_at(deadline, tls.accept(tcp)) => handshake,
                        () = force_close.cancelled() => Ok(Err(std::io::ErrorKind::Interrupted.into())),
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            serve_connection(
                                stream,
                                service,
                                &serving.settings,
                                deadline,
                                &serving.metrics,
                                &shutdown,
                                &force_close,
                            )
                            .await
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => {
                            serving
                                .metrics
                                .connections_timed_out
                                .with_label_values(&["handshake"])
                                .inc();
                        }
                    }
                }
            }
            serving.metrics.connections_open.dec();
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}
