"""glibc's malloc, told to give memory back: a gateway's large buffers (a 400 KB prompt, a long answer) come and go.

By default glibc raises its mmap threshold each time a large block is freed, up to 32 MB: after a few 400 KB
requests such buffers come from the heap, where freed memory stays with the process. And each thread that
allocates gets an arena of its own (up to 8 per core). A fixed threshold and two arenas keep the resident size
near what is in use.
"""

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 128 * 1024
ARENAS = 2


def keep_heap_small() -> bool:
    """Set the threshold and the arenas for this process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_ARENA_MAX, ARENAS))
