"""Run N instances of one tradeflux service in one consumer group: ``instances.py N -- ARGV``.

``ARGV`` is a ``tradeflux run`` command ending in ``--instance-id NAME``; instance i gets
``NAME-i`` (its transactional id and metrics label). All share stdout. SIGTERM or SIGINT
goes to every instance; the exit code is the first non-zero one of theirs, else 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    """Start the instances, wait for them all, forward termination signals."""
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        sys.stderr.write("usage: instances.py N -- tradeflux run ... --instance-id NAME\n")
        return 2
    count, command = int(argv[0]), argv[2:]
    if command[-2] != "--instance-id":
        sys.stderr.write("the command must end in --instance-id NAME\n")
        return 2
    procs = [subprocess.Popen([*command[:-1], f"{command[-1]}-{i}"]) for i in range(1, count + 1)]

    def forward(signum: int, frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [proc.wait() for proc in procs]
    return next((code for code in codes if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
