"""Spoken captions: caption text for scenes (`captions`), the espeak-ng speaker pool (`voices`) and speech (`tts`).

    from tfvgs.speech import caption_for_scene, pick_voice, synthesize
    text = caption_for_scene(scene, seed=7)
    waveform = synthesize(text, pick_voice("scene-000007", split="train"))   # 16 kHz float32
"""
from tfvgs.speech.captions import (ATTRIBUTES, RELATIONS, SPOKEN_WORDS, STYLES, VALUES, WORD_TO_VALUE, Caption,
                                   Mention, SpokenRelation, caption_for_scene, caption_words, describe_scene,
                                   isolated_words)
from tfvgs.speech.tts import ESPEAK_SAMPLE_RATE, check_espeak, espeak_binary, synthesize, synthesize_many
from tfvgs.speech.voices import ACCENTS, VARIANTS, Voice, is_test_speaker, pick_voice, speaker_pool

__all__ = [
    "ATTRIBUTES", "RELATIONS", "SPOKEN_WORDS", "STYLES", "VALUES", "WORD_TO_VALUE", "Caption", "Mention",
    "SpokenRelation", "caption_for_scene", "caption_words", "describe_scene", "isolated_words",
    "ESPEAK_SAMPLE_RATE", "check_espeak", "espeak_binary", "synthesize", "synthesize_many",
    "ACCENTS", "VARIANTS", "Voice", "is_test_speaker", "pick_voice", "speaker_pool",
]
