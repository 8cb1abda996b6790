//! TLS as libpq's `sslmode` has it, through rustls:
//!
//! - `require`, `prefer` and `allow` encrypt without checking the server's
//!   certificate, unless a root certificate file is there (`sslrootcert`,
//!   or libpq's `~/.postgresql/root.crt`): then its chain is checked, as
//!   libpq does;
//! - `verify-ca` checks that the certificate chain leads to a trusted root;
//! - `verify-full` checks that, and that the certificate names the host.
//!
//! The handshake's own signatures are always checked against the
//! certificate the server shows, as OpenSSL does when it checks nothing
//! else.

use super::settings::{RootCerts, TlsVersions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing (libpq's `require` without a root certificate file).
    Nothing,
    /// That its chain leads to a trusted root (`verify-ca`).
    Chain,
    /// That, and that it names the host (`verify-full`).
    ChainAndName,
}

/// A TLS connector for tokio-postgres.
pub fn connector(
    check: Check,
    roots: Option<&RootCerts>,
    versions: TlsVersions,
    sni: bool,
    direct: bool,
) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (check, roots) {
        (Check::Nothing, _) => Arc::new(NoCheck(provider.clone())),
        (_, None) => {
            return Err("no root certificates to check the server's certificate against".into())
        }
        (check, Some(roots)) => {
            let store = Arc::new(root_store(roots)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(store, provider.clone())
                .build()
                .map_err(|e| format!("cannot use the {roots}: {e}"))?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let mut protocol_versions = Vec::new();
    if versions.tls13 {
        protocol_versions.push(&rustls::version::TLS13);
    }
    if versions.tls12 {
        protocol_versions.push(&rustls::version::TLS12);
    }
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&protocol_versions)
        .map_err(|e| format!("cannot set the TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.enable_sni = sni;
    if direct {
        // PostgreSQL 17 accepts TLS at once only with its ALPN name.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(MakeRustlsConnect::new(config))
}

/// The trusted roots, from a PEM file or the system.
fn root_store(roots: &RootCerts) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the {roots}: {e}"))?;
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("a certificate of the {roots} cannot be used: {e}"))?;
            }
            if store.is_empty() {
                return Err(format!(
                    "the {roots} holds no certificate (PEM, BEGIN CERTIFICATE)"
                ));
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "no trusted root certificates found on the system{} (Debian: apt install ca-certificates; or give sslrootcert=/path/to/root.crt)",
                    if why.is_empty() { String::new() } else { format!(": {}", why.join("; ")) }
                ));
            }
        }
    }
    Ok(store)
}

/// Accepts any certificate, but checks that the handshake was signed with it.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks the chain but not the name (libpq's `verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // webpki checks the chain before the name: a name error means the
        // chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What a certificate error means to a user, when it is one.
pub fn explain(error: &Error) -> Option<&'static str> {
    let Error::InvalidCertificate(error) = error else {
        return None;
    };
    Some(match error {
        CertificateError::UnknownIssuer => {
            "the server's certificate is not signed by a trusted root: give its CA with sslrootcert=/path/to/root.crt"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate does not name the host connected to (sslmode=verify-full checks the name; connect by a name the certificate has)"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (is this host's clock right?)"
        }
        _ => "the server's certificate was refused",
    })
}
