"""Checksum file formats, one parser each behind parse_checksums: coreutils (text, binary, one
space), BSD (with size comments), bare per-file digests, Oracle's template JSON, and PGP
clear-signed files read from their signed text only. Lines are quoted from real files
(layouts.md) where a record had them."""

from __future__ import annotations

import re

import pytest

from pyimagecache.errors import RefreshError
from pyimagecache.hashing import Expected
from pyimagecache.refresh.sums import is_clearsigned, parse_checksums, signed_text

H64, H128 = "ab" * 32, "cd" * 64

UBUNTU = (
    b"de5e632e17b8965f2baf4ea6d2b824788e154d9a65df4fd419ec4019898e15cd "
    b"*ubuntu-22.04-server-cloudimg-amd64.img\n"
    b"014f447e6cb04eedeb8590107b7391e838bcd5c3445e6a5aae916864a0eed47d "
    b"*ubuntu-24.04-server-cloudimg-armhf.manifest\n"
)
ALMA = (
    b"47f2218668dd4776be140dd92fa3bea700be1766e2c7d88bdfd6a4b50f477b4d  "
    b"AlmaLinux-10-GenericCloud-10.2-20260526.0.x86_64.qcow2\n"
    b"47f2218668dd4776be140dd92fa3bea700be1766e2c7d88bdfd6a4b50f477b4d  "
    b"AlmaLinux-10-GenericCloud-latest.x86_64.qcow2\n"
)
CENTOS = (
    b"# CentOS-Stream-GenericCloud-10-20241118.0.x86_64.qcow2: 954073088 bytes\n"
    b"SHA256 (CentOS-Stream-GenericCloud-10-20241118.0.x86_64.qcow2) = "
    b"3cb1310f39d92d34d0ea62c1d6f8943f47dce9df6937adb5bd26af8efa5d921d\n"
)
FEDORA_SIGNED = (
    b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
    b"# Fedora-Cloud-Base-Generic-44-1.7.aarch64.qcow2: 528154624 bytes\n"
    b"SHA256 (Fedora-Cloud-Base-Generic-44-1.7.aarch64.qcow2) = "
    b"55c60a3b80d3616a08705afd0459e75fe9f03c54aba7a46e4002a41a72fa0d5b\n"
    b"-----BEGIN PGP SIGNATURE-----\n\niHUEARYIAB0WIQQ\n=Q6VE\n-----END PGP SIGNATURE-----\n"
)


def test_coreutils_binary_and_text_mode():
    sums = parse_checksums(UBUNTU, "coreutils", url="SHA256SUMS")
    assert sums.digests["ubuntu-22.04-server-cloudimg-amd64.img"] == Expected(
        "de5e632e17b8965f2baf4ea6d2b824788e154d9a65df4fd419ec4019898e15cd"
    )
    assert not sums.clearsigned and not sums.verified
    alma = parse_checksums(ALMA, "coreutils").digests
    assert set(alma) == {
        "AlmaLinux-10-GenericCloud-10.2-20260526.0.x86_64.qcow2",
        "AlmaLinux-10-GenericCloud-latest.x86_64.qcow2",
    }


def test_coreutils_one_space_and_sha512():
    # openSUSE 15.6's sidecar has one space; Debian's SHA512SUMS is SHA-512 only
    one = parse_checksums(b"%s openSUSE-Leap-15.6.qcow2\n" % H64.encode(), "coreutils")
    assert one.digests == {"openSUSE-Leap-15.6.qcow2": Expected(H64)}
    deb = parse_checksums(
        b"%s  debian-12.qcow2\n" % H128.upper().encode(), "coreutils", algorithm="sha512"
    )
    assert deb.digests == {"debian-12.qcow2": Expected(None, H128)}


@pytest.mark.parametrize(
    ("body", "fmt", "match"),
    [
        (b"<html>502 Bad Gateway</html>\n", "coreutils", "line 1: expected '<64 hex digits>"),
        (b"%s  a\n%s  a\n" % (H64.encode(), ("ef" * 32).encode()), "coreutils", "listed twice"),
        (b"\n\n", "coreutils", "no checksum lines"),
        (b"\xff\xfe", "coreutils", "not UTF-8"),
        (b"SHA256 (a) = abc\n", "bsd", "must be 64 hex digits"),
        (b"SHA256 a = %s\n" % H64.encode(), "bsd", "expected 'SHA256 (<file>) = <hex>'"),
        (b"MD5 (a) = 0123\n", "bsd", "no checksum lines"),
    ],
)
def test_malformed_files_are_errors_naming_the_line(body, fmt, match):
    with pytest.raises(RefreshError, match=re.escape(match)):
        parse_checksums(body, fmt, url="CHECKSUM")


def test_bsd_with_size_comments_and_several_algorithms():
    sums = parse_checksums(CENTOS, "bsd").digests
    assert sums == {
        "CentOS-Stream-GenericCloud-10-20241118.0.x86_64.qcow2": Expected(
            "3cb1310f39d92d34d0ea62c1d6f8943f47dce9df6937adb5bd26af8efa5d921d"
        )
    }
    both = parse_checksums(
        b"SHA256 (x.xz) = %s\nSHA512 (x.xz) = %s\nSHA1 (x.xz) = 00\n"
        b"SHA256 (x.xz) = %s\n" % (H64.encode(), H128.encode(), H64.encode()),
        "bsd",
    ).digests
    assert both == {"x.xz": Expected(H64, H128)}  # Rocky repeats a line; MD5/SHA1 skipped


def test_bare_per_file_digest():
    sums = parse_checksums(b"%s\n" % H128.encode(), "bare", algorithm="sha512", name="a.qcow2")
    assert sums.digests == {"a.qcow2": Expected(None, H128)}
    named = parse_checksums(
        b"%s  a.qcow2\n" % H128.encode(), "bare", algorithm="sha512", name="a.qcow2"
    )
    assert named.digests == sums.digests
    for bad in (
        b"%s  b.qcow2\n" % H128.encode(),
        b"%s\n%s\n" % (H128.encode(), H128.encode()),
        H64.encode(),
        b"<html>",
    ):
        with pytest.raises(RefreshError, match="expected the SHA512 of a.qcow2 alone"):
            parse_checksums(bad, "bare", algorithm="sha512", name="a.qcow2")


def test_oracle_template_json():
    body = (
        b'{"base_url": "/templates/OracleLinux/OL9/u8/x86_64", "kvm": {"image": '
        b'"OL9U8_x86_64-kvm-b293.qcow2", "sha256": "%s"}}' % H64.encode()
    )
    sums = parse_checksums(body, "oracle-template", url="ol9-template.json")
    assert sums.digests == {"OL9U8_x86_64-kvm-b293.qcow2": Expected(H64)}
    for bad in (
        b"{}",
        b"[1]",
        b'{"kvm": {"image": "a/b", "sha256": "%s"}}' % H64.encode(),
        b'{"kvm": {"image": "a", "sha256": "xyz"}}',
        b"<html>",
    ):
        with pytest.raises(RefreshError, match="ol9-template.json"):
            parse_checksums(bad, "oracle-template", url="ol9-template.json")


def test_clearsigned_is_parsed_from_the_signed_text_and_never_verified_here():
    assert is_clearsigned(FEDORA_SIGNED) and not is_clearsigned(CENTOS)
    sums = parse_checksums(FEDORA_SIGNED, "bsd", url="CHECKSUM")
    assert sums.clearsigned and not sums.verified
    assert sums.digests["Fedora-Cloud-Base-Generic-44-1.7.aarch64.qcow2"].sha256 == (
        "55c60a3b80d3616a08705afd0459e75fe9f03c54aba7a46e4002a41a72fa0d5b"
    )
    text = signed_text(FEDORA_SIGNED.decode(), url="CHECKSUM")
    assert text.startswith("# Fedora-Cloud") and "PGP" not in text
    escaped = FEDORA_SIGNED.replace(b"# Fedora", b"- -- Fedora")
    assert "\n-- Fedora" in "\n" + signed_text(escaped.decode(), url="CHECKSUM")
    # what gpgv verified is what gets parsed, and then it counts as verified
    verified = parse_checksums(FEDORA_SIGNED, "bsd", signed=text)
    assert verified.verified and verified.digests == sums.digests


@pytest.mark.parametrize(
    ("body", "match"),
    [
        # an unsigned line appended after the signature is never read as signed
        (FEDORA_SIGNED + b"SHA256 (evil.qcow2) = %s\n" % H64.encode(), "outside the armour"),
        (b"SHA256 (evil.qcow2) = %s\n" % H64.encode() + FEDORA_SIGNED, "outside the armour"),
        (FEDORA_SIGNED.replace(b"-----BEGIN PGP SIGNATURE-----\n", b""), "no signature block"),
        (FEDORA_SIGNED + FEDORA_SIGNED, "more than one"),
        (FEDORA_SIGNED.replace(b"Hash: SHA256", b"Hash SHA256"), "malformed clear-signed header"),
    ],
)
def test_clearsigned_armour_is_strict(body, match):
    with pytest.raises(RefreshError, match=match):
        parse_checksums(body, "bsd", url="CHECKSUM")


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown checksum format"):
        parse_checksums(b"", "md5sum")
