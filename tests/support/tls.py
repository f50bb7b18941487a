"""A throw-away CA with a server and a client certificate, as PEM and as Java PKCS12 stores."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSWORD = "changeit"  # noqa: S105 - a throw-away test keystore


@dataclass(frozen=True)
class Pki:
    """The files of a test PKI in one folder."""

    ca: Path  # PEM
    server_cert: Path
    server_key: Path
    client_cert: Path  # CN = the client name
    client_key: Path
    truststore: Path  # PKCS12 with the CA as a trusted entry (keytool), for Java
    client_keystore: Path  # PKCS12 with the client's key and certificate, for Java


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    path.chmod(0o600)


def make_pki(folder: Path, client_cn: str = "DROPCOPY") -> Pki:
    """Create a CA, a server certificate for 127.0.0.1/localhost, and a client's."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("tradeflux test CA")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    def issue(
        cn: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        return cert, key

    server, server_key = issue("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])  # fmt: skip
    client, client_key = issue(
        client_cn, ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(client_cn.lower())]
    )
    pem = serialization.Encoding.PEM
    pki = Pki(
        folder / "ca.pem", folder / "server.pem", folder / "server.key", folder / "client.pem",
        folder / "client.key", folder / "truststore.p12", folder / "client.p12",
    )  # fmt: skip
    pki.ca.write_bytes(ca.public_bytes(pem))
    pki.server_cert.write_bytes(server.public_bytes(pem))
    _write_key(server_key, pki.server_key)
    pki.client_cert.write_bytes(client.public_bytes(pem))
    _write_key(client_key, pki.client_key)
    pki.client_keystore.write_bytes(pkcs12.serialize_key_and_certificates(
        b"client", client_key, client, [ca],
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    ))  # fmt: skip
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", str(pki.ca),
         "-keystore", str(pki.truststore), "-storetype", "PKCS12", "-storepass", PASSWORD],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return pki
