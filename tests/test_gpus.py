"""GPU tokens (``GPUS``, :mod:`segline.train.gpus`), tested without a GPU.

The token logic runs in real processes (flock is per process): a small holder script
takes a token, says which, and keeps it until told to end (or killed). The trainer is
run with ``SEGLINE_TEST_FAKE_GPUS=1`` (a test hook, tests/plugins/sitecustomize.py: the
GPU list accepted without CUDA, computing on the CPU). Every test uses its own token
folder (``SEGLINE_GPU_LOCKS``), never the user's ``/tmp/segline-gpus-<uid>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, copy_project, make_env, train_cli
from segline.errors import InputError
from segline.train import gpus
from segline.train.device import Precision

HOLDER = """
import sys
from pathlib import Path
from segline.train import gpus
from segline.train.device import Precision
ids = [int(g) for g in sys.argv[1].split(",")]
token = gpus.take(ids, Path(sys.argv[2]), "holder", lambda s: print(s, flush=True), poll=0.05)
print("took", token.slot.name, flush=True)
sys.stdin.readline()  # hold the token until the test writes a line or kills us
token.give_back()
"""


def holder(gpu_list: str, folder: Path) -> subprocess.Popen[str]:
    """A process that takes a token of ``gpu_list`` from ``folder`` and holds it."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, gpu_list, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def end(proc: subprocess.Popen[str]) -> None:
    """Tell a holder to give its token back, and wait for it."""
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0


def test_parse_gpus() -> None:
    assert gpus.parse_gpus("0, 1,1") == [0, 1, 1]
    for bad in ("", "a", "0,,1", "-1", "1.5", "²"):
        with pytest.raises(InputError, match="GPUS: expected GPU numbers"):
            gpus.parse_gpus(bad)


def test_slot_order_spreads_over_gpus() -> None:
    names = [s.name for s in gpus.slots([0, 0, 1, 1, 2])]
    assert names == ["gpu-0-0", "gpu-1-0", "gpu-2-0", "gpu-0-1", "gpu-1-1"]
    assert [s.name for s in gpus.slots([3, 1, 3])] == ["gpu-3-0", "gpu-1-0", "gpu-3-1"]


def test_one_gpu_second_waits_until_first_gives_back(tmp_path: Path) -> None:
    first = holder("0", tmp_path)
    assert line(first) == "took gpu-0-0"
    second = holder("0", tmp_path)
    assert line(second).startswith("waiting for a GPU: all 1 slots of GPUS=0 taken")
    time.sleep(0.3)  # six polls: still waiting
    assert second.poll() is None
    assert (tmp_path / "gpu-0-0.lock").read_text() == f"{first.pid} holder\n"
    end(first)
    assert line(second) == "took gpu-0-0"
    end(second)


def test_gpu_listed_twice_holds_two(tmp_path: Path) -> None:
    first, second = holder("0,0", tmp_path), holder("0,0", tmp_path)
    got = sorted([line(first), line(second)])
    assert got == ["took gpu-0-0", "took gpu-0-1"]  # neither waited
    end(first)
    end(second)


def test_two_gpus_two_trainings_get_different_gpus(tmp_path: Path) -> None:
    first = holder("0,1", tmp_path)
    assert line(first) == "took gpu-0-0"
    second = holder("0,1", tmp_path)
    assert line(second) == "took gpu-1-0"
    end(first)
    third = holder("0,1", tmp_path)  # GPU 0 free again, GPU 1 still held
    assert line(third) == "took gpu-0-0"
    end(second)
    end(third)


def test_killed_holder_gives_its_token_back(tmp_path: Path) -> None:
    first = holder("0", tmp_path)
    assert line(first) == "took gpu-0-0"
    second = holder("0", tmp_path)
    assert line(second).startswith("waiting for a GPU")
    first.kill()  # SIGKILL: no clean-up code runs, the kernel drops the flock
    first.wait(timeout=30)
    assert line(second) == "took gpu-0-0"
    end(second)


def test_give_back_in_process(tmp_path: Path) -> None:
    said: list[str] = []
    a = gpus.take([0, 0], tmp_path, "a", said.append)
    b = gpus.take([0, 0], tmp_path, "b", said.append)
    assert (a.slot.name, b.slot.name) == ("gpu-0-0", "gpu-0-1")
    a.give_back()
    a.give_back()  # idempotent
    c = gpus.take([0, 0], tmp_path, "c", said.append)
    assert c.slot.name == "gpu-0-0" and said == []
    b.give_back()
    c.give_back()


def test_default_folder_is_private_to_the_user() -> None:
    folder = gpus.lock_folder()
    assert folder == Path("/tmp") / f"segline-gpus-{os.getuid()}"
    assert folder.stat().st_uid == os.getuid()
    assert folder.stat().st_mode & 0o077 == 0


def test_override_folder_is_created(tmp_path: Path) -> None:
    assert gpus.lock_folder(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()


def fake_env(folder: Path, gpu_list: str) -> dict[str, str]:
    return {
        "SEGLINE_GPUS": gpu_list,
        "SEGLINE_GPU_LOCKS": str(folder),
        "SEGLINE_TEST_FAKE_GPUS": "1",
    }


def runtime(out: Path) -> dict[str, str]:
    return json.loads((out / "provenance" / "runtime.json").read_text())


def test_trainer_takes_a_free_fake_gpu_outside_its_identity(store, tmp_path: Path) -> None:
    """GPU 0 is held by the test, so a training with GPUS=0,1 gets GPU 1; it records the
    card in provenance only: its args.json and lineage args equal a run without GPUS."""
    plain = train_cli(store, tmp_path / "plain", "--epochs", "1")
    assert plain.returncode == 0, plain.stderr[-2000:]
    locks = tmp_path / "locks"
    locks.mkdir()
    busy = gpus.take([0], locks, "test", print)
    try:
        proc = train_cli(store, tmp_path / "m", "--epochs", "1", env=fake_env(locks, "0,1"))
    finally:
        busy.give_back()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[m] GPU cuda:1 (fake, mapped to cpu), token gpu-1-0\n" in proc.stdout
    assert runtime(tmp_path / "m")["gpu"] == "cuda:1 (fake, mapped to cpu), token gpu-1-0"
    assert runtime(tmp_path / "m")["device"] == runtime(tmp_path / "plain")["device"]
    assert "gpu" not in runtime(tmp_path / "plain")
    args = json.loads((tmp_path / "m" / "args.json").read_text())
    assert args == json.loads((tmp_path / "plain" / "args.json").read_text()) | {
        "out": str(tmp_path / "m")
    }
    assert args["precision"] == "cpu fp32" and args["device"] == "auto"


def test_resume_on_another_gpu(store, tmp_path: Path) -> None:
    """Killed after epoch 1 on GPU 0, resumed on GPU 1: the lineage still matches."""
    out, locks = tmp_path / "m", tmp_path / "locks"
    env = fake_env(locks, "0") | {"SEGLINE_TEST_KILL_AFTER_EPOCH": "1"}
    killed = train_cli(store, out, "--epochs", "2", env=env)
    assert killed.returncode != 0 and "token gpu-0-0" in killed.stdout
    resumed = train_cli(store, out, "--epochs", "2", env=fake_env(locks, "1"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "[m] resuming after epoch 1 (of 2)" in resumed.stdout
    assert "discarded" not in resumed.stdout
    assert runtime(out)["gpu"] == "cuda:1 (fake, mapped to cpu), token gpu-1-0"


@pytest.mark.parametrize(
    ("env", "device", "message"),
    [
        ({"SEGLINE_GPUS": "0,x"}, "auto",
         "GPUS: expected GPU numbers separated by commas, got '0,x'"),
        ({"SEGLINE_GPUS": "0"}, "cuda:1",
         "DEVICE: DEVICE=cuda:1 with GPUS=0: use DEVICE=auto or cuda"),
        ({"SEGLINE_GPUS": "0"}, "cuda", "GPUS: GPUS=0 but CUDA is not available"),
    ],
)  # fmt: skip
def test_bad_gpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], device: str, message: str
) -> None:
    if "CUDA" in message and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for key, value in (env | {"SEGLINE_GPU_LOCKS": str(tmp_path)}).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InputError) as err, gpus.assigned(device, "m", print):
        pass
    assert str(err.value) == message
    assert list(tmp_path.iterdir()) == []  # no token taken


def test_no_gpus_or_cpu_changes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    said: list[str] = []
    monkeypatch.setenv("SEGLINE_GPU_LOCKS", str(tmp_path))
    monkeypatch.delenv("SEGLINE_GPUS", raising=False)
    with gpus.assigned("auto", "m", said.append) as got:
        assert got is None
    monkeypatch.setenv("SEGLINE_GPUS", "0,1")
    with gpus.assigned("cpu", "m", said.append) as got:
        assert got is None
    assert said == ["GPUS=0,1 ignored: DEVICE=cpu"] and list(tmp_path.iterdir()) == []


def test_real_gpu_path_with_cuda_mocked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The index is checked against torch's count, the process's
    current device is set to the card taken, and the card's name is recorded."""
    current: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Card {i}")
    monkeypatch.setenv("SEGLINE_GPU_LOCKS", str(tmp_path))
    monkeypatch.setenv("SEGLINE_GPUS", "1,2")
    with pytest.raises(InputError, match=r"GPUS: no GPU \[2\] here: torch sees 2 \(0..1\)"):
        with gpus.assigned("auto", "m", print):
            pass
    monkeypatch.setenv("SEGLINE_GPUS", "0,1")
    busy = gpus.take([0], tmp_path, "other", print)
    with gpus.assigned("cuda", "m", print) as got:
        assert got == gpus.Assigned("cuda:1", "cuda:1 Card 1, token gpu-1-0")
        assert current == [1]
    busy.give_back()


def test_card_stays_out_of_the_description() -> None:
    """The description enters args.json and lineage.json: the type, not the index."""
    taken = Precision(torch.device("cuda:3"), torch.bfloat16, True, card="cuda:3 X, token gpu-3-0")
    assert taken.describe() == "cuda bf16 channels_last"
    chosen = Precision(torch.device("cuda:3"), torch.bfloat16, True)  # DEVICE=cuda:3
    assert chosen.describe() == "cuda:3 bf16 channels_last"


def test_bad_gpus_is_one_line_exit_2(store, tmp_path: Path) -> None:
    env = {"SEGLINE_GPUS": "0,x", "SEGLINE_GPU_LOCKS": str(tmp_path)}
    proc = train_cli(store, tmp_path / "m", env=env)
    assert proc.returncode == 2
    assert proc.stderr == "segline: GPUS: expected GPU numbers separated by commas, got '0,x'\n"
    assert not (tmp_path / "m").exists()


@pytest.mark.make
def test_make_j3_two_fake_gpus(tmp_path: Path) -> None:
    """``make -j3 GPUS=0,1``: three trainings on two GPU slots; each records a GPU of
    the list, both are used, a slot is never held twice at once; GPUS=1,0 rebuilds
    nothing."""
    root = copy_project(tmp_path / "p")
    log = tmp_path / "gpu.log"
    env = make_env() | {"SEGLINE_TEST_FAKE_GPUS": "1", "SEGLINE_TEST_GPU_LOG": str(log)}
    args = ["make", "--no-print-directory", "-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1",
            "DEBUG=--debug", "METHODS=ce gdl gdl_boundary", f"CC={sys.executable}",
            f"GPU_LOCKS={tmp_path / 'locks'}"]  # fmt: skip

    def run(*more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*args, *more], cwd=root, env=env, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip

    built = run("-j3", "GPUS=0,1", "train")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    res = root / "results" / "spleen-toy" / "debug"
    cards = {m: runtime(res / m)["gpu"] for m in ("ce", "gdl", "gdl_boundary")}
    assert {c.split()[0] for c in cards.values()} == {"cuda:0", "cuda:1"}, cards
    events = [ln.split() for ln in log.read_text().splitlines()]
    assert len(events) == 6
    held: dict[str, str] = {}
    for event, slot, out, _ in sorted(events, key=lambda e: float(e[3])):
        if event == "take":
            assert slot not in held, f"{slot} taken by {out} while {held.get(slot)} held it"
            held[slot] = out
        else:
            assert held.pop(slot) == out
    for method, card in cards.items():
        assert card.endswith(f"token gpu-{card[5]}-0"), card  # two listed GPUs: slot k=0
        assert [e[1] for e in events if e[0] == "take" and e[2].endswith("/" + method)] == [
            f"gpu-{card[5]}-0"
        ]
    again = run("-q", "GPUS=1,0", "train")
    assert again.returncode == 0, again.stdout + again.stderr
    plan = run("-n", "GPUS=1,0", "train")
    assert "segline" not in plan.stdout, plan.stdout
