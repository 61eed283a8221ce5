"""The smoke import gives each handler the environment Lambda would: what the template knows offline
(strings, a join of strings such as CORS_ORIGINS) as its value, only references to resources as placeholders."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))

import smoke_import  # noqa: E402 - deploy/ is a folder of scripts, not a package

from archive.settings import load_settings  # noqa: E402


def test_a_join_of_strings_is_the_joined_value_and_a_reference_a_placeholder():
    env = smoke_import.function_env({"Environment": {"Variables": {
        "CORS_ORIGINS": {"Fn::Join": [",", ["https://www.photonranch.org", "http://localhost:8080"]]},
        "UPLOADS_LOG_TABLE": {"Ref": "UploadsLogTable"},
        "LOG_LEVEL": "INFO",
    }}})
    assert env["CORS_ORIGINS"] == "https://www.photonranch.org,http://localhost:8080"
    assert env["UPLOADS_LOG_TABLE"] == "placeholder-uploads_log_table"
    assert env["LOG_LEVEL"] == "INFO"
    assert load_settings(env).cors_origins == ("https://www.photonranch.org", "http://localhost:8080")
