"""Runs inside the sandbox, before any model-written code: limits, identity, then the script.

Started as `python -I -S launcher.py SPEC` (SPEC: JSON) so that nothing from the working
directory or the environment is imported. In order: resource limits (setrlimit; inherited by
every process the script starts), then — when the sandbox started as root — the switch to the
run's own unprivileged uid/gid (so the process limit counts this run's processes alone and no
capability survives), no-new-privileges, a seccomp filter that refuses new user namespaces
(bwrap forbids them itself only when it made a user namespace, i.e. not when started as root),
a parent-death SIGKILL, then exec of the script with a fixed environment. Standard library
only.
"""

import ctypes
import json
import os
import platform
import resource
import signal
import struct
import sys

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
LAST_CAPABILITY = 63
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
CLONE_NEWUSER = 0x10000000
# (audit arch, unshare, clone, clone3) per machine; others get no filter.
SYSCALLS = {"x86_64": (0xC000003E, 272, 56, 435), "aarch64": (0xC00000B7, 97, 220, 435)}
X32_SYSCALL_BIT = 0x40000000
ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38


def no_user_namespaces(libc) -> None:
    """unshare/clone with CLONE_NEWUSER fail with EPERM; clone3 (whose flags a filter cannot
    read) fails with ENOSYS, so the C library falls back to clone."""
    if platform.machine() not in SYSCALLS:
        return
    arch, unshare, clone, clone3 = SYSCALLS[platform.machine()]
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    program = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, arch),
        (ret, 0, 0, ALLOW),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, 0, 1, X32_SYSCALL_BIT),
        (ret, 0, 0, ENOSYS),
        (jeq, 0, 1, clone3),
        (ret, 0, 0, ENOSYS),
        (jeq, 1, 0, unshare),
        (jeq, 0, 3, clone),
        (ld, 0, 0, 16),  # the low half of args[0]: the flags of unshare and clone
        (jset, 0, 1, CLONE_NEWUSER),
        (ret, 0, 0, EPERM),
        (ret, 0, 0, ALLOW),
    ]
    code = b"".join(struct.pack("HBBI", *op) for op in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(buffer))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def main() -> None:
    spec = json.loads(sys.argv[1])
    for name, value in spec["limits"].items():
        soft, hard = value if isinstance(value, list) else (value, value)
        resource.setrlimit(getattr(resource, name), (soft, hard))
    libc = ctypes.CDLL(None, use_errno=True)
    if spec.get("uid") is not None:
        for cap in range(LAST_CAPABILITY + 1):  # empty the bounding set (needs CAP_SETPCAP)
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        os.setgroups([])
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    no_user_namespaces(libc)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # cleared by the uid switch
    os.umask(0o022)
    os.execve(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main()
