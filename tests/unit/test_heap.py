"""The chief keeps its blocks' numpy temporaries on the heap: a block allocated again and again is faulted in
once, not at every flush."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")]

FAULTS = """
import resource, sys
import numpy as np
from framework.engine import heap
if sys.argv[1] == "raised":
    assert heap.keep_blocks_on_the_heap() and heap.keep_blocks_on_the_heap()  # once, then the same answer
block = np.arange(65536, dtype=np.int64)
def step():
    # the histograms' first step: three 512 KiB temporaries alive at once, then freed
    np.frexp((block | 2047).astype(np.float64))
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_a_block_freed_and_made_again_is_not_faulted_in_again():
    pages = 65536 * 8 // 4096
    assert _faults("default") >= 100 * pages  # glibc gives the freed top of the heap back, and faults it in again
    assert _faults("raised") < 10 * pages
