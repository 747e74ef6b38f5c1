import numpy as np
import pytest

from pipeline.audio import SAMPLE_RATE, AudioError, decode
from pipeline.runner import is_dual_mono

from .audio_util import write_audio
from .conftest import JFK, MONO_CALL, STEREO_CALL


def test_shipped_samples_decode_to_16k_float():
    stereo = decode(STEREO_CALL)
    assert stereo.n_channels == 2 and stereo.source_rate == 8000
    assert stereo.channels.dtype == np.float32
    assert abs(stereo.duration - 245.38) < 0.05
    mono = decode(MONO_CALL)  # 8 kHz, 8-bit unsigned PCM
    assert mono.n_channels == 1 and mono.codec == "pcm_u8"
    assert abs(mono.duration - 277.66) < 0.05
    assert 0.1 < np.abs(mono.channels).max() <= 1.0


def test_jfk_is_dual_mono():
    jfk = decode(JFK)
    assert jfk.n_channels == 2 and is_dual_mono(jfk.channels)
    assert not is_dual_mono(decode(STEREO_CALL).channels[:, : SAMPLE_RATE * 30])


@pytest.mark.parametrize(
    "suffix, codec, fmt, rate",
    [(".wav", "pcm_mulaw", "s16", 8000), (".wav", "pcm_alaw", "s16", 8000), (".mp3", "libmp3lame", "s16p", 22050),
     (".ogg", "libopus", "s16", 48000), (".m4a", "aac", "fltp", 48000), (".wav", "pcm_u8", "u8", 8000)],
)
def test_codecs_and_rates_resample_correctly(tmp_path, suffix, codec, fmt, rate):
    t = np.arange(rate * 2) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    if fmt == "u8":
        data = ((tone + 1) * 127.5).astype(np.uint8)[None, :]
    elif fmt == "s16" or fmt == "s16p":
        data = (tone * 32767).astype(np.int16)[None, :]
    else:
        data = tone.astype(np.float32)[None, :]
    path = tmp_path / f"tone{suffix}"
    write_audio(path, data, rate, codec, fmt, "mono")
    audio = decode(path)
    assert audio.source_rate == rate
    assert abs(audio.duration - 2.0) < 0.1
    # The tone's frequency survives resampling to 16 kHz.
    spectrum = np.abs(np.fft.rfft(audio.channels[0]))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / audio.channels.shape[1]
    assert abs(peak_hz - 440) < 5


def test_bad_files_get_one_line_reasons_naming_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("hello, this is not audio\n" * 20)
    truncated = tmp_path / "cut.flac"
    truncated.write_bytes(JFK.read_bytes()[:400])
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    for path, phrase in [(empty, "empty file"), (text, ""), (truncated, ""), (folder, "is a directory"), (tmp_path / "gone.wav", "not found")]:
        with pytest.raises(AudioError) as info:
            decode(path)
        message = str(info.value)
        assert str(path) in message and phrase in message
        assert "\n" not in message
