"""Where tasks run: one `Backend` primitive, ``map(fn, items)``, on a local pool or on Ray.

Sweeps (`advlab.sweep`, one task per point) and sharded evaluations (`advlab.shards`, one task
per shard) both go through it, so both get the same worker setup, thread limits, retries and
failure reporting.

Resume and retries rest on one contract: a task must be idempotent, finding what an earlier
attempt finished and doing only the rest (a sweep point reuses its complete run folder, a
shard skips the chunk files already written). A backend may therefore run a task again when
its worker died (killed, out of memory, node lost): `LocalBackend` restarts its pool and
resubmits the tasks that were in flight, Ray reruns the task, each up to ``retries`` times.
A task still lost after that is reported through ``on_lost`` (its return value stands for the
task's result) or, without it, raised as `RunError`. An exception that ``fn`` itself raises is
never retried: it is a bug or bad input, and rerunning would raise it again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from advlab.errors import ConfigError, RunError
from advlab.fileio import process_alive
from advlab.validation import check_int, check_number, check_positive

log = logging.getLogger(__name__)

OnLost = Callable[[int, str], Any]


class Backend(Protocol):
    """Where tasks run. `LocalBackend` is the default; `RayBackend` a cluster."""

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, on_lost: OnLost | None = None
    ) -> Iterator[tuple[int, Any]]:
        """``fn(item)`` for every item (a picklable module-level function and plain data);
        yield ``(index, result)`` as each finishes, in any order. A task whose worker died more
        than the backend's retries yields ``(index, on_lost(index, error))``, or raises
        `RunError` without `on_lost`; an exception raised by `fn` is raised here."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings worth recording next to the results (kind, workers, threads)."""
        ...


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class LocalBackend:
    """A process pool on this machine: embedded, no server.

    Workers fork from a forkserver that has imported torch and the task's module once (spawn
    where there is no forkserver); torch does not survive a plain fork of a process that has
    used it. Each worker limits torch's and the BLAS libraries' threads to `threads`, default
    cores // workers, so workers do not fight over cores. The thread count depends on
    `workers` alone, not on how many tasks are left, so a resumed sweep computes with the same
    threads as the first call.

    Args:
        workers: Number of worker processes (at most this many tasks at once).
        threads: Torch threads per worker (default: usable cores // workers, at least 1).
        retries: How often a task is rerun after its worker died. One death breaks the pool
            and every task in flight with it; those are rerun each in a pool of its own, so
            a task that kills its worker uses up only its own retries.
    """

    def __init__(self, workers: int = 2, *, threads: int | None = None, retries: int = 1) -> None:
        self.workers = check_int("--workers", workers, minimum=1)
        self.threads = None if threads is None else check_int("threads", threads, minimum=1)
        self.retries = check_int("retries", retries, minimum=0)

    def _threads(self) -> int:
        return self.threads or max(1, cpu_count() // self.workers)

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "workers": self.workers, "threads": self._threads()}

    def _pool(self, n: int, fn: Callable[[Any], Any]) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=min(self.workers, n),
            mp_context=_mp_context(fn),
            initializer=_init_worker,
            initargs=(self._threads(), dict(os.environ), os.getcwd(), os.getpid()),
        )

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, on_lost: OnLost | None = None
    ) -> Iterator[tuple[int, Any]]:
        # A worker's death breaks the whole pool, and every task in flight with it: which one
        # killed it is unknown. Those tasks are rerun each in a pool of its own, where a death
        # can only be its own: a task that kills its worker costs the others a rerun, never
        # their result.
        suspects: list[int] = []
        yield from self._run(fn, items, range(len(items)), suspects)
        deaths = dict.fromkeys(suspects, 1)
        while suspects:
            batch, suspects = suspects[: self.workers], suspects[self.workers :]
            outcomes: dict[int, Any] = {}
            pools = {i: self._pool(1, fn) for i in batch}
            try:
                futures = {pools[i].submit(fn, items[i]): i for i in batch}
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        outcomes[i] = future.result()
                    except BrokenProcessPool:
                        deaths[i] += 1
            finally:
                for pool in pools.values():
                    pool.shutdown(wait=True, cancel_futures=True)
            for i in batch:
                if i in outcomes:
                    yield i, outcomes[i]
                elif deaths[i] <= self.retries:
                    suspects.append(i)
                else:
                    error = (
                        f"task {i}: its worker process died {deaths[i]} time(s) (killed, out "
                        "of memory or crashed)"
                    )
                    if on_lost is None:
                        raise RunError(error)
                    yield i, on_lost(i, error)

    def _run(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        todo: Sequence[int],
        broken: list[int],
    ) -> Iterator[tuple[int, Any]]:
        """The tasks `todo` on one shared pool; those in flight when a worker died go to
        `broken`."""
        if not todo:
            return
        executor = self._pool(len(todo), fn)
        try:
            futures: dict[Future[Any], int] = {executor.submit(fn, items[i]): i for i in todo}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when="FIRST_COMPLETED")
                for future in done:
                    i = futures[future]
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken.append(i)
                        continue
                    yield i, result
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if broken:
            log.warning(
                "a worker process died; rerunning the %d task(s) it took down, each in a pool of "
                "its own",
                len(broken),
            )
        broken.sort()


def _mp_context(fn: Callable[[Any], Any]) -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Imported once in the server (about 6 s of torch/torchvision), not once per worker;
        # the server never computes, so no thread pool or CUDA context is forked. The preload
        # takes effect when the server starts, i.e. for the first pool of this process.
        module = getattr(fn, "__module__", None)
        extra = [module] if module and module != "__main__" else []
        ctx.set_forkserver_preload(["torch", *extra])
        return ctx
    return multiprocessing.get_context("spawn")


def _init_worker(threads: int, environ: dict[str, str], cwd: str, caller: int) -> None:
    threading.Thread(target=_watch_caller, args=(caller,), daemon=True).start()
    # A forkserver's children inherit the server's environment and folder, which may be older
    # than the caller's: take the caller's as they are now (data and cache locations).
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    # numpy's BLAS has its own pool: two workers each spinning all cores made the demo's
    # preprocessing 15x slower than when run alone.
    threadpool_limits(threads)


def _watch_caller(caller: int, interval: float = 0.5) -> None:
    """End this worker, and the forkserver it came from, soon after the process that made the
    pool is gone, however it died (SIGKILL included): no worker outlives its caller to finish
    tasks nobody collects or to write into folders a resumed run now owns."""
    while process_alive(caller):
        time.sleep(interval)
    server = os.getppid()  # the forkserver (its own caller is gone too), or the caller
    if server not in (caller, 1):
        with contextlib.suppress(OSError):
            os.kill(server, signal.SIGTERM)
    os._exit(1)


class RayBackend:
    """Tasks on a running Ray cluster, or on one started here for the call.

    Each task asks for `cpus` CPUs and `gpus` GPUs, so Ray places it on a node that has them
    (a GPU machine's tasks land on its GPUs: ``--device cuda`` with ``gpus=1``); inside the task
    torch uses `cpus` threads. Ray runs a task at least once: when its worker dies (killed, out
    of memory, node lost) Ray starts it again, up to `retries` times.

    Every node must see the output folders at the same absolute path (a shared filesystem such
    as NFS, or one machine), and the same data and model-store locations: the caller's
    ``ADVLAB_*`` environment variables travel with each task.

    Args:
        address: ``ray://`` or ``host:port`` of a running cluster (``ray start --head`` prints
            it), ``"auto"`` for the one this machine belongs to, or None to start a private
            local cluster for the call and stop it afterwards.
        max_parallel: At most this many tasks in flight (default: as many as the cluster's
            resources allow).
        cpus: CPUs each task asks for, and torch's thread count inside it.
        gpus: GPUs each task asks for (fractions share a GPU).
        retries: How often Ray reruns a task whose worker died.
        num_cpus: CPUs of the private local cluster when `address` is None (default: all).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        max_parallel: int | None = None,
        cpus: float = 1,
        gpus: float = 0,
        retries: int = 3,
        num_cpus: int | None = None,
    ) -> None:
        self.address = address
        self.max_parallel = max_parallel
        self.cpus = cpus
        self.gpus = gpus
        self.retries = retries
        self.num_cpus = num_cpus

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ray",
            "address": self.address or "local",
            "max_parallel": self.max_parallel,
            "cpus_per_task": self.cpus,
            "gpus_per_task": self.gpus,
            "retries": self.retries,
        }

    def _check(self) -> None:
        if self.max_parallel is not None:
            check_int("--max-parallel", self.max_parallel, minimum=1)
        check_positive("cpus", self.cpus)
        check_number("gpus", self.gpus, minimum=0)
        check_int("retries", self.retries, minimum=0)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """Ray, joined (or started) for the duration of the block; yields the module."""
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--backend ray needs Ray: pip install 'advlab[cluster]' (or ray)"
            ) from None
        started = False
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith("ADVLAB_")}
            kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
            if self.address is None:
                kwargs.update(num_cpus=self.num_cpus, include_dashboard=False)
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RunError(
                    f"--address {self.address}: cannot join the Ray cluster ({exc}); is "
                    "`ray start --head` running there?"
                ) from None
            started = True
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()

    def _submit_all(
        self, ray: Any, remote: Any, args: Sequence[tuple[Any, ...]]
    ) -> Generator[tuple[int, Any], None, None]:
        """Submit ``remote.remote(*a)`` for each of `args`, at most `max_parallel` in flight;
        yields ``(index, object ref)`` of each finished task, any order."""
        limit = self.max_parallel or len(args)
        pending = list(range(len(args)))
        running: dict[Any, int] = {}
        try:
            while pending or running:
                while pending and len(running) < limit:
                    i = pending.pop(0)
                    running[remote.remote(*args[i])] = i
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    yield running.pop(ref), ref
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, on_lost: OnLost | None = None
    ) -> Iterator[tuple[int, Any]]:
        self._check()
        if not items:
            return
        threads = max(1, int(self.cpus))
        with self._session() as ray:
            from ray.exceptions import RayError, RayTaskError

            remote = ray.remote(_ray_call).options(
                num_cpus=self.cpus,
                num_gpus=self.gpus,
                max_retries=self.retries,
                retry_exceptions=False,
            )
            submitted = self._submit_all(ray, remote, [(fn, it, threads) for it in items])
            with contextlib.closing(submitted) as finished:  # cancels what runs if we stop early
                for i, ref in finished:
                    try:
                        yield i, ray.get(ref)
                    except RayTaskError as exc:  # fn raised: not retried, not "lost"
                        raise RunError(
                            f"task {i} failed on the Ray cluster: {_first_line(exc)}"
                        ) from None
                    except RayError as exc:
                        error = (
                            f"ray task lost after {self.retries} retries: "
                            f"{type(exc).__name__}: {_first_line(exc)}"
                        )
                        if on_lost is None:
                            raise RunError(f"task {i}: {error}") from None
                        yield i, on_lost(i, error)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _ray_call(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    """``fn(item)`` inside a Ray worker, with torch and BLAS held to the task's CPUs."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        return fn(item)


def make_backend(
    kind: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    max_parallel: int | None = None,
    gpus: float = 0,
) -> Backend | None:
    """The backend named on the command line (``--backend local|ray``); None: the default."""
    if kind == "local":
        if address is not None or max_parallel is not None:
            raise ConfigError("--address and --max-parallel belong to --backend ray")
        return None if workers is None else LocalBackend(workers)
    if kind == "ray":
        if workers is not None:
            raise ConfigError("--workers belongs to --backend local; use --max-parallel")
        return RayBackend(address, max_parallel=max_parallel, gpus=gpus)
    raise ConfigError(f"--backend: expected local or ray, found {kind!r}")
