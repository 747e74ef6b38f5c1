"""Where the per-call stages run: in this process, in local worker processes, or on a Ray cluster.

An executor turns a list of ``(input, sha256)`` into ``(input, sha256, outcome)`` as calls
finish, where ``outcome`` is ``("ok", (call, tags, analysis, events))`` or ``("failed", reason)``
with a one-line reason naming the file. It never writes the store: the batch driver does, one
transaction per call. It stops submitting new calls once ``stop()`` is true and finishes the
calls in flight.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from . import audio as audio_mod
from .config import Config
from .inputs import CallInput
from .runner import CallProcessor

EXECUTORS = ("local", "ray")

Work = list[tuple[CallInput, str]]
Outcome = tuple[str, object]
Results = Iterator[tuple[CallInput, str, Outcome]]


class ExecutorError(Exception):
    """The executor cannot be started (missing extra, unreachable cluster, resources that do not fit)."""


@dataclass(frozen=True)
class ExecutorOptions:
    kind: str = "local"
    """"local" (this machine: in process, or worker processes) or "ray" (a Ray cluster)."""
    workers: int | None = None
    """Calls processed in parallel; None = 1 locally, one actor per GPU or per node on Ray."""
    ray_address: str = ""
    """'' = start a local Ray instance; otherwise the address of a running cluster ("auto", "HOST:6379"; "ray://HOST:10001" with ray[client])."""
    gpus_per_worker: float = 0.0
    """GPUs per Ray actor; 0 = CPU actors."""

    def check(self) -> "ExecutorOptions":
        if self.kind not in EXECUTORS:
            raise ExecutorError(f"--executor {self.kind!r}: choose one of {', '.join(EXECUTORS)}")
        if self.workers is not None and self.workers < 1:
            raise ExecutorError(f"--workers must be >= 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ExecutorError(f"--gpus-per-worker must be >= 0, got {self.gpus_per_worker}")
        if self.kind != "ray" and (self.ray_address or self.gpus_per_worker):
            raise ExecutorError("--ray-address and --gpus-per-worker need --executor ray")
        return self


class Executor(ABC):
    """Start once (models loaded), then ``results`` once per batch, then ``close``."""

    def start(self) -> None:
        pass

    def announce(self, log) -> None:
        """Log where the work runs, once started."""

    @abstractmethod
    def results(self, todo: Work, stop: Callable[[], bool], log=None) -> Results:
        """(input, sha, (status, record or reason)) for each call of ``todo``, as they finish."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_executor(options: ExecutorOptions, cfg: Config) -> Executor:
    """The executor for ``options``; for Ray this only checks that Ray is installed (``start`` connects)."""
    options.check()
    if options.kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(cfg, options)
    return LocalExecutor(cfg, options.workers or 1)


# --- per-call work, in this process or in a worker process ------------------------------------------

_PROCESSOR: CallProcessor | None = None


def processor() -> CallProcessor | None:
    """The processor this process loaded, if any."""
    return _PROCESSOR


def _init_worker(cfg: Config, started=None, gpus: int = 0) -> None:
    # The parent decides when to stop; a worker finishes the call it has.
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    if gpus and started is not None:
        pin_gpu(started, gpus)
    global _PROCESSOR
    _PROCESSOR = CallProcessor(cfg)


def pin_gpu(started, gpus: int) -> int:
    """Give this worker process one GPU of ``gpus``, in the order the workers start.

    ``started`` is a shared counter. Set before CUDA starts in this process, so the engines
    see that GPU alone and load one model on it: one worker per GPU.
    """
    with started.get_lock():
        index = started.value
        started.value += 1
    gpu = index % gpus
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return gpu


def _local_gpus(cfg: Config) -> int:
    """GPUs that local worker processes are spread over (0 on CPU)."""
    if cfg.asr.device not in ("auto", "cuda"):
        return 0
    from .transcribe.base import cuda_device_counts

    return max(cuda_device_counts())


def _init_worker_in_process(cfg: Config) -> None:
    global _PROCESSOR
    if _PROCESSOR is None or _PROCESSOR.cfg != cfg:
        _PROCESSOR = CallProcessor(cfg)


def _process_one(item: CallInput, sha: str) -> Outcome:
    """("ok", records) or ("failed", one-line reason); never raises for a bad input."""
    try:
        return "ok", _PROCESSOR.process(item, sha)
    except Exception as exc:  # a nightly batch records any per-call failure and goes on
        return "failed", failure_reason(item, exc)


def failure_reason(item: CallInput, exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    if str(item.path) not in text:
        text = f"{item.path}: {text}"
    if not isinstance(exc, (audio_mod.AudioError, OSError)) and exc.__class__.__name__ not in text:
        text = f"{text} ({exc.__class__.__name__})"
    return text


def _threads_per_worker(cfg: Config, workers: int, cores: int | None = None) -> Config:
    """Give each of ``workers`` an equal share of ``cores`` CTranslate2 threads, unless set in the config."""
    if workers <= 1 or cfg.asr.cpu_threads:
        return cfg
    threads = max(1, (cores or os.cpu_count() or 1) // workers)
    return dataclasses.replace(cfg, asr=dataclasses.replace(cfg.asr, cpu_threads=threads))


# --- this machine ------------------------------------------------------------------------------------

class LocalExecutor(Executor):
    """One worker: in this process. N workers: N spawned processes, each loading the models once.

    One process uses every GPU it sees (a model replica on each); with N workers and GPUs,
    each worker is pinned to one GPU in turn, so N = the number of GPUs is one worker per GPU.
    """

    def __init__(self, cfg: Config, workers: int = 1):
        self.workers = workers
        self.cfg = _threads_per_worker(cfg, workers)

    def results(self, todo: Work, stop: Callable[[], bool], log=None) -> Results:
        cfg, workers = self.cfg, self.workers
        if workers <= 1:
            _init_worker_in_process(cfg)
            for item, sha in todo:
                if stop():
                    return
                yield item, sha, _process_one(item, sha)
            return
        import multiprocessing

        pending = list(reversed(todo))
        ctx = multiprocessing.get_context("spawn")  # fork after torch/CTranslate2 start-up is unsafe
        gpus = _local_gpus(cfg)
        while pending:
            started = ctx.Value("i", 0)
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg, started, gpus)) as pool:
                in_flight: dict[Future, tuple[CallInput, str]] = {}
                broken = False
                while (pending or in_flight) and not broken:
                    while pending and len(in_flight) < 2 * workers and not stop():
                        item, sha = pending.pop()
                        in_flight[pool.submit(_process_one, item, sha)] = (item, sha)
                    if not in_flight:
                        return
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        item, sha = in_flight.pop(future)
                        try:
                            yield item, sha, future.result()
                        except BrokenProcessPool:
                            # A worker died (killed, out of memory): its calls fail, the batch restarts the pool.
                            broken = True
                            yield item, sha, ("failed", f"{item.path}: worker process died while processing this call")
                for future, (item, sha) in in_flight.items():
                    yield item, sha, ("failed", f"{item.path}: worker process died while processing this call")
            if stop():
                return
