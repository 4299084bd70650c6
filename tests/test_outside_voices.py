"""scripts/speak_outside_voices.py: its speakers are outside the pool, val and test share none, and its files
import as the semantic test's words."""
import importlib.util
import os
import shutil

import pytest

from tfvgs.speech import voices

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "speak_outside_voices.py")


def _script():
    spec = importlib.util.spec_from_file_location("speak_outside_voices", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_outside_speakers_are_not_in_the_pool_and_splits_are_disjoint():
    script = _script()
    for split in ("val", "test"):
        for accent, variant in script.ESPEAK_OUTSIDE[split]:
            assert accent in voices.ACCENTS and variant not in voices.VARIANTS
    val = {v for _, v, _ in script.speakers("espeak", "val")}
    test = {v for _, v, _ in script.speakers("espeak", "test")}
    assert val and test and not val & test
    assert not set(script.FLITE_VOICES["val"]) & set(script.FLITE_VOICES["test"])
    with pytest.raises(ValueError, match="en\\+m1"):
        script.check_outside_pool([("en", "m1")])
    with pytest.raises(ValueError, match="--split"):
        script.speakers("espeak", "train")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_written_files_import_as_words(tmp_path):
    from beam_pipelines import import_words
    script = _script()
    script.ESPEAK_OUTSIDE = {"val": (("en", "klatt"),), "test": ()}
    script.FLITE_VOICES = {"val": (), "test": ()}
    written = script.run(["--output_dir", str(tmp_path / "wav"), "--engine", "espeak", "--split", "val"])
    assert written == {"espeak-en-klatt": len(script.words())}
    names = sorted(os.listdir(tmp_path / "wav"))
    assert all(import_words.parse_file_name(n)[0] == "espeak-en-klatt" for n in names)
    with pytest.raises(ValueError, match="no variant"):
        script.check_variant_exists("en+notavariant", str(tmp_path / "scratch.wav"))
