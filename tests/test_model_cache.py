"""The test-model cache stays bounded: old generations and the least recently used go, builds under way stay."""
import os
import time

from utils.testing import model_cache


def test_prune_keeps_the_recent_within_the_cap_and_builds_under_way(tmp_path):
    now = time.time()
    for number, kib in enumerate([3, 2, 2]):  # k0 used first, k2 last
        entry = tmp_path / f"k{number}"
        entry.mkdir()
        (entry / "model.h5").write_bytes(b"x" * kib * 1000)
        (entry / ".complete").touch()
        os.utime(entry / ".complete", (now - 100 + number, now - 100 + number))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / ".complete").touch()
    os.utime(tmp_path / "old" / ".complete", (0, 0))          # unused for years
    (tmp_path / ".k9-building").mkdir()                         # another worker's build
    (tmp_path / ".k8-died").mkdir()
    os.utime(tmp_path / ".k8-died", (0, 0))                     # a build that died long ago
    (tmp_path / "k0.lock").touch()
    model_cache.prune(tmp_path, keep_bytes=4500)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".k9-building", "k0.lock", "k1", "k2"]
