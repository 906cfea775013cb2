"""Provenance of a result: what produced it, so every number traces back.

Written into ``<result>/provenance/`` (see the README section "What provenance holds"):
the command (credentials masked, :func:`mask_command`), the git commit, ``git
status``, the diff of the files the commit holds, the files it does not hold
(untracked, or added to the index but never committed) by name and sha256 only (never
their content: an untracked or staged ``.env`` or key file must not reach a shareable
archive), the installed packages (``name==version``, like ``pip freeze``), the lineage
md5s the data was verified against, and the torch/device facts. Deliberately **no
environment dump** (environment variables routinely hold tokens and passwords) and no
dates or host names, so equal inputs give equal provenance files.

Every file read into the provenance passes the checks ``unpack`` applies to the same
file (:mod:`segline.repopath`: inside the repository, no symbolic link leading out of
it) and, being a lineage, must hold md5 lines only; a file that fails is left out
with one line saying why (:func:`lineage_md5_lines`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from segline import atomic
from segline.digest import sha256_file
from segline.errors import InputError
from segline.repopath import inside_repository, record_path, record_value

UNTRACKED = "untracked.sha256"
"""Name of the untracked-file listing in the provenance folder (``sha256sum`` format)."""

STAGED = "staged.sha256"
"""Name of the listing of files added to the index but not in the commit (``sha256sum``
format): their content is not in ``git.diff``, like that of untracked files."""

SCHEDULER = "scheduler.txt"
"""Name of the batch-scheduler record in the provenance folder."""

SLURM_FACTS = (
    "SLURM_CLUSTER_NAME",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_JOB_PARTITION",
    "SLURM_STEP_ID",
    "SLURM_JOB_NODELIST",
)
"""The SLURM variables recorded, and only these (an explicit whitelist: the job's
environment also carries the user's variables, tokens included, which never enter)."""
RESTARTS = "SLURM_RESTART_COUNT"
"""How often the job was requeued (pre-emption, ``scontrol requeue``): SLURM sets it from
the first requeue on; recorded under SLURM always, ``0`` when unset."""


class GitState(NamedTuple):
    """What git says about the working tree a result was produced from."""

    commit: str  #: full commit hash, or ``nogit`` outside a repository / before a commit
    status: str  #: ``git status --porcelain`` (names only, untracked ones included)
    diff: bytes  #: ``git diff HEAD --binary``: changes to the files the commit holds only
    untracked: bytes  #: ``sha256sum`` lines of the untracked, not-ignored files
    staged: bytes = b""  #: ``sha256sum`` lines of the files added but not in the commit


def _git(args: Sequence[str], cwd: Path) -> tuple[int, bytes]:
    """Run git without taking optional locks (a concurrent ``git commit`` is not
    disturbed, and parallel trainings do not race for the index lock); raw stdout."""
    try:
        proc = subprocess.run(
            ["git", "--no-optional-locks", "-c", "core.quotePath=true", *args],
            cwd=cwd,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return 127, b""
    return proc.returncode, proc.stdout


def _sha256_entry(path: Path) -> str | None:
    """Hex sha256 of a regular file's bytes, or of a symbolic link's target path (what
    git stores for a link; the link is not followed); None for anything else (a nested
    repository's folder, a file gone meanwhile)."""
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
        if stat.S_ISREG(mode):
            return sha256_file(path)
    except OSError:
        pass
    return None


def _sha256sum_line(digest: str, name: bytes) -> bytes:
    """One ``sha256sum`` line; a name with a backslash or newline is escaped the way
    ``sha256sum`` does it (line starts with ``\\``), so ``sha256sum -c`` reads it back."""
    if b"\\" in name or b"\n" in name:
        escaped = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
        return b"\\" + digest.encode("ascii") + b"  " + escaped + b"\n"
    return digest.encode("ascii") + b"  " + name + b"\n"


def _listing(repo: Path, args: Sequence[str]) -> bytes:
    """``sha256sum`` lines, sorted by path, of the files the git command ``args`` names
    (run at the repository root, ``-z`` output); empty outside a repository."""
    rc, top = _git(["rev-parse", "--show-toplevel"], repo)
    if rc != 0:
        return b""
    root = Path(os.fsdecode(top.rstrip(b"\n")))
    rc, out = _git(args, root)
    if rc != 0:
        return b""
    lines = []
    for name in sorted(set(filter(None, out.split(b"\0")))):
        digest = _sha256_entry(root / os.fsdecode(name))
        if digest is not None:
            lines.append(_sha256sum_line(digest, name))
    return b"".join(lines)


def untracked_listing(repo: Path) -> bytes:
    """``<sha256>  <path>`` lines of the untracked files git does not ignore, sorted by
    path (relative to the repository root, ``sha256sum`` format).

    Only names and hashes: the content never enters the provenance. Ignored files
    (``data/``, ``results/``, ``.venv/`` in this project's ``.gitignore``) are not
    listed: they are outputs or the environment, recorded elsewhere (lineage md5s,
    ``pip-freeze.txt``), and hashing them would cost minutes per run.
    """
    return _listing(repo, ["ls-files", "--others", "--exclude-standard", "--full-name", "-z"])


_NOT_IN_COMMIT = ["--no-renames", "--diff-filter=A"]
"""``git diff HEAD`` options selecting the paths the commit does not hold although the
index does (``git add`` without a commit, ``git add -N``, the new name of a ``git mv``,
a copy): without rename or copy detection every such path is an *addition*, whatever
file it was made from."""


def staged_listing(repo: Path) -> bytes:
    """``<sha256>  <path>`` lines (``sha256sum`` format, sorted, paths from the
    repository root) of the files added to the index but not in the commit, hashed as
    they are in the working tree (the bytes the run used).

    Git calls them tracked, but their content is in no commit: a ``.env`` added by
    mistake is as private as an untracked one, so it is listed by name and hash and
    :func:`git_state` keeps it out of the diff.
    """
    return _listing(repo, ["diff", "HEAD", "--name-only", *_NOT_IN_COMMIT, "-z"])


def git_state(repo: Path) -> GitState:
    """Commit, short status, the diff of the committed files and the two listings.

    The diff is ``git diff HEAD`` without renames, copies and additions
    (``--no-renames --diff-filter=a``): only changes to files the commit holds, whose
    old content anyone with the commit has (a renamed file is its deletion; its new
    name is listed in :func:`staged_listing`). A secret written into a file the commit
    holds is such a change and stays in the diff.
    """
    rc, commit = _git(["rev-parse", "HEAD"], repo)
    if rc != 0:
        return GitState("nogit", "", b"", b"")
    _, status = _git(["status", "--porcelain", "--untracked-files=all"], repo)
    # no external diff tools or textconv filters, no colour codes, no additions
    _, diff = _git(
        [
            "diff",
            "HEAD",
            "--binary",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "--no-renames",
            "--diff-filter=a",
        ],
        repo,
    )
    return GitState(
        commit.decode("ascii", "replace").strip(),
        status.decode("utf-8", "replace"),
        diff,
        untracked_listing(repo),
        staged_listing(repo),
    )


def package_list() -> str:
    """Installed distributions as sorted ``name==version`` lines (pip-freeze-like)."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen.setdefault(name.lower(), f"{name}=={dist.version}")
    return "".join(line + "\n" for _, line in sorted(seen.items()))


MASK = "***"
"""What a masked credential is recorded as."""

_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$", re.DOTALL)
_OPTION = re.compile(r"^(?P<option>--?[A-Za-z][A-Za-z0-9_.-]*)(?:=(?P<value>.*))?$", re.DOTALL)
_CREDENTIAL = re.compile(
    r"passw(or)?d|passphrase|secret|token|credential|cookie|bearer|auth|api[-_]?key"
    r"|(^|[-_.])(pass|pwd|key)($|[-_.])",
    re.IGNORECASE,
)
"""A name (option or variable) that says it holds a credential: ``--token``,
``--password``, ``--api-key``, ``HF_TOKEN``, ``PGPASSWORD``, ``AWS_SECRET_ACCESS_KEY``."""
_URL_USER = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_AUTH_SCHEME = re.compile(r"\b(bearer|basic|token)(\s+)\S+", re.IGNORECASE)
_TOKEN_SHAPES = re.compile(
    r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,}|hf_[A-Za-z0-9]{20,}"
    r"|sk-[A-Za-z0-9_-]{20,}|xox[abposr]-[\w-]{10,}|AKIA[0-9A-Z]{16})"
)
"""Well-known token formats (GitHub, GitLab, Hugging Face, OpenAI-style, Slack, AWS
key ids), masked wherever they appear."""


def _secret_name(name: str, environment: bool) -> bool:
    """Whether an assignment ``name=value`` is masked: every one in a launcher
    (``environment``), else an upper-case (environment-variable) or credential name."""
    return environment or name.isupper() or bool(_CREDENTIAL.search(name))


def _mask_text(text: str) -> str:
    """``text`` with URL user information, ``Bearer <token>`` and well-known token
    formats masked."""
    text = _URL_USER.sub(lambda m: m[1] + MASK + "@", text)
    text = _AUTH_SCHEME.sub(lambda m: m[1] + m[2] + MASK, text)
    return _TOKEN_SHAPES.sub(MASK, text)


def _mask_word(word: str, environment: bool) -> str:
    """One word of a command, masked (see :func:`mask_command`)."""
    assignment = _ASSIGNMENT.match(word)
    if assignment:
        name = assignment["name"]
        if _secret_name(name, environment):
            return f"{name}={MASK}"
        return f"{name}={_mask_text(assignment['value'])}"
    option = _OPTION.match(word)
    if option and option["value"] is not None:
        name = option["option"]
        if _CREDENTIAL.search(name.lstrip("-")):
            return f"{name}={MASK}"
        pieces: list[str] = []
        for piece in option["value"].split(","):  # srun --export=ALL,HF_TOKEN=...
            inner = _ASSIGNMENT.match(piece)
            if inner and _secret_name(inner["name"], environment):
                pieces.append(f"{inner['name']}={MASK}")  # the rest may be its value
                break
            pieces.append(_mask_text(piece))
        return f"{name}={','.join(pieces)}"
    return _mask_text(word)


def mask_command(words: Sequence[str], *, environment: bool = False) -> list[str]:
    """A command's words with everything that looks like a credential masked (``***``).

    What a command records goes into ``command.txt``, and from there into a shareable
    archive, so a token given on the command line must not. Masked, word by word:

    * ``NAME=value`` assignments: every one when ``environment`` is true (the ``CC``
      launcher: ``env API_TOKEN=... python``; their names stay, ``API_TOKEN=***``); in
      a program's own arguments those with an upper-case (environment-variable) or
      credential name (``HF_TOKEN=...``, ``password=...``), while a lower-case setting
      such as ``--net-opt base=16`` is a knob, kept (it is in ``args.json`` anyway);
    * the value of an option whose name says credential (:data:`_CREDENTIAL`):
      ``--token X``, ``--password=X``, ``--api-key X``, ``-auth X`` -> ``--token ***``;
    * in an option's comma-separated value, an assignment as above and everything after
      it (``srun --export=ALL,HF_TOKEN=...`` -> ``--export=ALL,HF_TOKEN=***``);
    * anywhere in a word: the user information of a URL (``https://user:pass@host`` ->
      ``https://***@host``), ``Bearer <token>`` and well-known token formats.

    Args:
        words: the command, split into words (``shlex.split`` for a shell string).
        environment: every assignment is an environment variable (a launcher prefix).

    Returns:
        The words, one for one (a masked value keeps its word), so a record's shape
        stays readable: ``env API_TOKEN=*** python``.

    Example:
        >>> mask_command(["env", "API_TOKEN=hunter2", "srun", "--token", "t0p", "python"],
        ...              environment=True)
        ['env', 'API_TOKEN=***', 'srun', '--token', '***', 'python']
        >>> mask_command(["-m", "segline.train", "--net-opt", "base=16", "--lr", "0.01"])
        ['-m', 'segline.train', '--net-opt', 'base=16', '--lr', '0.01']
    """
    masked: list[str] = []
    hide_next = False
    for word in words:
        if hide_next:
            masked.append(MASK)
            hide_next = False
            continue
        masked.append(_mask_word(word, environment))
        option = _OPTION.match(word)
        hide_next = bool(
            option and option["value"] is None and _CREDENTIAL.search(option["option"].lstrip("-"))
        )
    return masked


def shell_join(words: Sequence[str]) -> str:
    """Words as one shell line (``shlex.quote`` each), a mask ``***`` left unquoted:
    ``env API_TOKEN=*** python``, not ``env 'API_TOKEN=***' python``."""
    out = []
    for word in words:
        plain = word.replace(MASK, "x")
        out.append(word if word and shlex.quote(plain) == plain else shlex.quote(word))
    return " ".join(out)


def command_text(argv: Sequence[str]) -> str:
    """The command as run, for ``command.txt``, credentials masked (:func:`mask_command`).

    First line: the interpreter's name (not its path, which differs between clones)
    with its own flags (e.g. ``-O`` from ``CFLAGS``, taken from ``sys.orig_argv``), then
    ``argv``. When make ran the recipe through a prefix (``CC='srun … python'``), the
    makefiles export it as ``SEGLINE_CC`` and a second line records it: as given when
    nothing in it is masked, else its words with every environment assignment and
    credential masked (``CC=env API_TOKEN=*** python``); a ``CC`` that is not readable
    as shell words (an open quote) is not recorded.
    """
    flags: list[str] = []
    orig = list(getattr(sys, "orig_argv", []))
    # interpreter options sit between the executable and "-m"/the script
    for arg in orig[1:]:
        if arg == "-m" or not arg.startswith("-"):
            break
        flags.append(arg)
    words = [Path(sys.executable).name, *flags, *argv]
    text = shell_join(mask_command(words)) + "\n"
    launcher = os.environ.get("SEGLINE_CC", "").strip()
    try:
        parts = shlex.split(launcher)
    except ValueError:
        return text + "# run by make with CC=<left out: not readable as shell words>\n"
    if len(parts) > 1:
        masked = mask_command(parts, environment=True)
        verbatim = masked == parts and launcher.isprintable()
        text += f"# run by make with CC={launcher if verbatim else shell_join(masked)}\n"
    return text


def scheduler_text(environ: Mapping[str, str] | None = None) -> str:
    """The ``scheduler.txt`` record: the SLURM job that ran this process, or ``none``.

    Under SLURM (``SLURM_JOB_ID`` set: ``srun``, ``sbatch``) a line ``scheduler=slurm``
    then ``NAME=value`` for each variable of :data:`SLURM_FACTS` that is set, in that
    order: the cluster, job id and name, partition, step id and node list, so
    ``scontrol show job`` or ``sacct -j`` finds the job's log and resources; last
    :data:`RESTARTS`, the job's requeue count (0 when SLURM did not set it). Outside a
    scheduler the single line ``none``, so equal inputs still give equal provenance
    files. A value is cut at its first line break and stripped of control characters
    (one record per line).
    """
    env = os.environ if environ is None else environ
    if not env.get("SLURM_JOB_ID", "").strip():
        return "none\n"
    lines = ["scheduler=slurm"]
    for name in SLURM_FACTS:
        value = env.get(name)
        if value is not None:
            first = (value.splitlines() or [""])[0]
            clean = "".join(c for c in first if c.isprintable()).strip()
            lines.append(f"{name}={clean}")
    restarts = env.get(RESTARTS, "").strip()
    lines.append(f"{RESTARTS}={restarts if restarts.isdigit() else 0}")
    return "".join(line + "\n" for line in lines)


NOT_RECORDED = "not recorded"
"""Start of the ``lineage.md5`` comment naming a file left out (and why)."""

_MD5_LINE = re.compile(
    r"^[ \t]*\\?(?:[0-9a-fA-F]{32}[ \t].|MD5 ?\(.*\)[ \t]*=[ \t]*[0-9a-fA-F]{32}$)"
)
"""The shape of an md5 line as ``md5sum -c`` reads it (GNU ``<md5>  <path>``, escaped
``\\<md5>  <path>``, BSD ``MD5 (<path>) = <md5>``); the full parser is
:func:`segline.lineage.lineagefile.parse_lineage`, not imported here (see
:func:`_recorded_lines`)."""


def _at(path: Path, root: Path | None) -> Path:
    """``path`` as opened: relative to ``root`` when one is given (else to cwd)."""
    return path if root is None or path.is_absolute() else Path(root) / path


def _md5_lines(path: Path, root: Path | None) -> tuple[list[str], str]:
    """The md5 lines of a lineage-format file and its whole text, after the checks
    ``unpack`` applies (:func:`segline.repopath.inside_repository`).

    Raises:
        InputError: the file lies outside the repository or is a symbolic link leading
            out of it, is unreadable, or has a line that is neither empty, a
            ``#`` comment nor an md5 line (then it is no lineage: its content is private
            until shown otherwise, and none of it is returned).
    """
    inside_repository(path, root)
    try:
        # a byte that is not UTF-8 (a file name in a folder manifest) is kept as a
        # \xNN escape: md5sum writes a name's own backslashes doubled, so an escape
        # cannot be mistaken for one; the md5-line check below still refuses content
        text = _at(path, root).read_bytes().decode("utf-8", "backslashreplace")
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror}); left out") from None
    lines: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line or line.startswith("#"):
            continue
        if not _MD5_LINE.match(line):
            raise InputError(path, f"line {number} is no md5 line, so no lineage; left out")
        lines.append(line)
    return lines, text


def _recorded_lines(lineage: Path, root: Path | None = None) -> list[str]:
    """Entry lines of the ``# record:`` file a lineage names (md5s recorded on first use,
    :mod:`segline.lineage.record`), after the checks ``unpack`` applies to it
    (:func:`segline.repopath.record_path`). Read here without importing
    segline.lineage so a training's code fingerprint stays free of the download and
    unpack code.

    Args:
        lineage: the lineage file; its ``# record:`` value is relative to ``root``.
        root: the repository root (default: the current folder).

    Raises:
        InputError: the lineage or the record file fails the checks of
            :func:`_md5_lines`, or the ``# record:`` value those of ``record_path``.
    """
    value = record_value(_md5_lines(lineage, root)[1])
    if value is None:
        return []
    record = record_path(value, lineage, root)
    if not _at(record, root).is_file():
        return []
    return _md5_lines(record, root)[0]


def lineage_md5_lines(lineage: Path, root: Path | None = None) -> tuple[list[str], list[str]]:
    """The md5 lines for ``lineage.md5``: those of ``lineage`` and of its ``# record:``
    file; and one line per file left out.

    A file is left out, its content unread or dropped, when it fails the checks
    ``unpack`` applies (a symbolic link leading out of the repository: a
    ``# record: lineage/x.local.lineage`` linked to a private file) or holds anything
    but md5 lines and comments (:func:`_md5_lines`). Comments are not copied.

    Returns:
        ``(md5 lines, problems)``; each problem reads ``<file>: <why>``.
    """
    try:
        lines = _md5_lines(lineage, root)[0]
    except InputError as err:
        return [], [str(err)]
    try:
        return lines + _recorded_lines(lineage, root), []
    except InputError as err:
        return lines, [str(err)]


def write_provenance(
    folder: Path,
    argv: Sequence[str],
    lineage: Path | None,
    device: str,
    repo: Path | None = None,
    run_facts: dict[str, object] | None = None,
    card: str = "",
) -> None:
    """Write the provenance files into ``folder`` (created).

    ``run_facts`` are facts of how the run was scheduled that do not shape its result
    (loader workers, metric processes), added to ``runtime.json``; ``card``: the GPU
    taken from ``GPUS`` (index, name, token), recorded there as ``gpu``. torch is
    imported here for its version facts only, so that importing this module (e.g. for
    :func:`git_state` or :func:`package_list`) does not load torch.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    repo = repo or Path.cwd()
    atomic.write_text(folder / "command.txt", command_text(argv))
    git = git_state(repo)
    atomic.write_text(folder / "git-commit.txt", git.commit + "\n")
    atomic.write_text(folder / "git-status.txt", git.status)
    atomic.write_bytes(folder / "git.diff", git.diff)
    atomic.write_bytes(folder / UNTRACKED, git.untracked)
    atomic.write_bytes(folder / STAGED, git.staged)
    atomic.write_text(folder / "pip-freeze.txt", package_list())
    atomic.write_text(folder / SCHEDULER, scheduler_text())
    if lineage is not None and _at(lineage, repo).is_file():
        lines, refused = lineage_md5_lines(lineage, repo)
        for problem in refused:
            print(f"segline: {problem}", file=sys.stderr, flush=True)
        lines += [f"# {NOT_RECORDED}: {problem}" for problem in refused]
        atomic.write_text(folder / "lineage.md5", "".join(ln + "\n" for ln in lines))
    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cuda": torch.version.cuda or "none",
        **(run_facts or {}),
    }
    if card:
        facts["gpu"] = card
    atomic.write_json(folder / "runtime.json", facts)
