"""A short or well-known master key is refused outside DEBUG, with a hint on how to make a strong one."""

import re
import secrets
from pathlib import Path

import pytest

from gateway.security import check_master_key, master_key_problem

MAKEFILE_DEMO_KEY = re.search(r"TOLLGATE_MASTER_KEY \?= (\S+)", (Path(__file__).parents[2] / "Makefile").read_text())[1]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("sk-1234", "well-known"),
        ("SK-12345", "well-known"),
        ("changeme", "well-known"),
        ("password", "well-known"),
        ("sk-short-but-random-3f9a", "at least 32"),
        ("sk-" + "a" * 40, "repeats too few characters"),
    ],
)
def test_weak_master_keys(key, problem):
    assert problem in master_key_problem(key)


@pytest.mark.parametrize("key", [MAKEFILE_DEMO_KEY, "sk-" + secrets.token_urlsafe(32), ""])
def test_strong_or_absent_master_keys_pass(key):
    assert master_key_problem(key) == ""


def test_outside_debug_a_weak_key_is_an_error_that_says_how_to_make_one(settings):
    settings.DEBUG, settings.TOLLGATE_MASTER_KEY = False, "sk-1234"

    [error] = check_master_key()

    assert (error.id, error.is_serious()) == ("tollgate.E001", True)
    assert "secrets.token_urlsafe(32)" in error.hint


def test_in_debug_a_weak_key_is_only_a_warning(settings):
    settings.DEBUG, settings.TOLLGATE_MASTER_KEY = True, "sk-1234"

    [warning] = check_master_key()

    assert (warning.id, warning.is_serious()) == ("tollgate.W001", False)
