"""Which disk an OVF descriptor names (DMTF DSP0243): the ``.ovf`` at the head of an OVA or
inside a VirtualBox Vagrant box.

Only what picks the disk is read: ``References/File`` (id -> href) and ``DiskSection/Disk``
(fileRef), in document order. Namespaces differ between OVF 1.x and 2.x, so elements are
matched by local name. The descriptor is capped in size before it is parsed.
"""

from __future__ import annotations

from typing import Dict, List

from .errors import ContainerError

#: The largest descriptor read (real ones are a few KiB).
MAX_DESCRIPTOR = 1 << 20


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _attr(element: object, name: str) -> str:
    for key, value in element.attrib.items():  # type: ignore[attr-defined]
        if _local(key) == name:
            return str(value)
    return ""


def disk_files(descriptor: bytes, where: str) -> List[str]:
    """The file names (hrefs) of the descriptor's disks, in the order its DiskSection lists
    them. ContainerError when the XML is malformed or a disk names no file.

    >>> disk_files(b'''<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
    ...   xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
    ...   <References><File ovf:id="f1" ovf:href="box-disk001.vmdk"/></References>
    ...   <DiskSection><Disk ovf:diskId="vmdisk1" ovf:fileRef="f1"/></DiskSection>
    ... </Envelope>''', "box.ovf")
    ['box-disk001.vmdk']
    """
    import xml.etree.ElementTree as ElementTree

    if len(descriptor) > MAX_DESCRIPTOR:
        raise ContainerError(f"{where}: OVF descriptor larger than {MAX_DESCRIPTOR} bytes")
    try:
        root = ElementTree.fromstring(descriptor)
    except ElementTree.ParseError as exc:
        raise ContainerError(f"{where}: OVF descriptor is not valid XML: {exc}") from None
    files: Dict[str, str] = {}
    for element in root.iter():
        if _local(element.tag) == "File":
            files[_attr(element, "id")] = _attr(element, "href")
    disks: List[str] = []
    for element in root.iter():
        if _local(element.tag) != "Disk":
            continue
        ref = _attr(element, "fileRef")
        href = files.get(ref, "")
        if not href:
            raise ContainerError(
                f"{where}: OVF disk {_attr(element, 'diskId')!r} refers to file {ref!r}, which "
                "References does not list"
            )
        disks.append(href)
    return disks
