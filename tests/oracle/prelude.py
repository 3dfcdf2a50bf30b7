# The CPython oracle's prelude: the stmjit builtins that Python lacks, so that a program of the
# Python-compatible subset of LANGUAGE.md runs unchanged under python3 and gives the expected
# output of the corpus independently of the reference interpreter.
import collections as _collections
import json as _json
import math as _math
import os as _os
import sys as _sys
import threading as _threading
import time as _time

# One global reentrant lock stands for "runs as one transaction".
_atomic_lock = _threading.RLock()


class _Atomic:
    def __enter__(self):
        _atomic_lock.acquire()
        return self

    def __exit__(self, *exc):
        _atomic_lock.release()
        return False


atomic = _Atomic()


# Thread, Lock and TransactionQueue are classes that print as stmjit's builtin types do
# (`<class 'Lock'>`: a class of module builtins shows no module), so that type() of them,
# isinstance and their names agree.
class Thread:
    # An uncaught exception ends the thread only; each join() raises it again.
    __module__ = "builtins"

    def __init__(self, f, args):
        self._result = None
        self._exc = None

        def body():
            try:
                self._result = f(*args)
            except BaseException as e:
                self._exc = e

        self._thread = _threading.Thread(target=body)
        self._thread.start()

    def join(self):
        self._thread.join()
        if self._exc is not None:
            raise self._exc
        return self._result


def spawn(f, *args):
    return Thread(f, args)


class Lock:
    # Reentrant, as nested `with lock:` blocks join the outer transaction.
    __module__ = "builtins"

    def __init__(self):
        self._lock = _threading.RLock()

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()
        return False


class TransactionQueue:
    __module__ = "builtins"

    def __init__(self):
        self._calls = _collections.deque()

    def add(self, f, *args):
        self._calls.append((f, args))

    def run(self):
        # Serially, in order: a valid schedule of "in parallel, each call atomic".
        while self._calls:
            f, args = self._calls.popleft()
            with atomic:
                f(*args)


def cores():
    # PyPy3 7.3 lacks os.sched_getaffinity; fall back to the CPU count there.
    if hasattr(_os, "sched_getaffinity"):
        return len(_os.sched_getaffinity(0))
    return _os.cpu_count() or 1


def args():
    return list(_sys.argv[1:])


sqrt = _math.sqrt
time = _time.monotonic


# json_encode / json_decode are Python's json.dumps / json.loads with their defaults.
json_encode = _json.dumps
json_decode = _json.loads
