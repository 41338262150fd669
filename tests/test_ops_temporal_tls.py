"""Temporal over TLS: a real TLS-terminating gRPC proxy (nginx) in front of a real dev server.

`connect_temporal` with `temporal_tls_ca_file` reaches the server through the proxy; without the
CA (the system trust store) the same address is refused, so the connection really is TLS.
Skipped, with the reason, where nginx is not installed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.api.workflowservice.v1 import ListNamespacesRequest

from autobidder.config import load_settings
from tests.conftest import free_ports
from worker.stack import bin_path, tcp_open
from workflows.connect import connect_temporal

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

pytestmark = [
    pytest.mark.ops,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"),
]


def _write_ca_and_server_cert(out: Path) -> None:
    """A private CA and a server certificate for 127.0.0.1 signed by it (PEM; keys 0600)."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("autobidder test CA"))
        .issuer_name(name("autobidder test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (out / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server_key = out / "server.key"
    server_key.touch(mode=0o600)
    server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not tcp_open(port):
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} not listening on {port}"
        time.sleep(0.1)


@pytest.fixture
def proxied_temporal(tmp_path: Path) -> Iterator[int]:
    """The dev server on one loopback port, nginx terminating TLS on another; yields the latter."""
    temporal_port, tls_port = free_ports(2)
    temporal = subprocess.Popen(
        [
            bin_path("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(temporal_port),
            "--headless",
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _write_ca_and_server_cert(tmp_path)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / sub).mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {tmp_path}/server.pem;
        ssl_certificate_key {tmp_path}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            grpc_pass grpc://127.0.0.1:{temporal_port};
            grpc_read_timeout 120s;
        }}
    }}
}}
"""
    )
    assert NGINX is not None
    nginx = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(temporal_port, temporal, "temporal dev server")
        _wait_port(tls_port, nginx, "nginx")
        yield tls_port
    finally:
        for proc in (nginx, temporal):
            proc.terminate()
        for proc in (nginx, temporal):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_temporal_through_a_tls_terminating_proxy(proxied_temporal: int, tmp_path: Path) -> None:
    address = f"127.0.0.1:{proxied_temporal}"
    config = tmp_path / "tls.toml"
    config.write_text(f'temporal_address = "{address}"\ntemporal_tls_ca_file = "{tmp_path / "ca.pem"}"\n')
    trusted = load_settings(config, env={})
    untrusted = load_settings(env={"AUTOBIDDER_TEMPORAL_ADDRESS": address}).model_copy(
        update={"temporal_tls": True}
    )

    async def check() -> None:
        deadline = time.monotonic() + 60
        while True:  # the dev server answers a little after it listens
            try:
                client = await connect_temporal(trusted)
                break
            except RuntimeError:
                assert time.monotonic() < deadline, "no TLS connection to Temporal through nginx"
                await asyncio.sleep(0.5)
        assert await client.service_client.check_health()
        namespaces = await client.workflow_service.list_namespaces(ListNamespacesRequest())
        assert "default" in {n.namespace_info.name for n in namespaces.namespaces}
        with pytest.raises(RuntimeError):  # the proxy's certificate is not in the system store
            await connect_temporal(untrusted)

    asyncio.run(check())
