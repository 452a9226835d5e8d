"""The run folder: everything a run leaves behind, written all or nothing.

Owns: the folder layout (`config.yaml`, `summary.json`, `transactions.parquet`,
`clearing_records.parquet`, `settlements.parquet`, `log.jsonl`; `status.json` on a
failed run; `messages.iso8583` with `--trace-messages`; `clearing/in/` and `clearing/out/` when the run keeps its clearing files), serialisation that gives the same bytes for the same run, and the move
from a temporary folder into place. Must never write outside the `--out` folder and
its temporary sibling, and never leave a half-written summary.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

try:
    import fcntl
except ImportError:  # not on a POSIX system
    fcntl = None

from clearing_sim import __version__
from clearing_sim.errors import FULL_ERRNOS, InputError, WriteError
from clearing_sim.results import Result
from clearing_sim.scenario import Scenario, dump_yaml, unstructure

TABLES = ("transactions", "clearing_records", "settlements")
CLEARING_DIR = "clearing"  # with --clearing-files: clearing/in/ (files sent to the network), clearing/out/


def folder_name(name: str, default: str) -> str:
    """`name` as a folder name: unsafe characters as `_`, a leading dot as `_` (`.` or `..`
    would be a hidden folder, `runs/.-11`), at most 200 bytes (file systems allow 255, and
    the temporary sibling adds a dot, the seed and `.tmp-PID`)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or default
    if safe.startswith("."):
        safe = "_" + safe[1:]
    while len(safe.encode("utf-8")) > 200:
        safe = safe[:-1]
    return safe


def default_out(scenario: Scenario, root: Path = Path("runs")) -> Path:
    """`runs/<scenario>-<seed>/`."""
    return root / f"{folder_name(scenario.name, 'scenario')}-{scenario.run.seed}"


def dumps_json(data: dict) -> str:
    """Deterministic JSON (fixed indentation, keys in insertion order, trailing newline)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


CONFIG_HEADER = "# clearing-sim {version} mode {mode}: the resolved scenario of this run\n"
_HEADER_RE = re.compile(r"^# clearing-sim (\S+) mode (\S+):")


def write_config(folder: Path, scenario: Scenario, mode: str) -> None:
    """`config.yaml`: the resolved scenario, loadable as a scenario; a comment records version and mode."""
    header = CONFIG_HEADER.format(version=__version__, mode=mode)
    (folder / "config.yaml").write_text(header + dump_yaml(unstructure(scenario)), encoding="utf-8")


def read_config_header(path: Path) -> tuple[str, str]:
    """(version, mode) recorded at the top of a run folder's `config.yaml`; raises InputError."""
    try:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the run's config: {exc}") from None
    m = _HEADER_RE.match(first)
    if not m:
        raise InputError(f"{path}: not a clearing-sim run config (no version/mode header line)")
    return m.group(1), m.group(2)


def write_table_options(schema: pa.Schema) -> dict:
    """The Parquet writer options of a table (`pyarrow.parquet.write_table`, `ParquetWriter`),
    chosen per column from its type, so the bytes depend only on the data.

    - Dictionary encoding where values repeat: the name columns (Arrow dictionaries),
      flags and small integers (ids of acquirers, merchants, categories, BINs).
    - BYTE_STREAM_SPLIT for floats (times, latencies): zstd finds the repeating sign and
      exponent bytes once they are apart, where a dictionary never fills and plain
      doubles barely compress.
    - DELTA_BINARY_PACKED for 64-bit integers (ids counting on, cards, amounts in fen).
    - Statistics (min/max per row group, what readers prune by) on every column but the
      name columns, whose every row group holds every name: working them out would cost
      a fifth of the writing and prune nothing.
    """
    dictionary, encoding, stats = [], {}, []
    for field in schema:
        t = field.type
        if pa.types.is_dictionary(t) or pa.types.is_boolean(t) or t in (pa.int8(), pa.int16(), pa.int32()):
            dictionary.append(field.name)
        elif pa.types.is_floating(t):
            encoding[field.name] = "BYTE_STREAM_SPLIT"
        elif t == pa.int64():
            encoding[field.name] = "DELTA_BINARY_PACKED"
        if not pa.types.is_dictionary(t):
            stats.append(field.name)
    return {"compression": "zstd", "use_dictionary": dictionary, "column_encoding": encoding,
            "write_statistics": stats}


def write_table(path: Path, table: pa.Table) -> None:
    """Parquet with fixed writer options (`write_table_options`), so the bytes depend only on the data."""
    pq.write_table(table, path, **write_table_options(table.schema))


def write_clearing_files(folder: Path, result: Result) -> None:
    """`clearing/in/` and `clearing/out/`: the clearing files the run kept (if it kept any)."""
    for rel, data in result.clearing_files:
        path = folder / CLEARING_DIR / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_result(folder: Path, result: Result) -> None:
    if result.written:  # a streamed run wrote its tables and report as it went
        (folder / "summary.json").write_text(dumps_json(result.summary), encoding="utf-8")
        return
    for name in TABLES:
        write_table(folder / f"{name}.parquet", getattr(result, name))
    write_clearing_files(folder, result)
    from clearing_sim.report import write_report  # matplotlib is imported only when writing

    write_report(folder, result)
    # The summary last: its presence means every table before it is complete.
    (folder / "summary.json").write_text(dumps_json(result.summary), encoding="utf-8")


# What marks a folder as one clearing-sim wrote: a run's (or failed run's) config.yaml with
# its header line, a sweep's sweep.json (it starts with the version key), or a comparison's
# compare.* files and nothing else. A file's name alone never does (a user's status.json).
COMPARE_FILES = frozenset({"compare.json", "compare.csv", "compare.html"})
_SWEEP_JSON_START = b'{\n  "clearing_sim_version": '


def output_kind(folder: Path) -> str | None:
    """What clearing-sim wrote `folder` as: "run" (its config.yaml has a run's header line: a
    run writes it first, failed and interrupted ones too), "sweep" (its sweep.json is one a
    sweep wrote), "compare" (compare.* and nothing else), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    try:
        with open(folder / "sweep.json", "rb") as fh:
            if fh.read(len(_SWEEP_JSON_START)) == _SWEEP_JSON_START:
                return "sweep"
    except OSError:
        pass
    if (folder / "config.yaml").is_file():
        try:
            read_config_header(folder / "config.yaml")
            return "run"
        except InputError:
            pass  # a config.yaml of someone else's
    names = {p.name for p in folder.iterdir()}
    return "compare" if "compare.json" in names and names <= COMPARE_FILES else None


def enclosing_output(path: Path) -> Path | None:
    """The run or sweep folder that `path` lies inside (not `path` itself), if any: a folder whose
    files must stay as clearing-sim wrote them (a replay compares every file under a run)."""
    for parent in Path(path).resolve().parents:
        if output_kind(parent) in ("run", "sweep"):
            return parent
    return None


def nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (where a folder for `path` would be made)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_can_create(out: Path) -> None:
    """Refuse (InputError) an `--out` whose nearest existing ancestor is a file or not writable."""
    parent = nearest_existing(Path(out).resolve().parent)
    if not parent.is_dir():
        raise InputError(f"--out: cannot create {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out: cannot create {out}: {parent} is not writable")


def _read_only_within(folder: Path) -> Path | None:
    """The first folder in `folder` (itself included) whose entries cannot be removed, if any."""
    for d in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink())]:
        if not os.access(d, os.W_OK | os.X_OK):
            return d
    return None


def check_out_folder(out: Path) -> None:
    """Refuse an `--out` that cannot be replaced by a new folder; raises InputError (exit 2).

    The folder is built beside `out` and then renamed into its place, so `out` must
    not be a file (it would be lost) nor the current folder or one that holds it
    (it cannot be renamed away, and the user's files around them would go with it),
    and an existing folder must be empty or one that clearing-sim wrote (`output_kind`):
    a user's folder of other files is never deleted, nor one made read-only (the old
    folder is moved aside and removed only after the run: it stayed behind, hidden, as
    `.NAME.old-PID`). Nor may `out` lie inside a run or sweep folder (`enclosing_output`).
    """
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise InputError(f"--out: {out} exists and is not a folder")
        here = Path.cwd().resolve()
        target = out.resolve()
        if target == here or target in here.parents:
            raise InputError(f"--out: {out} is the current folder or holds it; name a new folder (or an old run's)")
        check_can_create(out)
        if out.is_dir() and any(out.iterdir()) and output_kind(out) is None:
            raise InputError(f"--out: {out} is a folder that clearing-sim did not write (not a run, a sweep or "
                             "a comparison alone); it would be replaced as a whole, so choose another folder or "
                             "empty this one")
        stuck = _read_only_within(out) if out.is_dir() and not out.is_symlink() else None
        if stuck is not None:
            raise InputError(f"--out: {out} cannot be replaced: {stuck} is read-only, so its files could not be "
                             "removed; make it writable or choose another folder")
        inside = enclosing_output(target)
        if inside is not None:
            raise InputError(f"--out: {out} lies inside the {output_kind(inside)} folder {inside}, whose files "
                             "must stay as clearing-sim wrote them; name a folder outside it")
    except OSError as exc:  # a name too long, a loop of links, ...
        raise InputError(f"--out: cannot create {out}: {exc.strerror or exc}") from None


def run_into_folder(out: Path, scenario: Scenario, mode: str, simulate: Callable[[Path], Result],
                    open_log: Callable[[IO[str]], None],
                    progress: Callable[[], dict] | None = None,
                    write_extras: Callable[[Path, Result], None] | None = None) -> Result:
    """Run `simulate(folder)` with its outputs going to a temporary folder moved to `out` at the end.

    `simulate` gets that temporary folder, for a run that writes its tables as it goes
    (`Result.written`).
    The temporary folder is a sibling of `out` (same file system, so the final move
    is a rename). `write_extras(folder, result)`, when given, writes optional outputs
    (the message trace, ...) into the temporary folder before the tables and summary.
    On failure the folder still gets `config.yaml`, `status.json` with the error, and
    the log, but no summary, tables or extras; the exception propagates.
    An interrupted run (Ctrl-C, SIGTERM) is marked `interrupted` with how far it got
    (`progress()`).
    """
    out = Path(out)
    tmp = temporary_folder(out)
    log_fh = None
    try:
        write_config(tmp, scenario, mode)  # first: it makes a failed run's folder one clearing-sim wrote
        log_fh = open(tmp / "log.jsonl", "w", encoding="utf-8")  # a quota can refuse even this
        open_log(log_fh)
        result = simulate(tmp)
        if write_extras is not None:
            write_extras(tmp, result)
        write_result(tmp, result)
        _close_quietly(log_fh)
        _move_into_place(tmp, out)
    except BaseException as exc:
        status = {
            "status": "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
            "scenario": scenario.name,
            "seed": scenario.run.seed,
            "mode": mode,
            "version": __version__,
            "progress": progress() if progress is not None else None,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exception(exc),
        }
        left = _leave_failed(tmp, out, status, log_fh)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise WriteError(f"{out}: the run could not be written: {os.strerror(exc.errno)}; {left}") from exc
        raise
    return result


# What the machine, not clearing-sim nor its input, stops a write with: a full disk or quota,
# a folder made read-only, a file too large, a failing device.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                          errno.EIO})


def _close_quietly(fh: IO[str] | None) -> None:
    try:
        if fh is not None:
            fh.close()
    except OSError:  # its last lines could not be flushed: the failure being handled says why
        pass


def _leave_failed(tmp: Path, out: Path, status: dict, log_fh: IO[str] | None) -> str:
    """Turn `tmp` into a failed run's folder (`config.yaml`, `log.jsonl`, `status.json`) and move
    it to `out`. When even that cannot be written (the disk is full, the folder went
    read-only), remove `tmp` instead: nothing half-way, and `out` as it was. Returns what is
    left, for the message."""
    _close_quietly(log_fh)
    try:
        for extra in tmp.iterdir():  # the tables, the summary, whatever else was written half-way
            if extra.name not in ("config.yaml", "log.jsonl"):
                shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
        (tmp / "status.json").write_text(dumps_json(status), encoding="utf-8")
        _move_into_place(tmp, out)
        return f"{out / 'status.json'} records the error"
    except OSError:
        discard_folder(tmp)
        return f"{tmp} could not be removed" if tmp.exists() else "nothing was written"


def temporary_folder(out: Path) -> Path:
    """Check `out` (`check_out_folder`) and create the empty hidden sibling that the
    outputs are written to before `_move_into_place`; raises InputError, or WriteError when
    the disk is too full even for the empty folder.

    The sibling is locked (`flock`) while this process writes it, so that the siblings a
    killed run left behind (SIGKILL, a power cut: nothing of it could clean up) are told
    from those of a run still going, and removed here."""
    check_out_folder(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        hold_folder(tmp)
    except OSError as exc:
        if tmp.exists():
            discard_folder(tmp)
        if exc.errno in FULL_ERRNOS:  # the machine's condition, not the user's --out: exit 1
            raise WriteError(f"--out: cannot create {out}: {exc.strerror}; nothing was written") from None
        raise InputError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    return tmp


_HELD: dict[Path, int] = {}  # this process's scratch folders -> the descriptor that holds its lock


def hold_folder(folder: Path) -> None:
    """Lock `folder` (`flock`) for as long as this process writes it, until `release_folder`:
    what `remove_unheld` leaves alone. The lock goes with the process, however it ends.

    On a file system that refuses flock (NFS without its lock daemon: ENOLCK) the folder is
    written unheld: `remove_unheld` cannot take its lock either, so leaves it alone."""
    if fcntl is None:  # no flock (Windows): stale folders stay until removed by hand
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):  # another run is removing it as stale
            raise
        return
    _HELD[folder] = fd


def release_folder(folder: Path) -> None:
    fd = _HELD.pop(folder, None)
    if fd is not None:
        os.close(fd)


def discard_folder(folder: Path) -> None:
    """Remove a scratch folder of this process's, as far as it can be, and let go of its lock."""
    shutil.rmtree(folder, ignore_errors=True)
    release_folder(folder)


def remove_unheld(folders) -> None:
    """Remove those of `folders` that no running clearing-sim holds (`hold_folder`): what a
    killed one (SIGKILL, a power cut) left behind."""
    if fcntl is None:
        return
    for path in folders:
        if path.is_symlink() or not path.is_dir():
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: still being written
            os.close(fd)
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


_SIBLING_RE = re.compile(r"\.(tmp-\d+|old-\d+-\d+)")  # after `.NAME`


def remove_stale(out: Path) -> None:
    """Remove `out`'s hidden siblings (where its parent exists) (`.NAME.tmp-PID`, `.NAME.old-PID-N`) that no running
    clearing-sim holds: a killed run's; a replaced folder whose removal was cut short."""
    out = Path(out)
    prefix = f".{glob.escape(out.name)}"
    try:
        if out.parent.is_dir():
            remove_unheld(p for p in [*out.parent.glob(f"{prefix}.tmp-*"), *out.parent.glob(f"{prefix}.old-*")]
                          if _SIBLING_RE.fullmatch(p.name[len(out.name) + 1:]))
    except OSError:  # best effort: --out's own checks say what is wrong with it
        pass


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` with `tmp`; an older run folder there is removed only after the move.

    If `tmp` cannot take its place, `out` is put back as it was and OSError raised. A run
    finishing into the same `out` at the same moment may put its folder there between the
    two renames: it is moved aside in turn (the last to finish wins, as when one follows
    the other)."""
    old_folders = []
    try:
        for attempt in range(3):
            if out.exists() or out.is_symlink():  # a link to nowhere is moved aside too (os.replace onto it failed)
                old = out.parent / f".{out.name}.old-{os.getpid()}-{attempt}"
                os.replace(out, old)
                old_folders.append(old)
            try:
                os.replace(tmp, out)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == 2:
                    raise
    except OSError:
        if old_folders and not (out.exists() or out.is_symlink()):
            os.replace(old_folders.pop(0), out)  # the user's folder back where it was
        raise
    finally:
        release_folder(tmp)
    for old in old_folders:
        if old.is_symlink():  # --out was a link to a folder: the link is replaced, its target left alone
            old.unlink()      # (rmtree refuses a link, and ignore_errors left it behind as .NAME.old-PID)
        else:
            shutil.rmtree(old, ignore_errors=True)


def compare_folders(a: Path, b: Path, ignore: tuple[str, ...] = ("log.jsonl",)) -> list[str]:
    """Names of files that differ between two run folders (missing on one side counts).

    Files in sub-folders (`clearing/in/...`) count too, by their path relative to the folder.
    """
    names_a = {str(p.relative_to(a)) for p in a.rglob("*") if p.is_file()} - set(ignore)
    names_b = {str(p.relative_to(b)) for p in b.rglob("*") if p.is_file()} - set(ignore)
    differ = sorted(names_a ^ names_b)
    for name in sorted(names_a & names_b):
        if (a / name).read_bytes() != (b / name).read_bytes():
            differ.append(name)
    return sorted(differ)
