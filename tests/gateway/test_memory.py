"""The server's heap settings (the benchmark's memory scenario shows what they are for)."""

import platform
import subprocess
import sys

import pytest

from gateway.memory import ARENAS, MMAP_THRESHOLD_BYTES, keep_heap_small

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@glibc_only
def test_glibc_takes_the_fixed_mmap_threshold_and_the_arena_cap():
    assert keep_heap_small()
    assert (MMAP_THRESHOLD_BYTES, ARENAS) == (128 * 1024, 2)


@glibc_only
def test_every_server_process_sets_them_when_it_loads_the_asgi_application():
    # uvicorn's worker processes import gateway.asgi and nothing of `manage.py serve`: the import must do it.
    probe = "import unittest.mock as m, gateway.memory as g; p = m.patch.object(g, 'keep_heap_small'); s = p.start(); "
    probe += "import gateway.asgi; print(s.call_count)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "1", done.stderr


def test_freezing_leaves_what_is_loaded_out_of_later_collections_and_collects_the_young_less_often():
    # In a process of its own: a freeze lasts for the process.
    probe = "import gc, gateway.memory as g; before = gc.get_freeze_count(); g.freeze_long_lived_objects(); "
    probe += "print(before, gc.get_freeze_count() > 1000, gc.get_threshold()[0] == g.YOUNG_COLLECTION_THRESHOLD)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["0", "True", "True"], done.stderr
