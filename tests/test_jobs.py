"""jobs.py: jobs from a jobs file, each job's settings and its id. No Ray; fast."""

from __future__ import annotations

import json

import pytest

from neural_style_tf import settings as settings_module
from neural_style_tf.apps import jobs


def test_a_jobs_file_gives_each_line_its_flags(tmp_path, files):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"content": "content.png", "styles": ["style.jpg"], "style-weight": 7,
                                "output": "a.png", "overwrite": True}) + "\n"
                    + "# a comment\n"
                    + json.dumps(["--content", files["content"], "--styles", files["style2"]]) + "\n"
                    + "not json\n")
    made = jobs.file_jobs(str(path), ["--iterations", "3"])
    assert [j.name for j in made] == ["a.png", "content__line3.png", "line4.png"]
    assert made[0].argv == ("--iterations", "3", "--content", files["content"], "--styles", files["style"],
                            "--style-weight", "7", "--overwrite")
    settings = jobs.parse_job(made[0], str(tmp_path))
    assert settings.loss.style_weight == 7 and settings.optimizer.iterations == 3 and settings.run.overwrite
    with pytest.raises(jobs.UsageError, match="line 4"):
        jobs.parse_job(made[2], str(tmp_path))


def test_the_job_id_follows_the_files_contents_not_their_paths(tmp_path, files):
    import shutil

    moved = tmp_path / "elsewhere.png"
    shutil.copy(files["content"], moved)
    digest = jobs.Digests()
    a = jobs.parse_job(jobs.Job("x.png", ("--content", files["content"], "--styles", files["style"])), str(tmp_path))
    b = jobs.parse_job(jobs.Job("x.png", ("--content", str(moved), "--styles", files["style"])), str(tmp_path))
    c = jobs.parse_job(jobs.Job("x.png", ("--content", files["content"], "--styles", files["style2"])), str(tmp_path))
    assert jobs.job_id(a, digest) == jobs.job_id(b, digest) != jobs.job_id(c, digest)


def test_the_job_id_ignores_what_does_not_change_the_image(tmp_path, files):
    digest = jobs.Digests()

    def job_id(*extra):
        job = jobs.Job("x.png", ("--content", files["content"], "--styles", files["style"], *extra))
        return jobs.job_id(jobs.parse_job(job, str(tmp_path)), digest)

    base = job_id()
    assert job_id("--quiet") == job_id("--print-iterations", "5") == base
    assert job_id("--seed", "1") != job_id("--seed", "2") != base  # the seed changes the image
    assert job_id("--style-weight", "7") != base
    # What the id leaves out is what settings.py marks as presentation, less what a batch refuses.
    assert set(jobs.NOT_IN_THE_ID) == {"output", "overwrite", "quiet", "print_iterations", "web", "checkpoint_every",
                                       "resume"}
    assert set(jobs.NOT_IN_THE_ID) <= set(settings_module.presentation_fields())


def test_the_job_id_of_a_default_precision_is_that_of_earlier_batches(tmp_path, files):
    """--precision came after batches were run: at its default it is left out of the id
    (earlier results.jsonl still match); given, it is in it (it changes the image)."""
    digest = jobs.Digests()

    def job_id(*extra):
        job = jobs.Job("x.png", ("--content", files["content"], "--styles", files["style"], *extra))
        return jobs.job_id(jobs.parse_job(job, str(tmp_path)), digest)

    assert job_id() == job_id("--precision", "auto")
    assert len({job_id(), job_id("--precision", "float32"), job_id("--precision", "bfloat16")}) == 3
