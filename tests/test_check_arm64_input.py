"""make check-arm64's bad input: one line, exit 2, and nothing of the user's touched or half built
(the check itself takes minutes under emulation, so it is not part of make test)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, assert_user_error

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"),
                                reason="needs root, unshare and setpriv")


def check_arm64(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, str(ROOT / "bench" / "check_arm64.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@needs_root
def test_a_root_that_is_not_ours_is_left_alone(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for extra in ((), ("--fresh",)):
        assert_user_error(check_arm64("--root", str(mine), *extra), f"--root {mine} exists and is not a Debian root")
        assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@needs_root
def test_a_broken_root_says_how_to_rebuild_it(tmp_path):
    broken = tmp_path / "root"
    (broken / "etc").mkdir(parents=True)
    (broken / "etc" / "debian_version").write_text("12.8\n")
    assert_user_error(check_arm64("--root", str(broken)), "is broken (no usr/bin/python3)", "--fresh")


@needs_root
def test_without_the_network_nothing_is_built_or_installed(tmp_path):
    target = tmp_path / "root"
    result = check_arm64("--root", str(target), prefix=("unshare", "--net"))
    assert_user_error(result, "cannot reach http://deb.debian.org/debian", "needs the network once")
    assert not target.exists() and not target.with_name("root.partial").exists()


@needs_root
def test_without_root_it_says_so(tmp_path):
    result = check_arm64("--root", str(tmp_path / "root"),
                         prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
    assert_user_error(result, "needs root on an x86-64 Debian or Ubuntu host")


@needs_root
@pytest.mark.parametrize("method, fragment", [("kl", "'kl' is not one of minmax"), ("mse+round", "+bias or +finetune"),
                                              ("mse@x", "@N takes a number")])
def test_a_bad_method_is_refused_before_anything_runs(tmp_path, method, fragment):
    assert_user_error(check_arm64("--root", str(tmp_path / "root"), "--methods", "mse", method), fragment)
    assert not (tmp_path / "root").exists()
