"""Replay fuzz/corpus/vhd/ and a few hundred seeded mutations of it through the checks of
fuzz/fuzz_vhd.py: only the format's own error, no hang, nothing left by a failed convert
(the tests are tests/fuzzreplay.py's CorpusReplay)."""

from __future__ import annotations

from fuzzreplay import CorpusReplay


class TestVhdCorpus(CorpusReplay):
    fmt = "vhd"
