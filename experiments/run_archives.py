"""Pack finished run archives small enough to commit, and unpack them to resume a comparison.

A 1,000-validation run archive (SQLite) takes about 1 MB; xz brings it to 5-10 % of that. A
comparison too long for one sitting (e.g. compare_all_synthetic.yaml: 11 strategies x 20 seeds)
can then be spread over machines: pack the runs that are complete, commit the packs, and on the
next machine unpack them into the output folder before ``linas search`` runs the rest (it skips
complete runs)::

    python experiments/run_archives.py pack runs/compare_all_synthetic results/strategies/compare_all_synthetic/archives
    python experiments/run_archives.py unpack results/strategies/compare_all_synthetic/archives runs/compare_all_synthetic

Only archives whose ``status`` is ``complete`` are packed (a run still in progress is left alone);
a pack is written once and never replaced by a different run (a mismatch is an error). Unpacking
never overwrites an archive that exists.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sqlite3
import sys
import tempfile
from pathlib import Path

ARCHIVE = "archive.sqlite"
PACKED = "archive.sqlite.xz"


def run_status(path: Path) -> str | None:
    """The ``status`` a run archive records (None where it has none or cannot be read)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE name = 'status'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else json.loads(row[0])


def snapshot(path: Path) -> bytes:
    """A consistent, compact copy of a live SQLite database (backup API, then VACUUM)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / ARCHIVE
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
            dst.execute("VACUUM")
        finally:
            src.close()
            dst.close()
        return copy.read_bytes()


def pack(runs: Path, packs: Path) -> int:
    if not runs.is_dir():
        raise SystemExit(f"run_archives: {runs} is not a folder")
    written = skipped = 0
    for archive in sorted(runs.glob(f"*/seed*/{ARCHIVE}")):
        rel = archive.parent.relative_to(runs)
        if run_status(archive) != "complete":
            skipped += 1
            continue
        target = packs / rel / PACKED
        data = snapshot(archive)
        if target.exists():
            if lzma.decompress(target.read_bytes()) != data and not _same_evaluations(target, data):
                raise SystemExit(f"run_archives: {target} holds a different run than {archive}; "
                                 "remove one of them first")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(lzma.compress(data, preset=9))
        tmp.replace(target)
        written += 1
    print(f"packed {written} complete run(s) into {packs} ({skipped} not complete, left alone)")
    return 0


def _evaluations(data: bytes) -> list[tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARCHIVE
        path.write_bytes(data)
        conn = sqlite3.connect(path)
        try:
            return conn.execute("SELECT config_key, status, metrics FROM evaluations ORDER BY id").fetchall()
        finally:
            conn.close()


def _same_evaluations(target: Path, data: bytes) -> bool:
    """Whether a pack and an archive hold the same run (same networks, order and metrics)."""
    return _evaluations(lzma.decompress(target.read_bytes())) == _evaluations(data)


def unpack(packs: Path, runs: Path) -> int:
    if not packs.is_dir():
        raise SystemExit(f"run_archives: {packs} is not a folder")
    restored = present = 0
    for packed in sorted(packs.glob(f"*/seed*/{PACKED}")):
        target = runs / packed.parent.relative_to(packs) / ARCHIVE
        if target.exists():
            present += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        try:
            tmp.write_bytes(lzma.decompress(packed.read_bytes()))
        except lzma.LZMAError as err:
            tmp.unlink(missing_ok=True)
            raise SystemExit(f"run_archives: {packed} is not a valid xz file ({err})") from None
        tmp.replace(target)
        restored += 1
    print(f"restored {restored} run(s) into {runs} ({present} already there, left alone)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="xz-compress the complete run archives of an output folder")
    p.add_argument("runs", type=Path, help="the experiment's output folder (<label>/seed<k>/archive.sqlite)")
    p.add_argument("packs", type=Path, help="where the packs go (<label>/seed<k>/archive.sqlite.xz)")
    u = sub.add_parser("unpack", help="restore packed runs into an output folder")
    u.add_argument("packs", type=Path)
    u.add_argument("runs", type=Path)
    args = parser.parse_args(argv)
    return pack(args.runs, args.packs) if args.command == "pack" else unpack(args.packs, args.runs)


if __name__ == "__main__":
    sys.exit(main())
