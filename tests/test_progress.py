"""Progress output: bars with count and ETA on a terminal, periodic plain lines elsewhere,
written between pytest's own progress output without breaking it."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunecheck.core.progress import (
    Reporter, counting, fmt_duration, plain_output_wanted, task, with_finetune_progress,
)
from prunecheck.testing import class_colour_images, model_table, red_channel_weights, write_planted_project

pytest_plugins = ["pytester"]

SUITES = Path(__file__).resolve().parents[1] / "suites"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_like_tqdm():
    assert [fmt_duration(s) for s in (0, 9.6, 75, 3600 + 62)] == ["00:00", "00:10", "01:15", "1:01:02"]
    assert fmt_duration(float("nan")) == "?" and fmt_duration(float("inf")) == "?"


@pytest.mark.parametrize("environ, isatty, plain", [
    ({}, True, False),
    ({}, False, True),
    ({"CI": "true"}, True, True),
    ({"CI": "false"}, True, False),
    ({"PYTEST_XDIST_WORKER": "gw1"}, True, True),
    ({"TERM": "dumb"}, True, True),
])
def test_plain_output_in_ci_logs_and_xdist_workers(environ, isatty, plain):
    assert plain_output_wanted(isatty=isatty, environ=environ) is plain


def test_plain_lines_every_interval_with_count_and_eta():
    clock, lines = FakeClock(), []
    reporter = Reporter(lines.append, clock=clock, plain_seconds=10.0)
    job = reporter.task("parent on c10 [nominal]", 1000, start_line="predicting parent on c10 [nominal]")
    for done in range(100, 1001, 100):  # 100 images every 4 s: 40 s in all
        clock.now += 4.0
        job.update(done)
    job.close()
    # 4 s per 100 images: after 12 s (300 done) 28 s are left; the next line comes 12 s later
    assert lines == [
        "predicting parent on c10 [nominal]",
        "  parent on c10 [nominal]: 300/1000 images (30%), 00:12 elapsed, ~00:28 left",
        "  parent on c10 [nominal]: 600/1000 images (60%), 00:24 elapsed, ~00:16 left",
        "  parent on c10 [nominal]: 900/1000 images (90%), 00:36 elapsed, ~00:04 left",
        "  parent on c10 [nominal]: done, 1000/1000 images in 40.0 s",
    ]


def test_terminal_bar_redraws_in_place_and_fits_the_width():
    clock, drawn, ended = FakeClock(), [], []
    reporter = Reporter(lambda m: None, draw=drawn.append, end_draw=lambda: ended.append(True), width=80,
                        clock=clock)
    job = reporter.task("a very long label " * 5, 200)
    clock.now += 10.0
    job.update(50)
    job.close()
    assert ended == [True]
    assert all(len(text) <= 80 for text in drawn)
    assert drawn[1].endswith(" 25%|###       | 50/200 images [00:10<00:30]") or "50/200 images [00:10<00:30]" in drawn[1]
    assert "..." in drawn[1]  # label cut, count and ETA kept


def test_a_bare_callable_gets_plain_lines_and_counting_opens_and_closes_tasks():
    lines = []
    callback = counting(lines.append, "generating fog-3 of c10")
    for done in (64, 128, 150):
        callback(done, 150)
    assert lines[0] == "generating fog-3 of c10: 150 images"
    assert lines[-1].startswith("  generating fog-3 of c10: done, 150/150 images in ")
    with task(None, "nothing", 3) as job:  # no progress target: silent
        job.update(3)


def test_finetune_progress_reports_each_step_and_passes_a_callback():
    clock, lines = FakeClock(), []
    reporter = Reporter(lines.append, clock=clock, plain_seconds=1e9)
    seen = []

    def finetune(model, mask, *, progress):
        for batch in range(1, 4):
            clock.now += 5.0
            progress(batch, 3)
        seen.append(model)
        return model

    wrapped = with_finetune_progress(finetune, reporter, steps=2)
    assert wrapped("m1", None) == "m1" and wrapped("m2", None) == "m2" and seen == ["m1", "m2"]
    assert lines[0] == "fine-tuning step 1/2 ..."
    assert "fine-tuned step 1/2 in 15.0 s; ~00:15 left for 1 more" in lines
    assert lines[-1] == "fine-tuned step 2/2 in 15.0 s"
    assert any(line.startswith("  fine-tuning step 2/2: done, 3/3 steps") for line in lines)


def test_non_tty_run_prints_plain_progress_and_keeps_pytest_progress_intact(pytester):
    config = (model_table("parent", "parent.pt") + "\n" + model_table("pruned", "parent.pt")
              + '\n[[pairs]]\nname = "p"\nparent = "parent"\npruned = "pruned"\ndataset = "colours"\n'
              + '\n[gates.corruptions]\ncorruptions = ["gaussian_noise"]\n'
              + "\n[gates.class_accuracy]\nmin_class_images = 1\n")  # 2 images per class here
    write_planted_project(pytester.path, config=config, datasets={"colours": class_colour_images(20)},
                          checkpoints={"parent": red_channel_weights()},
                          suites=(SUITES / "test_accuracy_margin.py", SUITES / "test_corruptions.py"))
    result = pytester.runpytest("suites", "-p", "no:cacheprovider", "-k", "margin")
    out = result.stdout.str()
    assert "\r" not in out  # no bar redraws in a log
    result.stdout.fnmatch_lines([
        "suites/test_accuracy_margin.py ",
        "prunecheck: predicting parent on colours [[]nominal[]] (20 images, cpu)",
        "prunecheck:   parent on colours [[]nominal[]]: done, 20/20 images in * s",
        "suites/test_accuracy_margin.py ..*[[] *%[]]",  # pytest's line continues, no blank line
        "suites/test_corruptions.py ",
        "prunecheck: predicting parent on colours [[]gaussian_noise-3[]] (20 images, cpu)",  # not [nominal]
        "prunecheck: generating gaussian_noise-3 of colours: 20 images",
    ], consecutive=False)
    body = out[out.index("suites/"):out.index("prunecheck gates")]
    assert "\n\n" not in body  # the blank line pytest would add after foreign output is avoided


def test_xdist_workers_report_progress_as_plain_lines_through_the_controller(pytester):
    config = (model_table("parent", "parent.pt") + "\n" + model_table("pruned", "parent.pt")
              + '\n[[pairs]]\nname = "p"\nparent = "parent"\npruned = "pruned"\ndataset = "colours"\n'
              + "\n[gates.class_accuracy]\nmin_class_images = 1\n")  # 2 images per class here
    write_planted_project(pytester.path, config=config, datasets={"colours": class_colour_images(20)},
                          checkpoints={"parent": red_channel_weights()}, suites=(SUITES / "test_accuracy_margin.py",))
    result = pytester.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    err = result.stderr.str()
    assert "\r" not in err
    lines = [line for line in err.splitlines() if "prunecheck:" in line]
    assert lines[0].startswith("[gw") and lines[0].endswith("] prunecheck: predicting parent on colours [nominal] (20 images, cpu)")
    assert "] prunecheck:   parent on colours [nominal]: done, 20/20 images in " in lines[1]
