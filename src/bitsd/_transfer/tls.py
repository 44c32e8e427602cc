"""TLS for a job's HTTPS requests: trust, client certificates and the BG_SSL_IGNORE_* flags.

Rules (bits-inventory §5.8; docs/network.md has the user's version):
- One :class:`ssl.SSLContext` per distinct (CA bundle, client certificate, key, ignore flags),
  cached; a file's size and modification time are part of the key, so a renewed certificate at
  the same path is picked up by the next request.
- Trust: the system store (``ssl.create_default_context()``) unless the job names a CA bundle,
  which is trusted *instead* of the system store.
- A client certificate (PEM, key inside or in a separate PEM) is offered when the server asks.
- IGNORE_CERT_CN_INVALID: OpenSSL verifies the chain and dates; the host name is not checked.
- IGNORE_CERT_DATE_INVALID: OpenSSL verifies with X509_V_FLAG_NO_CHECK_TIME (no date is checked
  on any certificate of the chain); everything else is checked.
- IGNORE_UNKNOWN_CA and IGNORE_CERT_WRONG_USAGE cannot be expressed to OpenSSL through Python
  (no verify callback, no way to drop the TLS-server purpose check). The handshake then runs
  with CERT_NONE and bitsd checks the peer's certificate itself, with ``cryptography``, before
  a single byte of the request is sent (in the ``do_handshake`` of
  :class:`_CheckedSSLObject`, aiohttp's, and :class:`_CheckedSSLSocket`, bitsd's own client):

  - IGNORE_UNKNOWN_CA: the chain is not verified at all (any issuer, no signature checked);
    the leaf's dates, host name (subject alternative names; the subject CN only when the
    certificate has no DNS name) and usage (extended key usage, when present, allows
    serverAuth; key usage, when present, allows a TLS key exchange) are checked unless their
    own ignore flag is set.
  - IGNORE_CERT_WRONG_USAGE without IGNORE_UNKNOWN_CA: the chain is verified by
    ``cryptography``'s Web PKI verifier against the same trust (CA bundle or system store) with
    the end-entity usage requirements removed; host name and dates as above. Intermediate
    certificates are taken from the connection where Python exposes them (3.13+); before that
    only chains whose issuers are all in the trust store verify.

- Failures of bitsd's own checks raise :class:`CertificateCheckError`, an
  :class:`ssl.SSLCertVerificationError`, so they travel exactly like OpenSSL's own verification
  errors (aiohttp raises ``ClientConnectorCertificateError``; classify makes them
  BG_E_TRUST_FAILURE, fatal).
- A CA bundle or client certificate that cannot be loaded raises :class:`TlsSetupError`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import ipaddress
import os
import ssl
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from bitsd._enums import SecurityFlags

if TYPE_CHECKING:
    from cryptography import x509

    from bitsd._transfer.base import HttpOptions

__all__ = [
    "IGNORE_FLAGS",
    "X509_V_FLAG_NO_CHECK_TIME",
    "CertificateCheckError",
    "TlsContexts",
    "TlsSettings",
    "TlsSetupError",
]

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h, OpenSSL >= 1.1.0): skip every date check.
X509_V_FLAG_NO_CHECK_TIME: Final = 0x200000
# The BG_SSL_IGNORE_* bits of SetSecurityFlags.
IGNORE_FLAGS: Final = (
    SecurityFlags.IGNORE_CERT_CN_INVALID
    | SecurityFlags.IGNORE_CERT_DATE_INVALID
    | SecurityFlags.IGNORE_UNKNOWN_CA
    | SecurityFlags.IGNORE_CERT_WRONG_USAGE
)
# Contexts kept; each holds parsed certificates, so the cache is bounded.
_MAX_CONTEXTS: Final = 32
_OWN_CHECKS: Final = SecurityFlags.IGNORE_UNKNOWN_CA | SecurityFlags.IGNORE_CERT_WRONG_USAGE


class TlsSetupError(Exception):
    """A CA bundle or client certificate of a job cannot be used.

    Attributes:
        path: the file.
        what: "CA bundle" or "client certificate".
        errno: the OS error number when the file could not be read, else None.
    """

    def __init__(self, what: str, path: str, reason: str, *, errno: int | None = None) -> None:
        super().__init__(f"cannot use the {what} {path}: {reason}")
        self.what = what
        self.path = path
        self.errno = errno


class CertificateCheckError(ssl.SSLCertVerificationError):
    """A check bitsd made itself on a server certificate failed (see the module rules)."""

    def __init__(self, reason: str) -> None:
        super().__init__(1, f"certificate verify failed: {reason}")
        self.verify_message = reason
        self.verify_code = 0


@dataclasses.dataclass(frozen=True, slots=True)
class TlsSettings:
    """What decides a job's TLS context.

    Attributes:
        ca_bundle: PEM file of CA certificates trusted instead of the system store, or None.
        client_certificate, client_key: PEM files, or None.
        ignore: the BG_SSL_IGNORE_* bits of the job's security flags.
    """

    ca_bundle: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    ignore: int = 0

    @classmethod
    def of(cls, options: HttpOptions) -> TlsSettings:
        """The TLS settings of a job's HTTP options."""
        return cls(
            ca_bundle=options.ca_bundle,
            client_certificate=options.client_certificate,
            client_key=options.client_key,
            ignore=options.security_flags & IGNORE_FLAGS,
        )


class TlsContexts:
    """A bounded cache of SSL contexts, one per distinct :class:`TlsSettings` and file version.

    Safe to share between concurrent transfers: contexts are immutable once built.
    """

    def __init__(self, *, max_size: int = _MAX_CONTEXTS) -> None:
        self._max = max_size
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[tuple[object, ...], ssl.SSLContext] = (
            collections.OrderedDict()
        )

    def context_for(self, settings: TlsSettings) -> ssl.SSLContext:
        """The context for ``settings``, built on first use.

        Raises:
            TlsSetupError: a CA bundle or client certificate file cannot be used.
        """
        key = (
            settings,
            _version(settings.ca_bundle, "CA bundle"),
            _version(settings.client_certificate, "client certificate"),
            _version(settings.client_key, "client certificate"),
        )
        with self._lock:
            context = self._cache.get(key)
            if context is not None:
                self._cache.move_to_end(key)
                return context
        context = _build(settings)
        with self._lock:
            self._cache[key] = context
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return context


def _version(path: str | None, what: str) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TlsSetupError(what, path, exc.strerror or str(exc), errno=exc.errno) from exc
    return st.st_mtime_ns, st.st_size


def _build(settings: TlsSettings) -> ssl.SSLContext:
    ignore = SecurityFlags(settings.ignore)
    context: ssl.SSLContext
    if ignore & _OWN_CHECKS:
        checking = _CheckingContext(ssl.PROTOCOL_TLS_CLIENT)
        checking.check_hostname = False
        checking.verify_mode = ssl.CERT_NONE
        anchors = None
        if not ignore & SecurityFlags.IGNORE_UNKNOWN_CA:
            anchors = _load_anchors(settings.ca_bundle)
        checking.checker = _PeerChecker(ignore, anchors, checking.hostname_checks_common_name)
        context = checking
    else:
        try:
            context = ssl.create_default_context(cafile=settings.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            assert settings.ca_bundle is not None  # the system store never fails to load
            raise _setup_error("CA bundle", settings.ca_bundle, exc) from exc
        if ignore & SecurityFlags.IGNORE_CERT_CN_INVALID:
            context.check_hostname = False
        if ignore & SecurityFlags.IGNORE_CERT_DATE_INVALID:
            context.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
    if settings.client_certificate is not None:
        try:
            context.load_cert_chain(settings.client_certificate, settings.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise _setup_error("client certificate", settings.client_certificate, exc) from exc
    return context


def _setup_error(what: str, path: str, exc: OSError | ssl.SSLError) -> TlsSetupError:
    if isinstance(exc, ssl.SSLError):
        return TlsSetupError(what, path, getattr(exc, "reason", None) or str(exc))
    return TlsSetupError(what, path, exc.strerror or str(exc), errno=exc.errno)


class _CheckedSSLObject(ssl.SSLObject):
    """An SSLObject that runs bitsd's certificate checks when the handshake completes.

    asyncio calls ``do_handshake`` until it stops raising SSLWantRead/WriteError; the checks
    run once, right after OpenSSL's handshake succeeded and before any application data.
    """

    def do_handshake(self) -> None:
        super().do_handshake()
        _check_peer(self)


class _CheckedSSLSocket(ssl.SSLSocket):
    """An SSLSocket (bitsd's own HTTP client) that runs the same checks, the same way."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _check_peer(self)


def _check_peer(connection: ssl.SSLObject | ssl.SSLSocket) -> None:
    """Run bitsd's checks of the peer of a connection whose handshake just succeeded."""
    context = connection.context
    assert isinstance(context, _CheckingContext)
    der = connection.getpeercert(binary_form=True)
    if der is None:
        raise CertificateCheckError("the server sent no certificate")
    chain = getattr(connection, "get_unverified_chain", None)
    intermediates: list[bytes] = []
    if chain is not None:  # Python 3.13+
        # A list of DER certificates, the peer's own first.
        intermediates = [c for c in (chain() or [])[1:] if isinstance(c, bytes)]
    context.checker.check(der, intermediates, connection.server_hostname)


class _CheckingContext(ssl.SSLContext):
    """A CERT_NONE context whose connections are checked by :class:`_PeerChecker`."""

    sslobject_class = _CheckedSSLObject
    sslsocket_class = _CheckedSSLSocket
    checker: _PeerChecker


class _PeerChecker:
    """bitsd's own checks of a server certificate (the module rules say which)."""

    def __init__(
        self,
        ignore: SecurityFlags,
        anchors: list[x509.Certificate] | None,
        common_name_fallback: bool,
    ) -> None:
        """``anchors`` are the trusted certificates to verify the chain against, or None to
        leave the chain unverified (IGNORE_UNKNOWN_CA)."""
        self._ignore = ignore
        self._anchors = anchors
        self._common_name_fallback = common_name_fallback

    def check(self, der: bytes, intermediates: Sequence[bytes], hostname: str | None) -> None:
        from cryptography import x509

        try:
            with _quiet():
                leaf = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise CertificateCheckError(f"unreadable server certificate ({exc})") from None
        now = datetime.datetime.now(datetime.UTC)
        if not self._ignore & SecurityFlags.IGNORE_CERT_DATE_INVALID:
            if now < leaf.not_valid_before_utc:
                raise CertificateCheckError("the certificate is not yet valid")
            if now > leaf.not_valid_after_utc:
                raise CertificateCheckError("the certificate has expired")
        if (
            hostname is not None
            and not self._ignore & SecurityFlags.IGNORE_CERT_CN_INVALID
            and not _name_matches(leaf, hostname, self._common_name_fallback)
        ):
            raise CertificateCheckError(f"the certificate is not valid for {hostname!r}")
        if not self._ignore & SecurityFlags.IGNORE_CERT_WRONG_USAGE and not _server_usage(leaf):
            raise CertificateCheckError("the certificate is not meant for a TLS server")
        if self._anchors is not None:
            self._verify_chain(self._anchors, leaf, intermediates, hostname, now)

    def _verify_chain(
        self,
        anchors: list[x509.Certificate],
        leaf: x509.Certificate,
        intermediates: Sequence[bytes],
        hostname: str | None,
        now: datetime.datetime,
    ) -> None:
        """Verify the chain to a trusted root, with the end-entity usage checks removed (only
        reached with IGNORE_CERT_WRONG_USAGE and without IGNORE_UNKNOWN_CA)."""
        from cryptography import x509
        from cryptography.x509 import verification as v

        ee_policy = (
            v.ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None)
            .may_be_present(x509.KeyUsage, v.Criticality.AGNOSTIC, None)
        )
        if self._ignore & SecurityFlags.IGNORE_CERT_DATE_INVALID:
            # Verify "as of" a moment the leaf was valid: the other dates are not checked
            # by OpenSSL in this case either (X509_V_FLAG_NO_CHECK_TIME).
            now = max(leaf.not_valid_before_utc, min(now, leaf.not_valid_after_utc))
        subject: x509.DNSName | x509.IPAddress
        name = hostname
        if name is None or self._ignore & SecurityFlags.IGNORE_CERT_CN_INVALID:
            name = _any_name(leaf)
        try:
            subject = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            subject = x509.DNSName(name)
        with _quiet():
            others = [x509.load_der_x509_certificate(d) for d in intermediates]
        verifier = (
            v.PolicyBuilder()
            .store(v.Store(anchors))
            .time(now)
            .extension_policies(
                ca_policy=v.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy
            )
            .build_server_verifier(subject)
        )
        try:
            verifier.verify(leaf, others)
        except v.VerificationError as exc:
            raise CertificateCheckError(f"untrusted certificate chain ({exc})") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Parse certificates without cryptography's deprecation warnings: system stores and
    servers hold old certificates (negative serial numbers...) that still verify."""
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def _load_anchors(ca_bundle: str | None) -> list[x509.Certificate]:
    """The trusted certificates: the CA bundle, else the system store's file or folder."""
    from cryptography import x509

    paths: list[str] = []
    if ca_bundle is not None:
        paths.append(ca_bundle)
    else:
        defaults = ssl.get_default_verify_paths()
        if defaults.cafile:
            paths.append(defaults.cafile)
        elif defaults.capath and os.path.isdir(defaults.capath):
            paths.extend(
                os.path.join(defaults.capath, n) for n in sorted(os.listdir(defaults.capath))
            )
    anchors: list[x509.Certificate] = []
    for path in paths:
        try:
            with open(path, "rb") as f, _quiet():
                anchors.extend(x509.load_pem_x509_certificates(f.read()))
        except OSError as exc:
            if ca_bundle is not None:
                raise TlsSetupError(
                    "CA bundle", ca_bundle, exc.strerror or str(exc), errno=exc.errno
                ) from exc
        except ValueError as exc:
            if ca_bundle is not None:
                raise TlsSetupError("CA bundle", ca_bundle, "no PEM certificate in it") from exc
            # A certificate folder holds other files too.
    return anchors


def _any_name(cert: x509.Certificate) -> str:
    """A name the certificate is valid for (to verify its chain when names are ignored)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateCheckError("the certificate names no host") from None
    for ip in san.get_values_for_type(x509.IPAddress):
        return str(ip)
    for dns in san.get_values_for_type(x509.DNSName):
        return dns.lstrip("*.")
    raise CertificateCheckError("the certificate names no host")


def _name_matches(cert: x509.Certificate, hostname: str, common_name_fallback: bool) -> bool:
    """RFC 6125 host name matching: DNS names (a wildcard only as the whole leftmost label,
    matching exactly one label) and IP addresses of the subject alternative names; the
    subject CN only when there is no DNS name and ``common_name_fallback`` (as OpenSSL)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    host = hostname.rstrip(".").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            host.strip("[]")
        )
    except ValueError:
        address = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if address is not None:
        return san is not None and address in san.get_values_for_type(x509.IPAddress)
    names = san.get_values_for_type(x509.DNSName) if san is not None else []
    if not names and common_name_fallback:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return any(_dns_match(pattern.lower().rstrip("."), host) for pattern in names)


def _dns_match(pattern: str, host: str) -> bool:
    if not pattern.startswith("*."):
        return pattern == host
    first, _, rest = host.partition(".")
    return bool(first) and rest == pattern[2:] and "." in rest


def _server_usage(cert: x509.Certificate) -> bool:
    """Whether the certificate may authenticate a TLS server (RFC 5280 §4.2.1.3, §4.2.1.12)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if not {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(
            eku
        ):
            return False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return bool(ku.digital_signature or ku.key_encipherment or ku.key_agreement)
