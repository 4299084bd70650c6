"""Every command says how it is run (`python -m <module>`) and what it does in a whole sentence."""
import importlib

import pytest

from tfvgs import cli

COMMANDS = [("tfvgs.train", "main"), ("tfvgs.evaluate", "main"), ("tfvgs.demo", "run"),
            ("tfvgs.evaluation.caption_faithfulness", "main"), ("tfvgs.draw", "main"),
            ("tfvgs.evaluation.gan_quality", "main"),
            ("beam_pipelines.render_scenes", "run"), ("beam_pipelines.spoken_captions", "run"),
            ("beam_pipelines.audio_clevrgan", "run"), ("beam_pipelines.import_manifest", "run"),
            ("beam_pipelines.import_words", "run"), ("beam_pipelines.semantic_test_set", "run"), ("beam_pipelines.transfer_test_set", "run"),
            ("export.__main__", "main")]


def test_first_paragraph_joins_the_lines_before_the_first_blank_line():
    assert cli.first_paragraph("\nDoes one thing,\n  and another.\n\n    usage\n") == "Does one thing, and another."
    assert cli.first_paragraph("") == ""


@pytest.mark.parametrize("module,entry", COMMANDS)
def test_help_shows_the_python_m_usage_and_a_whole_sentence(module, entry, capsys):
    command = getattr(importlib.import_module(module), entry)
    with pytest.raises(SystemExit) as exit_info:
        command(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    runnable = "export" if module == "export.__main__" else module
    assert out.startswith(f"usage: python -m {runnable} "), out.splitlines()[0]
    description = out.split("\n\n")[1].replace("\n", " ").strip()
    assert description.endswith("."), description


def test_evaluate_refuses_a_stage_that_does_not_exist(tmp_path, capsys):
    from tfvgs import evaluate
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--workdir", str(tmp_path), "--data_dir", str(tmp_path), "--stage", "davnet"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'davnet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):          # a stage name, but not a model evaluate can score
        evaluate.main(["--workdir", str(tmp_path), "--data_dir", str(tmp_path), "--stage", "gan"])
    assert "invalid choice: 'gan'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_names_a_missing_data_dir_in_one_line(tmp_path, capsys):
    from tfvgs import evaluate
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--workdir", str(tmp_path / "w"), "--data_dir", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[evaluate] error: --data_dir ") and "does not exist" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_quiet_startup_drops_only_the_known_start_up_notices():
    import logging
    from tfvgs import console
    console.quiet_startup()
    console.quiet_startup()                                  # idempotent: one filter
    root = logging.getLogger()
    assert sum(isinstance(f, console._DropKnownNoise) for f in root.filters) == 1
    noise = logging.LogRecord("root", logging.WARNING, __file__, 1, "apitools not found, and bigquery client "
                              "libraries are not available despite the import not raising an ImportError.", (), None)
    ours = logging.LogRecord("root", logging.WARNING, __file__, 1, "rejected %s at %s: %s", ("x", "describe", "y"),
                             None)
    assert not root.filter(noise)
    assert root.filter(ours)


PIPELINES = ("render_scenes", "spoken_captions", "audio_clevrgan", "semantic_test_set", "transfer_test_set",
             "import_manifest", "import_words")


def test_pipeline_help_does_not_load_tensorflow():
    # `--help` of a Beam pipeline used to take 8.6 s and print TensorFlow's start-up lines
    import os
    import subprocess
    import sys
    probe = ("import runpy, sys\n"
             "for name in sys.argv[1:]:\n"
             "    sys.argv = [name, '--help']\n"
             "    try:\n"
             "        runpy.run_module('beam_pipelines.' + name, run_name='__main__')\n"
             "    except SystemExit as e:\n"
             "        assert e.code in (0, None), (name, e.code)\n"
             "    print('loaded', name, 'tensorflow' in sys.modules, flush=True)\n")
    result = subprocess.run([sys.executable, "-c", probe, *PIPELINES], capture_output=True, text=True,
                            timeout=240, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("loaded ")]
    assert [name for _, name, _ in lines] == list(PIPELINES), result.stdout[-2000:]
    assert all(flag == "False" for *_, flag in lines), result.stdout
    assert "usage: python -m beam_pipelines.render_scenes" in result.stdout
