"""experiments/run_archives.py: complete runs packed with xz and restored byte-for-byte in content."""

from __future__ import annotations

import importlib.util

import pytest

from helpers import REPO
from linas.archive import RunArchive

spec = importlib.util.spec_from_file_location("run_archives", REPO / "experiments" / "run_archives.py")
run_archives = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_archives)


def make_run(run_dir, values, status):
    with RunArchive(run_dir) as archive:
        for i, v in enumerate(values):
            archive.add(f"k{i}", {"x": i}, {"f": v}, None, 0.1, False, i + 1, v)
        if status:
            archive.set_meta("status", status)


def test_pack_keeps_complete_runs_and_unpack_restores_them(tmp_path, capsys):
    runs, packs, fresh = tmp_path / "runs", tmp_path / "packs", tmp_path / "fresh"
    make_run(runs / "linas" / "seed0", [0.1, 0.2, 0.3], "complete")
    make_run(runs / "linas" / "seed1", [0.5], None)  # still running: left alone
    assert run_archives.main(["pack", str(runs), str(packs)]) == 0
    assert sorted(p.relative_to(packs).as_posix() for p in packs.rglob("*.xz")) == ["linas/seed0/archive.sqlite.xz"]
    assert "1 not complete" in capsys.readouterr().out

    assert run_archives.main(["unpack", str(packs), str(fresh)]) == 0
    restored = RunArchive.open_existing(fresh / "linas" / "seed0")
    try:
        assert [r.metrics["f"] for r in restored.records()] == [0.1, 0.2, 0.3]
        assert restored.meta()["status"] == "complete"
    finally:
        restored.close()
    # packing again is a no-op; a different run under the same name is refused
    assert run_archives.main(["pack", str(runs), str(packs)]) == 0
    other = tmp_path / "other"
    make_run(other / "linas" / "seed0", [0.9], "complete")
    with pytest.raises(SystemExit, match="holds a different run"):
        run_archives.main(["pack", str(other), str(packs)])


def test_unpack_never_overwrites_and_reports_corrupt_packs(tmp_path):
    runs, packs = tmp_path / "runs", tmp_path / "packs"
    make_run(runs / "nsga2" / "seed0", [0.4], "complete")
    run_archives.main(["pack", str(runs), str(packs)])
    before = (runs / "nsga2" / "seed0" / "archive.sqlite").read_bytes()
    run_archives.main(["unpack", str(packs), str(runs)])
    assert (runs / "nsga2" / "seed0" / "archive.sqlite").read_bytes() == before
    bad = packs / "random" / "seed0" / "archive.sqlite.xz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not xz")
    with pytest.raises(SystemExit, match="not a valid xz file"):
        run_archives.main(["unpack", str(packs), str(tmp_path / "elsewhere")])
