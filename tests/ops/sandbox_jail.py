"""Run a command under the parts of deploy/lasso.service's sandbox that can be had without
systemd: its system call allow list (SystemCallFilter=), its socket families
(RestrictAddressFamilies=), W^X memory (MemoryDenyWriteExecute=) and no new privileges.

Used by tests/ops/test_unit_sandbox.py as ``python sandbox_jail.py`` with ``$JAIL_SPEC``, a JSON
object: ``allow`` (system call names), ``families`` (``AF_*`` names), ``mdwe`` (bool) and
``argv`` (the command, exec'd in place). Anything else is refused with EPERM, as
``SystemCallErrorNumber=EPERM`` says. libseccomp (which systemd itself uses) is loaded with
ctypes; W^X is the kernel's own ``PR_SET_MDWE`` (Linux 6.3+), which systemd 253+ uses too.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_CMP_EQ = 4


class ArgCmp(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def main() -> None:
    spec = json.loads(os.environ.pop("JAIL_SPEC"))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(f"jail: no_new_privs: {os.strerror(ctypes.get_errno())}")
    if spec["mdwe"] and libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(f"jail: PR_SET_MDWE: {os.strerror(ctypes.get_errno())}")

    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    add = lib.seccomp_rule_add
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
    socket_nr = lib.seccomp_syscall_resolve_name(b"socket")
    for name in spec["allow"]:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0 or number == socket_nr:  # not on this architecture; socket: below
            continue
        add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
        if add(ctx, SCMP_ACT_ALLOW, number, 0) != 0:
            sys.exit(f"jail: cannot allow {name}")
    if "socket" in spec["allow"]:
        add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ArgCmp]
        for family in spec["families"]:
            rule = ArgCmp(0, SCMP_CMP_EQ, getattr(socket, family), 0)
            if add(ctx, SCMP_ACT_ALLOW, socket_nr, 1, rule) != 0:
                sys.exit(f"jail: cannot allow socket({family})")
    if lib.seccomp_load(ctx) != 0:
        sys.exit("jail: seccomp_load failed")
    os.execv(spec["argv"][0], spec["argv"])


if __name__ == "__main__":
    main()
