//! Gauges read at scrape time (what is true now, not what was counted),
//! and the served certificate's expiry, read once when TLS is set up.

use std::path::Path;

use crate::api::AppState;

use super::Metrics;

/// Sets every scrape-time gauge from the server's state.
pub fn refresh(state: &AppState) {
    let metrics = &state.metrics;
    let (entries, bytes) = state.sandbox.cache_usage();
    metrics.cache_entries.set(saturating_i64(entries));
    metrics.cache_bytes.set(saturating_i64(bytes));
    metrics
        .queue_depth
        .set(saturating_i64(state.sandbox.queue_depth() as u64));
    metrics
        .memory_budget_bytes
        .set(saturating_i64(state.sandbox.memory_budget_bytes()));
    metrics
        .memory_admitted_bytes
        .set(saturating_i64(state.sandbox.memory_admitted_bytes()));
    metrics
        .usage_writer_pending
        .set(saturating_i64(state.usage.pending()));
    metrics
        .usage_writer_lag_seconds
        .set(state.usage.lag().as_secs_f64());
    metrics.draining.set(i64::from(state.is_draining()));
    record_disk(metrics, &state.config.data_dir);
}

/// Size and free space of the data dir's filesystem; left as they were
/// (and logged) when it cannot be read.
fn record_disk(metrics: &Metrics, data_dir: &Path) {
    match rustix::fs::statvfs(data_dir) {
        Ok(stats) => {
            metrics.data_dir_size_bytes.set(saturating_i64(
                stats.f_blocks.saturating_mul(stats.f_frsize),
            ));
            metrics.data_dir_available_bytes.set(saturating_i64(
                stats.f_bavail.saturating_mul(stats.f_frsize),
            ));
        }
        Err(error) => {
            tracing::warn!(%error, dir = %data_dir.display(), "reading the data dir's filesystem");
        }
    }
}

/// Records the earliest expiry in the PEM chain at `cert` (the served
/// chain stops working when its first certificate expires).
pub fn record_certificate(metrics: &Metrics, cert: &Path) -> anyhow::Result<()> {
    let pem = std::fs::read(cert)?;
    let mut earliest: Option<i64> = None;
    for block in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        let block = block.map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let parsed = block
            .parse_x509()
            .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
        let not_after = parsed.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    let earliest =
        earliest.ok_or_else(|| anyhow::anyhow!("{}: no certificate found", cert.display()))?;
    metrics.tls_cert_not_after.set(earliest);
    Ok(())
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed PEM certificate valid until January 1st of `year`.
    fn certificate(year: i32) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn the_earliest_expiry_of_the_chain_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.pem");
        // The leaf outlives the intermediate, which expires on 2030-01-01.
        std::fs::write(&path, certificate(2035) + &certificate(2030)).unwrap();
        let metrics = Metrics::new();
        record_certificate(&metrics, &path).unwrap();
        assert_eq!(metrics.tls_cert_not_after.get(), 1_893_456_000);
    }

    #[test]
    fn a_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "").unwrap();
        let error = record_certificate(&Metrics::new(), &path).unwrap_err();
        assert!(
            error.to_string().contains("no certificate found"),
            "{error}"
        );
    }
}
