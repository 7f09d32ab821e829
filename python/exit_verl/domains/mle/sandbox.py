"""The sandbox that runs model-written scripts: bubblewrap (`bwrap`) plus resource limits.

What the script sees: a root file system of its own, read-only (`/usr` and the Python
installation running this code, so numpy, pandas and scikit-learn import), a fresh `/proc` of
its own process namespace, a minimal `/dev`, and size-limited tmpfs folders: `/tmp`,
`/dev/shm` and the working directory (`/work`, or another path where the Python installation
lives under /work). The working directory holds the public files and `solution.py`
(read-only binds) and `submission.csv`, the one writable bind to the host (its size bounded by
the file-size limit). No network (a network namespace with only loopback), no IPC, no view of
host processes, no capability, no new user namespace (`launcher.py`); hidden answers never
enter it (the grader runs outside), and a run refuses to start if a hidden-answer path lies
inside anything it binds.

Limits (`SandboxSettings`): setrlimit on address space, CPU seconds, processes (threads
included), file size and open files, applied by `launcher.py` before the script starts; wall
time by this process, which kills bwrap's process group on timeout. bwrap's init is pid 1 of
the run's pid namespace and dies with bwrap (`--die-with-parent`), so every process the script
left behind (daemons included) is killed when the script ends or times out.

Identity: run as root, bwrap runs privileged without a user namespace and the launcher
switches to a fresh random uid/gid for the run (root's processes are exempt from
RLIMIT_NPROC, and a fresh uid gives each run its own process count); run as another user, bwrap
creates a user namespace (Linux counts processes per namespace) and forbids nested ones.

Where bwrap is missing or cannot create its namespaces, nothing runs (`SandboxUnavailable`)
unless the caller opts in by name: `SandboxSettings(allow_unsandboxed=True)` or
`EXIT_VERL_MLE_ALLOW_UNSANDBOXED=1`. Then the script runs with the same limits in a temporary
folder but without any isolation, and a warning is logged at every run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("exit_verl.mle")

UNSANDBOXED_ENV = "EXIT_VERL_MLE_ALLOW_UNSANDBOXED"
LAUNCHER = Path(__file__).with_name("launcher.py")
# The working directory inside: the first of these that no bound host path overlaps.
WORKDIRS = ("/work", "/sandbox/work", "/exit-verl-sandbox/work")
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install "
    "bubblewrap; Arch: pacman -S bubblewrap) on a Linux kernel that allows user namespaces, or "
    f"opt in to running model code without a sandbox with {UNSANDBOXED_ENV}=1 (docs/mle.md)"
)
SHM_MB = 64  # /dev/shm: POSIX semaphores (joblib, multiprocessing)
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run here and the caller did not opt in to running without it."""


@dataclass(frozen=True)
class SandboxSettings:
    """Limits of one run (see the module docstring)."""

    memory_mb: int = 2048  # address space of each process (RLIMIT_AS)
    processes: int = 16  # processes and threads of the run together (RLIMIT_NPROC)
    file_mb: int = 256  # largest file the script may write, its output included (RLIMIT_FSIZE)
    submission_mb: int = 64  # largest submission.csv the grader reads (parsed in this process)
    workdir_mb: int = 512  # size of /work and of /tmp (tmpfs)
    open_files: int = 256  # RLIMIT_NOFILE
    cpu_s: float | None = None  # CPU seconds of each process; None: the run's timeout
    output_chars: int = 4000  # kept of the end of stdout and of stderr
    allow_unsandboxed: bool = False  # run without isolation where bwrap cannot run
    bwrap: str = "bwrap"

    def __post_init__(self) -> None:
        names = ("memory_mb", "processes", "file_mb", "submission_mb", "workdir_mb", "open_files")
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cpu_s is not None and not self.cpu_s > 0:
            raise ValueError(f"cpu_s must be > 0, got {self.cpu_s}")
        if self.output_chars < 100:
            raise ValueError(f"output_chars must be >= 100, got {self.output_chars}")

    @property
    def unsandboxed_allowed(self) -> bool:
        return self.allow_unsandboxed or os.environ.get(UNSANDBOXED_ENV, "") == "1"


@dataclass(frozen=True)
class ProcessResult:
    """How the script ended. `returncode` is the script's exit status (128 + n when signal n
    ended it), None when the wall-time limit killed it."""

    returncode: int | None
    seconds: float
    stdout: str
    stderr: str
    submission: bytes | None  # submission.csv's content; None when missing or empty
    sandboxed: bool


@lru_cache(maxsize=8)
def sandbox_problem(bwrap: str = "bwrap") -> str | None:
    """Why the sandbox cannot run here (None: it can); checked once per process."""
    if shutil.which(bwrap) is None:
        return f"bubblewrap ({bwrap}) is not installed: {INSTALL_HINT}"
    settings = SandboxSettings(bwrap=bwrap)
    try:
        result = _run_bwrap("import sys", {}, 60, settings, ())
    except OSError as e:
        return f"bwrap could not start ({e}): {INSTALL_HINT}"
    if result.returncode != 0:
        return f"bwrap failed ({result.stderr.strip()[-500:]}): {INSTALL_HINT}"
    return None


def execute(
    code: str,
    public: Mapping[str, bytes | Path],
    timeout_s: float,
    settings: SandboxSettings,
    private: Sequence[Path] = (),
) -> ProcessResult:
    """Runs `code` as `solution.py` in a fresh working directory holding `public`.

    `private`: host paths (hidden answers) that must not be visible inside; ValueError before
    anything runs if a bind would expose one. SandboxUnavailable if bwrap cannot run here and
    the caller did not opt in to running unsandboxed.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    problem = sandbox_problem(settings.bwrap)
    if problem is None:
        return _run_bwrap(code, public, timeout_s, settings, private)
    if not settings.unsandboxed_allowed:
        raise SandboxUnavailable(problem)
    log.warning(
        "RUNNING MODEL-WRITTEN CODE WITHOUT A SANDBOX (%s=1 or allow_unsandboxed): it can "
        "read and write your files and use the network. %s",
        UNSANDBOXED_ENV,
        problem,
    )
    return _run_unsandboxed(code, public, timeout_s, settings)


# -- bubblewrap -----------------------------------------------------------------------------


def python_roots() -> list[Path]:
    """The Python installation the script runs with: this interpreter's prefixes."""
    roots = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    roots.add(Path(sys.base_exec_prefix).resolve())
    return sorted(r for r in roots if not _inside(r, Path("/usr")))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def workdir() -> str:
    """The working directory's path inside the sandbox."""
    bound = [Path("/usr"), *python_roots()]
    for candidate in WORKDIRS:
        path = Path(candidate)
        if not any(_inside(b, path) or _inside(path, b) for b in bound):
            return candidate
    raise RuntimeError(f"every working directory candidate {WORKDIRS} overlaps {bound}")


def _parents(path: Path, made: set[Path]) -> list[str]:
    """Creates the missing parents of a bind target as 0755 folders (bwrap would copy the
    host's modes, and e.g. /root is 0700)."""
    args: list[str] = []
    for parent in reversed(path.parents[:-1]):
        if parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    made: set[Path] = set()
    for root in python_roots():
        args += [*_parents(root, made), "--ro-bind", str(root), str(root)]
    return args


def _check_private(private: Sequence[Path], bound: Sequence[Path]) -> None:
    for hidden in (Path(p).resolve() for p in private):
        for source in bound:
            if _inside(hidden, source) or _inside(source, hidden):
                raise ValueError(
                    f"hidden answers at {hidden} would be visible in the sandbox through "
                    f"{source}: keep competitions outside the Python installation and /usr"
                )


def _stage(staging: Path, code: str, public: Mapping[str, bytes | Path]) -> dict[str, Path]:
    """Host files behind the working directory's entries."""
    (staging / "public").mkdir()
    entries: dict[str, Path] = {}
    for name, content in public.items():
        if "/" in name or name in ("", ".", "..", "solution.py", "submission.csv"):
            raise ValueError(f"bad public file name {name!r}")
        if isinstance(content, bytes):
            path = staging / "public" / name
            path.write_bytes(content)
            path.chmod(0o644)
            entries[name] = path
        else:
            entries[name] = Path(content).resolve()
    solution = staging / "solution.py"
    solution.write_text(code, encoding="utf-8", errors="surrogateescape")
    solution.chmod(0o644)
    entries["solution.py"] = solution
    return entries


def _limits(timeout_s: float, settings: SandboxSettings) -> dict[str, list[int]]:
    cpu = int(max(1, round(settings.cpu_s if settings.cpu_s is not None else timeout_s)))
    mib = 1 << 20
    return {
        "RLIMIT_AS": [settings.memory_mb * mib] * 2,
        "RLIMIT_CPU": [cpu, cpu + 1],
        "RLIMIT_NPROC": [settings.processes] * 2,
        "RLIMIT_FSIZE": [settings.file_mb * mib] * 2,
        "RLIMIT_NOFILE": [settings.open_files] * 2,
        "RLIMIT_CORE": [0, 0],
    }


def _environment(workdir: str, tmpdir: str) -> dict[str, str]:
    one = "1"
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": tmpdir,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": one,
        "PYTHONUNBUFFERED": one,
        "OMP_NUM_THREADS": one,
        "OPENBLAS_NUM_THREADS": one,
        "MKL_NUM_THREADS": one,
        "MPLBACKEND": "Agg",
    }


def _run_bwrap(
    code: str,
    public: Mapping[str, bytes | Path],
    timeout_s: float,
    settings: SandboxSettings,
    private: Sequence[Path],
) -> ProcessResult:
    as_root = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="exit-mle-") as tmp:
        staging = Path(tmp)
        entries = _stage(staging, code, public)
        _check_private(private, [*python_roots(), Path("/usr"), *entries.values()])
        submission = staging / "submission.csv"
        submission.touch(mode=0o644)
        work = workdir()
        spec: dict = {
            "limits": _limits(timeout_s, settings),
            "argv": [sys.executable, "solution.py"],
            "env": _environment(work, "/tmp"),
        }
        size = str(settings.workdir_mb << 20)
        args = [settings.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net"]
        args += ["--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if as_root:  # privileged bwrap; the launcher switches to a fresh uid
            uid = 1_000_000 + secrets.randbelow(1_000_000_000)
            spec.update(uid=uid, gid=uid)
            os.chown(submission, uid, uid)
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
                args += ["--cap-add", cap]
        else:
            args += ["--unshare-user", "--disable-userns"]
        args += ["--die-with-parent", "--new-session", "--clearenv", *_system_binds()]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_MB << 20)]
        args += ["--tmpfs", "/dev/shm", "--chmod", "1777", "/dev/shm"]
        args += ["--size", size, "--tmpfs", "/tmp", "--chmod", "1777", "/tmp"]
        args += ["--size", size, "--tmpfs", work, "--chmod", "0777", work]
        for name, source in entries.items():
            args += ["--ro-bind", str(source), f"{work}/{name}"]
        args += ["--bind", str(submission), f"{work}/submission.csv"]
        args += ["--perms", "0755", "--dir", "/.exit-verl"]
        args += ["--ro-bind", str(LAUNCHER), "/.exit-verl/launcher.py", "--chdir", work]
        args += ["--", sys.executable, "-I", "-S", "/.exit-verl/launcher.py", json.dumps(spec)]
        return _supervise(args, None, staging, submission, timeout_s, settings, sandboxed=True)


def _run_unsandboxed(
    code: str, public: Mapping[str, bytes | Path], timeout_s: float, settings: SandboxSettings
) -> ProcessResult:
    with tempfile.TemporaryDirectory(prefix="exit-mle-") as tmp:
        staging = Path(tmp)
        work = staging / "work"
        work.mkdir()
        (staging / "tmp").mkdir()
        for name, source in _stage(staging, code, public).items():
            shutil.copyfile(source, work / name)
        spec = {
            "limits": _limits(timeout_s, settings),
            "argv": [sys.executable, "solution.py"],
            "env": _environment(str(work), str(staging / "tmp")),
        }
        args = [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec)]
        submission = work / "submission.csv"
        return _supervise(args, work, staging, submission, timeout_s, settings, sandboxed=False)


def _supervise(
    args: list[str],
    cwd: Path | None,
    staging: Path,
    submission: Path,
    timeout_s: float,
    settings: SandboxSettings,
    *,
    sandboxed: bool,
) -> ProcessResult:
    """Starts `args` in its own process group, enforces the wall time, collects the outputs."""
    out_path, err_path = staging / "stdout.txt", staging / "stderr.txt"
    start = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        try:
            returncode: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            _kill_group(proc)
    seconds = time.perf_counter() - start
    if returncode is not None and returncode < 0:  # signalled outside bwrap (unsandboxed)
        returncode = 128 - returncode
    content = _read_limited(submission, settings.submission_mb << 20)
    return ProcessResult(
        returncode=returncode,
        seconds=seconds,
        stdout=_tail(out_path, settings.output_chars),
        stderr=_tail(err_path, settings.output_chars),
        submission=content or None,
        sandboxed=sandboxed,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _read_limited(path: Path, max_bytes: int) -> bytes:
    try:  # never through a symlink the script may have put there (unsandboxed runs)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return b""
        return f.read(max_bytes + 1)


def _tail(path: Path, chars: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - 4 * chars))
        text = f.read().decode("utf-8", errors="replace")
    if len(text) <= chars and size <= 4 * chars:
        return text
    kept = text[-chars:]
    if "\n" in kept[:-1]:  # start at a whole line
        kept = kept[kept.index("\n") + 1 :]
    return "[... output cut ...]\n" + kept
