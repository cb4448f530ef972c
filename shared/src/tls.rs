//! One TLS crypto provider per process: ring, which sqlx's rustls already uses. HTTP clients
//! (the chain RPC's reqwest) are built without a provider of their own and use this one, so no
//! binary links a second (aws-lc) provider.

/// Installs ring as the process-wide rustls provider; a no-op when one is installed already.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
