# A pytest fixture that fails any test leaving device buffers behind.
# Each test gets a checkpoint before it runs; after it, `ttalloc check` exits 23 when buffers
# born during the test are still allocated (0 when clean, 2 when no server is running).
import os
import subprocess

import pytest

TTALLOC = os.environ.get("TTALLOC", "ttalloc")
RULES = os.environ.get("TTALLOC_SUPPRESSIONS")  # optional suppression rules file


@pytest.fixture(autouse=True)
def no_device_leaks(request):
    mark = f"test-{os.getpid()}-{request.node.name}"[:200]
    mark = "".join(c if c.isalnum() or c in "_.:/@+-" else "_" for c in mark)
    # --pid: only this worker's buffers count (pytest-xdist runs several workers at once)
    subprocess.run([TTALLOC, "mark", mark, "--pid", str(os.getpid())], check=True)
    yield
    cmd = [TTALLOC, "check", "--since", mark]
    if RULES:
        cmd += ["--ignore", RULES]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode == 23:
        pytest.fail("device memory leaked:\n" + result.stdout, pytrace=False)
    if result.returncode != 0:
        raise RuntimeError(f"ttalloc check failed ({result.returncode}): {result.stderr}")
