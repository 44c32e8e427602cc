"""Certificates for HTTPS test servers: a private CA (trustme) and server contexts made from it.

Typical use::

    pki = Pki(tmp_path)
    async with FaultServer(ssl=pki.server_context("127.0.0.1")) as server:
        ...  # a client trusts it with pki.ca_file

Each helper makes one kind of certificate that a BITS security flag is about: a host name that
does not match, validity dates in the past, a usage other than TLS server, and servers that
require a client certificate issued by the same CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki"]


class Pki:
    """A private CA whose certificate is written to ``folder/ca.pem``.

    Args:
        folder: where the PEM files go.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.ca_file = str(folder / "ca.pem")
        """The CA certificate (what a client trusts)."""
        self.ca.cert_pem.write_to_path(self.ca_file)

    def server_context(
        self,
        *identities: str,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        client_ca: Pki | None = None,
    ) -> ssl.SSLContext:
        """A server context with a certificate for ``identities`` (host names or IP addresses),
        optionally outside its validity dates; with ``client_ca`` it requires a client
        certificate issued by that CA."""
        leaf = self.ca.issue_cert(*identities, not_before=not_before, not_after=not_after)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(context)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            client_ca.ca.configure_trust(context)
        return context

    def expired_server_context(self, *identities: str) -> ssl.SSLContext:
        """A server context whose certificate expired yesterday."""
        now = datetime.datetime.now(datetime.UTC)
        return self.server_context(
            *identities,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )

    def wrong_usage_server_context(self, ip: str) -> ssl.SSLContext:
        """A server context whose certificate (for ``ip``) is meant for TLS clients only: its
        extended key usage is clientAuth, so it is the wrong usage for a server."""
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)  # trustme's default key type
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client only")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_file = self.folder / "wrong-usage.pem"
        key_file = self.folder / "wrong-usage.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    def client_files(self, name: str = "client") -> tuple[str, str]:
        """A client certificate issued by this CA: (certificate PEM, key PEM) file names."""
        leaf = self.ca.issue_cert(f"{name}@bitsd.test", common_name=name)
        cert_file = self.folder / f"{name}.pem"
        key_file = self.folder / f"{name}.key"
        for blob in leaf.cert_chain_pems:
            with cert_file.open("ab") as f:
                f.write(blob.bytes())
        leaf.private_key_pem.write_to_path(str(key_file))
        return str(cert_file), str(key_file)
