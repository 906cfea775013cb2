"""Names (DS, RUN, methods, REFERENCE) and the two training layouts.

* one naming rule, ``make/names.mk`` and its Python twin ``segline.names``, agree word
  for word on a table of names;
* a bad name is refused when make reads the makefile: one line naming the knob, the
  value and the rule, exit code 2, nothing run or removed (``'RUN=*' clean-results``
  used to remove every run);
* ``REFERENCE`` must be one of ``METHODS``, also checked before anything runs;
* a single-seed training folder and a folder of ``seed<k>`` trainings never share a
  folder: refused by make (with a run name to use instead) and by the trainer itself,
  before it writes and again before it replaces its folder (one toy make run, two
  tiny trainings, shared by the tests below);
* ``DS=pg RUN=x`` and ``DS=pg-x`` get distinct archive names and pointers.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, copy_project, make_env, snapshot
from segline import names
from segline.cli import run
from segline.errors import InputError
from segline.pack import main as pack_main

OK = ""
EMPTY, SPACE, BAD = names.EMPTY, names.SPACE, names.BAD_CHARS
START, TMP = names.BAD_START, names.TMP
TABLE = [
    ("gdl", OK),
    ("gdl_boundary3d", OK),
    ("Task09_Spleen", OK),
    ("Dataset001_Spleen", OK),
    ("isles-hard-toy", OK),
    ("0", OK),
    ("lr-3e4", OK),
    ("seed0", OK),  # a name; reserved for methods only (a seed's folder)
    ("x_tmp2", OK),
    ("", EMPTY),
    (" ", EMPTY),
    ("a b", SPACE),
    ("a\tb", SPACE),
    ("a ", SPACE),
    (" a", SPACE),
    ("*", BAD),
    ("a;b", BAD),
    ("report.md", BAD),
    ("pg.x", BAD),
    ("..", BAD),
    ("../x", BAD),
    ("a/b", BAD),
    ("%", BAD),
    ("a%b", BAD),
    ("$(shell touch pwned)", SPACE),  # never expanded: no file pwned appears
    ("a$b", BAD),
    ("a'b", BAD),
    ('a"b', BAD),
    ("a,b", BAD),
    ("a)b", BAD),
    ("a#b", BAD),
    ("~x", BAD),
    ("a\\b", BAD),
    ("é", BAD),
    ("-x", START),
    ("_x", START),
    ("x_tmp", TMP),
    ("gdl_tmp", TMP),
]


def _make(cwd: Path, *args: str, env: dict[str, str] | None = None):
    cmd = ["make", "--no-print-directory", *args, f"CC={sys.executable}"]
    return subprocess.run(
        cmd, cwd=cwd, env=env or make_env(), capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _one_line_refusal(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    """make stopped at parse time: exit 2, nothing printed on stdout (nothing planned or
    run), one line on stderr holding ``needle``."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert proc.stdout == "", proc.stdout[-1500:]
    assert proc.stderr.count("\n") == 1 and "***" in proc.stderr, proc.stderr
    assert needle in proc.stderr, proc.stderr


# ------------------------------------------------------------------ one rule, two twins
def test_make_and_python_agree_on_every_name(tmp_path: Path) -> None:
    """make/names.mk and segline.names give the same reason (or none) for each name;
    the value reaches make unexpanded (environment + $(value)), as a user's would."""
    probe = tmp_path / "probe.mk"
    probe.write_text("include make/names.mk\n$(info [$(call name_problem,$(value N))])\nall: ;\n")
    for value, reason in TABLE:
        assert names.name_problem(value) == reason, value
        env = {**make_env(), "N": value}
        proc = subprocess.run(
            ["make", "-s", "-f", str(probe)], cwd=REPO, env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"[{reason}]\n", (value, proc.stdout)
    assert not (REPO / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_python_check_and_label() -> None:
    assert names.check_name("RUN", "lr3") == "lr3"
    with pytest.raises(InputError, match=r"^RUN='a;b': not a valid name \(it has a char"):
        names.check_name("RUN", "a;b")
    assert names.run_label("pg", "x") == "pg.x" != names.run_label("pg-x") == "pg-x"
    assert names.check_label("pg.x") == "pg.x"
    for bad in ("pg.x.y", "pg..x", ".x", "pg/x", "pg.x_tmp"):
        with pytest.raises(InputError, match="not a run label"):
            names.check_label(bad)


def test_every_dataset_makefile_declares_names_only() -> None:
    """The methods of every dataset makefile pass the rule (make checks them when it
    reads the makefile: each makefile parses), and none is reserved."""
    for mk in sorted(REPO.glob("*.make")):
        text = mk.read_text()
        declared = re.findall(r"^(?:ALL|OPTIONAL)_METHODS :?= *(.*)$", text, flags=re.M)
        methods = " ".join(declared).split()
        assert methods, mk.name
        for m in methods:
            assert names.name_problem(m) == "" and m not in {"predict", "seeds", "debug"}, m
            assert not re.fullmatch(r"seed[0-9]+", m), m
        proc = _make(REPO, "-f", mk.name, "TOY=1", "help")
        assert proc.returncode == 0, proc.stderr
        assert "names (RUN, DS, methods): letters, digits, '-' and '_'" in proc.stdout


# ------------------------------------------------------------ refused at parse time
PG = ("-f", "spleen.make", "DS=pg", "TOY=1", "NET=Dimwit", "EPC=1", "METHODS=gdl")
RULE = "names (DS, RUN, methods) are letters, digits, '-' and '_'"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy with two runs' worth of (fake) results of DS=pg and a pointer."""
    root = copy_project(tmp_path_factory.mktemp("names") / "p")
    for folder in ("results/pg/gdl", "results/pg/r1/gdl"):
        (root / folder).mkdir(parents=True)
        (root / folder / "args.json").write_text("{}\n")
    (root / "results/pg/report.md").write_text("# Results: pg\n")
    (root / "archives").mkdir()
    (root / "archives/pg-latest.txt").write_text("pg-abc12345-0123456789ab.tar.gz\n")
    return root


def test_run_glob_clean_results_removes_nothing(tree: Path) -> None:
    before = snapshot(tree)
    for flags in (["-n"], []):
        proc = _make(tree, *flags, *PG, "RUN=*", "clean-results")
        _one_line_refusal(proc, f"RUN='*': not a valid name ({BAD}); {RULE}")
    assert snapshot(tree) == before
    assert (tree / "results/pg/r1/gdl/args.json").is_file()


@pytest.mark.parametrize(
    ("knob", "needle"),
    [
        ("RUN=a;b", f"RUN='a;b': not a valid name ({BAD})"),  # was: missing separator
        ("RUN=report.md", f"RUN='report.md': not a valid name ({BAD})"),  # was: traceback
        ("RUN=../x", f"RUN='../x': not a valid name ({BAD})"),
        ("RUN=r1_tmp", f"RUN='r1_tmp': not a valid name ({TMP})"),
        ("RUN=-x", f"RUN='-x': not a valid name ({START})"),
        ("DS=a b", f"DS='a b': not a valid name ({SPACE})"),
        ("DS=", f"DS='': not a valid name ({EMPTY})"),  # was: rm -rf results/
        ("DS=..", f"DS='..': not a valid name ({BAD})"),
        ("RUN=gdl", "RUN=gdl is a method's folder name (results/pg/gdl); pick another run name"),
        ("RUN=predict", "RUN=predict is the predictions' folder name (results/pg/predict)"),
        ("OPTIONAL_METHODS=predict", "method predict of spleen.make: a method may not be named"),
        ("OPTIONAL_METHODS=seed2", "method seed2 of spleen.make: a method may not be named"),
        ("OPTIONAL_METHODS=x.y", f"method='x.y': not a valid name ({BAD})"),
        ("METHODS=gdl gdl", "METHODS=gdl gdl: a method is listed twice"),
        ("REFERENCE=nope", "REFERENCE=nope is not among METHODS (gdl): the report tests"),
        ("REFERENCE=%", f"REFERENCE='%': not a valid name ({BAD})"),
    ],
)
def test_bad_names_refused_with_one_line(tree: Path, knob: str, needle: str) -> None:
    """Each refused when make reads the makefile, also by a real clean-results: one
    line, exit 2, nothing planned, run or removed."""
    before = snapshot(tree)
    for flags in (["-n"], []):
        _one_line_refusal(_make(tree, *flags, *PG, knob, "clean-results"), needle)
    assert snapshot(tree) == before


def test_reference_refused_before_anything_runs(tree: Path) -> None:
    """REFERENCE=nope stops the whole pipeline before the toy archive is generated."""
    before = snapshot(tree)
    proc = _make(tree, *PG, "REFERENCE=nope")
    _one_line_refusal(proc, "REFERENCE=nope is not among METHODS (gdl)")
    assert snapshot(tree) == before and not (tree / "data" / "pg").exists()
    # the vertebrae default reference (semantic) follows METHODS when it is left out
    plan = _make(tree, "-n", "-f", "vertebrae.make", "TOY=1", "METHODS=iterative", "report")
    assert plan.returncode == 0 and "--stat-reference iterative " in plan.stdout, plan.stderr


def test_dataset_folder_name_that_is_no_name(tree: Path, tmp_path: Path) -> None:
    folder = tmp_path / "my.data"
    folder.mkdir()
    proc = _make(tree, "-n", "-f", "spleen.make", f"DATASET_DIR={folder}")
    _one_line_refusal(proc, "DS='my.data': not a valid name")
    assert "DS is DATASET_DIR's folder name here: name the dataset with DS=<name>" in proc.stderr


# ---------------------------------------------------- archive names: DS, RUN pairs
def test_make_pointers_of_run_and_dataset_differ(tree: Path) -> None:
    """DS=pg RUN=x packs to archives/pg.x-latest.txt; DS=pg-x to archives/pg-x-latest.txt."""
    run_x = _make(tree, "-n", *PG, "RUN=x", "archives/pg.x-latest.txt")
    assert run_x.returncode == 0, run_x.stderr
    (cmd,) = [ln for ln in run_x.stdout.splitlines() if "-m segline.pack" in ln]
    assert "--ds pg --run x --results results/pg/x " in cmd
    assert "archives/pg.x-latest.txt" in run_x.stdout
    wrong = _make(tree, "-n", *PG, "RUN=x", "archives/pg-x-latest.txt")
    assert wrong.returncode == 2 and "No rule to make target" in wrong.stderr
    ds_x = _make(tree, "-n", *PG, "DS=pg-x", "archives/pg-x-latest.txt")
    assert ds_x.returncode == 0, ds_x.stderr
    (cmd,) = [ln for ln in ds_x.stdout.splitlines() if "-m segline.pack" in ln]
    assert "--ds pg-x --results results/pg-x " in cmd and "--run" not in cmd
    clean = _make(tree, "-n", *PG, "RUN=x", "clean-results")
    assert clean.stdout == "rm -rf -- results/pg/x archives/pg.x-latest.txt\n"


def test_pack_names_run_and_dataset_apart(tmp_path: Path, capsys) -> None:
    """The same results packed as (pg, x) and as (pg-x): two archives, two pointers."""
    res = tmp_path / "res"
    res.mkdir()
    (res / "report_cases.csv").write_text("case,dice\nc1,0.5\n")
    out = tmp_path / "archives"
    common = ["--results", str(res), "--outdir", str(out), "--commit", "abc12345"]
    assert run(pack_main, ["--ds", "pg", "--run", "x", *common]) == 0
    assert run(pack_main, ["--ds", "pg-x", *common]) == 0
    run_x = (out / "pg.x-latest.txt").read_text().strip()
    ds_x = (out / "pg-x-latest.txt").read_text().strip()
    assert run_x.startswith("pg.x-abc12345-") and ds_x.startswith("pg-x-abc12345-")
    assert run_x != ds_x and (out / run_x).is_file() and (out / ds_x).is_file()
    for name, prefix in ((run_x, "pg.x/"), (ds_x, "pg-x/")):
        with tarfile.open(out / name) as tar:
            assert all(m.startswith(prefix) for m in tar.getnames())
    capsys.readouterr()
    assert run(pack_main, ["--ds", "pg", "--run", "x.y", *common]) == 2
    assert "--run (RUN)='x.y': not a valid name" in capsys.readouterr().err


# ------------------------------------------------------ layouts never share a folder
TOY = ("-f", "spleen.make", "TOY=1", "NET=Dimwit", "EPC=1", "BS=16", "DEBUG=--debug",
       "METHODS=gdl")  # fmt: skip
RES = "results/spleen-toy"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy with one single-seed training in the run `seeds` (RUN=seeds, no SEEDS)
    and one seed<k> training in the run `multi` (SEEDS=0)."""
    root = copy_project(tmp_path_factory.mktemp("layouts") / "p")
    single = _make(root, *TOY, "RUN=seeds", f"{RES}/seeds/gdl")
    assert single.returncode == 0, single.stderr[-3000:]
    seeds = _make(root, *TOY, "RUN=multi", "SEEDS=0", f"{RES}/multi/gdl/seed0")
    assert seeds.returncode == 0, seeds.stderr[-3000:]
    assert (root / RES / "seeds/gdl/args.json").is_file()
    assert (root / RES / "multi/gdl/seed0/args.json").is_file()
    return root


@pytest.mark.make
def test_seeds_never_go_inside_a_single_seed_training(layouts: Path) -> None:
    """RUN=seeds trained without SEEDS, then SEEDS=0 (run `seeds` by default): refused,
    naming a run to use; the single-seed training is untouched, no seed0 appears."""
    before = snapshot(layouts / "results")
    needle = (
        f"{RES}/seeds/gdl holds a single-seed training (args.json) and seed<k> trainings "
        "never go inside one: train SEEDS in another run, e.g. RUN=seeds2"
    )
    for args in (("SEEDS=0", f"{RES}/seeds/gdl/seed0"), ("SEEDS=0",), ("-n", "SEEDS=0 1")):
        _one_line_refusal(_make(layouts, *TOY, "RUN=seeds", *args), needle)
    assert snapshot(layouts / "results") == before


@pytest.mark.make
def test_single_seed_never_replaces_seed_trainings(layouts: Path) -> None:
    before = snapshot(layouts / "results")
    needle = (
        f"{RES}/multi/gdl holds seed<k> trainings (seed0) that a single-seed training "
        "would replace: train it in another run, e.g. RUN=multi-single"
    )
    for args in ((f"{RES}/multi/gdl",), ("EPC=2",), ("-n", "report")):
        _one_line_refusal(_make(layouts, *TOY, "RUN=multi", *args), needle)
    assert snapshot(layouts / "results") == before
    # removing the run stays possible
    clean = _make(layouts, "-n", *TOY, "RUN=multi", "clean-results")
    assert clean.returncode == 0 and f"rm -rf -- {RES}/multi " in clean.stdout


@pytest.mark.make
@pytest.mark.parametrize("trainer", ["segline.train", "segline.experiments.vertebrae.train"])
def test_trainer_refuses_mixed_layouts_before_writing(layouts: Path, trainer: str) -> None:
    """The trainers (direct CLI use) refuse both mixes before they write anything."""
    before = snapshot(layouts / "results")
    data = layouts / "data" / "spleen-toy"
    cases = [("seeds/gdl/seed0", "results/spleen-toy/seeds/gdl holds a single-seed training")]
    cases.append(("multi/gdl", "holds seed<k> trainings (seed0) that a single-seed training"))
    if trainer == "segline.experiments.vertebrae.train":  # the same check, inherited: one case
        cases = cases[1:]
    for out, needle in cases:
        cmd = [sys.executable, "-m", trainer, "--cases", str(data / "cases"), "--dist",
               str(data / "dist"), "--out", f"{RES}/{out}", "--net", "Dimwit", "--epochs", "1"]
        if trainer == "segline.experiments.vertebrae.train":
            cmd += ["--method", "semantic"]
        proc = subprocess.run(cmd, cwd=layouts, env=make_env(), capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.startswith(f"segline: {RES}/{out}: ")
        assert needle in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert not (layouts / RES / f"{out}_tmp").exists()
    assert snapshot(layouts / "results") == before


RACE = """
import sys
from pathlib import Path
from segline.cli import entry
from segline.train import loop
from segline.train.cli import main

original = loop.Trainer._test

def _test(self, *args, **kwargs):
    # another make writes a seed's training into the folder meanwhile
    (self.out / "seed0").mkdir(parents=True)
    (self.out / "seed0" / "args.json").write_text("{}")
    return original(self, *args, **kwargs)

loop.Trainer._test = _test
sys.argv[0] = "segline-train"
entry(main)
"""


def test_trainer_checks_again_before_replacing_its_folder(store, tmp_path: Path) -> None:
    """A seed folder that appears while a single-seed training runs is not replaced:
    the training stops with one line and keeps <out>_tmp resumable."""
    out = tmp_path / "gdl"
    cases, dist = store
    cmd = [sys.executable, "-c", RACE, "--cases", str(cases), "--dist", str(dist), "--out",
           str(out), "--net", "Dimwit", "--epochs", "1", "--amp", "off", "--losses", "gdl:1"]
    env = {**make_env(), "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.endswith(
        f"segline: {out}: holds seed<k> trainings (seed0) that a single-seed training would "
        "replace; train it in another folder (make: another RUN)\n"
    ), proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["seed0"]
    assert (tmp_path / "gdl_tmp" / "train_state.pt").is_file()
