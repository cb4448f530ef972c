//! One TLS crypto provider per process: ring, which sqlx's rustls already uses. HTTP clients
//! (the chain RPC's reqwest) are built without a provider of their own and use this one, so no
//! binary links a second (aws-lc) provider.

/// Installs ring as the process-wide rustls provider; a no-op when one is installed already.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client on the process-wide provider, built on first use (so a function that never
/// calls out never pays for it), with a whole-request timeout.
pub struct LazyHttp {
    timeout: std::time::Duration,
    client: std::sync::OnceLock<reqwest::Client>,
}

impl LazyHttp {
    pub const fn new(timeout: std::time::Duration) -> Self {
        Self {
            timeout,
            client: std::sync::OnceLock::new(),
        }
    }

    pub fn get(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            install_provider();
            reqwest::Client::builder()
                .timeout(self.timeout)
                .build()
                .unwrap_or_default()
        })
    }
}
