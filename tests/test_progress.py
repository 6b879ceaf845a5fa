"""utils.progress: a bar on a terminal, a line every few seconds in a log, nothing in tests unless asked;
and the analysis CLIs' log lines: short, and saying whether the model is above chance."""
from __future__ import annotations

import logging

import compute_dse
import schema
from metrics.chance import chance_verdict
from utils import progress


def test_lines_report_count_share_and_time_left(monkeypatch, caplog):
    monkeypatch.setenv("HP_PROGRESS", "lines")
    caplog.set_level(logging.INFO, logger="utils.progress")
    bar = progress.progress(range(4), desc="reinit", unit="batch", interval=0.0)
    assert list(bar) == [0, 1, 2, 3]
    bar.close()
    messages = [record.getMessage() for record in caplog.records]
    assert [message.split(" (")[0] for message in messages] == [f"reinit: {n}/4 batches" for n in range(1, 5)]
    assert messages[1].startswith("reinit: 2/4 batches (50%), 0s, about 0s left")


def test_lines_wait_for_the_interval_and_count_updates_without_a_total(monkeypatch, caplog):
    monkeypatch.setenv("HP_PROGRESS", "lines")
    caplog.set_level(logging.INFO, logger="utils.progress")
    bar = progress.progress([], desc="members", unit="member", interval=3600.0)
    bar.update(2)
    assert not caplog.records  # work shorter than the interval stays silent
    assert bar.line(12.0) == "members: 2 members, 12s"


def test_silent_under_pytest_and_when_disabled(monkeypatch, caplog):
    monkeypatch.delenv("HP_PROGRESS", raising=False)
    assert progress.progress_mode() == "off"  # PYTEST_CURRENT_TEST is set
    monkeypatch.setenv("HP_PROGRESS", "lines")
    caplog.set_level(logging.INFO, logger="utils.progress")
    assert list(progress.progress(range(3), enabled=False, interval=0.0)) == [0, 1, 2]
    assert not caplog.records


def test_dse_logs_short_lines_and_the_chance_verdict(digits_run, tmp_path, capsys):
    """The DSE line once reached 258 characters; each snapshot's verdict comes from its recorded
    held-out top-1, and its document carries it."""
    assert compute_dse.main(["--load-from", str(digits_run / "lenet_epoch0003.pt"), "--dse-samples", "200",
                             "--results", str(tmp_path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err and max(len(line) for line in err) <= 120, max(err, key=len)
    documents = sorted(tmp_path.rglob("*_lenet_epoch0003.json"))
    assert [path.name.split("_")[0] for path in documents] == ["dse"]
    document = schema.read_json(documents[0])
    chance = document["chance"]
    assert chance == chance_verdict(chance["top1"], n_test=chance["n_test"], num_classes=10,
                                    split=chance["split"]).as_dict()
    assert chance["above_chance"]
    assert any(line.startswith("lenet_epoch0003 is above chance") for line in err)
