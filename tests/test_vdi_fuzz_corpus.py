"""Replay fuzz/corpus/vdi/ and a few hundred seeded mutations of it through the checks of
fuzz/fuzz_vdi.py: only the format's own error, no hang, nothing left by a failed convert
(the tests are tests/fuzzreplay.py's CorpusReplay)."""

from __future__ import annotations

from fuzzreplay import CorpusReplay


class TestVdiCorpus(CorpusReplay):
    fmt = "vdi"
