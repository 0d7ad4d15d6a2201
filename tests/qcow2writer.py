"""A small pure-Python qcow2 writer for tests (not shipped).

It produces every shape the reader supports - v2/v3, cluster sizes 512 B..2 MiB, deflate and zstd
clusters (packed so they share sectors and cross host clusters), zero clusters with and without a
preallocated host cluster, extended L2 subclusters, odd virtual sizes, internal snapshots with
their own L1/L2 tables - with correct refcounts so that ``qemu-img check`` accepts it. The result
(:class:`Built`) keeps the offsets of every structure so tests can corrupt any field precisely.

Example::

    img = Qcow2Writer(3 * 65536 + 100)
    img[0] = Data(b"x" * 65536)
    img[2] = Compressed(b"hello" * 1000)
    built = img.build()
    built.save(path)
    assert built.expected() == raw_bytes_qemu_would_give
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple, Union

MAGIC = b"QFI\xfb"
COPIED = 1 << 63
COMPRESSED = 1 << 62
ZERO = 1
OFFSET_MASK = 0x00FFFFFFFFFFFE00

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
COMPAT_LAZY_REFCOUNTS = 1 << 0

EXT_END = 0
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_DATA_FILE = 0x44415441

# name -> (offset, struct format) of every header field; v3 fields start at 72.
HEADER_FIELDS: Dict[str, Tuple[int, str]] = {
    "magic": (0, ">4s"),
    "version": (4, ">I"),
    "backing_file_offset": (8, ">Q"),
    "backing_file_size": (16, ">I"),
    "cluster_bits": (20, ">I"),
    "size": (24, ">Q"),
    "crypt_method": (32, ">I"),
    "l1_size": (36, ">I"),
    "l1_table_offset": (40, ">Q"),
    "refcount_table_offset": (48, ">Q"),
    "refcount_table_clusters": (56, ">I"),
    "nb_snapshots": (60, ">I"),
    "snapshots_offset": (64, ">Q"),
    "incompatible_features": (72, ">Q"),
    "compatible_features": (80, ">Q"),
    "autoclear_features": (88, ">Q"),
    "refcount_order": (96, ">I"),
    "header_length": (100, ">I"),
    "compression_type": (104, ">B"),
}

FEATURE_NAMES = [
    (0, 0, "dirty bit"),
    (0, 1, "corrupt bit"),
    (0, 2, "external data file"),
    (0, 3, "compression type"),
    (0, 4, "extended L2 entries"),
    (1, 0, "lazy refcounts"),
    (2, 0, "bitmaps"),
    (2, 1, "raw external data"),
]


# -- what a guest cluster holds --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Data:
    """A standard allocated cluster; ``payload`` is zero-padded to the cluster size."""

    payload: bytes


@dataclass(frozen=True, eq=False)
class Compressed:
    """A compressed cluster. ``codec`` None means the image's compression type.

    ``frames`` > 1 splits a zstd payload into several frames. ``extra_sectors`` makes the sector
    count claim more than the stream needs (qemu iotest 214: reads past EOF are padded).
    ``stream`` replaces the compressed bytes outright (garbage for the malformed suite).
    """

    payload: bytes
    codec: Optional[str] = None
    level: int = 6
    frames: int = 1
    extra_sectors: int = 0
    stream: Optional[bytes] = None


@dataclass(frozen=True, eq=False)
class Zero:
    """A v3 zero cluster; ``preallocated`` keeps a host cluster (filled with ``fill``)."""

    preallocated: bool = False
    fill: bytes = b"\xa5"


@dataclass(frozen=True, eq=False)
class Sub:
    """Extended L2 entry: ``alloc`` and ``zero`` are the 32-bit subcluster bitmaps.

    ``payload`` None means no host cluster (then ``alloc`` must be 0 for a valid image).
    """

    payload: Optional[bytes]
    alloc: int
    zero: int = 0


Spec = Union[Data, Compressed, Zero, Sub]


@dataclass
class Snapshot:
    name: str
    clusters: Dict[int, Spec]
    virtual_size: int


# -- the built image and its corruption helpers ----------------------------------------------


@dataclass
class Built:
    """The image bytes plus where everything went, for exact corruption in tests."""

    data: bytearray
    writer: Qcow2Writer
    l1_offset: int
    l1_size: int
    l2_offsets: Dict[int, int]  # active l1 index -> L2 table offset
    host_offsets: Dict[int, int]  # active guest cluster -> host cluster offset
    compressed_spans: Dict[int, Tuple[int, int]]  # active guest cluster -> (offset, length)
    refcount_table_offset: int
    refcount_block_offsets: List[int]
    snapshots_offset: int
    snapshot_l1_offsets: List[int]
    backing_name_offset: int
    extensions: Dict[int, int] = field(default_factory=dict)  # ext type -> offset of its header

    # raw access
    def u64(self, offset: int) -> int:
        value: int = struct.unpack_from(">Q", self.data, offset)[0]
        return value

    def set_u64(self, offset: int, value: int) -> None:
        struct.pack_into(">Q", self.data, offset, value & (2**64 - 1))

    def set_u32(self, offset: int, value: int) -> None:
        struct.pack_into(">I", self.data, offset, value & (2**32 - 1))

    def header(self, name: str) -> Union[int, bytes]:
        off, fmt = HEADER_FIELDS[name]
        value: Union[int, bytes] = struct.unpack_from(fmt, self.data, off)[0]
        return value

    def set_header(self, name: str, value: Union[int, bytes]) -> None:
        off, fmt = HEADER_FIELDS[name]
        if isinstance(value, int):
            value &= (1 << (8 * struct.calcsize(fmt))) - 1
        struct.pack_into(fmt, self.data, off, value)

    # table entries of the active L1
    @property
    def entry_size(self) -> int:
        return 16 if self.writer.extended_l2 else 8

    @property
    def l2_entries(self) -> int:
        return self.writer.cluster_size // self.entry_size

    def l1_entry_offset(self, index: int) -> int:
        return self.l1_offset + 8 * index

    def l2_entry_offset(self, guest_cluster: int) -> int:
        """File offset of the (first 64 bits of the) L2 entry of ``guest_cluster``."""
        l1_index, l2_index = divmod(guest_cluster, self.l2_entries)
        return self.l2_offsets[l1_index] + self.entry_size * l2_index

    def l2_entry(self, guest_cluster: int) -> int:
        return self.u64(self.l2_entry_offset(guest_cluster))

    def set_l2_entry(self, guest_cluster: int, value: int) -> None:
        self.set_u64(self.l2_entry_offset(guest_cluster), value)

    def set_bitmap(self, guest_cluster: int, value: int) -> None:
        assert self.writer.extended_l2
        self.set_u64(self.l2_entry_offset(guest_cluster) + 8, value)

    def truncate(self, size: int) -> None:
        del self.data[size:]

    # outputs
    def bytes(self) -> bytes:
        return bytes(self.data)

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        with open(path, "wb") as f:
            f.write(self.data)

    def expected(self, backing: Optional[bytes] = None) -> bytes:
        return self.writer.expected(backing)

    def expected_extents(self) -> List[Tuple[int, int, str]]:
        return self.writer.expected_extents()


# -- the writer --------------------------------------------------------------------------------


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _compress(payload: bytes, codec: str, level: int, frames: int) -> bytes:
    if codec == "deflate":
        c = zlib.compressobj(level, zlib.DEFLATED, -12)
        return c.compress(payload) + c.flush()
    if codec == "zstd":
        import zstandard

        comp = zstandard.ZstdCompressor(level=max(1, level))
        step = _ceil_div(len(payload), max(1, frames)) or 1
        return b"".join(comp.compress(payload[i : i + step]) for i in range(0, len(payload), step))
    raise ValueError(f"unknown codec {codec!r}")


class Qcow2Writer:
    """Describe an image cluster by cluster (``img[guest_cluster] = Data(...)``), then build()."""

    def __init__(
        self,
        virtual_size: int,
        *,
        cluster_bits: int = 16,
        version: int = 3,
        compression: str = "deflate",
        extended_l2: bool = False,
        refcount_order: int = 4,
        backing_file: Optional[str] = None,
        backing_format: Optional[str] = None,
        dirty: bool = False,
        lazy_refcounts: bool = False,
        feature_table: bool = True,
        header_length: Optional[int] = None,
        compressed_packing: str = "packed",
        pad_compressed: int = 0,
        extra_l1_entries: int = 0,
        extra_extensions: Tuple[Tuple[int, bytes], ...] = (),
    ) -> None:
        if version not in (2, 3):
            raise ValueError("version must be 2 or 3")
        if version == 2 and (extended_l2 or compression != "deflate" or refcount_order != 4):
            raise ValueError("v2 images have no extended L2, zstd or refcount_order")
        self.virtual_size = virtual_size
        self.cluster_bits = cluster_bits
        self.cluster_size = 1 << cluster_bits
        self.version = version
        self.compression = compression
        self.extended_l2 = extended_l2
        self.refcount_order = refcount_order
        self.backing_file = backing_file
        self.backing_format = backing_format
        self.dirty = dirty
        self.lazy_refcounts = lazy_refcounts
        self.feature_table = feature_table
        self.header_length = header_length
        self.compressed_packing = compressed_packing  # packed | sector | cluster
        self.pad_compressed = pad_compressed  # junk bytes between packed streams
        self.extra_l1_entries = extra_l1_entries
        self.extra_extensions = extra_extensions
        self.clusters: Dict[int, Spec] = {}
        self.snapshots: List[Snapshot] = []

    # description
    @property
    def nb_clusters(self) -> int:
        return _ceil_div(self.virtual_size, self.cluster_size)

    @property
    def l2_entries(self) -> int:
        return self.cluster_size // (16 if self.extended_l2 else 8)

    @property
    def subcluster_size(self) -> int:
        return self.cluster_size // 32

    def __setitem__(self, guest_cluster: int, spec: Optional[Spec]) -> None:
        if not 0 <= guest_cluster < self.nb_clusters:
            raise IndexError(f"guest cluster {guest_cluster} outside the virtual size")
        if isinstance(spec, Zero) and self.version == 2:
            raise ValueError("v2 has no zero clusters")
        if isinstance(spec, Sub) and not self.extended_l2:
            raise ValueError("Sub needs extended_l2=True")
        if spec is None:
            self.clusters.pop(guest_cluster, None)
        else:
            self.clusters[guest_cluster] = spec

    def __getitem__(self, guest_cluster: int) -> Optional[Spec]:
        return self.clusters.get(guest_cluster)

    def snapshot(self, name: str) -> None:
        """Record the current contents as an internal snapshot (own L1 and L2 tables; data
        clusters still shared with the active state get refcount 2 and lose COPIED)."""
        self.snapshots.append(Snapshot(name, dict(self.clusters), self.virtual_size))

    def write_bytes(self, offset: int, data: bytes, kind: str = "data") -> None:
        """Convenience: store ``data`` at guest ``offset`` as data or compressed clusters,
        merging with what the touched clusters already hold."""
        cs = self.cluster_size
        first, last = offset // cs, (offset + len(data) - 1) // cs
        for c in range(first, last + 1):
            buf = bytearray(self.cluster_bytes(c))
            lo = max(offset, c * cs)
            hi = min(offset + len(data), (c + 1) * cs)
            buf[lo - c * cs : hi - c * cs] = data[lo - offset : hi - offset]
            self[c] = Compressed(bytes(buf)) if kind == "compressed" else Data(bytes(buf))

    # what a reader must see
    def cluster_bytes(self, c: int, backing: Optional[bytes] = None) -> bytes:
        cs = self.cluster_size
        under = bytes(cs)
        if backing is not None:
            under = backing[c * cs : (c + 1) * cs].ljust(cs, b"\0")
        spec = self.clusters.get(c)
        if spec is None:
            return under
        if isinstance(spec, (Data, Compressed)):
            return spec.payload.ljust(cs, b"\0")[:cs]
        if isinstance(spec, Zero):
            return bytes(cs)
        sc = self.subcluster_size
        payload = (spec.payload or b"").ljust(cs, b"\0")
        out = bytearray()
        for i in range(32):
            if spec.alloc >> i & 1:
                out += payload[i * sc : (i + 1) * sc]
            elif spec.zero >> i & 1:
                out += bytes(sc)
            else:
                out += under[i * sc : (i + 1) * sc]
        return bytes(out)

    def expected(self, backing: Optional[bytes] = None) -> bytes:
        """The raw disk a correct reader produces (``backing``: the backing file's raw bytes)."""
        out = bytearray()
        for c in range(self.nb_clusters):
            out += self.cluster_bytes(c, backing)
        return bytes(out[: self.virtual_size])

    def _kinds(self) -> Iterator[Tuple[int, int, str]]:
        cs, sc = self.cluster_size, self.subcluster_size
        for c in range(self.nb_clusters):
            spec = self.clusters.get(c)
            base = c * cs
            if spec is None:
                yield base, cs, "unallocated"
            elif isinstance(spec, Data):
                yield base, cs, "data"
            elif isinstance(spec, Compressed):
                yield base, cs, "compressed"
            elif isinstance(spec, Zero):
                yield base, cs, "zero"
            else:
                for i in range(32):
                    kind = (
                        "data"
                        if spec.alloc >> i & 1
                        else "zero"
                        if spec.zero >> i & 1
                        else "unallocated"
                    )
                    yield base + i * sc, sc, kind

    def expected_extents(self) -> List[Tuple[int, int, str]]:
        """Merged (offset, length, kind) runs covering [0, virtual_size)."""
        runs: List[Tuple[int, int, str]] = []
        for off, length, kind in self._kinds():
            length = min(length, self.virtual_size - off)
            if length <= 0:
                break
            if runs and runs[-1][2] == kind and runs[-1][0] + runs[-1][1] == off:
                runs[-1] = (runs[-1][0], runs[-1][1] + length, kind)
            else:
                runs.append((off, length, kind))
        return runs

    # building
    def _header_cluster(
        self, l1_size: int, l1_offset: int, rt_offset: int, rt_clusters: int, snap_off: int
    ) -> Tuple[bytes, int, Dict[int, int]]:
        v3 = self.version == 3
        hlen = self.header_length if self.header_length is not None else (112 if v3 else 72)
        incompat = 0
        if self.dirty:
            incompat |= INCOMPAT_DIRTY
        if v3 and self.compression == "zstd":
            incompat |= INCOMPAT_COMPRESSION
        if self.extended_l2:
            incompat |= INCOMPAT_EXTL2
        compat = COMPAT_LAZY_REFCOUNTS if self.lazy_refcounts else 0
        head = bytearray(max(hlen, 72))
        struct.pack_into(
            ">4sIQIIQIIQQIIQ",
            head,
            0,
            MAGIC,
            self.version,
            0,
            0,
            self.cluster_bits,
            self.virtual_size,
            0,
            l1_size,
            l1_offset,
            rt_offset,
            rt_clusters,
            len(self.snapshots),
            snap_off,
        )
        if v3:
            struct.pack_into(">QQQII", head, 72, incompat, compat, 0, self.refcount_order, hlen)
            if hlen > 104:
                head[104] = 1 if self.compression == "zstd" else 0
        exts: List[Tuple[int, bytes]] = []
        if self.backing_format is not None:
            exts.append((EXT_BACKING_FORMAT, self.backing_format.encode()))
        exts.extend(self.extra_extensions)
        table = b"".join(struct.pack(">BB46s", t, b, n.encode()) for t, b, n in FEATURE_NAMES)
        name = (self.backing_file or "").encode()
        offsets: Dict[int, int] = {}

        def render(with_table: bool) -> bytes:
            out = bytearray(head)
            for etype, edata in exts + ([(EXT_FEATURE_TABLE, table)] if with_table else []):
                offsets[etype] = len(out)
                out += struct.pack(">II", etype, len(edata)) + edata
                out += bytes(-len(out) % 8)
            out += struct.pack(">II", EXT_END, 0)
            return bytes(out)

        with_table = v3 and self.feature_table
        body = render(with_table)
        if with_table and len(body) + len(name) > self.cluster_size:
            body = render(False)  # 512-byte clusters: the table does not fit, qemu omits it too
        backing_off = len(body) if name else 0
        body += name
        if len(body) > self.cluster_size:
            raise ValueError("header, extensions and backing name exceed cluster 0")
        out = bytearray(body)
        if name:
            struct.pack_into(">QI", out, 8, backing_off, len(name))
        return bytes(out), backing_off, offsets

    def _l2_entry(self, spec: Optional[Spec], host: int, refcount: int) -> Tuple[int, int]:
        """(descriptor, bitmap) of one L2 entry."""
        copied = COPIED if refcount == 1 else 0
        if spec is None:
            return 0, 0
        if isinstance(spec, Data):
            return host | copied, 0xFFFFFFFF
        if isinstance(spec, Zero):
            if self.extended_l2:
                return (host | copied) if spec.preallocated else 0, 0xFFFFFFFF << 32
            return ((host | copied) if spec.preallocated else 0) | ZERO, 0
        if isinstance(spec, Sub):
            bitmap = (spec.zero & 0xFFFFFFFF) << 32 | (spec.alloc & 0xFFFFFFFF)
            return (host | copied) if spec.payload is not None else 0, bitmap
        raise AssertionError(spec)

    def build(self) -> Built:
        cs = self.cluster_size
        ext = self.extended_l2
        entry_size = 16 if ext else 8
        l1_size = _ceil_div(self.nb_clusters, self.l2_entries) + self.extra_l1_entries
        states: List[Dict[int, Spec]] = [self.clusters] + [s.clusters for s in self.snapshots]

        nxt = 1  # next free host cluster; cluster 0 is the header

        def alloc(n: int) -> int:
            nonlocal nxt
            off = nxt * cs
            nxt += max(1, n)
            return off

        l1_offset = alloc(_ceil_div(l1_size * 8, cs))
        l2_offsets: List[Dict[int, int]] = []
        for state in states:
            tables: Dict[int, int] = {}
            for c in sorted(state):
                tables.setdefault(c // self.l2_entries, 0)
            for idx in sorted(tables):
                tables[idx] = alloc(1)
            l2_offsets.append(tables)
        # host clusters for standard specs, shared by identity across states
        host: Dict[int, int] = {}
        refs: Dict[int, int] = {}
        comp_specs: Dict[int, Compressed] = {}
        for state in states:
            for c in sorted(state):
                spec = state[c]
                refs[id(spec)] = refs.get(id(spec), 0) + 1
                needs_host = (
                    isinstance(spec, Data)
                    or (isinstance(spec, Zero) and spec.preallocated)
                    or (isinstance(spec, Sub) and spec.payload is not None)
                )
                if needs_host and id(spec) not in host:
                    host[id(spec)] = alloc(1)
                if isinstance(spec, Compressed):
                    comp_specs[id(spec)] = spec
        snap_l1 = [alloc(_ceil_div(l1_size * 8, cs)) for _ in self.snapshots]
        snap_table = bytearray()
        for s, off in zip(self.snapshots, snap_l1):
            ident = str(len(snap_table) + 1).encode()
            extra = struct.pack(">QQ", 0, s.virtual_size) if self.version == 3 else b""
            snap_table += struct.pack(
                ">QIHHIIQII", off, l1_size, len(ident), len(s.name), 0, 0, 0, 0, len(extra)
            )
            snap_table += extra + ident + s.name.encode()
            snap_table += bytes(-len(snap_table) % 8)
        snapshots_offset = alloc(_ceil_div(len(snap_table), cs)) if self.snapshots else 0

        # compressed streams, placed after the refcount structures so the last one ends the file
        streams: Dict[int, bytes] = {}
        for key, spec in comp_specs.items():
            if spec.stream is not None:
                streams[key] = spec.stream
            else:
                codec = spec.codec or self.compression
                payload = spec.payload.ljust(cs, b"\0")[:cs]
                streams[key] = _compress(payload, codec, spec.level, spec.frames)
        rel: Dict[int, int] = {}
        pos = 0
        for key, stream in streams.items():
            if self.compressed_packing == "sector":
                pos += -pos % 512
            elif self.compressed_packing == "cluster":
                pos += -pos % cs
            rel[key] = pos
            pos += len(stream) + self.pad_compressed
        comp_len = pos
        comp_clusters = _ceil_div(comp_len, cs)

        rb_entries = cs * 8 // (1 << self.refcount_order)
        fixed = nxt
        rt_clusters, rb_count = 1, 1
        while True:
            total = fixed + rt_clusters + rb_count + comp_clusters
            need_rb = _ceil_div(total, rb_entries)
            need_rt = _ceil_div(need_rb * 8, cs)
            if (need_rb, need_rt) == (rb_count, rt_clusters):
                break
            rb_count, rt_clusters = max(need_rb, rb_count), max(need_rt, rt_clusters)
        rt_offset = alloc(rt_clusters)
        rb_offsets = [alloc(1) for _ in range(rb_count)]
        comp_base = nxt * cs
        comp_off = {key: comp_base + r for key, r in rel.items()}

        # refcounts
        refcount: Dict[int, int] = {}

        def ref(off: int, n: int = 1) -> None:
            refcount[off // cs] = refcount.get(off // cs, 0) + n

        for i in range(nxt):
            ref(i * cs)  # header, tables, data clusters, refcount structures: one each
        for key, h in host.items():
            ref(h, refs[key] - 1)
        x = 62 - (self.cluster_bits - 8)
        comp_entry: Dict[int, int] = {}
        for key, start in comp_off.items():
            stream = streams[key]
            nb = ((start + max(1, len(stream)) - 1) >> 9) - (start >> 9)
            nb += comp_specs[key].extra_sectors
            if start >= 1 << x or nb >= 1 << (self.cluster_bits - 8):
                raise ValueError("compressed cluster does not fit its L2 descriptor")
            comp_entry[key] = COMPRESSED | nb << x | start
            first = (start & ~511) // cs
            last = ((start & ~511) + (nb + 1) * 512 - 1) // cs
            end_cluster = _ceil_div(comp_base + comp_len, cs)
            for hc in range(first, min(last, end_cluster - 1) + 1):
                ref(hc * cs, refs[key])
        limit = (1 << (1 << self.refcount_order)) - 1
        if any(v > limit for v in refcount.values()):
            raise ValueError("refcount overflow for this refcount_order")

        data = bytearray(comp_base + comp_len)
        header, backing_off, ext_offsets = self._header_cluster(
            l1_size, l1_offset, rt_offset, rt_clusters, snapshots_offset
        )
        data[: len(header)] = header

        def write_l1(l1_off: int, tables: Dict[int, int]) -> None:
            for idx, off in tables.items():
                struct.pack_into(">Q", data, l1_off + 8 * idx, off | COPIED)

        def write_l2s(state: Dict[int, Spec], tables: Dict[int, int]) -> None:
            for c, spec in state.items():
                l1_index, l2_index = divmod(c, self.l2_entries)
                at = tables[l1_index] + entry_size * l2_index
                if isinstance(spec, Compressed):
                    desc, bitmap = comp_entry[id(spec)], 0
                else:
                    h = host.get(id(spec), 0)
                    desc, bitmap = self._l2_entry(spec, h, refcount.get(h // cs, 0) if h else 0)
                struct.pack_into(">Q", data, at, desc)
                if ext:
                    struct.pack_into(">Q", data, at + 8, bitmap)

        write_l1(l1_offset, l2_offsets[0])
        for off, tables in zip(snap_l1, l2_offsets[1:]):
            write_l1(off, tables)
        for state, tables in zip(states, l2_offsets):
            write_l2s(state, tables)
        for state in states:
            for spec in state.values():
                h = host.get(id(spec))
                if h is None:
                    continue
                if isinstance(spec, Zero):
                    data[h : h + cs] = (spec.fill * cs)[:cs]
                else:
                    payload = spec.payload or b""
                    data[h : h + cs] = payload.ljust(cs, b"\0")[:cs]
        for key, off in comp_off.items():
            data[off : off + len(streams[key])] = streams[key]
        if self.pad_compressed:
            for key, off in comp_off.items():
                tail = off + len(streams[key])
                pad_end = tail + self.pad_compressed
                data[tail:pad_end] = b"\x5a" * (pad_end - tail)
        if self.snapshots:
            data[snapshots_offset : snapshots_offset + len(snap_table)] = snap_table
        for i, off in enumerate(rb_offsets):
            struct.pack_into(">Q", data, rt_offset + 8 * i, off)
        bits = 1 << self.refcount_order
        for hc, count in refcount.items():
            block, index = divmod(hc, rb_entries)
            base = rb_offsets[block]
            if bits >= 8:
                nbytes = bits // 8
                data[base + index * nbytes : base + (index + 1) * nbytes] = count.to_bytes(
                    nbytes, "big"
                )
            else:
                bitpos = index * bits
                data[base + bitpos // 8] |= count << (bitpos % 8)

        return Built(
            data=data,
            writer=self,
            l1_offset=l1_offset,
            l1_size=l1_size,
            l2_offsets=dict(l2_offsets[0]),
            host_offsets={c: host[id(s)] for c, s in self.clusters.items() if id(s) in host},
            compressed_spans={
                c: (comp_off[id(s)], len(streams[id(s)]))
                for c, s in self.clusters.items()
                if isinstance(s, Compressed)
            },
            refcount_table_offset=rt_offset,
            refcount_block_offsets=rb_offsets,
            snapshots_offset=snapshots_offset,
            snapshot_l1_offsets=snap_l1,
            backing_name_offset=backing_off,
            extensions=ext_offsets,
        )
