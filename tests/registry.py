"""Real registries for the OCI tests: docker-registry (CNCF distribution) on 127.0.0.1 with a
config written into the test's directory, plus what its auth modes need, and fixtures pushed
with skopeo from OCI layouts built here.

    >>> with RegistryServer(tmp_path) as reg:                   # doctest: +SKIP
    ...     reg.address
    '127.0.0.1:41234'

- :func:`make_ca` / :func:`issue_cert`: a throwaway CA and a server certificate (openssl);
- :func:`htpasswd_file`: bcrypt entries (htpasswd -B), the only kind distribution accepts;
- :class:`TokenServer`: distribution's token auth, on http.server, signing RS256 JWTs with
  the openssl CLI (no Python crypto dependency), the certificate in each token's ``x5c``;
- :class:`OciLayout`: an ``oci:`` layout directory (blobs, manifests, indexes, tags);
  :func:`skopeo_copy` copies from it to the registry.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
#: The descriptor of ``{}``, the empty config of an artifact.
EMPTY_CONFIG = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}


def artifact_manifest(*layers: Dict[str, Any], **fields: Any) -> bytes:
    """An OCI artifact manifest over the empty config (``indent`` passed to json.dumps)."""
    indent = fields.pop("indent", None)
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": EMPTY_CONFIG,
                "layers": list(layers), **fields}  # fmt: skip
    return json.dumps(document, indent=indent).encode()


_CONFIG = """\
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {host}:{port}
  secret: test-secret
{tls}{auth}"""


def _require(tool: str) -> str:
    # Imported here: the benchmark uses this module without pytest.
    from conftest import require_tool

    return require_tool(tool)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _openssl(*args: str, stdin: Optional[bytes] = None) -> bytes:
    openssl = _require("openssl")
    done = subprocess.run([openssl, *args], input=stdin, capture_output=True, check=True)
    return done.stdout


# -- certificates ---------------------------------------------------------------------------


class Cert(NamedTuple):
    cert: Path
    key: Path


def self_signed(directory: Path, name: str, subject: str, *extensions: str) -> Cert:
    """A self-signed certificate and its RSA key, ``-addext`` ``extensions`` added."""
    out = Cert(directory / f"{name}.pem", directory / f"{name}.key")
    added = [arg for ext in extensions for arg in ("-addext", ext)]
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
        "-keyout", str(out.key), "-out", str(out.cert), *added,
    )  # fmt: skip
    return out


def make_ca(directory: Path) -> Cert:
    """A CA certificate and key (strict enough for Python 3.13's X509_STRICT checks)."""
    return self_signed(
        directory,
        "ca",
        "/CN=test CA",
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,keyCertSign,cRLSign",
        "subjectKeyIdentifier=hash",
    )


def issue_cert(ca: Cert, directory: Path, name: str = "server") -> Cert:
    """A server certificate for 127.0.0.1 and localhost, signed by ``ca``."""
    out = Cert(directory / f"{name}.pem", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(out.key),
        "-out",
        str(csr),
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        str(out.cert),
        "-extfile",
        str(ext),
    )
    return out


def htpasswd_file(path: Path, users: Mapping[str, str]) -> Path:
    lines = []
    for user, password in users.items():
        done = subprocess.run(
            [_require("htpasswd"), "-nbB", user, password],
            capture_output=True,
            check=True,
            text=True,
        )
        lines.append(done.stdout.strip())
    path.write_text("\n".join(lines) + "\n")
    return path


def write_auth_file(path: Path, registry: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    return path


# -- the registry ---------------------------------------------------------------------------


class RegistryServer:
    """docker-registry serving ``work/storage`` on ``host``:<free port>."""

    def __init__(
        self,
        work: Path,
        *,
        host: str = "127.0.0.1",
        tls: Optional[Cert] = None,
        ca: Optional[Path] = None,
        auth: str = "",
        binary: Optional[str] = None,
    ) -> None:
        self.binary = binary or _require("docker-registry")
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.tls = tls
        self.ca = ca
        self.auth = auth
        self.storage = work / "storage"
        self.log_path = work / "registry.log"
        self.port = 0
        self._proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def ref(self, repo_and_tag: str) -> str:
        return f"oci://{self.address}/{repo_and_tag}"

    def start(self) -> RegistryServer:
        for _ in range(5):  # the probed port can be taken before the registry binds it
            self.port = free_port(self.host)
            tls = ""
            if self.tls is not None:
                tls = f"  tls:\n    certificate: {self.tls.cert}\n    key: {self.tls.key}\n"
            config = self.work / "config.yml"
            config.write_text(
                _CONFIG.format(
                    root=self.storage,
                    host=self.host,
                    port=self.port,
                    tls=tls,
                    auth=self.auth,
                )
            )
            log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
            self._proc = subprocess.Popen(
                [self.binary, "serve", str(config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            if self._wait():
                return self
            self.stop()
        raise RuntimeError(f"docker-registry did not start: {self.log_text()[-2000:]}")

    def _wait(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        deadline = time.monotonic() + 15
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1, context=context)
                return True
            except urllib.error.HTTPError:
                return True  # 401: up, and asking for credentials
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def access_log(self) -> List[Tuple[str, str, int, int]]:
        """(method, path, status, bytes) of every request, from the combined-format log."""
        found = []
        for match in re.finditer(
            r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d+) (\d+|-)', self.log_text()
        ):
            size = int(match.group(4)) if match.group(4).isdigit() else 0
            found.append((match.group(1), match.group(2), int(match.group(3)), size))
        return found

    def blob_path(self, digest: str) -> Path:
        hexdigest = digest.partition(":")[2]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def stop(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def token_auth(realm: str, rootcertbundle: Path) -> str:
    return (
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: test-registry\n    issuer: test-issuer\n"
        f"    rootcertbundle: {rootcertbundle}\n"
    )


def htpasswd_auth(path: Path) -> str:
    return f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {path}\n"


# -- small servers --------------------------------------------------------------------------


class LocalServer(http.server.ThreadingHTTPServer):
    """A threaded http.server on ``host``:<free port>, serving within a ``with`` block."""

    daemon_threads = True

    def __init__(self, handler: type, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), handler)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    @property
    def base(self) -> str:
        return f"http://{self.address}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers in one call."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def reply(
        self, status: int, body: bytes = b"", headers: Optional[Mapping[str, str]] = None
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# -- a token server -------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServer:
    """distribution's token endpoint: GET /token?service=...&scope=... with optional Basic
    credentials; ``users`` get every action they ask for, anonymous callers ``anonymous``
    (e.g. ("pull",), or () for a private registry). ``log`` records (scope, user, status)."""

    def __init__(
        self,
        work: Path,
        users: Mapping[str, str],
        anonymous: Sequence[str] = (),
        lifetime: int = 300,
    ) -> None:
        self.users = dict(users)
        self.anonymous = tuple(anonymous)
        self.lifetime = lifetime
        self.cert, self.key = self_signed(work, "token", "/CN=test token issuer")
        der = _openssl("x509", "-in", str(self.cert), "-outform", "DER")
        self._x5c = base64.b64encode(der).decode("ascii")
        self.log: List[Tuple[str, Optional[str], int]] = []
        self.issued: List[str] = []
        self._server = LocalServer(_TokenHandler)
        self._server.tokens = self  # type: ignore[attr-defined]

    @property
    def realm(self) -> str:
        return f"{self._server.base}/token"

    def sign(self, claims: Dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = _openssl(
            "dgst", "-sha256", "-sign", str(self.key), stdin=signing_input.encode()
        )
        return f"{signing_input}.{_b64url(signature)}"

    def grant(self, query: Mapping[str, List[str]], user: Optional[str]) -> str:
        access = []
        for scope in query.get("scope", []):
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                allowed = (
                    actions.split(",")
                    if user
                    else [a for a in actions.split(",") if a in self.anonymous]
                )
                access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        token = self.sign(
            {
                "iss": "test-issuer",
                "sub": user or "",
                "aud": query.get("service", [""])[0],
                "exp": now + self.lifetime,
                "nbf": now - 5,
                "iat": now,
                "jti": os.urandom(8).hex(),
                "access": access,
            }
        )
        self.issued.append(token)
        return token

    def __enter__(self) -> TokenServer:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)


class _TokenHandler(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        tokens: TokenServer = self.server.tokens  # type: ignore[attr-defined]
        query = parse_qs(urlsplit(self.path).query)
        scope = " ".join(query.get("scope", []))
        user: Optional[str] = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if tokens.users.get(name) != password:
                tokens.log.append((scope, name, 401))
                self._answer(401, {"details": "incorrect username or password"})
                return
            user = name
        token = tokens.grant(query, user)
        tokens.log.append((scope, user, 200))
        self._answer(200, {"token": token, "access_token": token, "expires_in": tokens.lifetime})

    def _answer(self, status: int, document: Dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.reply(status, body, {"Content-Type": "application/json"})


# -- OCI layouts and skopeo -----------------------------------------------------------------


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciLayout:
    """An ``oci:`` image layout directory, written as things are added."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self._tags: Dict[str, Dict[str, Any]] = {}
        self._write_index()

    def blob(self, data: bytes, media_type: str, **extra: Any) -> Dict[str, Any]:
        digest = sha256_digest(data)
        (self.root / "blobs" / "sha256" / digest.partition(":")[2]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def image(
        self,
        layers: Sequence[Tuple[bytes, str]],
        *,
        arch: str = "amd64",
        variant: Optional[str] = None,
        config_media_type: str = OCI_CONFIG,
        manifest_media_type: str = OCI_MANIFEST,
    ) -> Dict[str, Any]:
        """An image manifest over ``layers`` ((bytes, media type)); returns its descriptor
        with the platform set (for an index)."""
        diff_ids = [sha256_digest(_uncompressed(data)) for data, _ in layers]
        config: Dict[str, Any] = {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
        if variant:
            config["variant"] = variant
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_media_type,
            "config": self.blob(json.dumps(config).encode(), config_media_type),
            "layers": [self.blob(data, media_type) for data, media_type in layers],
        }
        platform = {
            "architecture": arch,
            "os": "linux",
            **({"variant": variant} if variant else {}),
        }
        return self.blob(json.dumps(manifest).encode(), manifest_media_type, platform=platform)

    def index(self, manifests: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(manifests)}
        return self.blob(json.dumps(document).encode(), OCI_INDEX)

    def tag(self, name: str, descriptor: Dict[str, Any]) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        self._tags[name] = entry
        self._write_index()

    def _write_index(self) -> None:
        (self.root / "index.json").write_text(
            json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(self._tags.values())}
            )
        )


def _uncompressed(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def containerdisk_layer(
    files: Mapping[str, bytes], *, compress: bool = True, extra: Sequence[tarfile.TarInfo] = ()
) -> bytes:
    """A layer tar as kubevirt/containerdisks builds it: ``disk/`` (owned by qemu, 107) and
    the files given (names relative to the root, e.g. ``disk/disk.qcow2``)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("disk/")
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o555, 107, 107
        tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o444, 107, 107
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    data = out.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


def skopeo_copy(src: str, dest: str, work: Path, *args: str) -> None:
    """``skopeo copy`` with an accept-anything policy of its own (no system state read)."""
    skopeo = _require("skopeo")
    policy = work / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    env = {**os.environ, "HOME": str(work), "XDG_RUNTIME_DIR": str(work)}
    env.pop("REGISTRY_AUTH_FILE", None)
    done = subprocess.run(
        [skopeo, "--policy", str(policy), "copy", "--quiet", *args, src, dest],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"skopeo copy {src} {dest} failed: {done.stderr}")
