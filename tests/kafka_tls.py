"""Certificates for the secured broker tests, made with the ``openssl`` command at test time.

A throwaway certificate authority signs the broker's certificate (for
127.0.0.1 and localhost, so clients check the host name as in production) and
a client certificate (mutual TLS); a second authority, trusted by nobody here,
stands for "somebody else's CA".  Keys are RSA 2048, unencrypted PKCS#8 (what
Kafka's PEM key store reads without a key password).  Nothing is valid for
more than two days.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"
CLIENT_NAME = "keydesk-publisher"  # the client certificate's CN: Kafka's principal User:CN=keydesk-publisher


class OpensslMissing(RuntimeError):
    """The ``openssl`` command is not installed (Debian package ``openssl``)."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, the broker's and a client's certificate and key, and a foreign CA."""

    ca: Path
    broker_cert: Path  # the broker's certificate followed by the CA's: the chain it presents
    broker_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # signed nothing the broker presents


def _openssl(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {done.stderr[-2000:]}")


def _authority(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS,
        "-keyout", key, "-out", cert, "-subj", f"/CN=keydesk test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def _signed(directory: Path, name: str, ca: tuple[Path, Path], subject: str, extensions: str) -> Path:
    """A key and a certificate for ``subject`` signed by ``ca``; returns the certificate."""
    key, request, cert = (directory / f"{name}{ext}" for ext in (".key", ".csr", ".pem"))
    (directory / f"{name}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n" + extensions
    )
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request,
        "-subj", subject, cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-days", DAYS, "-out", cert, "-extfile", directory / f"{name}.ext",
        cwd=directory,
    )  # fmt: skip
    return cert


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a CA, a broker and a client certificate, and a foreign CA, into ``directory``."""
    if shutil.which("openssl") is None:
        raise OpensslMissing("the openssl command is not on PATH (apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    ca = _authority(directory, "ca")
    other_ca, _ = _authority(directory, "other-ca")
    broker = _signed(
        directory,
        "broker",
        ca,
        "/CN=localhost",
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    chain = directory / "broker-chain.pem"
    chain.write_text(broker.read_text() + ca[0].read_text())
    client = _signed(
        directory,
        "client",
        ca,
        f"/CN={CLIENT_NAME}",
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    return TlsFiles(
        ca=ca[0],
        broker_cert=chain,
        broker_key=directory / "broker.key",
        client_cert=client,
        client_key=directory / "client.key",
        other_ca=other_ca,
    )
