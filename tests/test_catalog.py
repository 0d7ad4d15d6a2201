"""The catalog: embedded pins, validation of malformed catalogs, aliases(), arch mapping, naming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyimagecache
from pyimagecache import catalog
from pyimagecache.cachefiles import alias_names, sanitise, split_extension, url_names
from pyimagecache.errors import CatalogError, UnsupportedArchError

#: The research notes every pin was copied from (present in the development tree only).
REFERENCE = Path("/work/scratch/pins/pins.json")


def embedded_json() -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(files("pyimagecache").joinpath("catalog.json").read_text())
    return data


def good_entry(url: str = "https://example.org/img/disk.raw") -> Dict[str, Any]:
    return {
        "distro": "debian",
        "version": "12",
        "codename": "bookworm",
        "snapshot": "20260601-1",
        "bumped_at": "2026-06-10",
        "arch": {"amd64": {"url": url, "sha256": "ab" * 32}},
    }


def test_embedded_catalog_parses_and_matches_its_json() -> None:
    raw = embedded_json()
    parsed = catalog.load_catalog()
    assert sorted(parsed) == sorted(raw)
    for alias, entry in raw.items():
        info = parsed[alias]
        assert info.snapshot == entry["snapshot"]
        assert info.distro == entry["distro"] and info.version == entry["version"]
        assert info.codename == entry.get("codename", "")
        for arch, image in entry["arch"].items():
            record = image.get("provenance")
            assert info.arch[arch] == catalog.ArchImage(
                image["url"],
                image.get("sha256", ""),
                image.get("sha512", ""),
                image.get("snapshot", ""),
                catalog.parse_provenance(alias, record) if record is not None else None,
            )
            assert image["url"].startswith("https://")


def test_embedded_catalog_is_the_reference_pins() -> None:
    """Every URL and digest as the research notes have it; the one difference is Fedora 44
    riscv64's snapshot, spelled <release>-<compose> like the other arches' (its file name
    says 44-20260604.0)."""
    if not REFERENCE.exists():
        pytest.skip("reference pins not present outside the development tree")
    reference = json.loads(REFERENCE.read_text())
    reference["fedora-44"]["arch"]["riscv64"]["snapshot"] = "44-20260604.0"
    # aliases added later and provenance records are not in the notes
    pinned = {
        alias: {
            **entry,
            "arch": {
                arch: {k: v for k, v in image.items() if k != "provenance"}
                for arch, image in entry["arch"].items()
            },
        }
        for alias, entry in embedded_json().items()
        if alias in reference
    }
    assert pinned == reference


def test_aliases_sorted_and_cached() -> None:
    names = pyimagecache.aliases()
    assert names == sorted(embedded_json())
    assert catalog.load_catalog() is catalog.load_catalog()


def test_image_info_is_frozen() -> None:
    info = catalog.load_catalog()["debian-12"]
    with pytest.raises(AttributeError):
        info.snapshot = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.arch["riscv64"] = info.arch["amd64"]  # type: ignore[index]


def _mutate(path: str, value: Any) -> Callable[[Dict[str, Any]], None]:
    def apply(entry: Dict[str, Any]) -> None:
        keys = path.split(".")
        target = entry
        for key in keys[:-1]:
            target = target[key]
        if value is KeyError:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return apply


BAD_ENTRIES = [
    ("snapshot", _mutate("snapshot", "../../etc")),
    ("snapshot", _mutate("snapshot", ".hidden")),
    ("snapshot", _mutate("snapshot", KeyError)),
    ("snapshot", _mutate("snapshot", 20260601)),
    ("sha256", _mutate("arch.amd64.sha256", "AB" * 32)),
    ("sha256", _mutate("arch.amd64.sha256", "ab" * 31)),
    ("sha256", _mutate("arch.amd64.sha256", KeyError)),
    ("url", _mutate("arch.amd64.url", "ftp://example.org/x.raw")),
    ("url", _mutate("arch.amd64.url", "https:///x.raw")),
    ("url", _mutate("arch.amd64.url", 7)),
    ("url", _mutate("arch.amd64.url", "https://example.org/")),
    ("arch", _mutate("arch", {})),
    ("arch", _mutate("arch", ["amd64"])),
    # riscv64, ppc64le and s390x are known keys now; an arch nobody publishes is not.
    ("mips64", _mutate("arch.mips64", {"url": "https://e.org/x", "sha256": "ab" * 32})),
    ("amd64", _mutate("arch.amd64", "https://example.org/x.raw")),
    ("sha265", _mutate("arch.amd64.sha265", "ab" * 32)),
    ("bumped-at", _mutate("bumped-at", "2026-06-10")),
    ("bumped_at", _mutate("bumped_at", "June")),
    ("distro", _mutate("distro", KeyError)),
    ("version", _mutate("version", 12)),
]


@pytest.mark.parametrize(("field", "mutate"), BAD_ENTRIES)
def test_malformed_entry_names_alias_and_field(field: str, mutate: Callable[..., None]) -> None:
    entry = good_entry()
    mutate(entry)
    with pytest.raises(CatalogError) as info:
        catalog.parse_catalog({"debian-12": entry}, embedded=False)
    assert "'debian-12'" in str(info.value)
    assert field in str(info.value)


@pytest.mark.parametrize("alias", ["../x", "a/b", ".hidden", "", "x" * 101, "sp ace", "é"])
def test_unsafe_alias_names_rejected(alias: str) -> None:
    with pytest.raises(CatalogError, match="file-name safe"):
        catalog.parse_catalog({alias: good_entry()}, embedded=False)


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(CatalogError, match="top level"):
        catalog.parse_catalog([good_entry()], embedded=False)


def test_embedded_requires_https_user_catalog_allows_http_and_file() -> None:
    for url in ("http://127.0.0.1:1/x.raw", "file:///srv/images/x.raw"):
        data = {"a": good_entry(url)}
        assert catalog.parse_catalog(data, embedded=False)["a"].arch["amd64"].url == url
        with pytest.raises(CatalogError, match="https://"):
            catalog.parse_catalog(data, embedded=True)


def test_optional_fields_may_be_absent() -> None:
    entry = good_entry()
    del entry["codename"], entry["bumped_at"]
    info = catalog.parse_catalog({"a": entry}, embedded=True)["a"]
    assert (info.codename, info.bumped_at) == ("", "")


@settings(deadline=None, max_examples=60)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda kids: (
            st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_arbitrary_json_gives_catalog_error_or_valid(data: object) -> None:
    # Fuzz both the top level and an entry: only CatalogError may come out, never a TypeError.
    for candidate in (data, {"a": data}, {"a": {**good_entry(), "arch": data}}):
        try:
            catalog.parse_catalog(candidate, embedded=False)
        except CatalogError:
            pass


def test_user_catalog_from_env_and_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cat.json"
    path.write_text(json.dumps({"zz-test": good_entry(), "aa-test": good_entry()}))
    assert pyimagecache.aliases(path) == ["aa-test", "zz-test"]
    assert pyimagecache.aliases(str(path)) == ["aa-test", "zz-test"]
    monkeypatch.setenv("PYIMAGECACHE_CATALOG", str(path))
    assert pyimagecache.aliases() == ["aa-test", "zz-test"]
    # Rewritten in place: picked up (the cache is keyed by mtime and size).
    path.write_text(json.dumps({"only": good_entry()}))
    os.utime(path, ns=(1, 1))
    assert pyimagecache.aliases() == ["only"]
    parsed = catalog.load_catalog()
    assert pyimagecache.aliases(parsed) == ["only"]


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "not valid JSON"), ('{"a": {"distro": 1}}', "'distro'"), (None, "cannot read")],
)
def test_malformed_user_catalog_raises_from_aliases_not_import(
    tmp_path: Path, content: Any, match: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    env = {**os.environ, "PYIMAGECACHE_CATALOG": str(path)}
    code = (
        "import pyimagecache, pyimagecache.catalog, pyimagecache.cache\n"
        "try:\n    pyimagecache.aliases()\n"
        "except pyimagecache.CatalogError as e:\n    print('CatalogError:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("CatalogError:"), out
    assert match in out.stdout and str(path) in out.stdout


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("AMD64", "amd64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64le"),
        ("s390x", "s390x"),
        ("mips", "mips"),
    ],
)
def test_machine_to_arch(machine: str, arch: str) -> None:
    assert catalog.normalize_arch(machine) == arch


def test_host_arch_uses_the_machine_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyimagecache import arches

    assert arches.machine() == __import__("platform").machine()  # uname -m, as platform says
    monkeypatch.setattr(arches, "machine", lambda: "aarch64")
    assert catalog.normalize_arch() == "arm64"
    info, arch, image = catalog.lookup("debian-12")
    assert arch == "arm64" and image == info.arch["arm64"]


def test_unsupported_arch_names_alias_arch_and_what_exists() -> None:
    entries = catalog.parse_catalog({"only-amd": good_entry()}, embedded=False)
    with pytest.raises(UnsupportedArchError) as info:
        catalog.lookup("only-amd", "aarch64", entries)
    message = str(info.value)
    assert "only-amd" in message and "arm64" in message and "amd64" in message


def test_cache_names_for_every_pinned_alias() -> None:
    for alias, info in catalog.load_catalog().items():
        for arch, image in info.arch.items():
            names = alias_names(alias, info.snapshot, arch, image.url)
            stem = catalog.cache_stem(alias, info.snapshot, arch)
            assert names.raw == stem + ".raw"
            # A source never sits at the raw disk's name, not even a raw one: it is renamed
            # there once it is verified and recognised as raw.
            assert names.source != names.raw
            assert (names.source == names.raw + ".src") == image.url.endswith(".raw")
            assert names.source.startswith(stem)


@pytest.mark.parametrize(
    ("url", "base", "ext"),
    [
        ("https://h/a/x.raw", "x", ".raw"),
        ("https://h/a/x.raw?sig=1#frag", "x", ".raw"),
        ("https://h/a/x.qcow2", "x", ".qcow2"),
        ("https://h/a/debian-12-nocloud-amd64.tar.xz", "debian-12-nocloud-amd64", ".tar.xz"),
        (
            "https://h/a/ubuntu-24.04-server-cloudimg-amd64.img",
            "ubuntu-24.04-server-cloudimg-amd64",
            ".img",
        ),
        ("https://h/a/x.raw.zst", "x", ".raw.zst"),
        ("https://h/a/b%20c.IMG", "b_c", ".img"),
        ("file:///srv/x.iso", "x.iso", ""),
    ],
)
def test_url_names(url: str, base: str, ext: str) -> None:
    names = url_names(url)
    assert names.raw.startswith(base + "-") and names.raw.endswith(".raw")
    assert names.raw.count(".raw") == 1
    # A .raw source gets ".src" so that it never sits at the raw disk's name.
    assert names.source == names.raw[: -len(".raw")] + ext + (".src" if ext == ".raw" else "")


def test_url_names_never_collide_for_one_basename() -> None:
    urls = ["https://a.example/x.raw", "https://b.example/x.raw", "https://a.example/x.raw?v=2"]
    assert len({url_names(u).raw for u in urls}) == len(urls)
    assert url_names(urls[0]) == url_names(urls[0])


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=60))
def test_no_url_escapes_the_cache_dir(path: str) -> None:
    for url in (f"https://h/{path}", f"file:///{path}", f"https://h/x?{path}"):
        names = url_names(url)
        for name in (names.raw, names.source, names.sidecar):
            assert "/" not in name and "\\" not in name
            assert not name.startswith(".")
            assert Path("/c", name).parent == Path("/c")


def test_sanitise_and_split() -> None:
    assert sanitise("../..") == "image"
    assert sanitise("a/../b") == "a_.._b"
    assert split_extension(".raw") == (".raw", "")


# -- per-arch snapshots and digest forms ------------------------------------------------------


def test_arch_image_stays_positional() -> None:
    image = catalog.ArchImage("https://example.org/d.qcow2", "ab" * 32)
    assert (image.sha256, image.sha512, image.snapshot) == ("ab" * 32, "", "")
    assert catalog.ArchImage("https://e.org/x", "", "cd" * 64, "b7").snapshot == "b7"


@pytest.mark.parametrize(
    "digests",
    [{"sha256": "ab" * 32}, {"sha512": "cd" * 64}, {"sha256": "ab" * 32, "sha512": "cd" * 64}],
    ids=["sha256-only", "sha512-only", "both"],
)
def test_digest_forms_parse(digests: Dict[str, str]) -> None:
    entry = good_entry()
    entry["arch"]["amd64"] = {"url": "https://e.org/d.qcow2", **digests}
    image = catalog.parse_catalog({"a": entry}, embedded=True)["a"].arch["amd64"]
    assert image.expected == (digests.get("sha256"), digests.get("sha512"))
    assert catalog.entry_document(catalog.parse_catalog({"a": entry}, embedded=True)["a"]) == entry


def test_arch_snapshot_override_and_snapshot_of() -> None:
    entry = good_entry()
    entry["arch"]["arm64"] = {
        "url": "https://e.org/a.qcow2",
        "sha256": "cd" * 32,
        "snapshot": "20250703-2162",
    }
    info = catalog.parse_catalog({"a": entry}, embedded=True)["a"]
    assert info.arch["arm64"].snapshot == "20250703-2162"
    assert catalog.snapshot_of(info, "arm64") == "20250703-2162"
    assert catalog.snapshot_of(info, "amd64") == info.snapshot == "20260601-1"
    assert catalog.snapshot_of(info, "s390x") == info.snapshot  # no image: the alias's
    # list --json prints the override; an arch without one has no snapshot key
    doc = catalog.entry_document(info)
    assert doc["arch"]["arm64"]["snapshot"] == "20250703-2162"
    assert "snapshot" not in doc["arch"]["amd64"]
    assert doc == entry


@pytest.mark.parametrize("bad", ["../x", ".x", 7, None, "a" * 101])
def test_unsafe_arch_snapshot_rejected(bad: object) -> None:
    entry = good_entry()
    entry["arch"]["amd64"]["snapshot"] = bad
    with pytest.raises(CatalogError, match=r"arch 'amd64'.*'snapshot'.*file-name safe"):
        catalog.parse_catalog({"a": entry}, embedded=False)


def test_every_alias_resolves_for_each_arch_it_lists() -> None:
    for alias, info in catalog.load_catalog().items():
        for arch, image in info.arch.items():
            got_info, key, got = catalog.lookup(alias, arch)
            assert (got_info, key, got) == (info, arch, image)
            assert catalog.snapshot_of(info, arch) == (image.snapshot or info.snapshot)


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("amd64", "amd64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64le"),
        ("ppc64el", "ppc64le"),
        ("s390x", "s390x"),
    ],
)
def test_platform_machine_maps_to_a_listed_arch(
    machine: str, arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyimagecache import arches

    monkeypatch.setattr(arches, "machine", lambda: machine)
    assert catalog.normalize_arch() == arch
    listing = [a for a, info in catalog.load_catalog().items() if arch in info.arch]
    assert listing, f"no alias lists {arch}"
    info, key, image = catalog.lookup(listing[0])
    assert key == arch and image is info.arch[arch]


# -- provenance records ---------------------------------------------------------------------------

_PROVENANCE = {
    "record": "https://cloud-images.ubuntu.com/releases/noble/release-20260725/SHA256SUMS",
    "format": "sha256sums",
    "signature": "verified",
    "key": "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81",
    "date": "2026-12-07",
}


def _with_provenance(record: object) -> dict:
    return {
        "a": {
            "distro": "ubuntu",
            "version": "24.04",
            "snapshot": "20260725",
            "arch": {
                "amd64": {
                    "url": "https://example.org/d.img",
                    "sha256": "ab" * 32,
                    "provenance": record,
                }
            },
        }
    }


def test_provenance_round_trips_through_the_document():
    parsed = catalog.parse_catalog(_with_provenance(dict(_PROVENANCE)), embedded=True)
    image = parsed["a"].arch["amd64"]
    assert image.provenance == catalog.Provenance(**_PROVENANCE)
    assert catalog.entry_document(parsed["a"])["arch"]["amd64"]["provenance"] == _PROVENANCE


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"record": ""}, "field 'record'"),
        ({"format": "Not A Name"}, "field 'format'"),
        ({"signature": "yes"}, "field 'signature' 'yes' must be one of"),
        ({"key": "abc"}, "field 'key' 'abc' must be the verifying key's fingerprint"),
        ({"signature": "unsigned"}, "field 'key' is set but 'signature' is 'unsigned'"),
        ({"date": "07/12/2026"}, "field 'date' '07/12/2026' is not a YYYY-MM-DD date"),
        ({"signed_by": "me"}, "unknown field 'signed_by'"),
        ({"note": 3}, "field 'note' must be a string, got int"),
    ],
)
def test_a_malformed_provenance_record_names_the_field(change, says):
    record = {**_PROVENANCE, **change}
    with pytest.raises(CatalogError) as caught:
        catalog.parse_catalog(_with_provenance(record), embedded=True)
    assert "alias 'a' arch 'amd64' provenance" in str(caught.value)
    assert says in str(caught.value)


def test_provenance_must_be_an_object():
    with pytest.raises(CatalogError, match="provenance: must be an object, got str"):
        catalog.parse_catalog(_with_provenance("lima"), embedded=True)
