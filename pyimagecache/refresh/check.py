"""``catalog check``: the rules a pinned catalog must satisfy, all problems reported at once.

Two rule sets. The package's own catalog (``embedded=True``) must be reproducible, refreshable
and traceable:

* a family the refresher knows (:data:`KNOWN_DISTROS`), with the fields its layout needs
  (Debian's codename);
* every snapshot (the alias's and any arch's own) named by the family's rule
  (:mod:`.snapshots`), and an arch's own snapshot only where it differs from the alias's;
* every URL https, the family's image URL (its layout's one regex: the right directory for
  the release, the arch's spelling, the snapshot in it, the variant kept), and through no
  moving pointer (``latest``, ``current``, ``daily``, ``latest-stable``, ``-latest.`` file
  names, Ubuntu's ``release/``...), except the one a family has to use because upstream has
  no other https location: FreeBSD's ``<X.Y>-RELEASE/<arch>/Latest/`` (see
  :mod:`.freebsd` for why that is safe) and Tumbleweed's ``tumbleweed/`` (the snapshot is in
  the file name, see :mod:`.opensuse_tumbleweed`);
* arches: amd64 for every alias; arm64 too where the family builds it with every release
  (Debian, Ubuntu, Fedora, CentOS Stream, AlmaLinux and Kitten, Rocky, Oracle Linux, Alpine,
  FreeBSD, CirrOS), optional where upstream builds it apart (openSUSE Leap's own build
  counter, Tumbleweed's ``ports/aarch64/`` and Amazon Linux's ``kvm-arm64/`` tree, for which
  not every release has a pin to be had), never for
  Arch Linux (upstream builds x86_64 only, so any arm64 image would be third-party); other
  arches only where the family publishes them;
* a SHA-256 or SHA-512 (or both) of canonical lowercase hex, and no URL pinned twice;
* with ``require_provenance``, a ``provenance`` record on every pin (see below);
* names that make safe cache file names.

A user's catalog (``embedded=False``: a mirror, an air-gapped site) needs only well-formed
pins: any ``distro``, ``https``/``http``/``file`` URLs, any arches, any snapshot spelling. The
family rules still apply to an entry of a known family whose URLs point at that family's
upstream (the host of its default root): a pin of Debian's own server must still be Debian's
image URL for its snapshot, while the same entry pointing at a local mirror is the site's
business.

A ``provenance`` record, wherever present, must be well formed
(:func:`pyimagecache.catalog.provenance_problems`), name its record as an https URL or a
``github:OWNER/REPO@COMMIT:PATH`` reference (the full commit, a path inside the repository),
give a format of :data:`PROVENANCE_FORMATS`, and, when ``verified``, the key's fingerprint.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ..catalog import (
    ARCH_FIELDS,
    ARCHES,
    INFO_FIELDS,
    cache_stem,
    parse_catalog,
    provenance_problems,
)
from ..errors import CatalogError
from ..hashing import ALGORITHMS, HEX_DIGITS, is_digest
from .families import FAMILIES
from .layout import ARM64_REQUIRED, Context, Layout, dirname, moving_segments
from .sums import FORMATS as SUMS_FORMATS

KNOWN_DISTROS: Mapping[str, Layout] = FAMILIES
#: Every alias of the embedded catalog must have an image for these; arm64 as its family's
#: rule says (above).
REQUIRED_ARCHES = ("amd64",)
#: The record formats a provenance ``format`` may name: the checksum-file formats
#: ``catalog refresh`` reads (:mod:`.sums`); ``sha256sums``/``sha512sums``, a coreutils file
#: named for its algorithm (Ubuntu's SHA256SUMS, Debian's SHA512SUMS); ``lima-template``, a
#: lima-vm/lima ``templates/_images/*.yaml`` (a location and a digest per arch);
#: ``nix-sri``, a Nix ``fetchurl`` hash (``sha256-<base64>``, the pin being its hex); and
#: ``third-party-pin``, a digest another project pins beside the image's URL in its source,
#: tests or documentation.
PROVENANCE_FORMATS: Tuple[str, ...] = (
    *SUMS_FORMATS,
    "sha256sums",
    "sha512sums",
    "lima-template",
    "nix-sri",
    "third-party-pin",
)
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_GITHUB_RECORD = re.compile(
    r"github:[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}@[0-9a-f]{40}:(?P<path>\S+)"
)
_EMBEDDED_SCHEMES = ("https",)
_USER_SCHEMES = ("https", "http", "file")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a catalog: where (``alias``, ``arch``, ``field``; None when it
    concerns the whole catalog, alias or image) and what. ``str()`` gives the line
    ``catalog check`` prints.

    >>> str(Problem("debian-12", "amd64", "url", "url 'x' must be https://host/..."))
    "alias 'debian-12' arch 'amd64': url 'x' must be https://host/..."
    """

    alias: Optional[str]
    arch: Optional[str]
    field: Optional[str]
    message: str

    def __str__(self) -> str:
        where = []
        if self.alias is not None:
            where.append(f"alias {self.alias!r}")
        if self.arch is not None:
            where.append(f"arch {self.arch!r}")
        return f"{' '.join(where)}: {self.message}" if where else self.message

    def as_dict(self) -> Dict[str, Optional[str]]:
        """The problem as ``catalog check --json`` prints it."""
        return {
            "alias": self.alias,
            "arch": self.arch,
            "field": self.field,
            "message": self.message,
        }


def required_arches(layout: Optional[Layout]) -> List[str]:
    """The arches an alias of ``layout``'s family must list in the embedded catalog."""
    if layout is not None and layout.arm64 == ARM64_REQUIRED:
        return [*REQUIRED_ARCHES, "arm64"]
    return list(REQUIRED_ARCHES)


def upstream_of(layout: Layout, url: object) -> bool:
    """Whether ``url`` points at ``layout``'s own upstream (the host of its default root),
    where its family's rules apply to a user's catalog too.

    >>> upstream_of(KNOWN_DISTROS["debian"], "https://cloud.debian.org/images/cloud/x.qcow2")
    True
    >>> upstream_of(KNOWN_DISTROS["debian"], "file:///srv/mirror/debian/x.qcow2")
    False
    """
    if not isinstance(url, str):
        return False
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and host == urlsplit(layout.root).hostname


def record_problem(record: str, schemes: Tuple[str, ...] = _EMBEDDED_SCHEMES) -> Optional[str]:
    """Why ``record`` does not name a public record precisely, or None when it does: an
    https URL (a user catalog's ``schemes`` may add http and file) or
    ``github:OWNER/REPO@COMMIT:PATH`` with the full 40-hex commit and a path inside the
    repository.

    >>> record_problem("github:lima-vm/lima@" + "ab" * 20 + ":templates/_images/x.yaml")
    >>> print(record_problem("github:o/r@main:x.yaml"))
    record 'github:o/r@main:x.yaml' is not github:OWNER/REPO@COMMIT:PATH (COMMIT: all 40 hex digits)
    """
    if record.startswith("github:"):
        m = _GITHUB_RECORD.fullmatch(record)
        if m is None:
            return (
                f"record {record!r} is not github:OWNER/REPO@COMMIT:PATH "
                "(COMMIT: all 40 hex digits)"
            )
        if any(part in ("", ".", "..") for part in m.group("path").split("/")):
            return f"record {record!r}: PATH must be a path inside the repository"
        return None
    allowed = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(record)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme not in schemes
        or (parts.scheme != "file" and not host)
        or not parts.path.rstrip("/")
        or any(c.isspace() for c in record)
    ):
        return (
            f"record {record!r} must be an {allowed} URL of the file or a "
            "github:OWNER/REPO@COMMIT:PATH reference"
        )
    return None


class _Checker:
    """One pass over a decoded catalog, collecting every :class:`Problem`."""

    def __init__(self, embedded: bool, require_provenance: bool) -> None:
        self.embedded = embedded
        self.require_provenance = require_provenance
        self.schemes = _EMBEDDED_SCHEMES if embedded else _USER_SCHEMES
        self.problems: List[Problem] = []

    def add(
        self, alias: Optional[str], arch: Optional[str], field: Optional[str], message: str
    ) -> None:
        self.problems.append(Problem(alias, arch, field, message))

    # -- one alias ------------------------------------------------------------------------

    def alias(self, alias: str, entry: object) -> None:
        if not isinstance(entry, dict):
            self.add(alias, None, None, f"must be an object, got {type(entry).__name__}")
            return
        for k in entry:
            if k not in INFO_FIELDS:
                self.add(alias, None, k, f"unknown field {k!r}")
        distro = entry.get("distro")
        layout = KNOWN_DISTROS.get(distro) if isinstance(distro, str) else None
        if layout is None and self.embedded:
            known = ", ".join(sorted(KNOWN_DISTROS))
            self.add(alias, None, "distro", f"unknown distro {distro!r} (known: {known})")
        elif not isinstance(distro, str) or not distro:
            self.add(alias, None, "distro", "'distro' must be a non-empty string")
        arch = entry.get("arch")
        images = arch if isinstance(arch, dict) else {}
        family = layout
        if layout is not None and not self.embedded:
            urls = [i.get("url") for i in images.values() if isinstance(i, dict)]
            if not any(upstream_of(layout, url) for url in urls):
                family = None  # a mirror or local copy: the site's own business
        version = entry.get("version")
        if not isinstance(version, str) or not version:
            self.add(alias, None, "version", "'version' must be a non-empty string")
        codename = entry.get("codename")
        if (
            family is not None
            and family.needs_codename
            and (not isinstance(codename, str) or not codename)
        ):
            self.add(
                alias,
                None,
                "codename",
                f"a {family.title} alias needs a 'codename' (its upstream directory)",
            )
        elif codename is not None and not isinstance(codename, str):
            self.add(alias, None, "codename", "'codename' must be a string")
        self.snapshot(alias, None, entry.get("snapshot"), family)
        bumped_at = entry.get("bumped_at")
        if bumped_at is not None and not _is_date(bumped_at):
            self.add(alias, None, "bumped_at", f"bumped_at {bumped_at!r} is not a YYYY-MM-DD date")
        required = required_arches(layout) if self.embedded else []
        if not isinstance(arch, dict) or not arch:
            wanted = " and ".join(required) if required else "at least one arch"
            self.add(alias, None, "arch", f"'arch' must be an object with {wanted}")
            return
        for key in required:
            if key not in arch:
                self.add(alias, None, "arch", f"no {key} image")
        for key, image in arch.items():
            own = family
            if own is not None and not self.embedded and not _url_of(image, own):
                own = None
            self.image(alias, key, image, entry, own)

    def snapshot(
        self, alias: str, arch: Optional[str], value: object, layout: Optional[Layout]
    ) -> bool:
        if not isinstance(value, str) or not value:
            self.add(alias, arch, "snapshot", "'snapshot' must be a non-empty string")
            return False
        if layout is not None and layout.rule(value) is None:
            self.add(
                alias,
                arch,
                "snapshot",
                f"snapshot {value!r} is not a {layout.distro} snapshot name ({layout.rule.shape})",
            )
            return False
        return True

    # -- one arch's image -----------------------------------------------------------------

    def image(
        self,
        alias: str,
        key: str,
        image: object,
        entry: Mapping[str, object],
        layout: Optional[Layout],
    ) -> None:
        if key not in ARCHES:
            self.add(alias, key, None, f"unknown arch (known: {', '.join(ARCHES)})")
            return
        if layout is not None and key not in layout.arches:
            published = ", ".join(layout.arches)
            self.add(
                alias, key, None, f"{layout.title} publishes no {key} image (only {published})"
            )
        if not isinstance(image, dict):
            self.add(alias, key, None, "must be an object with url and sha256 or sha512")
            return
        for k in image:
            if k not in ARCH_FIELDS:
                self.add(alias, key, k, f"unknown field {k!r}")
        alias_snapshot = entry.get("snapshot") if isinstance(entry.get("snapshot"), str) else ""
        snapshot = str(alias_snapshot or "")
        if "snapshot" in image:
            own = image["snapshot"]
            if self.snapshot(alias, key, own, layout):
                if own == alias_snapshot:
                    self.add(
                        alias,
                        key,
                        "snapshot",
                        f"snapshot {alias_snapshot!r} is the alias's own; drop it",
                    )
                snapshot = str(own)
        stem = cache_stem(alias, snapshot, key)
        if not _SAFE_STEM.fullmatch(stem):
            self.add(alias, key, "snapshot", f"cache name {stem!r} is not a safe file name")
        self.url(alias, key, image.get("url"), layout, entry, snapshot)
        pinned = [name for name in ALGORITHMS if name in image]
        if not pinned:
            self.add(alias, key, None, "needs a sha256 or sha512 digest (or both)")
        for name in pinned:
            if not is_digest(image[name], name):
                self.add(
                    alias,
                    key,
                    name,
                    f"{name} must be {HEX_DIGITS[name]} lowercase hex digits, got {image[name]!r}",
                )
        if "provenance" in image:
            self.provenance(alias, key, image["provenance"])
        elif self.require_provenance:
            self.add(
                alias,
                key,
                "provenance",
                "no provenance record (the checksum file or public record its digest was "
                "read from)",
            )

    def url(
        self,
        alias: str,
        arch: str,
        url: object,
        layout: Optional[Layout],
        entry: Mapping[str, object],
        snapshot: str,
    ) -> None:
        def say(message: str) -> None:
            self.add(alias, arch, "url", message)

        if not isinstance(url, str) or not url:
            say("'url' must be a non-empty string")
            return
        count = len(self.problems)
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            say(f"url {url!r} is not a URL")
            return
        if self.embedded:
            if parts.scheme != "https" or not host:
                say(f"url {url!r} must be https://host/...")
        elif parts.scheme not in _USER_SCHEMES or (parts.scheme != "file" and not host):
            say(f"url {url!r} must be https://host/..., http://host/... or file:///path")
        if self.embedded or layout is not None:
            moving = moving_segments(layout, parts.path)
            if moving:
                say(f"url {url!r} goes through the moving pointer /{moving[0]}/")
        if not parts.path.split("/")[-1]:
            say(f"url {url!r} names a directory, not a file")
        if layout is None or arch not in layout.arches:
            return
        m = layout.match(url)
        if m is None:
            say(
                f"url {url!r} does not have the shape of {layout.title} image URLs ({layout.shape})"
            )
            return
        got = layout.url_snapshot(m)
        if snapshot and got != snapshot:
            say(f"url {url!r} is not inside the snapshot {snapshot!r} (it is {got!r}'s)")
        if m.group("arch") != layout.arches[arch]:
            say(f"url {url!r} is the {m.group('arch')} image, not {layout.arches[arch]} ({arch})")
        for field in ("version", "codename"):
            value = entry.get(field)
            if field in m.re.groupindex and value and m.group(field) != value:
                say(f"url {url!r} is {field} {m.group(field)!r}, not {value!r}")
        ctx = Context(
            "",
            str(entry.get("version") or ""),
            m.groupdict().get("codename") or "",
            m.group("root"),
        )
        directory = layout.image_dir(ctx, got, arch)
        if len(self.problems) == count and directory != dirname(url):
            say(f"url {url!r} is not where {layout.title} keeps it ({directory})")

    def provenance(self, alias: str, arch: str, record: object) -> None:
        for field, message in provenance_problems(record):
            where = f"provenance.{field}" if field else "provenance"
            self.add(alias, arch, where, f"provenance: {message}")
        if not isinstance(record, dict):
            return
        name = record.get("record")
        if isinstance(name, str) and name.strip():
            why = record_problem(name, self.schemes)
            if why:
                self.add(alias, arch, "provenance.record", f"provenance: {why}")
        fmt = record.get("format")
        if isinstance(fmt, str) and fmt and fmt not in PROVENANCE_FORMATS:
            self.add(
                alias,
                arch,
                "provenance.format",
                f"provenance: format {fmt!r} is not a known record format "
                f"(known: {', '.join(PROVENANCE_FORMATS)})",
            )
        if self.require_provenance and not record.get("date"):
            self.add(
                alias,
                arch,
                "provenance.date",
                "provenance: needs a 'date' (YYYY-MM-DD, when the record was read)",
            )


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _url_of(image: object, layout: Layout) -> bool:
    return isinstance(image, dict) and upstream_of(layout, image.get("url"))


def check_problems(
    doc: object, *, embedded: bool = True, require_provenance: bool = False
) -> List[Problem]:
    """Every problem with a decoded catalog; empty when it passes. ``embedded`` picks the
    package catalog's rules (else a user catalog's, see the module docstring);
    ``require_provenance`` makes a pin without a provenance record a problem.

    >>> check_problems({"x": {"distro": "arch"}})[0].field
    'distro'
    >>> check_problems({"x": {"distro": "mine", "version": "1", "snapshot": "any thing",
    ...     "arch": {"arm64": {"url": "file:///srv/x.qcow2", "sha256": "ab" * 32}}}},
    ...     embedded=False)[0].message
    "cache name 'x-any thing-arm64' is not a safe file name"
    """
    if not isinstance(doc, dict):
        return [
            Problem(
                None,
                None,
                None,
                f"top level must be an object of aliases, got {type(doc).__name__}",
            )
        ]
    if not doc:
        return [Problem(None, None, None, "no aliases")]
    checker = _Checker(embedded, require_provenance)
    seen: Dict[str, str] = {}
    for alias, entry in doc.items():
        checker.alias(alias, entry)
        arch = entry.get("arch") if isinstance(entry, dict) else None
        for key, image in arch.items() if isinstance(arch, Mapping) else ():
            url = image.get("url") if isinstance(image, dict) else None
            if isinstance(url, str):
                if url in seen:
                    checker.add(alias, key, "url", f"same url as {seen[url]}")
                seen.setdefault(url, f"alias {alias!r} arch {key!r}")
    if not checker.problems:
        try:
            parse_catalog(doc, embedded=embedded)  # whatever the runtime would still refuse
        except CatalogError as exc:
            checker.add(None, None, None, str(exc))
    return checker.problems


def check_document(
    doc: object, *, embedded: bool = True, require_provenance: bool = False
) -> List[str]:
    """Every problem with a decoded catalog, one line each; empty when it passes (see
    :func:`check_problems`).

    >>> check_document({"x": {"distro": "arch"}})[0][:34]
    "alias 'x': unknown distro 'arch' ("
    """
    return [
        str(p)
        for p in check_problems(doc, embedded=embedded, require_provenance=require_provenance)
    ]
