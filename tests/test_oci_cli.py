"""``pyimagecache push``: an alias's verified upstream file into a registry, found again by its
pin through blob_source_for."""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
from typing import Iterator

import pytest
import test_cli_cache
from ensureenv import Env, disk_image
from registry import RegistryServer
from test_cli_cache import run

from pyimagecache.oci import blob_source_for, fetch_disk, resolve
from pyimagecache.settings import Settings

pytestmark = pytest.mark.slow
FAST = Settings(retry=0, timeout=10)
#: The fixture of the cache commands' tests: a served catalog and a cache directory.
env = test_cli_cache.env


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("cli-registry")) as reg:
        yield reg


def test_push_an_alias_and_find_it_by_its_pin(
    env: Env, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    source = gzip.compress(disk_image(), compresslevel=1)
    url = env.publish("gz", "gz-disk.raw.gz", source)
    target = f"oci://{registry.address}/mirror"
    code, out, err = run(capsys, "push", "gz", target, "--arch", "amd64", "-q")
    assert code == 0, err
    pushed = out.strip()
    assert pushed.startswith(f"{target}:gz-20260601-1-amd64@sha256:")
    resolved = resolve(pushed.partition("@")[0], "amd64", FAST)
    assert resolved.manifest_digest == pushed.partition("@")[2]
    sha256 = hashlib.sha256(source).hexdigest()
    assert resolved.sha256 == sha256 and resolved.title == "gz-disk.raw.gz"
    assert resolved.annotations == {
        "org.opencontainers.image.source": url,
        "org.opencontainers.image.version": "20260601-1",
        "org.pyimagecache.alias": "gz",
        "org.pyimagecache.snapshot": "20260601-1",
        "org.pyimagecache.arch": "amd64",
        "org.pyimagecache.format": "gzip",
        "org.pyimagecache.sha256": sha256,
    }
    found = blob_source_for(target, sha256, settings=FAST)
    assert found is not None
    fetch_disk(found, env.tmp / "back.gz", FAST)
    assert (env.tmp / "back.gz").read_bytes() == source
    # pushing the same alias again: same manifest, blob not uploaded again
    code, out, _ = run(capsys, "push", "gz", target, "--arch", "x86_64", "-q")
    assert code == 0 and out.strip() == pushed


def test_a_raw_upstream_file_is_pushed_from_the_raw_disk(
    env: Env, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    image = disk_image()
    env.publish("plain", "plain.raw", image)
    code, out, err = run(
        capsys, "push", "plain", f"oci://{registry.address}/mirror", "--arch", "amd64", "-q"
    )
    assert code == 0, err
    resolved = resolve(out.strip().partition("@")[0], "amd64", FAST)
    assert resolved.sha256 == hashlib.sha256(image).hexdigest()
    assert resolved.annotations["org.pyimagecache.format"] == "raw"


def test_a_cache_holding_only_the_raw_fetches_the_source_again(
    env: Env,
    registry: RegistryServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    source = gzip.compress(disk_image(), compresslevel=1)
    env.publish("again", "again.raw.gz", source)
    env.ensure("again", catalog=None)  # converted, source not kept
    assert [n for n in env.files() if n.endswith(".gz")] == []
    code, out, err = run(
        capsys, "push", "again", f"oci://{registry.address}/mirror", "--arch", "amd64"
    )
    assert code == 0, err
    assert "the cache holds only the raw disk; fetching" in caplog.text
    resolved = resolve(out.strip().partition("@")[0], "amd64", FAST)
    assert resolved.sha256 == hashlib.sha256(source).hexdigest()


def test_push_all_skips_arches_an_alias_lacks(
    env: Env,
    registry: RegistryServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    env.publish("both", "both.raw", disk_image(), arches=("amd64", "arm64"))
    env.publish("one", "one.raw", disk_image(), arches=("amd64",))
    code, out, err = run(
        capsys,
        "push",
        "--all",
        f"oci://{registry.address}/all",
        "--arch",
        "amd64",
        "--arch",
        "arm64",
        "-q",
    )
    assert code == 0, err
    tags = sorted(
        re.search(r"/all:([^@]+)@", line).group(1)  # type: ignore[union-attr]
        for line in out.split()
    )
    assert tags == ["both-20260601-1-amd64", "both-20260601-1-arm64", "one-20260601-1-amd64"]
    assert "one has no image for arm64; skipped" in caplog.text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["push", "x", "https://reg.example/m"], "not an image reference"),
        (["push", "x", "oci://reg.example/m:tag"], "without a tag"),
        (["push", "x", "oci://reg.example/m", "--arch", "sparc"], "unknown arch 'sparc'"),
        (["push", "x", "oci://reg.example/m", "--all"], "give one ALIAS or --all"),
        (["push", "oci://reg.example/m"], "give one ALIAS or --all"),
    ],
)
def test_bad_values_are_usage_errors(
    env: Env, capsys: pytest.CaptureFixture[str], argv: list, says: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert says in err


def test_failures_are_one_line(
    env: Env, registry: RegistryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.publish("fine", "fine.raw", disk_image())
    code, _, err = run(capsys, "push", "nope", f"oci://{registry.address}/m", "-q")
    assert code == 1 and err.startswith("pyimagecache: error: ") and "'nope'" in err
    code, _, err = run(
        capsys, "push", "fine", f"oci://{registry.address}/m", "--arch", "s390x", "-q"
    )
    assert code == 1 and "has no image for arch 's390x'" in err
    code, _, err = run(capsys, "push", "fine", "oci://127.0.0.1:1/m", "--arch", "amd64", "-q")
    assert code == 1 and "cannot reach the registry 127.0.0.1:1" in err
    assert len(err.strip().splitlines()) == 1
