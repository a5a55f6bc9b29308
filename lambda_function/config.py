"""Settings of the scorer, read from the environment in one place (once per container)."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from typing import Mapping

from lambda_function.bundle_store import model_version_of, parse_s3_uri
from lambda_function.model import PREDICTOR_AUTO, PREDICTOR_LIGHTGBM, BundleError

SERVICE_NAME = "mushroom-scorer"
METRICS_NAMESPACE = "MushroomScorer"
#: The variable naming the shadow bundle (deployment/shadow.py sets it on a published version).
SHADOW_ENV = "SHADOW_BUNDLE_URI"
#: SCORER_PREDICTOR values, the default first.
PREDICTOR_CHOICES = (PREDICTOR_AUTO, PREDICTOR_LIGHTGBM)


class SettingsError(ValueError):
    """A required environment variable is missing or has an invalid value."""


@dataclass(frozen=True)
class ShadowSetting:
    """``SHADOW_BUNDLE_URI``: the bundle scored beside the served one (``shadow.py``).

    ``problem`` says why the value is unusable. It does not fail the settings: a broken shadow
    never stops serving, it is reported on every scored record instead.
    """

    uri: str
    model_version: str
    problem: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the scorer reads from its environment.

    Environment variables:
    - ``MODEL_BUNDLE_URI`` (required): ``s3://<models-bucket>/mushroom-classifier/<version>/``
      or a local bundle directory.
    - ``OUTPUT_STREAM_NAME`` (required): the verdicts stream (name or ARN).
    - ``BUNDLE_CACHE_DIR`` (default ``<temp dir>/model-bundle``, i.e. ``/tmp/model-bundle`` on
      Lambda): where S3 bundles are downloaded.
    - ``OUTPUT_MAX_ATTEMPTS`` (default 4): PutRecords attempts per chunk, first one included.
    - ``OUTPUT_BACKOFF_BASE_MS`` / ``OUTPUT_BACKOFF_MAX_MS`` (default 50 / 1000): exponential
      backoff with full jitter between attempts.
    - ``SCORER_PREDICTOR`` (default ``auto``): ``auto`` scores with the bundle's compiled
      predictor for this platform when it has one, ``lightgbm`` always with LightGBM (needs a
      package that has it). It only chooses: the code loaded comes from the bundle alone.
    - ``SHADOW_BUNDLE_URI`` (optional, unset or empty: no shadow): a second bundle, in the same
      form as ``MODEL_BUNDLE_URI``, scored beside the served one; see ``ShadowSetting``.
    """

    model_bundle_uri: str
    output_stream_name: str
    bundle_cache_dir: str = os.path.join(tempfile.gettempdir(), "model-bundle")
    output_max_attempts: int = 4
    output_backoff_base_s: float = 0.05
    output_backoff_max_s: float = 1.0
    predictor: str = PREDICTOR_CHOICES[0]
    shadow: ShadowSetting | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read and check the settings; raises SettingsError naming the offending variable."""
        env = os.environ if environ is None else environ
        return cls(
            model_bundle_uri=_required(
                env,
                "MODEL_BUNDLE_URI",
                "s3://<models-bucket>/mushroom-classifier/<version>/ or a local bundle directory",
            ),
            output_stream_name=_required(env, "OUTPUT_STREAM_NAME", "the verdicts stream name"),
            bundle_cache_dir=env.get("BUNDLE_CACHE_DIR") or cls.bundle_cache_dir,
            output_max_attempts=_number(env, "OUTPUT_MAX_ATTEMPTS", int, 4, minimum=1),
            output_backoff_base_s=_number(env, "OUTPUT_BACKOFF_BASE_MS", float, 50, 0) / 1000,
            output_backoff_max_s=_number(env, "OUTPUT_BACKOFF_MAX_MS", float, 1000, 0) / 1000,
            predictor=_choice(env, "SCORER_PREDICTOR", PREDICTOR_CHOICES),
            shadow=shadow_setting(env.get(SHADOW_ENV, "")),
        )


def shadow_setting(raw: str) -> ShadowSetting | None:
    """``SHADOW_BUNDLE_URI`` checked: None when unset or blank, else the setting with its
    model version (the URI's last path segment, as the deployer writes it) and any problem."""
    uri = raw.strip()
    if not uri:
        return None
    model_version = model_version_of(uri) or "unknown"
    problem = None
    if any(c.isspace() or not c.isprintable() for c in uri):
        problem = "contains whitespace or control characters"
    elif uri.startswith("s3://"):
        try:
            _, prefix = parse_s3_uri(uri)
        except BundleError:
            prefix = ""
        if not prefix.strip("/"):
            problem = "is not s3://<models-bucket>/<model>/<version>/"
    elif "://" in uri:
        problem = "is neither an s3:// URI nor a local bundle directory"
    if problem is None:
        return ShadowSetting(uri, model_version)
    return ShadowSetting(uri, model_version, f"{SHADOW_ENV}={uri[:120]!r} {problem}")


def _required(env: Mapping[str, str], name: str, expected: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set: expected {expected}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or choices[0]
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _number(env: Mapping[str, str], name: str, kind: type, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if not math.isfinite(value):  # float("nan") and float("inf") parse, but no pause is that
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be >= {minimum}")
    return value
