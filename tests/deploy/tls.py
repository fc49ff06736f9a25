"""Throwaway certificates for the TLS tests, made by the shipped deploy/make-certs.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

from minewatch.services import DEPLOY, TlsFiles


def make_certs(directory: Path, *names: str) -> TlsFiles:
    """A private CA and a server certificate for localhost, 127.0.0.1 and ``names``."""
    subprocess.run(["sh", str(DEPLOY / "make-certs.sh"), str(directory), *names], check=True,
                   capture_output=True, text=True)
    return TlsFiles(ca=directory / "ca.crt", cert=directory / "server.crt", key=directory / "server.key")
