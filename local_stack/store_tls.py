"""Mutual TLS for SeaweedFS's internal ports: a certificate authority made fresh at each start of the store.

SeaweedFS's master, volume server and filer each open an HTTP port and a gRPC port besides S3. Neither the S3 keys
nor the JWT keys cover all of them: the master's HTTP API (``/col/delete``, ``/dir/assign``, ``/vol/grow``) and
every gRPC service (``weed shell``, ``weed backup``) answer anyone who connects. SeaweedFS's ``security.toml``
can demand a client certificate on each of them (``[grpc.*]`` with ``[grpc] ca``: ``RequireClientCert`` in
``weed/security/tls.go``; ``[https.master|volume|filer] ca``: ``tls.RequireAndVerifyClientCert`` in
``weed/command/{master,volume,filer}.go``), and its own internal clients present ``[grpc.client]`` and
``[https.client]`` certificates. So the stack makes a CA, signs one certificate that serves both as the servers'
and as the internal clients' identity, and throws the CA's key away: nobody, not even the stack, can sign another
certificate that the store accepts. The files live in an owner-only directory under the state dir.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from local_stack.files import write_atomically

#: Long enough for any local session; a new start makes new certificates anyway.
VALIDITY = datetime.timedelta(days=30)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path, host: str) -> dict[str, Path]:
    """Write ``ca.crt``, ``store.crt`` and ``store.key`` into ``directory`` (0700); return their paths by role."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("local-stack store CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("local-stack store"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.crt", "cert": directory / "store.crt", "key": directory / "store.key"}
    write_atomically(paths["ca"], ca_cert.public_bytes(serialization.Encoding.PEM))
    write_atomically(paths["cert"], cert.public_bytes(serialization.Encoding.PEM))
    write_atomically(
        paths["key"],
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return paths


def security_toml(paths: dict[str, Path]) -> str:
    """SeaweedFS's ``security.toml``: mutual TLS on every gRPC and HTTP port of master, volume and filer (the JWT
    keys come by environment, see ``object_store.security_env``)."""
    ca, cert, key = (str(paths[name]) for name in ("ca", "cert", "key"))
    lines = [f'[grpc]\nca = "{ca}"\n']
    for component in ("master", "volume", "filer", "s3", "client"):
        lines.append(f'[grpc.{component}]\ncert = "{cert}"\nkey = "{key}"\n')
    lines.append(f'[https.client]\nenabled = true\ncert = "{cert}"\nkey = "{key}"\nca = "{ca}"\n')
    for component in ("master", "volume", "filer"):
        lines.append(f'[https.{component}]\ncert = "{cert}"\nkey = "{key}"\nca = "{ca}"\n')
    lines.append("[access]\nui = false\n")
    return "\n".join(lines)
