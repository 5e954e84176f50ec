"""Certificates and keys for a loopback control plane, made with the `cryptography` package.

One CA signs the apiserver's serving certificate and every client certificate; a separate RSA key
signs ServiceAccount tokens (TokenRequest) and the apiserver verifies them with its public half.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """Paths of every PEM file the control plane needs."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _ca(name: x509.Name) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _serving(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, cn: str, dns: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A serving certificate for loopback (localhost, 127.0.0.1) and the `dns` names, signed by the CA."""
    key = _key()
    sans = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            *(x509.DNSName(name) for name in dns),
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        ]
    )
    cert = (
        _builder(_name(cn), ca_name, key.public_key())
        .add_extension(sans, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


@dataclass(frozen=True)
class ServingPair:
    """A private CA and the loopback serving certificate and key it signed."""

    ca_cert: Path
    cert: Path
    key: Path


def make_serving_pair(folder: Path, cn: str) -> ServingPair:
    """A fresh CA of its own and a serving certificate for 127.0.0.1 it signed: an endpoint its clients
    can trust only through that CA (no system trust store, no testbed CA knows it)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_name = _name(f"{cn}-ca")
    ca_key, ca_cert = _ca(ca_name)
    key, cert = _serving(ca_key, ca_name, cn, [])
    pair = ServingPair(ca_cert=folder / f"{cn}-ca.crt", cert=folder / f"{cn}.crt", key=folder / f"{cn}.key")
    _write_cert(pair.ca_cert, ca_cert)
    _write_cert(pair.cert, cert)
    _write_key(pair.key, key)
    return pair


def make_pki(folder: Path) -> Pki:
    """Write a fresh CA, serving cert, admin client cert and token-signing key pair into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_name = _name("agency-testbed-ca")
    ca_key, ca_cert = _ca(ca_name)
    serving_key, serving_cert = _serving(
        ca_key, ca_name, "kube-apiserver", ["kubernetes", "kubernetes.default.svc"]
    )

    admin_key = _key()
    admin_cert = (
        _builder(_name("agency-testbed-admin", "system:masters"), ca_name, admin_key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pki = Pki(
        ca_cert=folder / "ca.crt",
        ca_key=folder / "ca.key",
        serving_cert=folder / "apiserver.crt",
        serving_key=folder / "apiserver.key",
        admin_cert=folder / "admin.crt",
        admin_key=folder / "admin.key",
        sa_key=folder / "sa.key",
        sa_pub=folder / "sa.pub",
    )
    _write_cert(pki.ca_cert, ca_cert)
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.serving_cert, serving_cert)
    _write_key(pki.serving_key, serving_key)
    _write_cert(pki.admin_cert, admin_cert)
    _write_key(pki.admin_key, admin_key)
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
