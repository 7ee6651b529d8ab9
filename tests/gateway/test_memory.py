"""The server's heap settings, tried for what they are for: freed large buffers go back to the system, and the
threads of a process share two malloc arenas. Each probe runs in a process of its own, with and without them: the
untuned run shows that the probe can tell (glibc keeps the memory, gives each thread an arena)."""

import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

_LIBC = """
import ctypes, sys, threading
import gateway.memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "tuned":
    assert gateway.memory.keep_heap_small()
"""

# A 400 KB buffer freed first (what raises glibc's own threshold), then 100 of them, and every other one freed while
# its neighbours live, as buffers of calls that end out of order: prints the KB the process gave back.
_GIVEN_BACK = """
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
size = 400 * 1024
def buffer():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block
libc.free(buffer())
buffers = [buffer() for _ in range(100)]
before = resident()
for block in buffers[::2]:
    libc.free(block)
print((before - resident()) // 1024)
"""

# Eight threads that each allocate, alive together; glibc's malloc_stats names each arena on stderr.
_ARENAS = """
together = threading.Barrier(9)
def allocate():
    libc.malloc(1000)
    together.wait()
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
together.wait()
libc.malloc_stats()
together.wait()
"""


def _probe(code: str, mode: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", _LIBC + code, mode], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


@glibc_only
def test_freed_large_buffers_go_back_to_the_system():
    tuned = int(_probe(_GIVEN_BACK, "tuned").stdout)
    untuned = int(_probe(_GIVEN_BACK, "untuned").stdout)

    assert tuned >= 19_000  # the 50 freed buffers, 20,000 KB, unmapped
    assert untuned < 1_000  # kept in the heap between their live neighbours


@glibc_only
def test_the_threads_of_a_process_share_two_arenas():
    def arenas(mode: str) -> int:
        return sum(line.startswith("Arena ") for line in _probe(_ARENAS, mode).stderr.splitlines())

    assert arenas("tuned") == 2
    assert arenas("untuned") > 2


@glibc_only
def test_every_server_process_sets_them_when_it_loads_the_asgi_application():
    # uvicorn's worker processes import gateway.asgi and nothing of `manage.py serve`: the import must do it.
    probe = "import unittest.mock as m, gateway.memory as g; p = m.patch.object(g, 'keep_heap_small'); s = p.start(); "
    probe += "import gateway.asgi; print(s.call_count)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "1", done.stderr


def test_freezing_leaves_what_is_loaded_out_of_later_collections_and_collects_the_young_less_often():
    # In a process of its own: a freeze lasts for the process. 10,000 new lists kept: Python's default threshold (700)
    # would collect the young generation 14 times meanwhile.
    probe = "import gc, gateway.memory as g; before = gc.get_freeze_count(); g.freeze_long_lived_objects(); "
    probe += "young = gc.get_stats()[0]['collections']; kept = [[] for _ in range(10_000)]; "
    probe += "print(before, gc.get_freeze_count() > 1000, gc.get_stats()[0]['collections'] - young)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["0", "True", "0"], done.stderr


def test_a_server_process_never_imports_httpxs_command_line_client():
    # In a process of its own, as a worker starts: the ASGI application, the proxy's modules, a client of httpx's.
    probe = "import sys, gateway.asgi, gateway.proxy.views, gateway.urls, httpx; httpx.Client().close(); "
    probe += "print([name for name in ('httpx._main', 'rich') if sys.modules.get(name)], callable(httpx.main))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["[]", "True"], done.stderr
