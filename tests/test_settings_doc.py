"""docs/settings.md lists every setting of goodjob_mp/config.py, and its table is the one
generated from the settings' metadata (goodjob_mp/settings_doc.py)."""

from __future__ import annotations

import dataclasses
import re

from goodjob_mp import settings_doc
from goodjob_mp.config import Settings, env_name

SETTINGS = [f.name for f in dataclasses.fields(Settings)]


def _rows() -> dict[str, str]:
    page = settings_doc.PAGE.read_text()
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", page, re.M)}


def test_every_setting_has_a_meaning():
    assert set(settings_doc.MEANINGS) == set(SETTINGS)
    assert all(text.strip() for text in settings_doc.MEANINGS.values())


def test_every_setting_appears_in_docs_settings_md_with_its_environment_variable():
    rows = _rows()
    assert sorted(rows) == sorted(SETTINGS)
    for name in SETTINGS:
        if name not in settings_doc.ENV_NOTES:
            assert f"`{env_name(name)}`" in rows[name], name


def test_every_supervisor_flag_that_sets_a_setting_is_in_its_row():
    rows = _rows()
    for name, flag in settings_doc.global_flags().items():
        if name in rows and name not in settings_doc.SUBCOMMAND_FLAGS:
            assert flag in rows[name], (name, flag)


def test_the_page_is_the_generated_one():
    page = settings_doc.PAGE.read_text()
    assert settings_doc.render(page) == page, "run: python3 -m goodjob_mp.settings_doc --write"
