//! Webhooks of detached executions: a JSON POST signed like Stripe's
//! (`Wasmwiz-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
//! under the account's secret), retried with exponential backoff for
//! `webhook_retry_secs` (the queue of deliveries is in the database, see
//! [`super::deliveries`]), every attempt recorded. The SSRF guard decides
//! before any connection: the host's every address is checked and the
//! connection goes to a checked address (no second lookup to rebind).
//! Redirects are not followed.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use sha2::Sha256;

use crate::{
    api::AppState,
    config::Config,
    store::{jobs::WebhookAttemptRow, now_ms},
};

/// Longest webhook URL accepted.
pub const MAX_URL_BYTES: usize = 2048;
/// One attempt's whole budget: lookup, connect, TLS, request and answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a receiver's answer read at most (the rest is ignored).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// First retry delay; each further one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The signature header.
pub const SIGNATURE_HEADER: &str = "wasmwiz-signature";

/// Where a webhook goes, parsed and checked.
#[derive(Debug, Clone)]
pub struct Target {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

/// Parses and checks a webhook URL (scheme, length, literal addresses).
/// Names are checked again when resolved, at each delivery.
pub fn check_url(url: &str, config: &Config) -> Result<Target, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("a webhook URL is at most {MAX_URL_BYTES} bytes"));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "not a valid absolute URL".to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if config.webhook_allow_http => false,
        Some("http") => return Err("webhook URLs must use https://".into()),
        _ => return Err("webhook URLs must be https:// URLs".into()),
    };
    let authority = uri.authority().ok_or("the URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("webhook URLs cannot carry credentials".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if !config.webhook_allow_private {
        let literal = host.parse::<IpAddr>().ok();
        let name = host.trim_end_matches('.');
        if literal.is_some_and(forbidden) || name.eq_ignore_ascii_case("localhost") {
            return Err(format!(
                "webhooks cannot go to private, loopback or link-local addresses ({host})"
            ));
        }
    }
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Ok(Target {
        https,
        host,
        port,
        path,
    })
}

/// Addresses a webhook must never reach unless the operator allows it:
/// loopback, private, link-local, shared (CGNAT), unspecified, broadcast,
/// multicast, documentation and reserved ranges, and IPv6's equivalents
/// (IPv4-mapped addresses are judged as IPv4).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] // NAT64
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::UNSPECIFIED
        }
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240
}

/// The signature header's value for `body` at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// One address of the target's host that the guard allows.
async fn resolve(target: &Target, allow_private: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| forbidden(a.ip())) {
            return Err(format!(
                "refused: {} resolves to {}, a private, loopback or link-local address",
                target.host,
                bad.ip()
            ));
        }
    }
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} has no address", target.host))
}

fn tls_config() -> Arc<tokio_rustls::rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<tokio_rustls::rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            Arc::new(
                tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
                    tokio_rustls::rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
            )
        })
        .clone()
}

/// Sends one POST; the receiver's status.
async fn post(
    target: &Target,
    allow_private: bool,
    body: Bytes,
    signature: &str,
) -> Result<u16, String> {
    let addr = resolve(target, allow_private).await?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let request = http::Request::post(target.path.as_str())
        .header(
            http::header::HOST,
            format!("{}:{}", target.host, target.port),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "wasmwiz-webhooks")
        .header(SIGNATURE_HEADER, signature)
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    if target.https {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("not a TLS server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {} failed: {e}", target.host))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(io: T, request: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status().as_u16();
    // Read (a bounded part of) the answer so the exchange completes.
    let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await;
    connection.abort();
    Ok(status)
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    /// The receiver's HTTP status; 0 without an answer.
    pub http_status: u16,
    /// Why it failed; empty on a 2xx.
    pub error: String,
    /// Worth trying again later (no answer, or a non-2xx one).
    pub retry: bool,
}

impl Attempted {
    fn failed(error: String, retry: bool) -> Self {
        Attempted {
            http_status: 0,
            error,
            retry,
        }
    }
}

/// Makes one attempt to POST `body` to `url`, signed now with the
/// account's current secret. A refused address, a URL that no longer
/// passes the checks and a missing secret are not retried.
pub async fn attempt(state: &AppState, user_id: &str, url: &str, body: Bytes) -> Attempted {
    let config = &state.config;
    let target = match check_url(url, config) {
        Ok(target) => target,
        Err(error) => return Attempted::failed(error, false),
    };
    let secret = match super::webhook_secret::read(state, user_id).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Attempted::failed("the account has no webhook secret".into(), false),
        // A database error passes; a secret that does not open stays so.
        Err(error) => {
            let retry = error.downcast_ref::<sqlx::Error>().is_some();
            return Attempted::failed(format!("{error:#}"), retry);
        }
    };
    let signature = sign(&secret, now_ms() / 1000, &body);
    let sent = tokio::time::timeout(
        ATTEMPT_TIMEOUT,
        post(&target, config.webhook_allow_private, body, &signature),
    )
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())));
    match sent {
        Ok(status) if (200..300).contains(&status) => Attempted {
            http_status: status,
            error: String::new(),
            retry: false,
        },
        Ok(status) => Attempted {
            http_status: status,
            error: format!("the receiver answered {status}"),
            retry: true,
        },
        // A refused address stays refused.
        Err(error) if error.starts_with("refused") => Attempted::failed(error, false),
        Err(error) => Attempted::failed(error, true),
    }
}

/// Records attempt number `seq` of the webhook of `job_id` (a job or batch).
pub async fn record(state: &AppState, job_id: &str, seq: i64, attempted: &Attempted) {
    let row = WebhookAttemptRow {
        at: now_ms(),
        http_status: i64::from(attempted.http_status),
        error: attempted.error.clone(),
    };
    if let Err(error) = state.store.webhook_attempt(job_id, seq, &row).await {
        tracing::warn!(%error, "recording a webhook attempt failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_and_link_local_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        let signature = sign("whsec_test", 1_700_000_000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.{}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(signature, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn plain_http_is_refused_unless_allowed() {
        let config = Config::default();
        assert!(check_url("http://example.com/hook", &config).is_err());
        assert!(check_url("https://example.com/hook", &config).is_ok());
    }

    #[test]
    fn a_literal_loopback_address_is_refused_unless_allowed() {
        let mut config = Config::default();
        assert!(check_url("https://127.0.0.1/hook", &config).is_err());
        assert!(check_url("https://[::1]:8443/hook", &config).is_err());
        config.webhook_allow_private = true;
        assert!(check_url("https://127.0.0.1/hook", &config).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_delivery() {
        let target = Target {
            https: false,
            host: "localhost".into(),
            port: 9,
            path: "/".into(),
        };
        let refused = resolve(&target, false).await.unwrap_err();
        assert!(refused.starts_with("refused"), "{refused}");
        assert!(resolve(&target, true).await.is_ok());
    }

    #[test]
    fn localhost_with_a_trailing_dot_is_refused_at_submit() {
        let config = Config::default();
        assert!(check_url("https://LOCALHOST./hook", &config).is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let config = Config::default();
        assert!(check_url("https://user:pw@example.com/hook", &config).is_err());
    }
}
