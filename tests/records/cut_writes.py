"""Writes cut short part way, for real: the write runs in a child Python whose file
size limit (RLIMIT_FSIZE) lies below the new content's size, so the kernel takes the
first bytes and then refuses the rest with EFBIG (SIGXFSZ is ignored, so the write
raises OSError instead of killing the child). No filesystem call is mocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

CUT = """
import errno, resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG, not death
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
try:
{write}
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
else:
    print("written")
"""


def write_cut_short(setup: str, write: str, limit: int) -> None:
    """Run `setup` (imports, the new content), then `write` with files limited to
    `limit` bytes, in a child Python; assert the write failed part way (EFBIG: the
    kernel refused a byte past the limit, after taking the ones before it)."""
    code = textwrap.dedent(setup) + CUT.format(
        limit=limit, write=textwrap.indent(textwrap.dedent(write).strip(), "    "))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "EFBIG", (out.stdout, out.stderr)
