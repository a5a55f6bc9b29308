"""Settings: read once from the environment, with errors that name the variable."""

from __future__ import annotations

import pytest

from lambda_function.config import Settings, SettingsError

REQUIRED = {"MODEL_BUNDLE_URI": "s3://models/mushroom-classifier/3/", "OUTPUT_STREAM_NAME": "v"}


def test_defaults():
    settings = Settings.from_env(REQUIRED)
    assert settings.model_bundle_uri == "s3://models/mushroom-classifier/3/"
    assert settings.output_stream_name == "v"
    assert settings.bundle_cache_dir == "/tmp/model-bundle"
    assert (settings.output_max_attempts, settings.output_backoff_base_s) == (4, 0.05)


def test_overrides():
    settings = Settings.from_env(
        {
            **REQUIRED,
            "OUTPUT_MAX_ATTEMPTS": "7",
            "OUTPUT_BACKOFF_BASE_MS": "10",
            "OUTPUT_BACKOFF_MAX_MS": "500",
            "BUNDLE_CACHE_DIR": "/tmp/b",
        }
    )
    assert settings.output_max_attempts == 7
    assert settings.output_backoff_base_s == 0.01 and settings.output_backoff_max_s == 0.5
    assert settings.bundle_cache_dir == "/tmp/b"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OUTPUT_STREAM_NAME": "v"}, "MODEL_BUNDLE_URI is not set"),
        ({"MODEL_BUNDLE_URI": "/b", "OUTPUT_STREAM_NAME": " "}, "OUTPUT_STREAM_NAME is not set"),
        ({**REQUIRED, "OUTPUT_MAX_ATTEMPTS": "many"}, "OUTPUT_MAX_ATTEMPTS='many' is not a valid"),
        ({**REQUIRED, "OUTPUT_MAX_ATTEMPTS": "0"}, "must be >= 1"),
        ({**REQUIRED, "OUTPUT_BACKOFF_BASE_MS": "nan"}, "must be a finite number"),
        ({**REQUIRED, "OUTPUT_BACKOFF_MAX_MS": "inf"}, "must be a finite number"),
    ],
)
def test_errors_name_the_variable(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_settings_are_frozen():
    settings = Settings.from_env(REQUIRED)
    with pytest.raises(AttributeError):
        settings.output_stream_name = "other"  # type: ignore[misc]
