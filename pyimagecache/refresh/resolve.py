"""Resolve an alias with its family's :class:`~.layout.Layout`: one engine for every family.

An alias's arches are resolved in groups that share a snapshot: all together for most
families (a bump needs every listed arch in one snapshot), one by one where upstream gives
each arch its own build id (Oracle Linux, openSUSE), and an arch pinned to a snapshot of its
own (Debian 11's ppc64el, Fedora 44's riscv64) on its own, so a lagging arch neither holds the
others back nor is dropped. Digests come from upstream's checksum files only: no image is
downloaded to be hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ..errors import RefreshError
from ..hashing import Expected
from .layout import Context, Layout, basename
from .pins import ArchPin, Pin, Skip, walk
from .upstream import Upstream


@dataclass(frozen=True)
class Group:
    """Arches resolved together, the snapshot they are pinned to ("" for none) and their
    pinned digests (compared again where the pin goes through a moving pointer)."""

    arches: Tuple[str, ...]
    current: str
    pinned: Mapping[str, Expected]


@dataclass(frozen=True)
class Bump:
    """An alias's new pins: its snapshot and every arch whose pin moved (the others keep
    theirs); ``ArchPin.snapshot`` is each arch's own."""

    snapshot: str
    arch: Dict[str, ArchPin]


def groups(
    layout: Layout, pinned: Mapping[str, Tuple[str, Expected]], alias_snapshot: str
) -> List[Group]:
    """``pinned`` (arch -> (effective snapshot, digests)) in resolution groups, the alias's
    own snapshot's group first."""
    by_snapshot: Dict[Tuple[str, ...], List[str]] = {}
    for arch, (snapshot, _) in pinned.items():
        by_snapshot.setdefault((arch,) if layout.per_arch else (snapshot,), []).append(arch)
    out = [
        Group(tuple(arches), pinned[arches[0]][0], {a: pinned[a][1] for a in arches})
        for arches in by_snapshot.values()
    ]
    out.sort(key=lambda g: (g.current != alias_snapshot, "amd64" not in g.arches))
    return out


def locate_pin(
    layout: Layout, up: Upstream, ctx: Context, snapshot: str, arch: str
) -> Union[ArchPin, str]:
    """``snapshot``'s pin for ``arch`` from upstream's checksum file, or why it is incomplete
    (a :class:`~.pins.Skip` when its signature is missing or bad)."""
    found = layout.locate(up, ctx, snapshot, arch)
    if isinstance(found, str):
        return found
    name = basename(found.url)
    checked = up.checked(found.sums, name, family=layout.distro, version=ctx.version)
    if isinstance(checked, str):
        return Skip(checked)
    sums = checked.sums
    expected = sums.digests.get(name)
    if not expected:
        return f"{basename(sums.url)} has no line for {name}"
    return ArchPin(
        found.url,
        expected,
        snapshot,
        sums.url,
        found.sums.fmt,
        checked.signature,
        checked.key,
    )


def resolve_group(
    layout: Layout,
    up: Upstream,
    ctx: Context,
    group: Group,
    *,
    label: str,
    keep_when_exhausted: bool = False,
) -> Optional[Pin]:
    """The newest complete snapshot of ``group`` newer than its pin, or None to keep it.
    A family that signs nothing is refused outright when signatures are required."""
    if up.policy.require and not layout.signed:
        raise RefreshError(
            f"{label}: {layout.title} publishes no signature for its checksum files "
            f"({layout.sums_note}), and signatures are required (--require-signatures)"
        )

    candidates = layout.candidates(up, ctx, group.arches[0])

    def try_snapshot(snapshot: str) -> Union[Pin, str]:
        pins: Dict[str, ArchPin] = {}
        for arch in group.arches:
            got = locate_pin(layout, up, ctx, snapshot, arch)
            if isinstance(got, str):
                return got
            pins[arch] = got
        return Pin(snapshot, pins)

    pin = walk(
        label,
        candidates.names,
        group.current or None,
        layout.rule,
        try_snapshot,
        up.log,
        candidates.where,
        keep_when_exhausted=keep_when_exhausted,
    )
    if pin is None and layout.pointer and group.current:
        recheck(layout, up, ctx, group, label)
    return pin


def recheck(layout: Layout, up: Upstream, ctx: Context, group: Group, label: str) -> None:
    """A pin through a moving pointer (FreeBSD's ``Latest/``) must still be what upstream
    lists there: a re-published image under the same snapshot would be a stale cache hit
    (cache names carry the snapshot), so it is an error to fix by hand, not a silent bump."""
    for arch in group.arches:
        got = locate_pin(layout, up, ctx, group.current, arch)
        if isinstance(got, str):
            up.log(f"note {label}: pinned {group.current} {arch} is no longer listed ({got})")
        elif got.expected.agrees_with(group.pinned[arch]):
            raise RefreshError(
                f"{label}: {got.url} now has another digest than the pin in {got.source} "
                f"(upstream re-published {group.current} under /{layout.pointer}/); "
                "check the release announcement and re-pin by hand"
            )


def resolve_alias(
    layout: Layout,
    up: Upstream,
    ctx: Context,
    pinned: Mapping[str, Tuple[str, Expected]],
    alias_snapshot: str,
) -> Optional[Bump]:
    """Every group of an alias resolved; None when no pin moved."""
    moved: Dict[str, ArchPin] = {}
    new_snapshot = alias_snapshot
    for index, group in enumerate(groups(layout, pinned, alias_snapshot)):
        main = index == 0
        label = ctx.alias if main else f"{ctx.alias} {'+'.join(group.arches)}"
        pin = resolve_group(layout, up, ctx, group, label=label, keep_when_exhausted=not main)
        if pin is None:
            continue
        if main:
            new_snapshot = pin.snapshot
        else:
            up.log(f"resolved {label} -> {pin.snapshot} (was {group.current})")
        moved.update(pin.arch)
    return Bump(new_snapshot, moved) if moved else None


def context(
    layout: Layout,
    alias: str,
    version: str,
    codename: str,
    root: str,
    urls: Mapping[str, str],
) -> Context:
    """The resolver's view of an alias: the variant hints of its pinned URLs, and a codename
    read from them when the catalog names none."""
    if not version:
        raise RefreshError(f"{alias}: a {layout.title} alias needs 'version'")
    if not codename:
        for url in urls.values():
            m = layout.match(url)
            if m is not None and "codename" in m.re.groupindex:
                codename = m.group("codename")
                break
    if layout.needs_codename and not codename:
        raise RefreshError(f"{alias}: a {layout.title} alias needs 'codename' (its directory)")
    unknown = sorted(set(urls) - set(layout.arches))
    if unknown:
        raise RefreshError(
            f"{alias}: {layout.title} publishes no {unknown[0]} image "
            f"(it has: {', '.join(layout.arches)})"
        )
    hints = {arch: layout.hints_of(url) for arch, url in urls.items()}
    return Context(alias, version, codename, root, hints)
