"""What differs between the machines Coral users have: the CPU's instruction sets (which decide
whether int8 beats float), and the calls that Windows or macOS answer differently from Linux."""
from __future__ import annotations

import os
import sys

from utils import machine

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2\n"
AVX512_VNNI = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni amx_int8\n"
PI4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"
PI5 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"


def test_instruction_sets_are_read_on_x86_and_arm():
    assert machine.instruction_sets(AVX2_ONLY) == ["AVX2", "FMA"]
    assert machine.instruction_sets(AVX512_VNNI) == ["AVX2", "FMA", "AVX-512F", "AVX-512 VNNI", "AMX-INT8"]
    assert machine.instruction_sets(PI4) == ["NEON"]
    assert machine.instruction_sets(PI5) == ["NEON", "NEON dot product"]
    assert machine.instruction_sets("no such lines\n") == []


def test_int8_dot_products_pi5_and_vnni_yes_pi4_and_avx2_no():
    assert [machine.has_int8_dot_products(text) for text in (AVX2_ONLY, AVX512_VNNI, PI4, PI5)] == \
        [False, True, False, True]


def test_cpu_description_names_this_cpu():
    assert machine.cpu_description().startswith(machine.cpu_name())


def test_peak_memory_is_reported_where_the_os_has_it(monkeypatch):
    peak = machine.peak_memory_mib()
    assert peak is None if os.name == "nt" else 10 < peak < 1e6
    monkeypatch.setitem(sys.modules, "resource", None)  # as on Windows: no resource module
    assert machine.peak_memory_mib() is None


def test_keras_model_with_upper_case_suffix_loads_without_symbolic_links(tmp_path, monkeypatch):
    """Windows grants symbolic links to administrators only: the loader copies the file instead."""
    import keras

    from utils.runtime.keras_engine import load_keras_model
    path = tmp_path / "MODEL.H5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "model.h5")
    (tmp_path / "model.h5").rename(path)

    def refuse(*args, **kwargs):
        raise OSError("symbolic link privilege not held")
    monkeypatch.setattr(os, "symlink", refuse)
    assert load_keras_model(path).output_shape == (None, 2)
