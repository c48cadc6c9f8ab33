"""A scratch Kafka with secured listeners, for testing the clients' security settings for real (issue 15
item 4); separate from the stack's plaintext broker, on ports of its own.

- ``make_pki(dir)``: a CA, a server certificate for 127.0.0.1/localhost and a client certificate (for
  mTLS), generated with ``cryptography`` (PEM files; the keys unencrypted PKCS#8, mode 0600);
- ``SecuredKafka``: one KRaft node (broker + controller) from the stack's Maven jars with a
  ``SASL_SSL`` listener (SCRAM-SHA-512; the user created at format time with ``--add-scram``) and an
  ``SSL`` listener that requires a client certificate (mTLS); ``start``/``stop`` by its own pid file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.local.kafka_broker import Kafka, _new_cluster_id
from deploy.local.process import read_pid, run_once, spawn, terminate
from deploy.local.settings import StackSettings


@dataclass(frozen=True)
class Pki:
    """PEM files: ``ca`` (trust anchor), ``server`` (key + chain, Kafka's PEM keystore), ``client_cert``
    + ``client_key`` (mTLS), each under the directory given to ``make_pki``."""

    ca: Path
    server: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False, sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path, *, ca_name: str = "Renja test CA") -> Pki:
    """Generate the CA, the server and the client certificates under ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert(ca_name, ca_key, None, ca_key, ca=True)
    server_key, client_key = _key(), _key()
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _cert("renja-kafka", server_key, ca, ca_key, sans=sans)
    client = _cert("renja-client", client_key, ca, ca_key)
    pem = serialization.Encoding.PEM
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "client.pem", directory / "client-key.pem")
    pki.ca.write_bytes(ca.public_bytes(pem))
    pki.server.write_bytes(_pem_key(server_key) + server.public_bytes(pem) + ca.public_bytes(pem))
    pki.client_cert.write_bytes(client.public_bytes(pem))
    pki.client_key.write_bytes(_pem_key(client_key))
    for secret in (pki.server, pki.client_key):
        secret.chmod(0o600)
    return pki


class SecuredKafka(Kafka):
    """One KRaft node with ``SASL_SSL`` (SCRAM-SHA-512) on ``sasl_port`` and ``SSL`` + client certificate
    on ``mtls_port``; data, logs and pid under ``directory``. The SCRAM user ``user``/``password``."""

    name = "kafka-secured"

    def __init__(
        self, settings: StackSettings, directory: Path, pki: Pki, *,
        sasl_port: int, mtls_port: int, controller_port: int, user: str, password: str,
    ) -> None:  # fmt: skip
        super().__init__(settings)
        self.directory, self.pki = directory, pki
        self.sasl_port, self.mtls_port, self.controller_port = sasl_port, mtls_port, controller_port
        self.user, self.password = user, password
        self.properties = directory / "server.properties"
        self.data_dir = directory / "data"
        self.pid_file = directory / "kafka.pid"
        self.out_path = directory / "kafka.out"

    def pid(self) -> int | None:
        return read_pid(self.pid_file, str(self.properties))

    def server_properties(self) -> str:
        host = "127.0.0.1"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{self.controller_port}",
            "listeners": f"SASL_SSL://{host}:{self.sasl_port},SSL://{host}:{self.mtls_port},"
            f"CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://{host}:{self.sasl_port},SSL://{host}:{self.mtls_port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.ssl.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.pki.server),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca),
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }  # fmt: skip
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    async def start(self) -> None:
        """Write server.properties, format (creating the SCRAM user), start the broker JVM."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(self.server_properties())
        if not (self.data_dir / "meta.properties").exists():
            scram = f"SCRAM-SHA-512=[name={self.user},password={self.password}]"
            argv = self._java_argv(
                "kafka.tools.StorageTool", "-Xmx256m", "format", "-t", _new_cluster_id(), "-c", str(self.properties),
                "--add-scram", scram,
            )  # fmt: skip
            await run_once(argv, log_path=self.out_path, timeout_s=120)
        argv = self._java_argv("kafka.Kafka", "-Xms128m -Xmx384m", str(self.properties))
        spawn(argv, log_path=self.out_path, pid_file=self.pid_file, cwd=self.directory, env=os.environ)

    async def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            await terminate(pid, 20)
        self.pid_file.unlink(missing_ok=True)
