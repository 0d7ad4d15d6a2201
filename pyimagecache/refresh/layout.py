"""What every family's resolver shares: one description of an upstream layout.

A family (``refresh/<family>.py``) is a :class:`Layout`: its default upstream root, its snapshot
naming rule, ONE regular expression for the URL of a pinned image, the arches it publishes
(with upstream's spelling), and three small functions: where the snapshots are listed
(:meth:`Layout.candidates`), which directory holds a snapshot's image for an arch
(:meth:`Layout.image_dir`) and which checksum file publishes its digest
(:meth:`Layout.sums_source`). Everything else is here or in :mod:`.resolve`, once: finding an
image in a directory listing (the URL regex picks it out, so ``latest`` names, other variants
and other arches in the same directory never match), checking that the checksum file and
signature are listed, the walk over snapshots, and ``catalog check``'s URL rules.

The regex has named groups: ``root`` (everything above the release's tree; a mirror's root
works the same, which is how a fallback finds newer snapshots on the mirror a catalog uses),
``arch`` (upstream's spelling), ``snapshot`` unless :meth:`Layout.url_snapshot` assembles it,
``version``/``codename`` where the URL spells them, and whatever variant the family names
(Debian's ``genericcloud``, Alpine's ``nocloud``/``uefi``...). Variant groups listed in
:attr:`Layout.keep` are kept from the pinned URL on a bump (:attr:`Context.hints`), so a pin
never changes variant by refreshing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Pattern,
    Tuple,
    Union,
)

from .pins import Skip
from .snapshots import SnapshotRule, newest_first

if TYPE_CHECKING:
    from .listing import Listing
    from .upstream import Upstream

ARM64_REQUIRED, ARM64_OPTIONAL, ARM64_NONE = "required", "optional", "none"
#: How the RPM families (Fedora, CentOS Stream, AlmaLinux, Rocky...) spell the arches.
RPM_ARCHES = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class SumsSource:
    """Where upstream publishes an image's digest, and how."""

    url: str
    fmt: str  # a format of :mod:`.sums`
    algorithm: str = "sha256"
    #: A detached signature of the checksum file ("" when upstream publishes none).
    signature: str = ""
    #: Upstream clear-signs the checksum file itself (Fedora's CHECKSUM).
    clearsigned: bool = False

    @property
    def signed(self) -> bool:
        """Upstream signs it: with a keyring, a missing signature is then a failure."""
        return bool(self.signature) or self.clearsigned


@dataclass(frozen=True)
class Located:
    """One snapshot's image for one arch, found upstream: its URL and its checksum source."""

    url: str
    sums: SumsSource


@dataclass(frozen=True)
class Candidates:
    """Snapshot names, newest first (lazily: a walk stops early), and where they come from."""

    where: str
    names: Iterable[str]


@dataclass(frozen=True)
class Context:
    """One alias as a resolver sees it."""

    alias: str
    version: str
    codename: str
    root: str
    #: arch -> the variant groups of its pinned URL (see :attr:`Layout.keep`).
    hints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def basename(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def dirname(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/"


class Layout:
    """One family's upstream layout (see the module docstring). Subclasses set the class
    attributes and implement :meth:`candidates`, :meth:`image_dir` and :meth:`sums_source`."""

    distro: str = ""
    title: str = ""
    #: The default upstream root (``catalog refresh --root DISTRO=URL`` replaces it).
    root: str = ""
    rule: SnapshotRule
    url: Pattern[str]
    #: Catalog arch key -> upstream's spelling in the URL's ``arch`` group.
    arches: Mapping[str, str] = {}
    #: arm64 is required (every release publishes it with amd64), optional, or none upstream.
    arm64: str = ARM64_REQUIRED
    #: Every arch has its own build id (Oracle Linux, openSUSE): resolved one by one.
    per_arch: bool = False
    #: A moving directory pins must go through, for lack of any other https location.
    pointer: str = ""
    #: Moving pointers of this family beyond :data:`MOVING` (Ubuntu's ``release``).
    moving: FrozenSet[str] = frozenset()
    #: Variant groups of the URL a bump keeps from the pin, and their defaults for a new pin.
    keep: Tuple[str, ...] = ()
    #: Entry fields the layout needs besides ``version``.
    needs_codename: bool = False
    #: Snapshots live in a directory per minor release, ``<root><M.m>/`` (AlmaLinux, Rocky).
    minor_dirs: bool = False
    #: The checksum file, beside the image: a name (``SHA512SUMS``) or a template of
    #: ``{image}`` (the image's file name), ``{snapshot}`` and ``{arch}`` (upstream's spelling).
    sums_name: str = ""
    sums_format: str = "coreutils"
    sums_algorithm: str = "sha256"
    #: Appended to the checksum file's URL: its detached signature ("": none published).
    signature: str = ""
    #: Upstream clear-signs the checksum file.
    clearsigned: bool = False
    #: Upstream publishes no signature of its checksum files (a family is either this or has
    #: :attr:`signature`/:attr:`clearsigned`): ``--require-signatures`` refuses it.
    unsigned: bool = False
    #: For messages and the README: a pinned image's URL, spelled out.
    shape: str = ""
    #: For the README and messages: what the checksum file is and how it is signed.
    sums_note: str = ""

    @property
    def signed(self) -> bool:
        """Upstream signs its checksum files: a snapshot without a good signature is skipped."""
        return bool(self.signature) or self.clearsigned

    # -- the URL of a pinned image ----------------------------------------------------------

    def match(self, url: str) -> Optional[re.Match[str]]:
        return self.url.fullmatch(url)

    def url_snapshot(self, m: re.Match[str]) -> str:
        """The snapshot a matched URL belongs to."""
        return m.group("snapshot")

    def default(self, arch: str, group: str) -> str:
        """A variant group's value for a new pin (no pinned URL to keep it from)."""
        return ""

    def hint(self, ctx: Context, arch: str, group: str) -> str:
        got = ctx.hints.get(arch, {}).get(group)
        return self.default(arch, group) if got is None else got

    def hints_of(self, url: str) -> Dict[str, str]:
        """The :attr:`keep` groups of a pinned URL (empty when it is not this layout's)."""
        m = self.match(url)
        return {g: m.group(g) or "" for g in self.keep} if m else {}

    # -- what a family implements or declares ----------------------------------------------

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        """The directory URL holding ``snapshot``'s image for ``arch``."""
        raise NotImplementedError

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        """Snapshot names upstream offers for ``arch``, newest first: by default the images
        in the one directory every snapshot shares (or one per minor release)."""
        if self.minor_dirs:
            return self.minor_candidates(up, ctx, arch)
        return self.file_candidates(up, ctx, self.image_dir(ctx, "", arch), arch)

    def sums_source(self, ctx: Context, image_url: str, arch: str) -> SumsSource:
        """The checksum file publishing ``image_url``'s digest (from :attr:`sums_name`)."""
        m = self.match(image_url)
        name = self.sums_name.format(
            image=basename(image_url),
            snapshot=self.url_snapshot(m) if m else "",
            arch=self.arches.get(arch, arch),
        )
        url = dirname(image_url) + name
        return SumsSource(
            url,
            self.sums_format,
            self.sums_algorithm,
            url + self.signature if self.signature else "",
            self.clearsigned,
        )

    # -- shared machinery -------------------------------------------------------------------

    def images_in(self, listing: Listing, ctx: Context, arch: str) -> Dict[str, str]:
        """snapshot -> image URL of every file in ``listing`` that is this layout's image for
        ``arch`` in the pinned variant; decoys (other variants, arches, ``latest`` names,
        checksum sidecars) do not match the URL regex or the kept groups."""
        found: Dict[str, str] = {}
        spelling = self.arches.get(arch)
        for name in listing.files:
            url = listing.url + name
            m = self.match(url)
            if m is None or m.group("arch") != spelling:
                continue
            if any((m.group(g) or "") != self.hint(ctx, arch, g) for g in self.keep):
                continue
            found[self.url_snapshot(m)] = url
        return found

    def dir_candidates(self, up: Upstream, url: str, prefix: str = "") -> Candidates:
        """Snapshot directories (``<prefix><snapshot>/``) listed at ``url``."""
        dirs = [d[len(prefix) :] for d in up.listing(url).dirs if d.startswith(prefix)]
        return Candidates(url, newest_first(dirs, self.rule))

    def file_candidates(self, up: Upstream, ctx: Context, url: str, arch: str) -> Candidates:
        """Snapshots of ``arch``'s images in the one directory at ``url``."""
        return Candidates(url, newest_first(self.images_in(up.listing(url), ctx, arch), self.rule))

    def minor_candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        """Snapshots in a directory per minor release (``<root><M.m>/``, AlmaLinux, Rocky):
        the newest minors of the major first, each directory listed only when the walk gets
        there. :meth:`image_dir` is given ``"<M.m>-"`` for a minor's directory."""
        shape = re.compile(rf"{re.escape(ctx.version)}\.(\d+)")
        minors = sorted(
            (
                (int(m.group(1)), d)
                for d in up.listing(ctx.root).dirs
                for m in [shape.fullmatch(d)]
                if m
            ),
            reverse=True,
        )

        def names() -> Iterator[str]:
            for _, minor in minors:
                listing = up.listing_or_none(self.image_dir(ctx, minor + "-", arch))
                if listing is not None:
                    yield from newest_first(self.images_in(listing, ctx, arch), self.rule)

        return Candidates(ctx.root, names())

    def locate(self, up: Upstream, ctx: Context, snapshot: str, arch: str) -> Union[Located, str]:
        """``snapshot``'s image for ``arch`` and its checksum source, or why it is incomplete
        (no image, no checksum file) or refused (:class:`~.pins.Skip`: signatures are checked
        and the family signs, but no signature is listed beside the checksum file)."""
        directory = self.image_dir(ctx, snapshot, arch)
        listing = up.listing_or_none(directory)
        if listing is None:
            return f"no directory {directory}"
        url = self.images_in(listing, ctx, arch).get(snapshot)
        if url is None:
            return f"no {self.arches.get(arch, arch)} image in {directory}"
        sums = self.sums_source(ctx, url, arch)
        missing = [
            basename(u)
            for u in [sums.url]
            if dirname(u) == listing.url and basename(u) not in listing.files
        ]
        if missing:
            return f"no {', '.join(missing)}"
        signature = sums.signature
        if (
            up.verifying
            and signature
            and dirname(signature) == listing.url
            and basename(signature) not in listing.files
        ):
            return Skip(
                f"no {basename(signature)} beside {basename(sums.url)} in {listing.url}; "
                "upstream signs it, so it is not trusted unsigned"
            )
        return Located(url, sums)


#: Directory names that upstreams re-point at each build, whatever the family.
MOVING = frozenset(
    {"latest", "current", "daily", "latest-stable", "rawhide", "development", "stable"}
    | {"opensuse-current", "opensuse-stable", "tumbleweed"}
)
#: A file name with a ``latest`` component (CentOS ``-latest.x86_64``, Rocky ``.latest.``).
MOVING_FILE = re.compile(r"(?:^|[-._])latest(?:[-._]|$)", re.IGNORECASE)


def moving_segments(layout: Optional[Layout], url_path: str) -> Tuple[str, ...]:
    """The moving pointers ``url_path`` goes through (case-insensitive), except the one
    :attr:`Layout.pointer` the family has to use; the file name counts too."""
    segments = url_path.split("/")
    moving = MOVING | (layout.moving if layout else frozenset())
    allowed = layout.pointer.lower() if layout else ""
    found = [s for s in segments[:-1] if s.lower() in moving and s.lower() != allowed]
    if MOVING_FILE.search(segments[-1]):
        found.append(segments[-1])
    return tuple(found)
