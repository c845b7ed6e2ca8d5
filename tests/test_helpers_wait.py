"""The waits of helpers_wait fail on a hang (no CPU time used), never on slowness."""
import subprocess
import sys
import time

import pytest
from helpers_wait import communicate, communicate_all, wait_until

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\nprint('done')"


def test_a_working_child_is_waited_for_and_a_sleeping_one_is_a_hang():
    busy = subprocess.Popen([sys.executable, "-c", BUSY.format(s=2)], stdout=subprocess.PIPE, text=True)
    assert communicate(busy, stall=30)[0] == "done\n"
    asleep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.PIPE,
                              text=True)
    with pytest.raises(AssertionError, match="they hang"):
        communicate(asleep, stall=3)
    assert asleep.wait() == -9                                   # killed, not left behind


def test_a_child_waiting_for_a_working_sibling_is_not_a_hang():
    waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(4); print('a')"],
                               stdout=subprocess.PIPE, text=True)
    working = subprocess.Popen([sys.executable, "-c", BUSY.format(s=6)], stdout=subprocess.PIPE, text=True)
    assert [out for out, _ in communicate_all([waiting, working], stall=3)] == ["a\n", "done\n"]


def test_wait_until_returns_when_the_condition_holds_or_the_child_ends(tmp_path):
    flag = tmp_path / "flag"
    child = subprocess.Popen([sys.executable, "-c", f"open({str(flag)!r}, 'w')\nimport time; time.sleep(600)"])
    try:
        wait_until(flag.exists, [child.pid], "the flag", stall=60)
        assert flag.exists()
    finally:
        child.kill()
        child.wait()
    start = time.monotonic()
    wait_until(lambda: False, [child.pid], "a dead child", stall=600)   # returns: nothing is alive
    assert time.monotonic() - start < 600
