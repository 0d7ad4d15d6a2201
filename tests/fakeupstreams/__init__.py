"""Every family's upstream layout, reproduced on a :class:`FakeUpstream` (from layouts.md).

``publish(fake, distro, path)`` puts one image at ``path`` (below ``/<distro>/``, the family's
stand-in root) the way upstream has it: the checksum file(s) covering it in the family's
format and signature scheme, and decoys around it (moving pointers such as ``latest/`` or
``-latest.`` names, other variants and arches in the same directory, other formats, sidecars).
``path_of(distro, ...)`` spells a new snapshot's image path; ``seed(fake)`` serves the
embedded catalog's pins and returns the catalog document pointing at them.

The layouts here are written from layouts.md independently of ``pyimagecache/refresh``, so a
resolver that misreads a layout fails against them.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any, Callable, Dict, List

from fakeupstream import FakeUpstream, Sums

#: The real roots, to translate the embedded catalog's URLs into the fake's.
REAL_ROOTS = {
    "debian": "https://cloud.debian.org/images/cloud/",
    "ubuntu": "https://cloud-images.ubuntu.com/releases/",
    "fedora": "https://download.fedoraproject.org/pub/",
    "centos-stream": "https://cloud.centos.org/centos/",
    "almalinux": "https://repo.almalinux.org/almalinux/",
    "rocky": "https://dl.rockylinux.org/pub/rocky/",
    "oraclelinux": "https://yum.oracle.com/templates/OracleLinux/",
    "opensuse-leap": "https://download.opensuse.org/distribution/leap/",
    "alpine": "https://dl-cdn.alpinelinux.org/alpine/",
    "archlinux": "https://geo.mirror.pkgbuild.com/images/",
    "amazonlinux": "https://cdn.amazonlinux.com/",
    "freebsd": "https://download.freebsd.org/releases/VM-IMAGES/",
    "almalinux-kitten": "https://kitten.repo.almalinux.org/",
    "opensuse-tumbleweed": "https://download.opensuse.org/",
    "cirros": "https://download.cirros-cloud.net/",
}
#: Upstream arch spellings (Debian/Ubuntu, the RPM families, FreeBSD's file names).
DEB = {
    "amd64": "amd64",
    "arm64": "arm64",
    "ppc64le": "ppc64el",
    "riscv64": "riscv64",
    "s390x": "s390x",
}
RPM = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
BSD = {
    "amd64": ("amd64", "amd64"),
    "arm64": ("aarch64", "arm64-aarch64"),
    "riscv64": ("riscv64", "riscv-riscv64"),
}
FEDORA_TREES = {
    "amd64": "fedora/linux/releases",
    "arm64": "fedora/linux/releases",
    "ppc64le": "fedora-secondary/releases",
    "s390x": "fedora-secondary/releases",
    "riscv64": "alt/risc-v/release",
}


def _dir(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/"


def _name(path: str) -> str:
    return path.rsplit("/", 1)[1]


def _moved(path: str, old: str, new: str) -> str:
    """``path`` with one directory component replaced (a moving pointer's copy)."""
    assert f"/{old}/" in path, (path, old)
    return path.replace(f"/{old}/", f"/{new}/", 1)


# -- one function per family: (decoys, checksum files) around an image ------------------------

Around = Callable[[FakeUpstream, str], List[str]]


def _debian(fake: FakeUpstream, p: str) -> List[str]:
    codename, snapshot = p.split("/")[2:4]
    n = _name(p)
    decoys = [_dir(p) + n.replace(".qcow2", ext) for ext in (".raw", ".tar.xz", ".json")]
    decoys += [_dir(p) + re.sub(r"-generic(cloud)?-", "-nocloud-", n)]
    if "-genericcloud-" in n:
        decoys.append(_dir(p) + n.replace("-genericcloud-", "-generic-"))
    decoys += [f"/debian/{codename}/latest/" + n.replace(f"-{snapshot}", "")]
    decoys += [
        f"/debian/{codename}/daily/20991231-9999/" + n.replace(snapshot, "daily-20991231-9999")
    ]
    fake.add_sums(Sums(_dir(p) + "SHA512SUMS", "coreutils", "sha512", dir_wide=True))
    return decoys


def _ubuntu(fake: FakeUpstream, p: str) -> List[str]:
    _, _, codename, snapshot, n = p.split("/")
    version = n.split("-")[1]
    fake.styles["/ubuntu/"] = "pre"
    fake.redirects[f"/ubuntu/{version}/"] = f"/ubuntu/{codename}/"
    decoys = [_dir(p) + re.sub(r"cloudimg-[a-z0-9]+\.img", "cloudimg-armhf.img", n)]
    decoys += [p.replace(".img", "-disk-kvm.img"), p.replace(".img", ".squashfs")]
    decoys += [_moved(p, snapshot, "release"), _moved(p, snapshot, "current")]
    fake.set_file(p.replace(".img", ".manifest"), b"pkg 1\n")
    fake.add_sums(Sums(_dir(p) + "SHA256SUMS", "coreutils-binary", signature=".gpg", dir_wide=True))
    for moving in ("release", "current"):
        fake.add_sums(
            Sums(
                _moved(_dir(p), snapshot, moving) + "SHA256SUMS",
                "coreutils-binary",
                signature=".gpg",
                dir_wide=True,
            )
        )
    return decoys


def _fedora(fake: FakeUpstream, p: str) -> List[str]:
    m = re.fullmatch(r"Fedora-Cloud-Base-Generic-(\d+)-([\d.]+)\.(\w+)\.qcow2", _name(p))
    assert m, p
    version, compose, arch = m.groups()
    decoys = [
        _dir(p) + f"Fedora-Cloud-Base-Generic-{version}-{compose}.{arch}.raw.xz",
        _dir(p) + f"Fedora-Cloud-Base-AmazonEC2-{version}-{compose}.{arch}.raw.xz",
        _dir(p) + f"Fedora-Cloud-Base-UEFI-UKI-{version}-{compose}.{arch}.qcow2",
    ]
    checksum = _dir(p) + f"Fedora-Cloud-{version}-{compose}-{arch}-CHECKSUM"
    fake.add_sums(Sums(checksum, "bsd", signature="clear", dir_wide=True))
    return decoys


def _centos(fake: FakeUpstream, p: str) -> List[str]:
    n = _name(p)
    version, arch = n.split("-")[3], n.split(".")[-2]
    latest = _dir(p) + f"CentOS-Stream-GenericCloud-{version}-latest.{arch}.qcow2"
    decoys = [
        latest,
        p.replace("GenericCloud-", f"GenericCloud-{arch}-"),
        p.replace("GenericCloud", "ec2").replace(".qcow2", ".raw.xz"),
    ]
    for image in (p, latest):
        fake.add_sums(Sums(image + ".SHA256SUM", "bsd", members=(image,)))
    fake.add_sums(Sums(_dir(p) + "CHECKSUM", "bsd", dir_wide=True))
    return decoys


def _almalinux(fake: FakeUpstream, p: str) -> List[str]:
    minor, arch = p.split("/")[2], p.split("/")[4]
    version = minor.split(".")[0]
    decoys = [
        _dir(p) + f"AlmaLinux-{version}-GenericCloud-latest.{arch}.qcow2",
        p.replace("GenericCloud-", "GenericCloud-ext4-"),
        p.replace("GenericCloud", "OpenNebula"),
        _moved(p, minor, version),
    ]
    fake.add_sums(Sums(_dir(p) + "CHECKSUM", "coreutils", signature=".asc", dir_wide=True))
    fake.add_sums(
        Sums(
            _moved(_dir(p), minor, version) + "CHECKSUM",
            "coreutils",
            signature=".asc",
            dir_wide=True,
        )
    )
    return decoys


def _rocky(fake: FakeUpstream, p: str) -> List[str]:
    minor, arch = p.split("/")[2], p.split("/")[4]
    version = minor.split(".")[0]
    latest = _dir(p) + f"Rocky-{version}-GenericCloud-Base.latest.{arch}.qcow2"
    decoys = [
        latest,
        p.replace("GenericCloud-Base", "GenericCloud-LVM"),
        p.replace("GenericCloud-Base", "EC2-Base"),
        _moved(p, minor, version),
    ]
    if version == "8":  # EL8's older pointer name, without -Base (lima's rocky-8 template)
        decoys.append(_dir(p) + f"Rocky-8-GenericCloud.latest.{arch}.qcow2")
    for image in (p, latest):
        fake.add_sums(Sums(image + ".CHECKSUM", "bsd-repeated", members=(image,)))
    fake.add_sums(Sums(_dir(p) + "CHECKSUM", "bsd", dir_wide=True))
    return decoys


def _almalinux_kitten(fake: FakeUpstream, p: str) -> List[str]:
    fake.styles["/almalinux-kitten/"] = "nginx"
    n = _name(p)
    version, arch = p.split("/")[2].split("-")[0], n.rsplit(".", 2)[1]
    decoys = [
        _dir(p) + f"AlmaLinux-Kitten-GenericCloud-{version}-latest.{arch}.qcow2",
        p.replace("GenericCloud", "OpenNebula"),
    ]
    if arch == "x86_64":  # a micro-architecture level build beside it
        decoys.append(p.replace(".x86_64.qcow2", ".x86_64_v2.qcow2"))
    fake.add_sums(Sums(_dir(p) + "CHECKSUM", "coreutils", signature=".asc", dir_wide=True))
    return decoys


def _oraclelinux(fake: FakeUpstream, p: str) -> List[str]:
    _, _, major, update, arch, n = p.split("/")
    suffix = "" if arch == "x86_64" else f"_{arch}-cloud"
    manifest = f"/oraclelinux/ol{major[2:]}{suffix}-template.json"
    base_url = f"/templates/OracleLinux/{major}/{update}/{arch}"
    fake.sums.pop(manifest, None)  # the manifest names the newest build only
    fake.add_sums(Sums(manifest, "oracle", members=(p,), base_url=base_url))
    return [p.replace(".qcow2", ".ova")]


def _opensuse(fake: FakeUpstream, p: str) -> List[str]:
    undated = re.sub(r"-Build[\d.]+", "", p)
    decoys = [undated, p.replace("-Cloud-", "-kvm-and-xen-")]
    old_style = _name(p).startswith("openSUSE-")
    for image in (p, undated):
        fake.add_sums(
            Sums(
                image + ".sha256",
                "coreutils-1" if old_style else "coreutils",
                signature=".asc",
                members=(image,),
            )
        )
    fake.set_file(p.replace(".qcow2", ".packages"), b"kernel-default 6.4\n")
    return decoys


def _opensuse_tumbleweed(fake: FakeUpstream, p: str) -> List[str]:
    m = re.fullmatch(
        r"openSUSE-Tumbleweed-Minimal-VM\.(\w+)-([\d.]+)-Cloud-Snapshot(\d+)\.qcow2", _name(p)
    )
    assert m, p
    arch, release, snapshot = m.groups()
    undated = _dir(p) + f"openSUSE-Tumbleweed-Minimal-VM.{arch}-Cloud.qcow2"
    decoys = [
        undated,
        p.replace("-Cloud-", "-kvm-and-xen-"),
        p.replace("-Cloud-", "-VMware-").replace(".qcow2", ".vmdk"),
        _dir(p) + f"openSUSE-MicroOS.{arch}-16.0.0-OpenStack-Cloud-Snapshot{snapshot}.qcow2",
    ]
    for image in (p, undated, decoys[1]):
        fake.add_sums(Sums(image + ".sha256", "coreutils", signature=".asc", members=(image,)))
    fake.add_sums(Sums(_dir(p) + "SHA256SUMS", "coreutils", dir_wide=True))
    return decoys


def _cirros(fake: FakeUpstream, p: str) -> List[str]:
    release = p.split("/")[2]
    arch = _name(p)[len(f"cirros-{release}-") : -len("-disk.img")]
    decoys = [p.replace(f"-{arch}-", "-arm-")]
    decoys += [p.replace("-disk.img", ext) for ext in ("-rootfs.img.gz", "-lxc.tar.xz")]
    # a pre-release directory, newer by its digits: no release
    major, minor, patch = release.split(".")
    pre = f"{major}.{minor}.{int(patch) + 1}~pre1"
    decoys.append(p.replace(release, pre))
    fake.add_sums(Sums(_dir(p) + "SHA256SUMS", "coreutils", dir_wide=True))
    fake.add_sums(Sums(_dir(p) + "MD5SUMS", "coreutils", "md5", dir_wide=True))
    fake.add_sums(Sums(_dir(decoys[-1]) + "SHA256SUMS", "coreutils", dir_wide=True))
    return decoys


def _alpine(fake: FakeUpstream, p: str) -> List[str]:
    fake.styles["/alpine/"] = "nginx"
    n = _name(p)
    other = "generic" if n.startswith("nocloud_") else "nocloud"
    decoys = [_dir(p) + other + "_" + n.split("_", 1)[1], p.replace("-cloudinit-", "-tiny-")]
    if "-x86_64-" in n:
        decoys.append(p.replace("-uefi-", "-bios-"))
    decoys.append(_moved(p, p.split("/")[2], "latest-stable"))
    for image in (p, *decoys):
        fake.add_sums(Sums(image + ".sha512", "bare", "sha512", members=(image,)))
    return decoys


def _archlinux(fake: FakeUpstream, p: str) -> List[str]:
    snapshot = p.split("/")[2]
    undated = _dir(p) + "Arch-Linux-x86_64-cloudimg.qcow2"
    decoys = [undated, p.replace("-cloudimg-", "-basic-"), _moved(undated, snapshot, "latest")]
    for image in (p, undated, decoys[1]):
        fake.add_sums(Sums(image + ".SHA256", "coreutils", signature=".sig", members=(image,)))
    return decoys


def _amazonlinux(fake: FakeUpstream, p: str) -> List[str]:
    snapshot = p.split("/")[4]
    decoys = [p.replace("kernel-6.1-", "kernel-6.12-"), _moved(p, snapshot, "latest")]
    decoys.append(_moved(_dir(p), p.split("/")[5], "vmware") + _name(p).replace("kvm", "vmware"))
    fake.add_sums(Sums(_dir(p) + "SHA256SUMS", "coreutils", dir_wide=True))
    fake.add_sums(
        Sums(_moved(_dir(p), snapshot, "latest") + "SHA256SUMS", "coreutils", dir_wide=True)
    )
    return decoys


def _freebsd(fake: FakeUpstream, p: str) -> List[str]:
    fake.styles["/freebsd/"] = "nginx"
    decoys = [
        p.replace("-ufs.", "-zfs."),
        p.replace(".qcow2.xz", ".raw.xz"),
        p.replace("-BASIC-CLOUDINIT-", "-"),
        p.replace(".qcow2.xz", ".vmdk.xz"),
    ]
    fake.add_sums(Sums(_dir(p) + "CHECKSUM.SHA256", "bsd", dir_wide=True))
    fake.add_sums(Sums(_dir(p) + "CHECKSUM.SHA512", "bsd", "sha512", dir_wide=True))
    return decoys


AROUND: Dict[str, Around] = {
    "debian": _debian,
    "ubuntu": _ubuntu,
    "fedora": _fedora,
    "centos-stream": _centos,
    "almalinux": _almalinux,
    "rocky": _rocky,
    "oraclelinux": _oraclelinux,
    "opensuse-leap": _opensuse,
    "alpine": _alpine,
    "archlinux": _archlinux,
    "amazonlinux": _amazonlinux,
    "freebsd": _freebsd,
    "almalinux-kitten": _almalinux_kitten,
    "opensuse-tumbleweed": _opensuse_tumbleweed,
    "cirros": _cirros,
}


def publish(fake: FakeUpstream, distro: str, path: str, *, decoys: bool = True) -> str:
    """Put the image at ``path`` upstream, with its checksum files and decoys; the path."""
    assert path.startswith("/"), path  # "/<distro>/..." or a mirror's one-component prefix
    fake.add_image(path)
    touched = [path]
    for decoy in AROUND[distro](fake, path):
        if decoys and decoy not in fake.files:
            touched.append(fake.add_image(decoy))
    fake.refresh_sums(touched)
    return path


# -- image paths of new snapshots ---------------------------------------------------------------


def path_of(distro: str, arch: str, **kw: str) -> str:
    """The image path of a snapshot upstream would publish (``kw``: version, codename,
    snapshot, variant...)."""
    v, s = kw.get("version", ""), kw.get("snapshot", "")
    if distro == "debian":
        variant = kw.get("variant") or ("genericcloud" if arch in ("amd64", "arm64") else "generic")
        return f"/debian/{kw['codename']}/{s}/debian-{v}-{variant}-{DEB[arch]}-{s}.qcow2"
    if distro == "ubuntu":
        return f"/ubuntu/{kw['codename']}/{s}/ubuntu-{v}-server-cloudimg-{DEB[arch]}.img"
    if distro == "fedora":  # snapshot "<N>-<compose>"
        return (
            f"/fedora/{FEDORA_TREES[arch]}/{v}/Cloud/{RPM[arch]}/images/"
            f"Fedora-Cloud-Base-Generic-{s}.{RPM[arch]}.qcow2"
        )
    if distro == "centos-stream":
        return (
            f"/centos-stream/{v}-stream/{RPM[arch]}/images/"
            f"CentOS-Stream-GenericCloud-{v}-{s}.{RPM[arch]}.qcow2"
        )
    if distro == "almalinux":  # snapshot "<M.m>-<date>[.n]"
        return (
            f"/almalinux/{s.split('-')[0]}/cloud/{RPM[arch]}/images/"
            f"AlmaLinux-{v}-GenericCloud-{s}.{RPM[arch]}.qcow2"
        )
    if distro == "rocky":
        return (
            f"/rocky/{s.split('-')[0]}/images/{RPM[arch]}/"
            f"Rocky-{v}-GenericCloud-Base-{s}.{RPM[arch]}.qcow2"
        )
    if distro == "oraclelinux":  # snapshot "OL<M>U<m>-b<build>"
        m = re.fullmatch(r"OL(\d+)U(\d+)-b(\d+)", s)
        assert m, s
        cloud = "-cloud" if arch == "arm64" else ""
        major, update, build = m.groups()
        return (
            f"/oraclelinux/OL{major}/u{update}/{RPM[arch]}/"
            f"OL{major}U{update}_{RPM[arch]}-kvm{cloud}-b{build}.qcow2"
        )
    if distro == "opensuse-leap":  # snapshot "Build<n>.<m>"
        if v.startswith("15."):
            name = f"openSUSE-Leap-{v}-Minimal-VM.{RPM[arch]}-{v}.0-Cloud-{s}.qcow2"
        else:
            name = f"Leap-{v}-Minimal-VM.{RPM[arch]}-Cloud-{s}.qcow2"
        return f"/opensuse-leap/{v}/appliances/{name}"
    if distro == "alpine":  # snapshot "<X.Y.Z>-r<rev>"
        release, rev = s.split("-")
        vendor = kw.get("variant", "nocloud")
        return (
            f"/alpine/v{v}/releases/cloud/"
            f"{vendor}_alpine-{release}-{RPM[arch]}-uefi-cloudinit-{rev}.qcow2"
        )
    if distro == "archlinux":
        return f"/archlinux/v{s}/Arch-Linux-x86_64-cloudimg-{s}.qcow2"
    if distro == "amazonlinux":
        kvm, spelled = ("kvm", "x86_64") if arch == "amd64" else ("kvm-arm64", "arm64")
        return (
            f"/amazonlinux/al2023/os-images/{s}/{kvm}/"
            f"al2023-kvm-{s}-kernel-6.1-{spelled}.xfs.gpt.qcow2"
        )
    if distro == "freebsd":
        directory, spelled = BSD[arch]
        return (
            f"/freebsd/{v}-RELEASE/{directory}/Latest/"
            f"FreeBSD-{v}-RELEASE-{spelled}-BASIC-CLOUDINIT-ufs.qcow2.xz"
        )
    if distro == "almalinux-kitten":  # snapshot "<date>.<n>"
        return (
            f"/almalinux-kitten/{v}-kitten/cloud/{RPM[arch]}/images/"
            f"AlmaLinux-Kitten-GenericCloud-{v}-{s}.{RPM[arch]}.qcow2"
        )
    if distro == "opensuse-tumbleweed":  # snapshot "<date>"
        ports = "" if arch == "amd64" else f"ports/{RPM[arch]}/"
        return (
            f"/opensuse-tumbleweed/{ports}tumbleweed/appliances/"
            f"openSUSE-Tumbleweed-Minimal-VM.{RPM[arch]}-1.0.0-Cloud-Snapshot{s}.qcow2"
        )
    if distro == "cirros":  # snapshot "<X.Y.Z>"
        return f"/cirros/{s}/cirros-{s}-{RPM[arch]}-disk.img"
    raise ValueError(distro)


def publish_snapshot(
    fake: FakeUpstream, distro: str, arches: Any = ("amd64", "arm64"), **kw: str
) -> Dict[str, str]:
    """A new snapshot for ``arches``; arch -> image path."""
    return {arch: publish(fake, distro, path_of(distro, arch, **kw)) for arch in arches}


# -- the embedded catalog, served ---------------------------------------------------------------


def embedded() -> Dict[str, Any]:
    doc: Dict[str, Any] = json.loads(files("pyimagecache").joinpath("catalog.json").read_bytes())
    return doc


def to_fake(fake: FakeUpstream, distro: str, url: str) -> str:
    """The fake's path for a real pinned URL."""
    root = REAL_ROOTS[distro]
    assert url.startswith(root), (distro, url)
    return f"/{distro}/" + url[len(root) :]


def seed(fake: FakeUpstream, doc: Any = None, aliases: Any = None) -> Dict[str, Any]:
    """Serve every (or ``aliases``') pin of the embedded catalog (or ``doc``) from ``fake``
    and return the catalog document pinning them there (the fake's digests, same algorithms
    as the real pins)."""
    doc = embedded() if doc is None else doc
    out: Dict[str, Any] = {}
    for alias, entry in doc.items():
        if aliases is not None and alias not in aliases:
            continue
        for slot in entry["arch"].values():
            path = publish(fake, entry["distro"], to_fake(fake, entry["distro"], slot["url"]))
            slot["url"] = fake.url(path)
            for algorithm in ("sha256", "sha512"):
                if algorithm in slot:
                    slot[algorithm] = fake.sha(path, algorithm)
        out[alias] = entry
    return out
