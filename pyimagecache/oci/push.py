"""``push_file``: one file into a registry as a single-blob OCI artifact.

The manifest is an OCI image manifest with ``artifactType`` :data:`ARTIFACT_TYPE`, the empty
config (``application/vnd.oci.empty.v1+json``, ``{}``) and one layer, the file, annotated with
``org.opencontainers.image.title``; the caller's annotations go on the manifest. The
manifest's bytes are deterministic (no timestamps): pushing the same file with the same
annotations again yields the same digest.

Layer media type: :data:`DISK_MEDIA_TYPE`, ``application/octet-stream``. The blob is whatever
upstream published (qcow2, raw, xz, a tar...); pyimagecache tells formats apart by their magic
bytes, never by a label, so a per-format type (``...disk.v1+qcow2``) would be a second truth
that can disagree with the bytes, and ``+qcow2`` is not a registered structured-syntax suffix.
What the artifact *is* is said once, by ``artifactType``; generic tools (oras, skopeo, podman
artifact) treat an octet-stream layer with a title as a plain file.

Upload (distribution spec): HEAD the blob and skip it when the registry has it; else POST to
open an upload session, then one PUT with ``?digest=`` for files up to :data:`MONOLITHIC_MAX`,
or PATCH chunks of :data:`CHUNK` bytes and a closing PUT with the digest.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import IO, Any, Callable, Dict, Mapping, Optional, Union
from urllib.parse import urlencode, urljoin

from .._progress import ProgressCallback, Throttle
from ..errors import RegistryError
from ..hashing import Expected, file_digests
from ..settings import Settings
from .layout import TITLE
from .manifest import OCI_MANIFEST, digest_of
from .reference import Reference, parse_reference
from .transport import Registry

log = logging.getLogger("pyimagecache")

ARTIFACT_TYPE = "application/vnd.pyimagecache.disk.v1"
DISK_MEDIA_TYPE = "application/octet-stream"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
#: Files up to this size go up in one PUT; larger ones in PATCH chunks of CHUNK bytes.
MONOLITHIC_MAX = 128 << 20
CHUNK = 64 << 20
_PUSH = "pull,push"

PathArg = Union[str, "os.PathLike[str]"]


def push_file(
    path: PathArg,
    reference: Union[str, Reference],
    *,
    media_type: str = DISK_MEDIA_TYPE,
    title: Optional[str] = None,
    annotations: Optional[Mapping[str, str]] = None,
    settings: Optional[Settings] = None,
    tag: Optional[str] = None,
    artifact_type: str = ARTIFACT_TYPE,
    expected: Optional[Expected] = None,
    progress: Optional[ProgressCallback] = None,
) -> str:
    """Upload ``path`` to ``reference`` (``oci://REGISTRY/REPO[:TAG]``) as a single-blob
    artifact tagged ``tag`` (default: the reference's; neither: pushed by digest only), and
    return the manifest digest (``sha256:<hex>``).

    ``title`` (default: the file's name) names the layer; ``expected`` digests are checked
    while the file is hashed, before anything is uploaded (ChecksumMismatchError).

    >>> push_file("disk.qcow2", "oci://127.0.0.1:5000/mirror", tag="x-1-amd64")  # doctest: +SKIP
    'sha256:...'
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    if tag is not None:
        ref = ref.with_tag(tag)
    path = Path(path)
    settings = settings if settings is not None else Settings.from_environment()
    pins = expected or Expected()
    digests = file_digests(path, tuple(dict.fromkeys(("sha256", *pins.algorithms))))
    pins.check(digests, str(path), str(path))
    size = path.stat().st_size
    layer_digest = f"sha256:{digests['sha256']}"
    registry = Registry(ref.registry, ref.repository, settings)
    registry.login(_PUSH)
    upload_blob(registry, EMPTY_CONFIG, digest_of(EMPTY_CONFIG), len(EMPTY_CONFIG))
    upload_blob(registry, path, layer_digest, size, progress)
    document: Dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": digest_of(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
            "data": base64.b64encode(EMPTY_CONFIG).decode("ascii"),
        },
        "layers": [
            {
                "mediaType": media_type,
                "digest": layer_digest,
                "size": size,
                "annotations": {TITLE: title or path.name},
            }
        ],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return put_manifest(registry, ref, json.dumps(document, separators=(",", ":")).encode())


def put_manifest(registry: Registry, ref: Reference, data: bytes) -> str:
    """PUT an OCI manifest under the tag (or its own digest) and return its digest."""
    digest = digest_of(data)
    target = ref.tag or digest
    answer = registry.request(
        "PUT",
        registry.api(f"manifests/{target}"),
        what=f"pushing the manifest {target}",
        actions=_PUSH,
        headers={"Content-Type": OCI_MANIFEST},
        body=data,
        ok=(201,),
    )
    claimed = answer.headers.get("Docker-Content-Digest", "").strip()
    if claimed and claimed != digest:
        raise RegistryError(
            f"{registry.where}: the registry stored the manifest as {claimed}, not {digest}",
            registry=registry.registry,
            repository=registry.repository,
        )
    log.info("pushed %s:%s (%s)", registry.where, target, digest)
    return digest


def upload_blob(
    registry: Registry,
    source: Union[bytes, Path],
    digest: str,
    size: int,
    progress: Optional[ProgressCallback] = None,
) -> None:
    """Put one blob into the repository unless it is there already."""
    there = registry.request(
        "HEAD", registry.blob_url(digest), what=f"blob {digest}", actions=_PUSH, ok=(200, 404)
    )
    if there.status == 200:
        log.info("%s already has %s; not uploading it", registry.where, digest)
        return
    report = Throttle(progress)
    started = registry.request(
        "POST",
        registry.api("blobs/uploads/"),
        what="starting a blob upload",
        actions=_PUSH,
        headers={"Content-Length": "0"},
        ok=(202,),
    )
    location = _location(registry, started.headers, started.url)
    if size > MONOLITHIC_MAX:
        offset = 0
        while offset < size:
            n = min(CHUNK, size - offset)
            patched = registry.request(
                "PATCH",
                location,
                what=f"uploading {digest} from byte {offset}",
                actions=_PUSH,
                headers=_octets(n, {"Content-Range": f"{offset}-{offset + n - 1}"}),
                body=_reader(source, offset, n),
                ok=(202,),
            )
            location = _location(registry, patched.headers, location)
            offset += n
            report(offset, size)
        body: Any = b""
        length = 0
    else:
        body, length = _reader(source, 0, size), size
    sep = "&" if "?" in location else "?"
    registry.request(
        "PUT",
        location + sep + urlencode({"digest": digest}),
        what=f"completing {digest}",
        actions=_PUSH,
        headers=_octets(length),
        body=body,
        ok=(201,),
    )
    report(size, size, final=True)


def _octets(length: int, more: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(length),
        **(more or {}),
    }


def _location(registry: Registry, headers: Mapping[str, str], base: str) -> str:
    location = headers.get("Location")
    if not location:
        raise RegistryError(
            f"{registry.where}: the upload answer has no Location",
            registry=registry.registry,
            repository=registry.repository,
        )
    return urljoin(base, location)


def _reader(source: Union[bytes, Path], offset: int, length: int) -> Callable[[], Any]:
    """A factory of fresh streams over ``length`` bytes of ``source`` from ``offset`` (so that
    an authentication retry can send the body again)."""
    if isinstance(source, bytes):
        return lambda: source[offset : offset + length]
    return lambda: _Region(source, offset, length)


class _Region:
    """``length`` bytes of a file from ``offset``, read as a stream (urllib3 sends it in blocks)."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed at the end of the body
        self._file.seek(offset)
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            self._file.close()
            return b""
        want = self._left if n < 0 else min(n, self._left)
        data = self._file.read(want)
        self._left -= len(data)
        if not data:
            self._file.close()
        return data
