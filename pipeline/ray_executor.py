"""The per-call stages on a Ray cluster: a pool of actors, each loading the models once.

- One actor per worker: on a GPU cluster ``gpus_per_worker`` GPUs each (one actor per GPU by
  default); CPU actors get an equal share of a node's cores and set their thread counts to it.
- Actors return records; the batch driver is the only writer of the store.
- A bounded number of calls is in flight per actor. An actor that dies loses only its calls
  in flight: each is retried on a replacement actor up to ``batch.max_retries`` times, then
  recorded as failed with the reason.
- Before a call runs, the actor checks that its audio is readable there (a worker on another
  node sees its own filesystem), and fails that call with a one-line reason otherwise.

Ray is an optional extra (``pip install "callpipe[ray]"``) and is imported only here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable

from . import executors, remote
from .config import Config
from .executors import ExecutorError, ExecutorOptions, Results, Work

INSTALL_HINT = 'the Ray executor needs Ray, which is not installed: pip install "callpipe[ray]"'
ACTOR_PREFIX = "callpipe-worker"
READY_TIMEOUT_S = 600.0
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError(INSTALL_HINT) from None
    return ray


def plan_actors(node_cpus: list[float], node_gpus: list[float], workers: int | None, gpus_per_worker: float) -> tuple[int, int, float]:
    """(actors, CPUs per actor, GPUs per actor) that fit the cluster's nodes, or ExecutorError saying why not."""
    if gpus_per_worker:
        fits = sum(math.floor(g / gpus_per_worker + 1e-9) for g in node_gpus)
        if fits == 0:
            raise ExecutorError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has no node with that many GPUs "
                                f"(GPUs per node: {node_gpus or [0]})")
        actors = workers or fits
        if actors > fits:
            raise ExecutorError(f"--workers {actors} with {gpus_per_worker:g} GPU(s) each do not fit the Ray cluster "
                                f"({sum(node_gpus):g} GPU(s); at most {fits} such workers)")
        return actors, 1, gpus_per_worker
    actors = workers or max(1, len(node_cpus))
    for cpus in range(int(max(node_cpus, default=0)), 0, -1):
        if sum(int(c) // cpus for c in node_cpus) >= actors:
            return actors, cpus, 0.0
    raise ExecutorError(f"--workers {actors}: the Ray cluster has only {int(sum(node_cpus))} CPU(s); "
                        "each worker needs at least one")


def readable_problem(path) -> str | None:
    """Why ``path`` cannot be read on this machine, or None when it can."""
    if remote.is_url(path):
        return remote.readable_problem(path)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "a directory"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None



def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a HOST:PORT nobody answers at: Ray itself keeps retrying for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"no Ray cluster answers at {address} ({exc.strerror or exc})") from None


class CallWorker:
    """A Ray actor (made remote by ``RayExecutor``): loads the models once and processes many calls."""

    def __init__(self, cfg: Config, threads: int):
        for var in THREAD_VARS:
            if threads:
                os.environ[var] = str(threads)
        executors._init_worker(cfg)
        self.host = socket.gethostname()
        self.threads = threads

    def ready(self) -> dict:
        """Load the models now, so a worker that cannot load them says so before any call is sent."""
        proc = executors.processor()
        proc.transcriber
        proc.tagger("en")
        if self.threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.threads)
        return {"host": self.host, "pid": os.getpid()}

    def process(self, item, sha: str):
        problem = readable_problem(item.path)
        if problem:
            return "failed", f"{item.path}: not readable from the Ray worker on {self.host} ({problem})"
        return executors._process_one(item, sha)


class RayExecutor(executors.Executor):
    """Ray actors as the executor; see the module docstring."""

    def __init__(self, cfg: Config, options: ExecutorOptions):
        self.ray = import_ray()  # fails here, before any work, when the extra is missing
        self.cfg = cfg
        self.options = options
        self.max_retries = cfg.batch.max_retries
        self.in_flight_per_worker = cfg.batch.in_flight_per_worker
        self.started_ray = False
        self.actors: list = []
        self.generation: list[int] = []
        self.startup_seconds = 0.0  # connecting to (or starting) Ray
        self.workers_seconds = 0.0  # starting the actors, models loaded
        self._remote = None
        self._token = uuid.uuid4().hex[:8]

    # -- start and stop -------------------------------------------------------------------------------

    def start(self) -> None:
        ray = self.ray
        began = time.perf_counter()
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
            try:
                if self.options.ray_address:
                    check_reachable(self.options.ray_address)
                    ray.init(address=self.options.ray_address, **kwargs)
                else:
                    ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
            except Exception as exc:
                where = self.options.ray_address or "a local instance"
                raise ExecutorError(f"cannot start Ray ({where}): {' '.join(str(exc).split())}") from None
            self.started_ray = True
        try:
            nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
            self.n_actors, self.cpus, self.gpus = plan_actors(
                [n.get("CPU", 0.0) for n in nodes], [n.get("GPU", 0.0) for n in nodes],
                self.options.workers, self.options.gpus_per_worker)
            self.worker_cfg = self._worker_config()
            self._remote = ray.remote(CallWorker)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.perf_counter() - began

    def _start_workers(self) -> None:
        """Start the actors and wait until each has loaded the models (only when there is work)."""
        began = time.perf_counter()
        self.actors = [self._new_actor(slot, 0) for slot in range(self.n_actors)]
        self.generation = [0] * self.n_actors
        self._wait_ready(self.actors)
        self.workers_seconds = time.perf_counter() - began

    def announce(self, log) -> None:
        where = self.options.ray_address or ("a local instance" if self.started_ray else "the Ray this process is connected to")
        log("executor", f"Ray ({where}, connected in {self.startup_seconds:.1f} s): {self.n_actors} worker(s), "
            f"{self.cpus} CPU(s) and {self.gpus:g} GPU(s) each", address=self.options.ray_address, workers=self.n_actors,
            cpus_per_worker=self.cpus, gpus_per_worker=self.gpus, connect_seconds=round(self.startup_seconds, 2))

    def _worker_config(self) -> Config:
        asr = self.cfg.asr
        if not self.gpus:
            # CPU actors: threads = the cores Ray reserved for the actor; never a GPU the node may have.
            asr = dataclasses.replace(asr, cpu_threads=asr.cpu_threads or self.cpus,
                                      device="cpu" if asr.device == "auto" else asr.device)
        return dataclasses.replace(self.cfg, asr=asr)

    def _new_actor(self, slot: int, generation: int):
        threads = self.worker_cfg.asr.cpu_threads if not self.gpus else 0
        env = {var: str(threads) for var in THREAD_VARS} if threads else {}
        return self._remote.options(
            name=f"{ACTOR_PREFIX}-{self._token}-{slot}-{generation}",
            num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0, max_task_retries=0,
            runtime_env={"env_vars": env} if env else None,
        ).remote(self.worker_cfg, threads)

    def _wait_ready(self, actors: list) -> None:
        ray = self.ray
        refs = [a.ready.remote() for a in actors]
        done, waiting = ray.wait(refs, num_returns=len(refs), timeout=READY_TIMEOUT_S)
        if waiting:
            raise ExecutorError(f"Ray could not start {len(waiting)} of {len(refs)} worker(s) within {READY_TIMEOUT_S:.0f} s "
                                f"({self.cpus} CPU(s), {self.gpus:g} GPU(s) each); is the cluster busy or too small?")
        for ref in done:
            try:
                ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise executors_setup_error(exc) from None

    def close(self) -> None:
        ray = self.ray
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self.actors = []
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
        self.started_ray = False

    # -- dispatch -------------------------------------------------------------------------------------

    def results(self, todo: Work, stop: Callable[[], bool], log=None) -> Results:
        ray = self.ray
        if not todo:
            return
        if not self.actors:
            self._start_workers()
            if log is not None:
                log("workers", f"Ray workers ready in {self.workers_seconds:.1f} s (models loaded)",
                    seconds=round(self.workers_seconds, 2))
        pending = deque(todo)
        attempts: dict[str, int] = {}
        in_flight: dict = {}  # ObjectRef -> (slot, generation, item, sha)
        load = [0] * len(self.actors)
        bound = self.in_flight_per_worker
        while pending or in_flight:
            if not stop():
                for slot in range(len(self.actors)):
                    while pending and load[slot] < bound:
                        item, sha = pending.popleft()
                        ref = self.actors[slot].process.remote(item, sha)
                        in_flight[ref] = (slot, self.generation[slot], item, sha)
                        load[slot] += 1
            if not in_flight:
                return
            # A timeout, so a stop request is seen while long calls are in flight.
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in done:
                slot, generation, item, sha = in_flight.pop(ref)
                load[slot] -= 1
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    key = str(item.path)
                    attempts[key] = attempts.get(key, 0) + 1
                    cause = _one_line(exc)
                    if self.generation[slot] == generation:
                        self._replace(slot, log, cause)
                    if attempts[key] <= self.max_retries:
                        pending.appendleft((item, sha))
                        continue
                    n = attempts[key]
                    outcome = ("failed", f"{item.path}: Ray worker died while processing this call, after {n} attempt{'s' * (n != 1)} ({cause})")
                except ray.exceptions.RayError as exc:
                    outcome = ("failed", f"{item.path}: {_one_line(exc)}")
                yield item, sha, outcome

    def _replace(self, slot: int, log, cause: str) -> None:
        """The actor in ``slot`` died: start a new one there (its calls in flight are retried by the caller)."""
        try:
            self.ray.kill(self.actors[slot], no_restart=True)
        except Exception:
            pass
        self.generation[slot] += 1
        self.actors[slot] = self._new_actor(slot, self.generation[slot])
        if log is not None:
            log("worker_died", f"Ray worker {slot} died ({cause}); its calls in flight are retried on a new worker",
                worker=slot, cause=cause)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:297] + "..."


def executors_setup_error(exc: BaseException) -> Exception:
    from .batch import SetupError

    return SetupError(f"a Ray worker cannot load the models: {_one_line(exc)}")
